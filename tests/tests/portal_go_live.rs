//! Going live: the portal probes a real relay device (the appliance with Maddy, its
//! certificate from Pebble) on loopback, trusts its status document only when it answers
//! the portal's fresh question with its key, then publishes the device's DKIM key and ACME
//! account (CAA) through PowerDNS, and the status page walks through the phases to "ready".
//! A device that cannot be reached or shows a certificate that is not valid is explained
//! and nothing of it is published.
//!
//! The relay's "public" address is 127.0.0.1 and the portal's `--probe-port-map` sends each
//! relay port to where the test appliance listens.

use chatmail_tests::portal_client::phase_done;
use chatmail_tests::zone::zone_lines;
use std::time::Duration;

use chatmail_dns_world::{
    pdns::{minimal_zone, PowerDns, PDNS_IP},
    ServerSpec, World,
};
use chatmail_tests::{
    appliance::{Appliance, Ports},
    pebble::Pebble,
    portal::PortalCommand,
    portal_client::{visible_text, PortalClient},
    postgres::TestPostgres,
    shared_temp_dir,
};
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery";
const DOMAIN: &str = "example.org";
const LIMIT: Duration = Duration::from_secs(300);
const BLOCKLIST_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 41);

fn port_map(ports: &Ports) -> String {
    format!(
        "25={},80={},443={},465={},587={},993={}",
        ports.smtp, ports.http, ports.https, ports.submissions, ports.submission, ports.imaps
    )
}

/// Signs up, creates the relay for example.org, connects PowerDNS and applies the plan;
/// the relay's address is set to 127.0.0.1 (the wizard refuses private addresses).
async fn relay_with_dns(client: &PortalClient, pool: &PgPool, pdns: &PowerDns) -> String {
    client.sign_up("alice@example.org", PASSWORD).await;
    let group = client.create_group("Family").await;
    client
        .submit(
            &format!("/groups/{group}/setup/domain"),
            &[("kind", "own"), ("domain", DOMAIN)],
        )
        .await;
    client
        .submit(
            &format!("/groups/{group}/dns/connect"),
            &[
                ("method", "powerdns"),
                ("url", &pdns.api_url()),
                ("api_key", pdns.api_key()),
                ("server_id", "localhost"),
            ],
        )
        .await;
    client
        .submit(
            &format!("/groups/{group}/setup/settings"),
            &[
                ("contact_mail", "admin@example.org"),
                ("max_mailbox_size_mb", "500"),
                ("max_message_size_mb", "30"),
                ("delete_mails_after_days", "20"),
                ("delete_inactive_users_after_days", "90"),
            ],
        )
        .await;
    client
        .submit(
            &format!("/groups/{group}/setup/hardware"),
            &[("hardware", "virtual_machine"), ("ipv4", "93.184.216.34")],
        )
        .await;
    // The download step is tested with the images; here the device already runs.
    sqlx::query("UPDATE relays SET ipv4 = '127.0.0.1', completed_step = 6")
        .execute(pool)
        .await
        .unwrap();
    client
        .submit(&format!("/groups/{group}/dns/apply"), &[])
        .await;
    wait_for_jobs(pool).await;
    group
}

