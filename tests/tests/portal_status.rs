//! The relay's status page against real DNS servers on loopback (hickory-server): a correct
//! zone is green and shows the join QR code; a broken one names the problem, what to do and
//! who does it; warnings can be ignored per relay; the report is served as JSON too.

use chatmail_dns_world::{
    registry_zone, reverse_zones, zone_head, ServerSpec, World, NS1_IP, NS2_IP, REGISTRY_IP,
    RESOLVER_IP,
};
use chatmail_shared::{zone_file::records_text, DeviceFacts, DnsPlan, RelayConfig};
use chatmail_tests::{
    portal::PortalCommand,
    portal_client::{visible_text, PortalClient},
    postgres::TestPostgres,
    shared_temp_dir,
};
use reqwest::StatusCode;
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery";

/// Walks the wizard to the status step for `example.org` and returns the group id.
async fn set_up_relay(client: &PortalClient) -> String {
    client.sign_up("alice@example.org", PASSWORD).await;
    let group = client.create_group("Family").await;
    let steps: [(&str, Vec<(&str, &str)>); 7] = [
        ("domain", vec![("kind", "own"), ("domain", "example.org")]),
        ("dns", vec![("method", "manual")]),
        (
            "settings",
            vec![
                ("contact_mail", "admin@example.org"),
                ("max_mailbox_size_mb", "500"),
                ("max_message_size_mb", "30"),
                ("delete_mails_after_days", "20"),
                ("delete_inactive_users_after_days", "90"),
            ],
        ),
        (
            "hardware",
            vec![("hardware", "virtual_machine"), ("ipv4", "93.184.216.34")],
        ),
        ("records", vec![]),
        ("download", vec![]),
        ("status", vec![]),
    ];
    for (step, fields) in steps {
        let path = if step == "dns" {
            format!("/groups/{group}/dns/connect")
        } else {
            format!("/groups/{group}/setup/{step}")
        };
        let posted = client.submit(&path, &fields).await;
        assert_eq!(posted.status, StatusCode::SEE_OTHER, "{step}");
    }
    group
}

/// The zone the portal planned, as the group's DNS provider would serve it, changed by `edit`.
async fn served_zone(pool: &PgPool, edit: impl Fn(String) -> String) -> String {
    let config: String = sqlx::query_scalar("SELECT config_toml FROM relays")
        .fetch_one(pool)
        .await
        .unwrap();
    let config = RelayConfig::from_toml(&config).unwrap();
    let plan = DnsPlan::new(&config, &DeviceFacts::default());
    edit(format!("{}{}", zone_head(2026112901), records_text(&plan)))
}

async fn world(zone: &str) -> World {
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.to_string()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![zone.to_string()]),
        ServerSpec::new(NS2_IP, vec![zone.to_string()]),
    ])
    .await
}

