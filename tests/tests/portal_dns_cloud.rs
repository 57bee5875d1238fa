//! The portal writing a relay's records through a cloud DNS API: Hetzner's Cloud API
//! (zones and RRsets, <https://docs.hetzner.cloud/reference/cloud#zone-rrsets>, with
//! pagination and its error bodies) played by the local mock in `chatmail-dns-world`.
//!
//! Detection recognises Hetzner from the name servers, the DNS step offers its guided
//! token form first (and no sign-in button: no OAuth client is configured), hostile and
//! malformed tokens are refused with clear words, a read-only token leads to a failed job
//! and a "connect again" prompt, the right token writes every record (checked at the
//! mock), a second run has nothing to do, removal leaves the zone as it was, and
//! disconnecting forgets the token.

use chatmail_dns_world::cloud_mocks::{hetzner::Hetzner, Access, MockServer};
use chatmail_dns_world::{ServerSpec, World, RESOLVER_IP};
use chatmail_tests::{
    portal::PortalCommand,
    portal_client::{visible_text, PortalClient},
    postgres::{finished_dns_job, TestPostgres},
    shared_temp_dir,
};
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery";
const GOOD: &str = "hz-good-token-0123456789";
const READ_ONLY: &str = "hz-readonly-token-0123456789";

/// The resolver's view: example.org is served by Hetzner's name servers.
fn hetzner_delegation() -> String {
    "$ORIGIN example.org.\n$TTL 3600\n\
     @ 3600 IN SOA hydrogen.ns.hetzner.com. dns.hetzner.com. 1 7200 3600 1209600 3600\n\
     @ 3600 IN NS hydrogen.ns.hetzner.com.\n\
     @ 3600 IN NS helium.ns.hetzner.de.\n"
        .to_string()
}

fn has(mock: &MockServer, name: &str, rtype: &str, value: &str) -> bool {
    mock.records("example.org")
        .iter()
        .any(|(n, t, _, v)| n == name && t == rtype && v == value)
}

async fn connect(client: &PortalClient, group: &str, fields: &[(&str, &str)]) -> String {
    client
        .submit(&format!("/groups/{group}/dns/connect"), fields)
        .await;
    client.page(&format!("/groups/{group}/setup/dns")).await
}

