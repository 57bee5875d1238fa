//! The portal writing a relay's records through a real PowerDNS (Debian's pdns-server):
//! connecting with bad and good credentials, the dry run with foreign records in the way,
//! applying, confirming one replacement, changing the address, removing the relay, and a
//! job that survives a dead DNS server and a killed portal.

use chatmail_tests::zone::zone_lines;
use std::{collections::BTreeSet, time::Duration};

use chatmail_dns_world::pdns::{minimal_zone, PowerDns, PDNS_IP};
use chatmail_tests::{
    portal::PortalCommand,
    portal_client::{visible_text, PortalClient},
    postgres::{finished_dns_job, TestPostgres},
    shared_temp_dir,
};
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery";

/// A zone someone already uses: a mail server elsewhere, a site-verification TXT, and
/// `www` pointing to another host.
fn lived_in_zone() -> String {
    format!(
        "{}@ 3600 IN MX 10 mail.other.example.\n\
         @ 3600 IN TXT \"google-site-verification=abc123\"\n\
         www 3600 IN CNAME elsewhere.example.\n",
        minimal_zone("example.org", PDNS_IP)
    )
}

fn portal_for(postgres: &TestPostgres, pdns: &PowerDns, dir: &tempfile::TempDir) -> PortalCommand {
    PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(postgres.url())
        .arg("--dns-resolver")
        .arg(pdns.dns_addr().to_string())
        .arg("--dns-nameserver-port")
        .arg(pdns.dns_addr().port().to_string())
}

/// Signs up and walks the wizard to the DNS step for example.org.
async fn start_relay(client: &PortalClient) -> String {
    client.sign_up("alice@example.org", PASSWORD).await;
    let group = client.create_group("Family").await;
    client
        .submit(
            &format!("/groups/{group}/setup/domain"),
            &[("kind", "own"), ("domain", "example.org")],
        )
        .await;
    group
}

async fn finish_settings(client: &PortalClient, group: &str, ipv4: &str) {
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
            &[("hardware", "virtual_machine"), ("ipv4", ipv4)],
        )
        .await;
}

async fn connect(client: &PortalClient, group: &str, url: &str, key: &str) -> String {
    client
        .submit(
            &format!("/groups/{group}/dns/connect"),
            &[
                ("method", "powerdns"),
                ("url", url),
                ("api_key", key),
                ("server_id", "localhost"),
            ],
        )
        .await;
    client.page(&format!("/groups/{group}/setup/dns")).await
}

fn has(lines: &[String], wanted: &str) -> bool {
    lines.iter().any(|line| line == wanted)
}

