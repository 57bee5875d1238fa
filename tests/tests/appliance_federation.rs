//! Two relays federate on loopback: two domains, each with its own Pebble certificate,
//! a local authoritative DNS server with their MX, A and DKIM records, and Delta Chat
//! clients on each side.
//!
//! 1. Over HTTPS: a profile on each relay sends the other an encrypted message; both
//!    relays deliver by `POST /mxdeliv` (verified TLS against the Pebble roots, DKIM of
//!    the sending relay checked through the DNS server).
//! 2. Over SMTP: the second relay restarts with HTTPS delivery off (`/mxdeliv` answers
//!    404 and it sends only by SMTP); new profiles exchange messages again, now over port
//!    25 with STARTTLS in both directions (the first relay falls back after the 404).
//! 3. An unencrypted message is refused at both ends: by the sender's relay at
//!    submission, and by the receiving relay on port 25 and on `/mxdeliv`.
//!
//! Both relays run on 127.0.0.1, so each one is told the other's HTTPS and SMTP ports
//! (`--federation-https-port`, `--federation-smtp-port`), the DNS server
//! (`--dns-server`) and the extra roots for outbound TLS (`--federation-extra-root`):
//! test-only flags. Needs Pebble, Maddy and the Delta Chat RPC server/client
//! (`appliance/scripts/install-test-deps.sh`).

use std::time::{Duration, Instant};

use chatmail_dns_world::{ServerSpec, World, RESOLVER_IP};
use chatmail_tests::{
    appliance::{Appliance, RunningAppliance},
    deltachat,
    pebble::Pebble,
};

const ALPHA: &str = "alpha.relay.test";
const BETA: &str = "beta.relay.test";

/// Guards against hangs only.
const LIMIT: Duration = Duration::from_secs(300);

/// The zone of a relay: its MX is itself (as upstream publishes it), on 127.0.0.1, with
/// its DKIM key as the relay reports it.
fn zone(domain: &str, dkim_name: &str, dkim_txt: &str) -> String {
    let chunks: Vec<String> = dkim_txt
        .as_bytes()
        .chunks(250)
        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
        .collect();
    format!(
        "$ORIGIN {domain}.\n$TTL 60\n\
         @ 60 IN SOA ns.{domain}. hostmaster.{domain}. 1 7200 3600 1209600 60\n\
         @ 60 IN NS ns.{domain}.\n\
         ns 60 IN A 127.0.0.1\n\
         @ 60 IN A 127.0.0.1\n\
         @ 60 IN MX 10 {domain}.\n\
         {dkim_name}. 60 IN TXT {}\n",
        chunks.join(" ")
    )
}

async fn wait_for_certificate(app: &RunningAppliance) -> serde_json::Value {
    app.wait_for("a certificate from Pebble", LIMIT, || async {
        let status = app.status().await;
        (status["health"]["certificate_placeholder"] == false).then_some(status)
    })
    .await
}

async fn metric(app: &RunningAppliance, name: &str) -> f64 {
    app.metric(name).await.unwrap_or(0.0)
}

async fn new_account(app: &RunningAppliance) -> (String, String) {
    app.new_account_ok().await
}

fn account_spec(app: &RunningAppliance, (addr, password): &(String, String)) -> serde_json::Value {
    serde_json::json!({
        "addr": addr, "password": password,
        "imap": { "host": "127.0.0.1", "port": app.ports.imaps },
        "smtp": { "host": "127.0.0.1", "port": app.ports.submissions },
    })
}

