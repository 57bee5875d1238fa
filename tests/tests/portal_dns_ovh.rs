//! Connecting OVHcloud from the DNS step: the portal asks OVHcloud for a consumer key
//! (`POST /auth/credential`, <https://help.ovhcloud.com/csm/en-api-getting-started-ovhcloud-api>,
//! "Advanced usage: pair OVHcloud APIs with an application"), sends the person to the
//! approval page (`validationUrl`), and on the way back checks the key before keeping it.
//! OVHcloud is played by the local mock in `chatmail-dns-world`, whose approval page
//! approves at once and sends the browser to the `redirection` the portal gave.
//!
//! Checked: OVHcloud is detected and offered first with its guide; the key asked for only
//! covers the domain's zone; coming back without approving connects nothing and says why;
//! the return works once and only in the browser that started it; the approved key is
//! sealed (neither it nor the application secret is in any column) and writes the records.

use chatmail_dns_world::cloud_mocks::{ovh::Ovh, MockServer};
use chatmail_dns_world::{ServerSpec, World, RESOLVER_IP};
use chatmail_tests::{
    portal::PortalCommand,
    portal_client::{visible_text, PortalClient},
    postgres::{finished_dns_job, TestPostgres},
    shared_temp_dir,
};
use reqwest::{header, StatusCode};
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery";
const APP_KEY: &str = "portal-application-key";
const APP_SECRET: &str = "portal-application-secret-0123456789";

/// The resolver's view: example.org is served by OVHcloud's name servers.
fn ovh_delegation() -> String {
    "$ORIGIN example.org.\n$TTL 3600\n\
     @ 3600 IN SOA dns10.ovh.net. tech.ovh.net. 1 7200 3600 1209600 3600\n\
     @ 3600 IN NS dns10.ovh.net.\n\
     @ 3600 IN NS ns10.ovh.net.\n"
        .to_string()
}

/// Presses "Connect OVHcloud": returns the approval page's address the portal sent to.
async fn press_connect(client: &PortalClient, group: &str) -> String {
    let token = client.csrf().await;
    let response = client
        .http
        .post(client.url(&format!("/groups/{group}/dns/connect")))
        .header("origin", client.url(""))
        .form(&[("csrf", token.as_str()), ("method", "ovh")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string()
}

/// Follows one redirect that leaves the portal; returns the next location.
async fn follow(client: &PortalClient, url: &str) -> String {
    let response = client.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{url}");
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string()
}

async fn connections(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM dns_connections")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn ovh_consumer_key_approved_in_the_browser() {
    let postgres = TestPostgres::start().await;
    let pool = PgPool::connect(&postgres.url()).await.unwrap();
    let world = World::start(vec![ServerSpec::new(RESOLVER_IP, vec![ovh_delegation()])]).await;
    let mock = MockServer::start(Box::new(Ovh), 3).await;
    mock.set("app_key", APP_KEY);
    mock.set("app_secret", APP_SECRET);
    mock.add_zone("example.org");
    mock.seed_zone_text("example.org", "www 3600 IN A 198.51.100.7\n");
    let original = mock.records("example.org");

    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(postgres.url())
        .arg("--dns-resolver")
        .arg(world.resolver().to_string())
        .arg("--dns-nameserver-port")
        .arg(world.port.to_string())
        .arg("--dns-endpoint")
        .arg(format!("ovh.api={}/1.0", mock.url()))
        .arg("--ovh-application-key")
        .arg(APP_KEY)
        .arg("--ovh-application-secret")
        .arg(APP_SECRET)
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

    // The DNS step: OVHcloud detected and offered first, with what the person will do.
    let dns_step = format!("/groups/{group}/setup/dns");
    let body = alice.page(&dns_step).await;
    let text = visible_text(&body);
    assert!(text.contains("Your DNS provider is OVHcloud"), "{text}");
    let first = body.find("id=\"provider-").expect("provider choices");
    assert!(body[first..].starts_with("id=\"provider-ovh\""));
    assert!(
        text.contains("approve the access the portal asks for"),
        "{text}"
    );
    assert!(body.contains("id=\"connect-ovh\""));

    // The key asked for covers listing zones and this zone's records, nothing else.
    let approval = press_connect(&alice, &group).await;
    assert!(
        approval.starts_with(&format!("{}/1.0/auth/validate?", mock.url())),
        "{approval}"
    );
    let rules: Vec<serde_json::Value> = mock.with(|core| {
        core.settings
            .iter()
            .filter(|(k, _)| k.starts_with("ck:"))
            .map(|(_, v)| serde_json::from_str::<serde_json::Value>(v).unwrap())
            .collect()
    });
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["redirection"],
        format!("{}/dns/ovh/return", portal.base_url().trim_end_matches('/'))
    );
    for rule in rules[0]["rules"].as_array().unwrap() {
        let path = rule["path"].as_str().unwrap();
        assert!(
            path == "/domain/zone" || path == "/domain/zone/example.org/*",
            "{rule}"
        );
    }

    // Coming back without approving: nothing is connected, and the page says why.
    let (_, _, body) = alice.get("/dns/ovh/return").await;
    let text = visible_text(&body);
    assert!(text.contains("never approved"), "{text}");
    assert_eq!(connections(&pool).await, 0);

    // Another person's browser cannot finish Alice's connection.
    let approval = press_connect(&alice, &group).await;
    let bob = PortalClient::new(portal.base_url());
    bob.sign_up("bob@example.org", PASSWORD).await;
    let (_, _, body) = bob.get("/dns/ovh/return").await;
    assert!(
        visible_text(&body).contains("No OVHcloud connection is under way"),
        "{}",
        visible_text(&body)
    );

    // Approving at OVHcloud sends Alice back; the key is checked and kept sealed.
    let back = follow(&alice, &approval).await;
    let back_path = back
        .strip_prefix(portal.base_url().trim_end_matches('/'))
        .expect("back to the portal");
    let (status, path, body) = alice.get(back_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(path.ends_with("/setup/settings"), "{path}");
    let text = visible_text(&body);
    assert!(
        text.contains("Connected: OVHcloud (approved at OVHcloud), zone example.org"),
        "{text}"
    );
    let consumer_key: String = mock.with(|core| {
        core.settings
            .keys()
            .find_map(|k| k.strip_prefix("ck:").map(str::to_string))
            .unwrap()
    });
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(row(c.*)::text, ';') FROM dns_connections c")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!dump.contains(&consumer_key), "the consumer key is sealed");
    assert!(
        !dump.contains(APP_SECRET),
        "the application secret is sealed"
    );
    assert!(!body.contains(&consumer_key));

    // The return works once.
    let (_, _, body) = alice.get("/dns/ovh/return").await;
    assert!(visible_text(&body).contains("No OVHcloud connection is under way"));
    assert_eq!(connections(&pool).await, 1);

    // The approved key writes the relay's records, leaving the others alone.
    alice.defaults_and_address(&group, "93.184.216.34").await;
    alice
        .submit(&format!("/groups/{group}/dns/apply"), &[])
        .await;
    let (state, _, error) = finished_dns_job(&pool).await;
    assert_eq!(state, "done", "{error:?}");
    let records = mock.records("example.org");
    for (name, rtype, value) in [
        ("example.org", "A", "93.184.216.34"),
        ("example.org", "MX", "10 example.org."),
        ("www.example.org", "A", "198.51.100.7"),
    ] {
        assert!(
            records
                .iter()
                .any(|(n, t, _, v)| n == name && t == rtype && v == value),
            "{name} {rtype} {value} in {records:#?}"
        );
    }
    assert!(records.len() > original.len());
    drop(portal);
}