#[tokio::test]
async fn records_are_written_through_powerdns_and_only_ours_are_ever_changed() {
    let postgres = TestPostgres::start().await;
    let pool = PgPool::connect(&postgres.url()).await.unwrap();
    let mut pdns = PowerDns::start().await;
    pdns.load_zone("example.org", &lived_in_zone());
    let dir = shared_temp_dir();
    let portal = portal_for(&postgres, &pdns, &dir).start().await;
    let alice = PortalClient::new(portal.base_url());
    let group = start_relay(&alice).await;

    // Detection asks DNS who serves the domain.
    let text = visible_text(&alice.page(&format!("/groups/{group}/setup/dns")).await);
    assert!(text.contains("ns1.example.org"), "{text}");

    // A wrong key and a server that is not there: explained, nothing kept.
    let body = connect(&alice, &group, &pdns.api_url(), "not-the-key").await;
    let text = visible_text(&body);
    assert!(
        text.contains("The DNS provider was not connected"),
        "{text}"
    );
    assert!(!body.contains("not-the-key"), "the key is never shown back");
    let dead = format!("http://127.0.0.1:{}", chatmail_tests::free_port());
    let text = visible_text(&connect(&alice, &group, &dead, pdns.api_key()).await);
    assert!(
        text.contains("The DNS provider was not connected"),
        "{text}"
    );
    let connections: i64 = sqlx::query_scalar("SELECT count(*) FROM dns_connections")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(connections, 0);

    // The right key: connected, sealed at rest, never in a page.
    let body = connect(&alice, &group, &pdns.api_url(), pdns.api_key()).await;
    assert!(
        visible_text(&body).contains("Connected: PowerDNS at"),
        "{}",
        visible_text(&body)
    );
    assert!(!body.contains(pdns.api_key()));
    let sealed: String = sqlx::query_scalar("SELECT sealed_credentials FROM dns_connections")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        sealed.starts_with("v1:") && !sealed.contains(pdns.api_key()),
        "sealed: {sealed}"
    );
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(row(c.*)::text, ';') FROM dns_connections c")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        !dump.contains(pdns.api_key()),
        "no column holds the key in clear"
    );

    finish_settings(&alice, &group, "93.184.216.34").await;
    let records = format!("/groups/{group}/setup/records");

    // The dry run: what will be added, and the two foreign records in the way.
    let body = alice.page(&records).await;
    let text = visible_text(&body);
    assert!(text.contains("What the portal will change"), "{text}");
    assert!(body.contains("id=\"dns-creates\""), "{text}");
    assert!(text.contains("Records of others in the way"), "{text}");
    let conflicts: Vec<String> = body
        .split("data-conflict=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect();
    assert_eq!(
        conflicts.len(),
        2,
        "the foreign MX and the CNAME at www: {text}"
    );
    assert_eq!(
        zone_lines(&pdns, "example.org").await.len(),
        4,
        "nothing written yet"
    );

    // Apply without confirming: everything else is written, the foreign records stay.
    let posted = alice
        .submit(&format!("/groups/{group}/dns/apply"), &[])
        .await;
    assert_eq!(posted.location.as_deref(), Some(records.as_str()));
    let (state, summary, error) = finished_dns_job(&pool).await;
    assert_eq!(state, "done", "{error:?}");
    assert!(summary
        .unwrap()
        .contains("2 record(s) of others left in place"));
    let lines = zone_lines(&pdns, "example.org").await;
    assert!(has(&lines, "example.org A 93.184.216.34"), "{lines:?}");
    assert!(
        has(&lines, "example.org MX 10 mail.other.example."),
        "{lines:?}"
    );
    assert!(
        has(
            &lines,
            "example.org TXT \"google-site-verification=abc123\""
        ),
        "{lines:?}"
    );
    assert!(
        has(&lines, "example.org TXT \"v=spf1 a ~all\""),
        "{lines:?}"
    );
    assert!(
        has(&lines, "www.example.org CNAME elsewhere.example."),
        "{lines:?}"
    );
    assert!(visible_text(&alice.page(&records).await).contains("Done."));

    // Confirm replacing the foreign MX only.
    let mx = conflicts
        .iter()
        .find(|id| alice_conflict_is_mx(&body, id))
        .expect("the MX conflict")
        .clone();
    alice
        .submit(
            &format!("/groups/{group}/dns/apply"),
            &[(&format!("confirm-{mx}"), "on")],
        )
        .await;
    assert_eq!(finished_dns_job(&pool).await.0, "done");
    let lines = zone_lines(&pdns, "example.org").await;
    assert!(has(&lines, "example.org MX 10 example.org."), "{lines:?}");
    assert!(
        !has(&lines, "example.org MX 10 mail.other.example."),
        "{lines:?}"
    );
    assert!(
        has(&lines, "www.example.org CNAME elsewhere.example."),
        "unconfirmed stays"
    );

    // Nothing left to add: the dry run says so (only the unconfirmed CNAME remains).
    let body = alice.page(&records).await;
    assert!(
        !body.contains("id=\"dns-creates\""),
        "{}",
        visible_text(&body)
    );

    // A new address changes the A record and nothing else.
    alice
        .submit(
            &format!("/groups/{group}/setup/hardware"),
            &[("hardware", "virtual_machine"), ("ipv4", "93.184.216.35")],
        )
        .await;
    let body = alice.page(&records).await;
    assert!(
        body.contains("id=\"dns-updates\""),
        "{}",
        visible_text(&body)
    );
    assert!(!body.contains("id=\"dns-creates\""));
    let before = zone_lines(&pdns, "example.org").await;
    alice
        .submit(&format!("/groups/{group}/dns/apply"), &[])
        .await;
    assert_eq!(finished_dns_job(&pool).await.0, "done");
    let after = zone_lines(&pdns, "example.org").await;
    let changed: BTreeSet<&String> = before.iter().filter(|l| !after.contains(l)).collect();
    assert_eq!(changed.len(), 1, "only the A record changed: {changed:?}");
    assert!(has(&after, "example.org A 93.184.216.35"));

    // Removing the relay takes away exactly what the portal wrote.
    alice
        .submit(&format!("/groups/{group}/dns/remove"), &[])
        .await;
    assert_eq!(finished_dns_job(&pool).await.0, "done");
    let lines = zone_lines(&pdns, "example.org").await;
    let mut expected = vec![
        "example.org TXT \"google-site-verification=abc123\"".to_string(),
        "ns1.example.org A 127.0.0.31".to_string(),
        "www.example.org CNAME elsewhere.example.".to_string(),
    ];
    expected.sort();
    assert_eq!(lines, expected, "only the foreign records are left");
    let owned: i64 = sqlx::query_scalar("SELECT count(*) FROM dns_owned_values")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(owned, 0);
    drop(portal);
    drop(pdns);
}