#[tokio::test]
async fn the_status_page_tells_what_is_wrong_and_who_fixes_it() {
    let postgres = TestPostgres::start().await;
    let pool = PgPool::connect(&postgres.url()).await.unwrap();
    let dir = shared_temp_dir();
    let base =
        PortalCommand::new(&dir.path().join("data"), dir.path()).database_url(postgres.url());

    // The wizard, on a portal that cannot reach any DNS: the status page says so plainly.
    let portal = base
        .clone()
        .arg("--dns-resolver")
        .arg("127.0.0.1:9")
        .start()
        .await;
    let alice = PortalClient::new(portal.base_url());
    let group = set_up_relay(&alice).await;
    let status = format!("/groups/{group}/setup/status");
    let text = visible_text(&alice.page(&status).await);
    assert!(text.contains("Step 7: Status"), "{text}");
    assert!(text.contains("For whoever runs this portal"), "{text}");
    assert!(text.contains("used for this check does not work"), "{text}");
    assert!(portal.stop().await.success());

    // A correct zone, except that the MX record was forgotten and SPF has a day-long TTL.
    let zone = served_zone(&pool, |zone| {
        zone.lines()
            .filter(|line| !line.contains(" MX "))
            .map(|line| {
                if line.contains("v=spf1") {
                    line.replacen("3600", "86400", 1)
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    })
    .await;
    let dns = world(&zone).await;
    let portal = base
        .clone()
        .arg("--dns-resolver")
        .arg(dns.resolver().to_string())
        .arg("--dns-nameserver-port")
        .arg(dns.port.to_string())
        .start()
        .await;
    let alice = PortalClient::new(portal.base_url());
    alice.sign_in("alice@example.org", PASSWORD).await;
    // The last report (from the portal without DNS) is fresh; ask for a new one.
    alice
        .submit(&format!("/groups/{group}/dns-check"), &[])
        .await;
    let body = alice.page(&status).await;
    let text = visible_text(&body);
    assert!(text.contains("problem(s) to fix"), "{text}");
    assert!(text.contains("To do at your DNS provider"), "{text}");
    assert!(text.contains("What to do:"), "{text}");
    assert!(
        body.contains("data-purpose=\"mx\" class=\"state-error\"")
            || body.contains("class=\"state-error\" data-purpose=\"mx\""),
        "the MX row is marked as a problem"
    );
    assert!(
        body.contains("data-finding=\"ttl-high\""),
        "the long TTL is a warning: {text}"
    );
    assert!(
        text.contains("The QR code to join appears here once the DNS problems above are fixed.")
    );
    assert!(
        body.contains("http-equiv=\"refresh\""),
        "refreshes itself without JavaScript while pending"
    );

    // Errors cannot be ignored; the warning can, and stays ignored for this relay.
    let report: serde_json::Value = alice
        .http
        .get(alice.url(&format!("/api/groups/{group}/dns-check")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let findings = report["report"]["findings"]
        .as_array()
        .expect("findings in the JSON");
    let key = |wanted: &str| {
        let finding = findings
            .iter()
            .find(|f| f["id"] == wanted)
            .unwrap_or_else(|| panic!("no {wanted} in {report}"));
        match finding["subject"].as_str() {
            Some(subject) => format!("{wanted}|{subject}"),
            None => wanted.to_string(),
        }
    };
    let error_key = findings
        .iter()
        .find(|f| f["severity"] == "error")
        .map(|f| match f["subject"].as_str() {
            Some(subject) => format!("{}|{subject}", f["id"].as_str().unwrap()),
            None => f["id"].as_str().unwrap().to_string(),
        })
        .expect("an error finding");
    alice
        .submit(
            &format!("/groups/{group}/dns-check/ignore"),
            &[("finding", &error_key)],
        )
        .await;
    assert!(visible_text(&alice.page(&status).await).contains("Only warnings can be ignored"));
    let ttl_key = key("ttl-high");
    alice
        .submit(
            &format!("/groups/{group}/dns-check/ignore"),
            &[("finding", &ttl_key)],
        )
        .await;
    let body = alice.page(&status).await;
    assert!(
        !body.contains("data-finding=\"ttl-high\""),
        "ignored warnings leave the list"
    );
    assert!(visible_text(&body).contains("1 ignored warning(s)"));
    let ignored: Vec<String> = sqlx::query_scalar("SELECT unnest(ignored_warnings) FROM relays")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ignored, vec![ttl_key.clone()]);
    alice
        .submit(
            &format!("/groups/{group}/dns-check/unignore"),
            &[("finding", &ttl_key)],
        )
        .await;
    assert!(alice
        .page(&status)
        .await
        .contains("data-finding=\"ttl-high\""));

    // The JSON is for members only.
    let stranger = PortalClient::new(portal.base_url());
    let response = stranger
        .http
        .get(stranger.url(&format!("/api/groups/{group}/dns-check")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    stranger.sign_up("mallory@example.org", PASSWORD).await;
    let response = stranger
        .http
        .get(stranger.url(&format!("/api/groups/{group}/dns-check")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        stranger
            .submit(&format!("/groups/{group}/dns-check"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(portal.stop().await.success());
    drop(dns);

    // The provider fixed the zone: green (apart from what waits for the device) and the QR code.
    let zone = served_zone(&pool, |zone| zone).await;
    let dns = world(&zone).await;
    let portal = base
        .arg("--dns-resolver")
        .arg(dns.resolver().to_string())
        .arg("--dns-nameserver-port")
        .arg(dns.port.to_string())
        .start()
        .await;
    let alice = PortalClient::new(portal.base_url());
    alice.sign_in("alice@example.org", PASSWORD).await;
    let posted = alice
        .submit(&format!("/groups/{group}/dns-check"), &[])
        .await;
    assert_eq!(posted.location.as_deref(), Some(status.as_str()));
    let body = alice.page(&status).await;
    let text = visible_text(&body);
    assert!(text.contains("Checked again just now."), "{text}");
    assert!(!text.contains("problem(s) to fix"), "{text}");
    assert!(
        text.contains("Waits for your device"),
        "DKIM and CAA wait for the device: {text}"
    );
    assert!(
        body.contains("<div class=\"qr\"><svg"),
        "the join QR code is shown"
    );
    drop(dns);
}
