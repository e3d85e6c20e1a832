//! `ssl-expiry` and `ssl-handshake`: v2's ssl-expiry-check and ssl-handshake-check.
//!
//! * `ssl-expiry`: the certificate `DOMAIN_NAME:PORT` presents is valid now and for more
//!   than `DAYS` days; verified against the platform's roots unless `INSECURE=true`.
//! * `ssl-handshake`: a TLS handshake verified against the platform's roots succeeds; with
//!   `SELF_SIGNED=true` the host's own certificate is fetched first and trusted (v2's way of
//!   checking self-signed endpoints).

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

use super::Outcome;
use super::knobs::Knobs;
use crate::api::duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    fn read(knobs: &mut Knobs) -> Endpoint {
        let host = knobs.required("DOMAIN_NAME", "a host name such as example.com");
        let port = knobs.whole("PORT", 443);
        let port = u16::try_from(port).unwrap_or_else(|_| {
            knobs.invalid(format!(
                "PORT is \"{port}\", expected a port from 1 to 65535"
            ));
            443
        });
        if port == 0 {
            knobs.invalid("PORT is \"0\", expected a port from 1 to 65535".into());
        }
        Endpoint { host, port }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryConfig {
    pub endpoint: Endpoint,
    pub days: u64,
    pub insecure: bool,
}

impl ExpiryConfig {
    pub fn read(knobs: &mut Knobs) -> ExpiryConfig {
        ExpiryConfig {
            endpoint: Endpoint::read(knobs),
            days: knobs.whole("DAYS", 60),
            insecure: knobs.flag("INSECURE", false),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeConfig {
    pub endpoint: Endpoint,
    pub self_signed: bool,
}

impl HandshakeConfig {
    pub fn read(knobs: &mut Knobs) -> HandshakeConfig {
        HandshakeConfig {
            endpoint: Endpoint::read(knobs),
            self_signed: knobs.flag("SELF_SIGNED", false),
        }
    }
}

/// What the expiry check needs to know of the leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub subject: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

impl Certificate {
    pub fn parse(der: &[u8]) -> Result<Certificate, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
        let time = |t: x509_parser::time::ASN1Time| {
            Timestamp::from_second(t.timestamp())
                .map_err(|e| format!("the certificate has an unusable date: {e}"))
        };
        Ok(Certificate {
            subject: cert.subject().to_string(),
            not_before: time(cert.validity().not_before)?,
            not_after: time(cert.validity().not_after)?,
        })
    }
}

/// Passes when the certificate is valid at `now` and for more than `days` days after it.
pub fn evaluate_expiry(config: &ExpiryConfig, cert: &Certificate, now: Timestamp) -> Outcome {
    let who = format!("the certificate of {} ({})", config.endpoint, cert.subject);
    if now < cert.not_before {
        return Err(vec![format!(
            "{who} is not valid before {}",
            cert.not_before
        )]);
    }
    if now >= cert.not_after {
        return Err(vec![format!("{who} expired at {}", cert.not_after)]);
    }
    let left = now.duration_until(cert.not_after);
    let bar = SignedDuration::from_hours(24 * config.days as i64);
    if left > bar {
        return Ok(());
    }
    let days_left = left.as_secs() / 86_400;
    Err(vec![format!(
        "{who} expires at {}, in {days_left} days, within DAYS {}",
        cert.not_after, config.days
    )])
}

/// Accepts any certificate (signatures are still checked): `INSECURE`, and fetching a
/// self-signed certificate to trust.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whom to trust in a handshake.
pub enum Trust {
    /// The platform's roots.
    Platform,
    /// These certificates only.
    Only(Vec<CertificateDer<'static>>),
    /// Anyone.
    Anyone,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(trust: Trust) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match trust {
        Trust::Platform => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("cannot load the platform's root certificates: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        Trust::Only(certs) => {
            let mut roots = RootCertStore::empty();
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("cannot trust the host's certificate: {e}"))?;
            }
            builder.with_root_certificates(roots)
        }
        Trust::Anyone => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider))),
    };
    Ok(config.with_no_client_auth())
}

/// Connects and completes a TLS handshake; returns the chain the server presented.
pub async fn handshake(
    endpoint: &Endpoint,
    trust: Trust,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let config = client_config(trust)?;
    let name = ServerName::try_from(endpoint.host.clone())
        .map_err(|e| format!("DOMAIN_NAME is {:?}, {e}", endpoint.host))?;
    let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("the TLS handshake with {endpoint} failed: {e}"))?;
    let chain = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.to_vec())
        .unwrap_or_default();
    if chain.is_empty() {
        return Err(format!("{endpoint} presented no certificate"));
    }
    Ok(chain)
}