fn check_exchange(result: &serde_json::Value, a: &str, b: &str, logs: &str) {
    let received = result["received"].as_array().expect("received list");
    assert_eq!(received.len(), 2, "{result}\n{logs}");
    for (message, (from, to)) in received.iter().zip([(a, b), (b, a)]) {
        assert_eq!(message["by"], to, "{result}");
        assert_eq!(message["from"], from, "{result}");
        assert_eq!(message["text"], format!("hello from {from} to {to}"));
        assert_eq!(message["encrypted"], true, "{result}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_federate_over_https_then_smtp_and_refuse_plain_mail() {
    deltachat::venv();
    let started = Instant::now();
    let mut alpha = Appliance::new(ALPHA);
    let mut beta = Appliance::new(BETA);
    let pebble_alpha = Pebble::start(alpha.ports.http).await;
    let pebble_beta = Pebble::start(beta.ports.http).await;
    alpha = alpha.acme(&pebble_alpha.directory_url(), pebble_alpha.tls_root_path());
    beta = beta.acme(&pebble_beta.directory_url(), pebble_beta.tls_root_path());

    // First boot: certificates from Pebble and the DKIM keys, which go into DNS.
    let mut zones = Vec::new();
    for setup in [&mut alpha, &mut beta] {
        let app = setup.start().await;
        let status = wait_for_certificate(&app).await;
        let name = status["dkim"]["record_name"].as_str().unwrap().to_string();
        let txt = status["dkim"]["txt"].as_str().unwrap().to_string();
        zones.push(zone(&app.domain, &name, &txt));
        app.stop();
    }
    let dns = World::start(vec![ServerSpec::new(RESOLVER_IP, zones)]).await;
    // Outbound TLS trusts both test CAs (each relay's certificate comes from its own Pebble).
    let roots = alpha.scratch().join("federation-roots.pem");
    std::fs::write(
        &roots,
        format!(
            "{}\n{}",
            pebble_alpha.issuing_root_pem().await,
            pebble_beta.issuing_root_pem().await
        ),
    )
    .unwrap();
    let (alpha_ports, beta_ports) = (alpha.ports, beta.ports);
    for (setup, other) in [(&mut alpha, beta_ports), (&mut beta, alpha_ports)] {
        let s = std::mem::replace(setup, Appliance::new("unused.test"));
        *setup = s
            .arg(format!("--dns-server={}", dns.resolver()))
            .arg(format!("--federation-https-port={}", other.https))
            .arg(format!("--federation-smtp-port={}", other.smtp))
            .arg(format!("--federation-extra-root={}", roots.display()));
    }
    let a = alpha.start().await;
    let b = beta.start().await;
    wait_for_certificate(&a).await;
    wait_for_certificate(&b).await;
    eprintln!("both relays up after {:?}", started.elapsed());

    // 1. HTTPS delivery both ways.
    let work = tempfile::tempdir().unwrap();
    let (a1, b1) = (new_account(&a).await, new_account(&b).await);
    let spec = serde_json::json!({
        "accounts_dir": work.path().join("https"),
        "accounts": [account_spec(&a, &a1), account_spec(&b, &b1)],
    });
    let t = Instant::now();
    let result = deltachat::run_driver("federation.py", spec, Duration::from_secs(600)).await;
    eprintln!("HTTPS exchange took {:?}: {result}", t.elapsed());
    check_exchange(&result, &a1.0, &b1.0, &format!("{}\n{}", a.log(), b.log()));
    for (app, name) in [(&a, ALPHA), (&b, BETA)] {
        assert!(
            metric(
                app,
                "chatmail_deliveries_total{via=\"https\",result=\"ok\"}"
            )
            .await
                >= 1.0,
            "{name} did not deliver over HTTPS:\n{}\n{}",
            app.metrics().await,
            app.log()
        );
        assert!(
            metric(
                app,
                "chatmail_mail_rules_total{direction=\"mxdeliv\",verdict=\"encrypted\"}"
            )
            .await
                >= 1.0,
            "{name} accepted nothing on /mxdeliv:\n{}",
            app.metrics().await
        );
        assert_eq!(
            metric(app, "chatmail_deliveries_total{via=\"smtp\",result=\"ok\"}").await,
            0.0,
            "{name} used SMTP although HTTPS works"
        );
    }

    // 2. Beta without HTTPS delivery: SMTP both ways.
    b.stop();
    beta = beta.arg("--no-https-federation");
    let b = beta.start().await;
    wait_for_certificate(&b).await;
    let mxdeliv_off = b
        .https(
            BETA,
            &chatmail_tests::tls_client::Trust::Anything,
            "POST",
            "/mxdeliv",
        )
        .await;
    assert_eq!(mxdeliv_off.status, 404, "{}", mxdeliv_off.text());
    let (a2, b2) = (new_account(&a).await, new_account(&b).await);
    let spec = serde_json::json!({
        "accounts_dir": work.path().join("smtp"),
        "accounts": [account_spec(&a, &a2), account_spec(&b, &b2)],
        "plain": {
            "submission": { "host": "127.0.0.1", "port": a.ports.submissions },
            "mx": { "host": "127.0.0.1", "port": b.ports.smtp },
            "mxdeliv": { "host": "127.0.0.1", "port": a.ports.https, "name": ALPHA },
        },
    });
    let t = Instant::now();
    let result = deltachat::run_driver("federation.py", spec, Duration::from_secs(600)).await;
    eprintln!("SMTP exchange took {:?}: {result}", t.elapsed());
    check_exchange(&result, &a2.0, &b2.0, &format!("{}\n{}", a.log(), b.log()));
    for (app, name) in [(&a, ALPHA), (&b, BETA)] {
        assert!(
            metric(app, "chatmail_deliveries_total{via=\"smtp\",result=\"ok\"}").await >= 1.0,
            "{name} did not deliver over SMTP:\n{}\n{}",
            app.metrics().await,
            app.log()
        );
        assert!(
            metric(
                app,
                "chatmail_mail_rules_total{direction=\"incoming\",verdict=\"encrypted\"}"
            )
            .await
                >= 1.0,
            "{name} accepted nothing on port 25:\n{}",
            app.metrics().await
        );
    }
    assert_eq!(
        metric(&b, "chatmail_deliveries_total{via=\"https\",result=\"ok\"}").await,
        0.0,
        "beta delivered over HTTPS although it is off"
    );

    // 3. Unencrypted mail: refused by the sender's relay and by the receiving relay, with
    // upstream's code. Maddy 0.8.2 passes a milter's code on but writes its own text
    // ("5.7.1 Message rejected due to local policy"); /mxdeliv answers with upstream's text.
    let plain = &result["plain"];
    eprintln!("plain mail replies: {plain}");
    assert_eq!(plain["submission"][0], 523, "{plain}");
    assert_eq!(plain["mx"][0], 523, "{plain}");
    assert_eq!(plain["mxdeliv"][0], 400, "{plain}");
    assert_eq!(
        plain["mxdeliv"][1], "523 Encryption Needed: Invalid Unencrypted Mail",
        "{plain}"
    );
    eprintln!("federation test took {:?}", started.elapsed());
}
