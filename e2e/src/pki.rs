//! Certificates and keys for a local API server, generated in-process.
//!
//! ECDSA P-256 throughout: it is what rcgen generates with ring, rustls and Go accept it
//! for TLS, and kube-apiserver signs service-account tokens with it (ES256).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The PEM files an API server needs.
pub struct Pki {
    pub ca_cert: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub service_account_key: String,
    pub service_account_public_key: String,
    /// The pod runner's kubelet endpoint: serving certificate for `host_ip`.
    pub kubelet_cert: String,
    pub kubelet_key: String,
    /// The API server's client certificate towards kubelets (`pods/log`).
    pub kubelet_client_cert: String,
    pub kubelet_client_key: String,
}

/// Paths of the files [`Pki::write`] created.
#[derive(Clone, Debug)]
pub struct PkiFiles {
    pub ca_cert: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_public_key: PathBuf,
    pub kubelet_cert: PathBuf,
    pub kubelet_key: PathBuf,
    pub kubelet_client_cert: PathBuf,
    pub kubelet_client_key: PathBuf,
}

impl Pki {
    /// A CA, a serving certificate for `127.0.0.1`, `localhost` and `host_ip` (where pods
    /// reach the API server) signed by it, and the service-account signing key pair.
    pub fn generate(host_ip: Ipv4Addr) -> Result<Self> {
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kuberhealthy-e2e-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("self-signing the CA")?;
        let ca = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().context("generating the serving key")?;
        // Strings that parse as IP addresses become IP SANs.
        let mut serving_params = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            host_ip.to_string(),
        ])?;
        serving_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving_params
            .signed_by(&serving_key, &ca)
            .context("signing the serving certificate")?;

        let sa_key = KeyPair::generate().context("generating the service-account signing key")?;
        let (kubelet_cert, kubelet_key) = leaf(
            &ca,
            vec![host_ip.to_string()],
            "e2e-node",
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (kubelet_client_cert, kubelet_client_key) = leaf(
            &ca,
            vec![],
            "kube-apiserver-kubelet-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        Ok(Self {
            ca_cert: ca_cert.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            service_account_key: sa_key.serialize_pem(),
            service_account_public_key: sa_key.public_key_pem(),
            kubelet_cert,
            kubelet_key,
            kubelet_client_cert,
            kubelet_client_key,
        })
    }
}

/// A certificate and key signed by `ca` for `names`, for one use.
fn leaf(
    ca: &Issuer<'_, KeyPair>,
    names: Vec<String>,
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    let key = KeyPair::generate().with_context(|| format!("generating the {common_name} key"))?;
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let cert = params
        .signed_by(&key, ca)
        .with_context(|| format!("signing the {common_name} certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl Pki {
    /// Writes the PEM files into `dir`.
    pub fn write(&self, dir: &Path) -> Result<PkiFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let files = PkiFiles {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            service_account_key: dir.join("sa.key"),
            service_account_public_key: dir.join("sa.pub"),
            kubelet_cert: dir.join("kubelet.crt"),
            kubelet_key: dir.join("kubelet.key"),
            kubelet_client_cert: dir.join("apiserver-kubelet-client.crt"),
            kubelet_client_key: dir.join("apiserver-kubelet-client.key"),
        };
        for (path, pem) in [
            (&files.ca_cert, &self.ca_cert),
            (&files.serving_cert, &self.serving_cert),
            (&files.serving_key, &self.serving_key),
            (&files.service_account_key, &self.service_account_key),
            (
                &files.service_account_public_key,
                &self.service_account_public_key,
            ),
            (&files.kubelet_cert, &self.kubelet_cert),
            (&files.kubelet_key, &self.kubelet_key),
            (&files.kubelet_client_cert, &self.kubelet_client_cert),
            (&files.kubelet_client_key, &self.kubelet_client_key),
        ] {
            std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(files)
    }
}

/// A random token for static token authentication (hex of 16 bytes from the kernel).
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_pem_files() {
        let pki = Pki::generate(Ipv4Addr::new(10, 213, 0, 1)).unwrap();
        assert!(pki.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.serving_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.serving_key.contains("PRIVATE KEY"));
        assert!(
            pki.service_account_public_key
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        let dir = tempfile::tempdir().unwrap();
        let files = pki.write(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(files.ca_cert).unwrap(), pki.ca_cert);
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