#[tokio::test]
async fn hetzner_by_token_connect_apply_reapply_remove() {
    let postgres = TestPostgres::start().await;
    let pool = PgPool::connect(&postgres.url()).await.unwrap();
    let world = World::start(vec![ServerSpec::new(
        RESOLVER_IP,
        vec![hetzner_delegation()],
    )])
    .await;
    let mock = MockServer::start(Box::new(Hetzner), 3).await;
    mock.add_zone("example.org");
    mock.seed_zone_text(
        "example.org",
        "@ 3600 IN TXT \"google-site-verification=abc123\"\nblog 3600 IN A 198.51.100.7\n",
    );
    mock.add_token(GOOD, Access::ReadWrite);
    mock.add_token(READ_ONLY, Access::ReadOnly);
    let original = mock.records("example.org");

    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(postgres.url())
        .arg("--dns-resolver")
        .arg(world.resolver().to_string())
        .arg("--dns-nameserver-port")
        .arg(world.port.to_string())
        .arg("--dns-endpoint")
        .arg(format!("hetzner.api={}/v1", mock.url()))
        .start()
        .await;
    let alice = PortalClient::new(portal.base_url());
    alice.sign_up("alice@example.org", PASSWORD).await;
    let group = alice.create_group("Family").await;
    alice
        .submit(
            &format!("/groups/{group}/setup/domain"),
            &[("kind", "own"), ("domain", "example.org")],
        )
        .await;

    // The DNS step: Hetzner detected and offered first, with its guide; no sign-in button
    // anywhere (no OAuth client configured); Namecheap not offered (no allow-listed
    // address configured).
    let body = alice.page(&format!("/groups/{group}/setup/dns")).await;
    let text = visible_text(&body);
    assert!(text.contains("Your DNS provider is Hetzner"), "{text}");
    assert!(text.contains("Hetzner (your DNS provider)"), "{text}");
    let first = body.find("id=\"provider-").expect("provider choices");
    assert!(
        body[first..].starts_with("id=\"provider-hetzner\""),
        "the detected provider comes first"
    );
    assert!(
        text.contains("Read & Write"),
        "the least permission: {text}"
    );
    assert!(
        text.contains("What the portal does with it"),
        "what the portal does: {text}"
    );
    assert!(body.contains("id=\"hetzner-api_token\""));
    assert!(
        !body.contains("Sign in with"),
        "no sign-in without a client"
    );
    assert!(!body.contains("id=\"provider-namecheap\""));
    assert!(body.contains("id=\"provider-desec\""));

    // Malformed, oversized and hostile input: clear errors, nothing kept, never echoed.
    let long = "x".repeat(600);
    let script = "<script>alert(1)</script>";
    for (fields, expect) in [
        (
            vec![("method", "hetzner"), ("api_token", "")],
            "Enter the API token.",
        ),
        (
            vec![("method", "hetzner"), ("api_token", long.as_str())],
            "longer than any API token",
        ),
        (
            vec![("method", "hetzner"), ("api_token", "two words")],
            "copy it again from the provider",
        ),
        (
            vec![("method", "hetzner"), ("api_token", "tab\there")],
            "copy it again from the provider",
        ),
        (
            vec![("method", "hetzner"), ("api_token", script)],
            "The DNS provider was not connected",
        ),
        (
            vec![("method", "hetzner"), ("api_token", "not-a-known-token")],
            "did not accept",
        ),
        (
            vec![
                ("method", "porkbun"),
                ("api_key", "sk1_swapped"),
                ("secret_api_key", "pk1_swapped"),
            ],
            "starts with pk1_",
        ),
        (
            vec![("method", "namecheap"), ("api_user", "a"), ("api_key", "b")],
            "not set up to connect this provider",
        ),
        (
            vec![("method", "route53"), ("token", "x")],
            "Choose how the portal should reach your DNS",
        ),
    ] {
        let body = connect(&alice, &group, &fields).await;
        let text = visible_text(&body);
        assert!(
            text.contains(expect),
            "{fields:?}: want {expect:?} in {text}"
        );
        assert!(!body.contains("<script>alert"), "never echoed as markup");
        assert!(!body.contains(&long), "the token is never shown back");
        assert!(!body.contains("not-a-known-token"));
    }
    let connections: i64 = sqlx::query_scalar("SELECT count(*) FROM dns_connections")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(connections, 0);

    // A read-only token connects (it can read the zone), but writing fails with words a
    // person understands, and the DNS step asks to connect again.
    let body = connect(
        &alice,
        &group,
        &[("method", "hetzner"), ("api_token", READ_ONLY)],
    )
    .await;
    assert!(
        visible_text(&body).contains("Connected: Hetzner, zone example.org"),
        "{}",
        visible_text(&body)
    );
    alice.defaults_and_address(&group, "93.184.216.34").await;
    let records = format!("/groups/{group}/setup/records");
    let body = alice.page(&records).await;
    assert!(
        body.contains("id=\"dns-creates\""),
        "{}",
        visible_text(&body)
    );
    alice
        .submit(&format!("/groups/{group}/dns/apply"), &[])
        .await;
    let (state, _, error) = finished_dns_job(&pool).await;
    assert_eq!(state, "failed");
    let error = error.unwrap();
    assert!(error.contains("Read & Write"), "{error}");
    assert!(!error.contains("403") && !error.contains('{'), "{error}");
    let text = visible_text(&alice.page(&format!("/groups/{group}/setup/dns")).await);
    assert!(text.contains("stopped working"), "{text}");
    assert!(text.contains("Connect it again below"), "{text}");
    assert_eq!(mock.records("example.org"), original, "nothing was written");

    // The right token: sealed at rest, never in a page; the prompt is gone.
    let body = connect(
        &alice,
        &group,
        &[("method", "hetzner"), ("api_token", GOOD)],
    )
    .await;
    assert!(!body.contains(GOOD));
    let text = visible_text(&body);
    assert!(
        text.contains("Connected: Hetzner, zone example.org"),
        "{text}"
    );
    assert!(!text.contains("stopped working"), "{text}");
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(row(c.*)::text, ';') FROM dns_connections c")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!dump.contains(GOOD), "no column holds the token in clear");
    assert!(dump.contains("hetzner"));

    // Apply: every record at the mock, the foreign ones untouched.
    alice
        .submit(&format!("/groups/{group}/dns/apply"), &[])
        .await;
    let (state, summary, error) = finished_dns_job(&pool).await;
    assert_eq!(state, "done", "{error:?}");
    assert!(summary.unwrap().contains("added"));
    for (name, rtype, value) in [
        ("example.org", "A", "93.184.216.34"),
        ("example.org", "MX", "10 example.org."),
        ("example.org", "TXT", "\"v=spf1 a ~all\""),
        ("example.org", "TXT", "\"google-site-verification=abc123\""),
        ("blog.example.org", "A", "198.51.100.7"),
    ] {
        assert!(
            has(&mock, name, rtype, value),
            "{name} {rtype} {value} in {:#?}",
            mock.records("example.org")
        );
    }
    assert!(mock
        .records("example.org")
        .iter()
        .any(|(n, t, _, v)| n == "_dmarc.example.org" && t == "TXT" && v.contains("DMARC1")));
    // Hetzner's TTL minimum is respected and TXT strings are split.
    assert!(mock
        .records("example.org")
        .iter()
        .all(|(_, _, ttl, _)| *ttl >= 60));

    // Again: nothing to do.
    let body = alice.page(&records).await;
    assert!(
        body.contains("id=\"dns-nothing-to-do\""),
        "{}",
        visible_text(&body)
    );

    // Removal: only the portal's records go.
    alice
        .submit(&format!("/groups/{group}/dns/remove"), &[])
        .await;
    let (state, _, error) = finished_dns_job(&pool).await;
    assert_eq!(state, "done", "{error:?}");
    let mut now = mock.records("example.org");
    let mut before = original.clone();
    now.sort();
    before.sort();
    assert_eq!(now, before, "the zone is as it was");

    // Disconnect: the token is forgotten.
    alice
        .submit(&format!("/groups/{group}/dns/disconnect"), &[])
        .await;
    let text = visible_text(&alice.page(&format!("/groups/{group}/setup/dns")).await);
    assert!(text.contains("Disconnected"), "{text}");
    let connections: i64 = sqlx::query_scalar("SELECT count(*) FROM dns_connections")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(connections, 0);
    drop(portal);
}
