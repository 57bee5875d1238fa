//! The whole device on loopback: Pebble issues the relay's certificate over HTTP-01, two
//! accounts come from `POST /new`, and two real Delta Chat clients exchange an end-to-end
//! encrypted message in both directions through Maddy.
//!
//! Needs Pebble, Maddy and the Delta Chat RPC server/client:
//! `appliance/scripts/install-test-deps.sh` installs them.

use std::{net::SocketAddr, time::Duration};

use chatmail_tests::{
    appliance::Appliance,
    deltachat,
    pebble::Pebble,
    tls_client::{self, Trust},
};

const DOMAIN: &str = "chat.relay.test";

/// Guards against hangs only.
const LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_pebble_then_two_delta_chat_clients_exchange_encrypted_messages() {
    // Fail early, before anything starts, if a dependency is missing.
    deltachat::venv();
    let mut setup = Appliance::new(DOMAIN);
    let pebble = Pebble::start(setup.ports.http).await;
    setup = setup.acme(&pebble.directory_url(), pebble.tls_root_path());
    let app = setup.start().await;

    // 1. The certificate: issued by Pebble for the relay's names, served on HTTPS.
    let status = app
        .wait_for("a certificate from Pebble", LIMIT, || async {
            let status = app.status().await;
            (status["health"]["certificate_placeholder"] == false).then_some(status)
        })
        .await;
    let issuing_root = pebble.issuing_root_pem().await;
    let trust = Trust::pem(&issuing_root);
    let https: SocketAddr = ([127, 0, 0, 1], app.ports.https).into();
    for name in [
        DOMAIN.to_string(),
        format!("www.{DOMAIN}"),
        format!("mta-sts.{DOMAIN}"),
    ] {
        let chain = tls_client::peer_certificates(https, &name, &trust)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the certificate for {name} does not verify against Pebble's root: {e}\n{}",
                    app.log()
                )
            });
        assert!(!chain.is_empty());
    }
    // The IMAP front takes the new certificate at the next handshake, and Maddy reloads the
    // same files for submission (the appliance signals it).
    for (service, port) in [
        ("IMAPS", app.ports.imaps),
        ("submission", app.ports.submissions),
    ] {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        app.wait_for(
            &format!("the new certificate on {service}"),
            LIMIT,
            || async {
                tls_client::peer_certificates(addr, DOMAIN, &trust)
                    .await
                    .ok()
            },
        )
        .await;
    }
    // The page itself, with full certificate checks against the test CA.
    let home = app.https(DOMAIN, &trust, "GET", "/").await;
    assert_eq!(home.status, 200);

    // 2. What the device publishes for the portal.
    let account_url = status["acme"]["account_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no ACME account URL in {status}"));
    assert!(
        account_url.starts_with(&pebble.directory_url().replace("/dir", "/")),
        "{account_url}"
    );
    let dkim_txt = status["dkim"]["txt"].as_str().expect("DKIM record");
    assert!(dkim_txt.starts_with("v=DKIM1;k=rsa;p=MII"), "{dkim_txt}");
    assert_eq!(
        status["dkim"]["record_name"],
        format!("opendkim._domainkey.{DOMAIN}")
    );
    assert_eq!(status["health"]["maddy_running"], true);
    assert_eq!(status["health"]["status"], "ok");
    assert!(app.metric("chatmail_certificate_placeholder").await == Some(0.0));
    let expiry = app
        .metric("chatmail_certificate_expiry_timestamp_seconds")
        .await
        .expect("expiry metric");
    assert!(expiry > 1.7e9, "{expiry}");

    // 3. Two accounts, created at once by POST /new (with full certificate checks).
    let mut accounts = Vec::new();
    for _ in 0..2 {
        let response = app.https(DOMAIN, &trust, "POST", "/new").await;
        assert_eq!(response.status, 200, "{}", response.text());
        let json = response.json();
        let email = json["email"].as_str().unwrap().to_string();
        let password = json["password"].as_str().unwrap().to_string();
        assert!(email.ends_with(&format!("@{DOMAIN}")), "{email}");
        assert_eq!(email.split('@').next().unwrap().len(), 9);
        assert_eq!(password.len(), 12);
        accounts.push(serde_json::json!({ "addr": email, "password": password }));
    }
    assert_eq!(
        app.metric("chatmail_account_creations_total").await,
        Some(2.0)
    );
    assert_eq!(app.metric("chatmail_accounts").await, Some(2.0));

    // 4. Two Delta Chat clients, one message each way, end-to-end encrypted.
    let work = tempfile::tempdir().unwrap();
    let spec = serde_json::json!({
        "accounts_dir": work.path().join("accounts"),
        "imap": { "host": "127.0.0.1", "port": app.ports.imaps },
        "smtp": { "host": "127.0.0.1", "port": app.ports.submissions },
        "accounts": accounts,
    });
    let result = deltachat::run_driver("exchange.py", spec, Duration::from_secs(600)).await;
    eprintln!("Delta Chat driver result: {result}");
    let received = result["received"].as_array().expect("received list");
    assert_eq!(received.len(), 2, "{result}\n{}", app.log());
    let (a, b) = (
        accounts[0]["addr"].as_str().unwrap(),
        accounts[1]["addr"].as_str().unwrap(),
    );
    for (message, (from, to)) in received.iter().zip([(a, b), (b, a)]) {
        assert_eq!(message["by"], to, "{result}");
        assert_eq!(message["from"], from, "{result}");
        assert_eq!(message["text"], format!("hello from {from} to {to}"));
        assert_eq!(
            message["encrypted"], true,
            "not end-to-end encrypted: {result}"
        );
    }
    // Delta Chat turns on COMPRESS=DEFLATE where it is offered: the IMAP front did it.
    assert!(
        app.metric("chatmail_imap_compressed_sessions_total").await >= Some(2.0),
        "no compressed IMAP session"
    );

    // 5. The same over port 143 with STARTTLS (and submission with STARTTLS on 587), with
    // two more accounts.
    let mut accounts = Vec::new();
    for _ in 0..2 {
        let json = app.https(DOMAIN, &trust, "POST", "/new").await.json();
        accounts.push(serde_json::json!({ "addr": json["email"], "password": json["password"] }));
    }
    let spec = serde_json::json!({
        "accounts_dir": work.path().join("accounts-starttls"),
        "imap": { "host": "127.0.0.1", "port": app.ports.imap, "security": "starttls" },
        "smtp": { "host": "127.0.0.1", "port": app.ports.submission, "security": "starttls" },
        "accounts": accounts,
    });
    let result = deltachat::run_driver("exchange.py", spec, Duration::from_secs(600)).await;
    let received = result["received"].as_array().expect("received list");
    assert_eq!(received.len(), 2, "STARTTLS: {result}\n{}", app.log());
    for message in received {
        assert_eq!(
            message["encrypted"], true,
            "not end-to-end encrypted: {result}"
        );
    }

    // The clients' logins went through our auth service.
    assert!(app.metric("chatmail_logins_total{result=\"ok\"}").await >= Some(2.0));
    assert_eq!(app.metric("chatmail_maddy_restarts_total").await, Some(0.0));

    let status = app.stop();
    assert!(status.success(), "clean shutdown: {status}");
    drop(pebble);
}