async fn within<T>(
    limit: Duration,
    what: &str,
    work: impl Future<Output = Result<T, String>>,
) -> Result<T, Vec<String>> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(|e| vec![e]),
        Err(_) => Err(vec![format!(
            "{what} did not complete within {}",
            duration::format(limit)
        )]),
    }
}

pub async fn run_expiry(mut knobs: Knobs, time_left: Duration) -> Outcome {
    let config = ExpiryConfig::read(&mut knobs);
    knobs.finish()?;
    let trust = if config.insecure {
        Trust::Anyone
    } else {
        Trust::Platform
    };
    let what = format!("the TLS handshake with {}", config.endpoint);
    let chain = within(time_left, &what, handshake(&config.endpoint, trust)).await?;
    let cert = Certificate::parse(&chain[0]).map_err(|e| vec![e])?;
    evaluate_expiry(&config, &cert, Timestamp::now())
}

pub async fn run_handshake(mut knobs: Knobs, time_left: Duration) -> Outcome {
    let config = HandshakeConfig::read(&mut knobs);
    knobs.finish()?;
    let what = format!("the TLS handshake with {}", config.endpoint);
    within(time_left, &what, async {
        let trust = if config.self_signed {
            let chain = handshake(&config.endpoint, Trust::Anyone).await?;
            Trust::Only(vec![chain[0].clone()])
        } else {
            Trust::Platform
        };
        handshake(&config.endpoint, trust).await.map(drop)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiry(days: &str) -> ExpiryConfig {
        let mut k = Knobs::from_pairs(&[("DOMAIN_NAME", "example.com"), ("DAYS", days)]);
        let c = ExpiryConfig::read(&mut k);
        k.finish().unwrap();
        c
    }

    fn cert(not_after: Timestamp) -> Certificate {
        Certificate {
            subject: "CN=example.com".into(),
            not_before: Timestamp::from_second(0).unwrap(),
            not_after,
        }
    }

    #[test]
    fn days_left_around_the_threshold() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let c = expiry("30");
        let in_days = |d: i64, extra: i64| now + SignedDuration::from_secs(d * 86_400 + extra);
        assert_eq!(evaluate_expiry(&c, &cert(in_days(30, 1)), now), Ok(()));
        assert_eq!(evaluate_expiry(&c, &cert(in_days(31, 0)), now), Ok(()));
        assert_eq!(
            evaluate_expiry(&c, &cert(in_days(30, 0)), now).unwrap_err(),
            [format!(
                "the certificate of example.com:443 (CN=example.com) expires at {}, in 30 days, within DAYS 30",
                in_days(30, 0)
            )]
        );
        assert_eq!(
            evaluate_expiry(&c, &cert(in_days(29, 3600)), now).unwrap_err(),
            [format!(
                "the certificate of example.com:443 (CN=example.com) expires at {}, in 29 days, within DAYS 30",
                in_days(29, 3600)
            )]
        );
    }

    #[test]
    fn expired_and_not_yet_valid() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let c = expiry("0");
        assert_eq!(
            evaluate_expiry(&c, &cert(now), now).unwrap_err(),
            [format!(
                "the certificate of example.com:443 (CN=example.com) expired at {now}"
            )]
        );
        assert_eq!(
            evaluate_expiry(&c, &cert(now + SignedDuration::from_secs(1)), now),
            Ok(())
        );
        let future = Certificate {
            not_before: now + SignedDuration::from_secs(60),
            ..cert(now + SignedDuration::from_hours(24 * 400))
        };
        assert!(evaluate_expiry(&c, &future, now).unwrap_err()[0].contains("is not valid before"));
    }

    #[test]
    fn defaults_and_bad_knobs() {
        let mut k = Knobs::from_pairs(&[("DOMAIN_NAME", "example.com")]);
        let c = ExpiryConfig::read(&mut k);
        k.finish().unwrap();
        assert_eq!((c.endpoint.port, c.days, c.insecure), (443, 60, false));
        let mut k = Knobs::from_pairs(&[("PORT", "70000"), ("DAYS", "soon"), ("INSECURE", "no")]);
        ExpiryConfig::read(&mut k);
        assert_eq!(
            k.finish().unwrap_err(),
            [
                "DOMAIN_NAME is not set, expected a host name such as example.com",
                "PORT is \"70000\", expected a port from 1 to 65535",
                "DAYS is \"soon\", expected a whole number",
                "INSECURE is \"no\", expected true or false",
            ]
        );
        let mut k = Knobs::from_pairs(&[("DOMAIN_NAME", "x"), ("SELF_SIGNED", "y")]);
        HandshakeConfig::read(&mut k);
        assert_eq!(
            k.finish().unwrap_err(),
            ["SELF_SIGNED is \"y\", expected true or false"]
        );
    }
}