/// Waits until no DNS job is pending or running, and the last one succeeded.
async fn wait_for_jobs(pool: &PgPool) {
    for _ in 0..1200 {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dns_jobs WHERE state IN ('pending', 'running')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if open == 0 {
            let failed: Option<String> = sqlx::query_scalar(
                "SELECT last_error FROM dns_jobs WHERE state = 'failed' LIMIT 1",
            )
            .fetch_optional(pool)
            .await
            .unwrap()
            .flatten();
            assert!(failed.is_none(), "a DNS job failed: {failed:?}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("DNS jobs did not finish within two minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_is_proved_its_keys_are_published_and_the_relay_becomes_ready() {
    let postgres = TestPostgres::start().await;
    let pool = PgPool::connect(&postgres.url()).await.unwrap();
    let mut pdns = PowerDns::start().await;
    pdns.load_zone(DOMAIN, &minimal_zone(DOMAIN, PDNS_IP));

    // The device: the appliance for example.org with a certificate from Pebble.
    let mut setup = Appliance::new(DOMAIN);
    let pebble = Pebble::start(setup.ports.http).await;
    setup = setup.acme(&pebble.directory_url(), pebble.tls_root_path());
    let app = setup.start().await;
    app.wait_for("a certificate from Pebble", LIMIT, || async {
        let status = app.status().await;
        (status["health"]["certificate_placeholder"] == false).then_some(())
    })
    .await;
    // A resolver Spamhaus would answer, here serving a ZEN zone that lists 127.0.0.1 as a
    // home-connection range (code 127.0.0.10): explained, but it never blocks "ready".
    let blocklist = World::start(vec![ServerSpec::new(
        BLOCKLIST_IP,
        vec![format!(
            "$ORIGIN zen.spamhaus.org.\n$TTL 60\n\
             @ IN SOA ns.zen.spamhaus.org. hostmaster.zen.spamhaus.org. 1 7200 3600 1209600 60\n\
             @ IN NS ns.zen.spamhaus.org.\nns IN A {BLOCKLIST_IP}\n\
             1.0.0.127 IN A 127.0.0.10\n"
        )],
    )])
    .await;
    let dir = shared_temp_dir();
    let ca = dir.path().join("pebble-issuing-root.pem");
    std::fs::write(&ca, pebble.issuing_root_pem().await).unwrap();

    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(postgres.url())
        .device_probes()
        .arg("--dns-resolver")
        .arg(pdns.dns_addr().to_string())
        .arg("--dns-nameserver-port")
        .arg(pdns.dns_addr().port().to_string())
        .arg("--probe-ca-file")
        .arg(ca.display().to_string())
        .arg("--blocklist-resolver")
        .arg(blocklist.addr(BLOCKLIST_IP).to_string())
        .arg("--probe-port-map")
        .arg(port_map(&setup.ports))
        .start()
        .await;
    let alice = PortalClient::new(portal.base_url());
    let group = relay_with_dns(&alice, &pool, &pdns).await;
    let before = zone_lines(&pdns, DOMAIN).await;
    assert!(
        !before
            .iter()
            .any(|l| l.starts_with("opendkim._domainkey") || l.contains(" CAA ")),
        "nothing of the device is published before it is proved: {before:?}"
    );

    // Check now: the device answers, its keys are taken over and published.
    let status_page = format!("/groups/{group}/setup/status");
    let started = std::time::Instant::now();
    alice
        .submit(&format!("/groups/{group}/dns-check"), &[])
        .await;
    let text = visible_text(&alice.page(&status_page).await);
    assert!(
        text.contains("Your device's keys are being published in DNS"),
        "{text}\nportal log:\n{}",
        portal.log()
    );
    wait_for_jobs(&pool).await;
    let zone = zone_lines(&pdns, DOMAIN).await;
    let status = app.status().await;
    let key = status["dkim"]["public_key"].as_str().unwrap().to_string();
    let account = status["acme"]["account_url"].as_str().unwrap().to_string();
    assert!(
        zone.iter()
            // Long TXT values are split into strings of at most 255 bytes.
            .any(|l| l.starts_with("opendkim._domainkey.example.org TXT")
                && l.replace("\" \"", "").contains(&key)),
        "the device's DKIM key is in the zone: {zone:?}"
    );
    assert!(
        zone.iter()
            .any(|l| l.contains(" CAA ") && l.contains(&format!("accounturi={account}"))),
        "CAA names the device's ACME account: {zone:?}"
    );
    let stored_key: Option<String> =
        sqlx::query_scalar("SELECT device_dkim_public_key FROM relays")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored_key.as_deref(), Some(key.as_str()));

    // Check again: every phase is done, the page says so and shows the QR code.
    alice
        .submit(&format!("/groups/{group}/dns-check"), &[])
        .await;
    let body = alice.page(&status_page).await;
    for phase in ["dns", "reachable", "certificate", "dns_complete", "ready"] {
        assert!(
            phase_done(&body, phase),
            "phase {phase} is done:\n{}\nportal log:\n{}",
            visible_text(&body),
            portal.log()
        );
    }
    assert!(
        body.contains("id=\"join-ready\""),
        "{}",
        visible_text(&body)
    );
    assert!(body.contains("<svg"), "the join QR code is shown");
    println!(
        "probe, publish and re-check took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let health: Option<String> = sqlx::query_scalar("SELECT health FROM relays")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(health.as_deref(), Some("healthy"));

    // The printable invitation carries the same QR code.
    let (code, _, card) = alice.get(&format!("/groups/{group}/invite-card")).await;
    assert_eq!(code, 200);
    assert!(card.contains("<svg") && card.contains("example.org"));

    // The device goes away: the next check finds the relay broken and says who acts.
    drop(app);
    alice
        .submit(&format!("/groups/{group}/dns-check"), &[])
        .await;
    let body = alice.page(&status_page).await;
    assert!(!phase_done(&body, "ready"), "{}", visible_text(&body));
    assert!(
        visible_text(&body).contains("It was ready before and is not any more"),
        "{}",
        visible_text(&body)
    );
    let health: Option<String> = sqlx::query_scalar("SELECT health FROM relays")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(health.as_deref(), Some("broken"));
    // The group's list of relays says so too.
    let groups = alice.page("/groups").await;
    assert!(
        groups.contains("data-relay-broken=\"true\""),
        "{}",
        visible_text(&groups)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_and_an_untrusted_certificate_are_explained_and_nothing_is_published() {
    let postgres = TestPostgres::start().await;
    let pool = PgPool::connect(&postgres.url()).await.unwrap();
    let mut pdns = PowerDns::start().await;
    pdns.load_zone(DOMAIN, &minimal_zone(DOMAIN, PDNS_IP));

    // A device without a real certificate (ACME off: its placeholder), and port 993 not
    // forwarded (mapped to a port where nothing listens).
    let mut setup = Appliance::new(DOMAIN);
    let _app = setup.start().await;
    let mut ports = setup.ports;
    ports.imaps = chatmail_tests::free_port();

    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(postgres.url())
        .device_probes()
        .arg("--dns-resolver")
        .arg(pdns.dns_addr().to_string())
        .arg("--dns-nameserver-port")
        .arg(pdns.dns_addr().port().to_string())
        .arg("--probe-port-map")
        .arg(port_map(&ports))
        .start()
        .await;
    let alice = PortalClient::new(portal.base_url());
    let group = relay_with_dns(&alice, &pool, &pdns).await;
    alice
        .submit(&format!("/groups/{group}/dns-check"), &[])
        .await;
    let body = alice.page(&format!("/groups/{group}/setup/status")).await;
    let text = visible_text(&body);
    assert!(phase_done(&body, "dns"), "{text}");
    assert!(!phase_done(&body, "reachable"), "{text}");
    assert!(!phase_done(&body, "certificate"), "{text}");
    assert!(!phase_done(&body, "ready"), "{text}");
    // Who acts: a hosted machine's port is opened at the hosting provider's firewall.
    assert!(text.contains("993"), "the closed port is named: {text}");
    assert!(
        body.contains("data-who=\"HostingProvider\"") || body.contains("data-who=\"YouAtDevice\""),
        "{text}"
    );
    assert!(
        text.contains("certificate"),
        "the certificate problem is explained: {text}"
    );
    assert!(
        body.contains("data-finding=\"blocklist-not-checked\""),
        "without a suitable resolver the page says blocklists were not checked: {text}"
    );
    wait_for_jobs(&pool).await;
    let zone = zone_lines(&pdns, DOMAIN).await;
    assert!(
        !zone
            .iter()
            .any(|l| l.starts_with("opendkim._domainkey") || l.contains(" CAA ")),
        "nothing of an unproved device is published: {zone:?}"
    );
    let stored: Option<String> = sqlx::query_scalar("SELECT device_dkim_public_key FROM relays")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, None);
}