/// Whether the conflict with `id` on the records page is the one about the MX record.
fn alice_conflict_is_mx(body: &str, id: &str) -> bool {
    let start = body.find(&format!("data-conflict=\"{id}\"")).unwrap();
    let rest = &body[start..];
    let end = rest.find("</article>").unwrap();
    rest[..end].contains(" MX")
}

#[tokio::test]
async fn a_job_survives_a_dead_dns_server_and_a_killed_portal() {
    let postgres = TestPostgres::start().await;
    let pool = PgPool::connect(&postgres.url()).await.unwrap();
    let mut pdns = PowerDns::start().await;
    pdns.create_zone("example.org");
    let dir = shared_temp_dir();
    let command = portal_for(&postgres, &pdns, &dir);
    let portal = command.start().await;
    let alice = PortalClient::new(portal.base_url());
    let group = start_relay(&alice).await;
    connect(&alice, &group, &pdns.api_url(), pdns.api_key()).await;
    finish_settings(&alice, &group, "93.184.216.34").await;

    // The DNS server dies: the job waits and retries instead of failing.
    pdns.stop();
    alice
        .submit(&format!("/groups/{group}/dns/apply"), &[])
        .await;
    let mut waiting = false;
    for _ in 0..300 {
        let row: (String, Option<String>) =
            sqlx::query_as("SELECT state, last_error FROM dns_jobs")
                .fetch_one(&pool)
                .await
                .unwrap();
        if row.0 == "pending" && row.1.is_some() {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(waiting, "the job is back in the queue with the reason");
    let text = visible_text(&alice.page(&format!("/groups/{group}/setup/records")).await);
    assert!(text.contains("Waiting to try again"), "{text}");

    // The portal dies in the middle of a run (as if killed while writing).
    portal.kill();
    sqlx::query(
        "UPDATE dns_jobs SET state = 'running', heartbeat_at = now() - interval '5 minutes'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pdns.restart().await;
    let portal = command.start().await;
    let (state, summary, error) = finished_dns_job(&pool).await;
    assert_eq!(state, "done", "{error:?}");
    assert!(
        summary.unwrap().starts_with("16 added")
            || zone_lines(&pdns, "example.org").await.len() > 10
    );
    let lines = zone_lines(&pdns, "example.org").await;
    assert!(has(&lines, "example.org A 93.184.216.34"), "{lines:?}");
    let unique: BTreeSet<&String> = lines.iter().collect();
    assert_eq!(unique.len(), lines.len(), "nothing duplicated");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM dns_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1, "the same job resumed");
    drop(portal);
}
