//! ssl-expiry and ssl-handshake against TLS servers on 127.0.0.1, with certificates made by
//! rcgen: one signed by a test CA that the checkers trust through `SSL_CERT_FILE` (as a CA
//! bundle mounted into the image would be), one from the same CA that expires soon, and a
//! self-signed one.
//!
//! The certificates name `localhost`, so that the checks verify a host name as they do in a
//! cluster. Their checker pods run with `hostNetwork: true`: in a pod network namespace of
//! their own, `localhost` would be the pod's own loopback, where no server listens.

use serde_json::{Value, json};

use crate::support::servers::{Authority, Identity, TlsServer, midnight, today_plus};
use crate::support::{CheckTest, summary};

/// What a test's servers present, and the CA bundle the checkers get.
struct Servers {
    /// From the test CA, for `localhost`, valid for 400 days.
    trusted: TlsServer,
    /// From the test CA, for `localhost`, ending in 10 days.
    expiring: TlsServer,
    /// Self-signed, for `localhost`, valid for 400 days.
    self_signed: TlsServer,
    ca_file: String,
}

const EXPIRING_IN_DAYS: i64 = 10;

/// The check with its pod on the host's network, where `localhost` is the servers' host.
fn host_network(mut check: Value) -> Value {
    check["spec"]["podSpec"]["hostNetwork"] = json!(true);
    check
}

impl Servers {
    async fn start(t: &CheckTest) -> Servers {
        let ca = Authority::generate("kuberhealthy-e2e test CA");
        let ca_path = t.ctx.log_dir().join("ca.pem");
        ca.write(&ca_path);
        Servers {
            trusted: TlsServer::start(&ca.issue(&["localhost"], "shop", today_plus(400))).await,
            expiring: TlsServer::start(&ca.issue(
                &["localhost"],
                "legacy",
                today_plus(EXPIRING_IN_DAYS),
            ))
            .await,
            self_signed: TlsServer::start(&Identity::self_signed(
                &["localhost"],
                "internal",
                today_plus(400),
            ))
            .await,
            ca_file: ca_path.display().to_string(),
        }
    }
}

#[tokio::test]
async fn ssl_expiry_passes_fails_near_expiry_and_reads_self_signed_when_insecure() {
    let t = CheckTest::start("ssl-expiry").await;
    assert!(t.grant("ssl-expiry").await.kubeconfig.is_none());
    let servers = Servers::start(&t).await;
    let port = |s: &TlsServer| s.port.to_string();
    let (trusted, expiring, self_signed) = (
        port(&servers.trusted),
        port(&servers.expiring),
        port(&servers.self_signed),
    );
    // The example's DAYS 60 and INSECURE false are kept unless said otherwise.
    let checks: [(&str, &str, &str); 4] = [
        ("ssl-expiry", &trusted, "false"),
        ("ssl-expiry-soon", &expiring, "false"),
        ("ssl-expiry-self-signed", &self_signed, "true"),
        ("ssl-expiry-self-signed-verified", &self_signed, "false"),
    ];
    for (name, port, insecure) in checks {
        t.apply(&host_network(t.check_from_example(
            "ssl-expiry",
            name,
            &[
                ("DOMAIN_NAME", "localhost"),
                ("PORT", port),
                ("INSECURE", insecure),
                ("SSL_CERT_FILE", &servers.ca_file),
            ],
        )))
        .await;
    }
    let outcomes = t.results(&checks.map(|(name, ..)| name)).await;
    let [ok, soon, insecure, unverified] = &outcomes[..] else {
        unreachable!()
    };
    ok.assert_ok();
    let not_after = midnight(today_plus(EXPIRING_IN_DAYS));
    let prefix =
        format!("the certificate of localhost:{expiring} (CN=legacy) expires at {not_after}, in ");
    let error = soon.single_error("an expiry within DAYS 60", |e| {
        e.starts_with(&prefix) && e.ends_with(" days, within DAYS 60")
    });
    let days: i64 = error[prefix.len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (EXPIRING_IN_DAYS - 1..=EXPIRING_IN_DAYS).contains(&days),
        "{error}"
    );
    insecure.assert_ok();
    unverified.single_error("an unverified certificate", |e| {
        e.starts_with(&format!(
            "the TLS handshake with localhost:{self_signed} failed: invalid peer certificate"
        ))
    });
    assert!(servers.trusted.handshakes() >= 1 && servers.expiring.handshakes() >= 1);
    t.assert_page(&[ok, soon, insecure, unverified]).await;
    println!("{:#}", json!(summary(&[ok, soon, insecure, unverified])));
}

#[tokio::test]
async fn ssl_handshake_verifies_trust_and_name_unless_self_signed_is_allowed() {
    let t = CheckTest::start("ssl-handshake").await;
    assert!(t.grant("ssl-handshake").await.kubeconfig.is_none());
    let servers = Servers::start(&t).await;
    let (trusted, self_signed) = (
        servers.trusted.port.to_string(),
        servers.self_signed.port.to_string(),
    );
    // The example's SELF_SIGNED false is kept unless said otherwise.
    let checks: [(&str, &str, &str, &str); 4] = [
        ("ssl-handshake", "localhost", &trusted, "false"),
        (
            "ssl-handshake-self-signed",
            "localhost",
            &self_signed,
            "true",
        ),
        (
            "ssl-handshake-untrusted",
            "localhost",
            &self_signed,
            "false",
        ),
        ("ssl-handshake-wrong-name", "127.0.0.1", &trusted, "false"),
    ];
    for (name, host, port, allow_self_signed) in checks {
        t.apply(&host_network(t.check_from_example(
            "ssl-handshake",
            name,
            &[
                ("DOMAIN_NAME", host),
                ("PORT", port),
                ("SELF_SIGNED", allow_self_signed),
                ("SSL_CERT_FILE", &servers.ca_file),
            ],
        )))
        .await;
    }
    let outcomes = t.results(&checks.map(|(name, ..)| name)).await;
    let [ok, self_signed_ok, untrusted, wrong_name] = &outcomes[..] else {
        unreachable!()
    };
    ok.assert_ok();
    self_signed_ok.assert_ok();
    let error = untrusted.single_error("an untrusted certificate", |e| {
        e.starts_with(&format!(
            "the TLS handshake with localhost:{self_signed} failed: invalid peer certificate"
        ))
    });
    assert!(error.contains("UnknownIssuer"), "{error}");
    let error = wrong_name.single_error("a name mismatch", |e| {
        e.starts_with(&format!(
            "the TLS handshake with 127.0.0.1:{trusted} failed: invalid peer certificate"
        ))
    });
    assert!(
        error.contains("certificate not valid for name \"127.0.0.1\""),
        "{error}"
    );
    t.assert_page(&[ok, self_signed_ok, untrusted, wrong_name])
        .await;
    println!(
        "{:#}",
        json!(summary(&[ok, self_signed_ok, untrusted, wrong_name]))
    );
}
