//! Groups over HTTP against the real portal: invites that work once and expire, roles,
//! the setup wizard's validation, the operator's area, and a table-driven proof that no
//! route lets one group read or change another group's relay.

use chatmail_tests::{
    portal::{PortalCommand, RunningPortal},
    portal_client::{visible_text, PortalClient},
    postgres::TestPostgres,
    shared_temp_dir,
};
use reqwest::StatusCode;
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery";

struct Setup {
    portal: RunningPortal,
    command: PortalCommand,
    pool: PgPool,
    dir: tempfile::TempDir,
    _postgres: TestPostgres,
}

async fn setup() -> Setup {
    let postgres = TestPostgres::start().await;
    let dir = shared_temp_dir();
    let command =
        PortalCommand::new(&dir.path().join("data"), dir.path()).database_url(postgres.url());
    let portal = command.start().await;
    let pool = PgPool::connect(&postgres.url())
        .await
        .expect("connect to the test database");
    Setup {
        portal,
        command,
        pool,
        dir,
        _postgres: postgres,
    }
}

async fn person(s: &Setup, email: &str) -> PortalClient {
    let client = PortalClient::new(s.portal.base_url());
    let posted = client.sign_up(email, PASSWORD).await;
    assert_eq!(
        posted.location.as_deref(),
        Some("/groups"),
        "sign-up of {email}"
    );
    client
}

async fn scalar<T>(pool: &PgPool, sql: &str) -> T
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

fn invite_path(body: &str) -> String {
    let start = body.find("/invite/").expect("an invite link on the page");
    let rest = &body[start..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn new_invite(owner: &PortalClient, group: &str) -> String {
    owner.submit(&format!("/groups/{group}/invites"), &[]).await;
    invite_path(&owner.page(&format!("/groups/{group}")).await)
}

#[tokio::test]
async fn invite_links_work_once_and_expire() {
    let s = setup().await;
    let alice = person(&s, "alice@example.org").await;
    let bob = person(&s, "bob@example.org").await;
    let carol = person(&s, "carol@example.org").await;
    let group = alice.create_group("Family").await;

    let link = new_invite(&alice, &group).await;
    // The token is shown once and only its hash is stored.
    let token = link.trim_start_matches("/invite/");
    let stored: i64 = scalar(
        &s.pool,
        &format!("SELECT count(*) FROM invites WHERE token_hash = '{token}'::bytea"),
    )
    .await;
    assert_eq!(stored, 0, "the token itself is not in the database");
    assert!(
        !visible_text(&alice.page(&format!("/groups/{group}")).await).contains(token),
        "shown once"
    );

    // Anonymous visitors see the group and are asked to sign in first.
    let anonymous = PortalClient::new(s.portal.base_url());
    let text = visible_text(&anonymous.page(&link).await);
    assert!(text.contains("Join \u{201c}Family\u{201d}"), "{text}");
    assert!(text.contains("Sign in or create an account"), "{text}");

    assert_eq!(
        bob.submit(&link, &[]).await.location,
        Some(format!("/groups/{group}"))
    );
    let members: i64 = scalar(&s.pool, "SELECT count(*) FROM group_members").await;
    assert_eq!(members, 2);
    let role: String = scalar(&s.pool, "SELECT m.role FROM group_members m JOIN accounts a ON a.id = m.account_id WHERE a.email = 'bob@example.org'").await;
    assert_eq!(role, "admin");

    // Used once: Carol cannot use it again, and learns why.
    assert_eq!(
        carol.submit(&link, &[]).await.location.as_deref(),
        Some(link.as_str())
    );
    let text = visible_text(&carol.page(&link).await);
    assert!(text.contains("This invite link was used already"), "{text}");

    // Expired and withdrawn links are refused too.
    let expiring = new_invite(&alice, &group).await;
    sqlx::query("UPDATE invites SET expires_at = now() - interval '1 hour' WHERE used_at IS NULL")
        .execute(&s.pool)
        .await
        .unwrap();
    carol.submit(&expiring, &[]).await;
    assert!(visible_text(&carol.page(&expiring).await).contains("This invite link has expired."));
    let withdrawn = new_invite(&alice, &group).await;
    let invite_id: uuid::Uuid = scalar(
        &s.pool,
        "SELECT id FROM invites WHERE used_at IS NULL AND expires_at > now()",
    )
    .await;
    alice
        .submit(&format!("/groups/{group}/invites/{invite_id}/revoke"), &[])
        .await;
    carol.submit(&withdrawn, &[]).await;
    assert!(visible_text(&carol.page(&withdrawn).await).contains("This invite link was withdrawn."));
    // A made-up token.
    assert!(visible_text(&carol.page("/invite/made-up-token").await)
        .contains("This invite link is not valid."));
    let members: i64 = scalar(&s.pool, "SELECT count(*) FROM group_members").await;
    assert_eq!(members, 2, "Carol never got in");
}

#[tokio::test]
async fn two_people_racing_for_one_link_cannot_both_join() {
    let s = setup().await;
    let alice = person(&s, "alice@example.org").await;
    let group = alice.create_group("Family").await;
    let link = new_invite(&alice, &group).await;
    let mut racers = Vec::new();
    for i in 0..6 {
        racers.push(person(&s, &format!("racer{i}@example.org")).await);
    }
    let mut joins = Vec::new();
    for racer in racers {
        let token = racer.csrf().await;
        let link = link.clone();
        joins.push(tokio::spawn(async move {
            racer.post(&link, &[("csrf", &token)]).await
        }));
    }
    for join in joins {
        join.await.unwrap();
    }
    let members: i64 = scalar(&s.pool, "SELECT count(*) FROM group_members").await;
    assert_eq!(members, 2, "exactly one racer joined");
}

#[tokio::test]
async fn roles_and_leaving() {
    let s = setup().await;
    let alice = person(&s, "alice@example.org").await;
    let bob = person(&s, "bob@example.org").await;
    let group = alice.create_group("Family").await;
    bob.submit(&new_invite(&alice, &group).await, &[]).await;
    let id = |email: &'static str| {
        let pool = s.pool.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM accounts WHERE email = $1")
                .bind(email)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (alice_id, bob_id) = (id("alice@example.org").await, id("bob@example.org").await);

    // An admin cannot remove or demote the owner, and the last owner cannot leave.
    bob.submit(&format!("/groups/{group}/members/{alice_id}/remove"), &[])
        .await;
    assert!(visible_text(&bob.page(&format!("/groups/{group}")).await)
        .contains("Only an owner of the group can do that."));
    bob.submit(
        &format!("/groups/{group}/members/{alice_id}/role"),
        &[("role", "admin")],
    )
    .await;
    assert!(visible_text(&bob.page(&format!("/groups/{group}")).await)
        .contains("Only an owner of the group can do that."));
    alice
        .submit(&format!("/groups/{group}/members/{alice_id}/remove"), &[])
        .await;
    assert!(visible_text(&alice.page(&format!("/groups/{group}")).await)
        .contains("A group needs at least one owner."));

    // Bob leaves by himself; Alice can remove members.
    let posted = bob
        .submit(&format!("/groups/{group}/members/{bob_id}/remove"), &[])
        .await;
    assert_eq!(posted.location.as_deref(), Some("/groups"));
    let (status, _, _) = bob.get(&format!("/groups/{group}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no longer a member");

    // Deleting needs the name typed exactly.
    alice
        .submit(
            &format!("/groups/{group}/delete"),
            &[("confirm_name", "family")],
        )
        .await;
    assert!(visible_text(&alice.page(&format!("/groups/{group}")).await)
        .contains("Type the group's name exactly"));
    let posted = alice
        .submit(
            &format!("/groups/{group}/delete"),
            &[("confirm_name", "Family")],
        )
        .await;
    assert_eq!(posted.location.as_deref(), Some("/groups"));
    let groups: i64 = scalar(&s.pool, "SELECT count(*) FROM groups").await;
    assert_eq!(groups, 0);
}

/// Fills in the wizard up to the records step with valid answers.
async fn complete_setup(client: &PortalClient, group: &str, domain: &str) {
    let step = |name: &str| format!("/groups/{group}/setup/{name}");
    let checks: [(&str, Vec<(&str, &str)>); 4] = [
        ("domain", vec![("kind", "own"), ("domain", domain)]),
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
    ];
    for (name, fields) in checks {
        let path = if name == "dns" {
            format!("/groups/{group}/dns/connect")
        } else {
            step(name)
        };
        let posted = client.submit(&path, &fields).await;
        let location = posted.location.unwrap_or_default();
        assert!(
            !location.ends_with(&format!("/{name}")),
            "step {name} was refused: {location}"
        );
    }
}

#[tokio::test]
async fn one_group_can_never_reach_another_groups_relay() {
    let s = setup().await;
    let alice = person(&s, "alice@example.org").await;
    let group = alice.create_group("Alice's group").await;
    complete_setup(&alice, &group, "chat.alice.example").await;
    let invite = new_invite(&alice, &group).await;
    let invite_id: String = scalar(&s.pool, "SELECT id::text FROM invites LIMIT 1").await;
    let alice_id: String = scalar(
        &s.pool,
        "SELECT id::text FROM accounts WHERE email = 'alice@example.org'",
    )
    .await;

    let mallory = person(&s, "mallory@example.org").await;
    let _own = mallory.create_group("Mallory's group").await;
    let before: String = scalar(
        &s.pool,
        "SELECT string_agg(row(r.*)::text, ';') || (SELECT string_agg(row(m.*)::text, ';') FROM group_members m) \
         || (SELECT string_agg(row(i.*)::text, ';') FROM invites i) FROM relays r",
    )
    .await;

    // Every page and every page-data address of Alice's group.
    let mut reads: Vec<String> = vec![
        format!("/groups/{group}"),
        format!("/api/group_page?group_id={group}"),
    ];
    for step in [
        "domain", "dns", "settings", "hardware", "records", "download", "status",
    ] {
        reads.push(format!("/groups/{group}/setup/{step}"));
        reads.push(format!("/api/setup_page?group_id={group}&step={step}"));
    }
    for path in &reads {
        let (status, _, body) = mallory.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            !body.contains("chat.alice.example"),
            "{path} leaked the relay"
        );
        assert!(
            !body.contains("Alice's group") && !body.contains("Alice&#x27;s group"),
            "{path} leaked the name"
        );
    }

    // Every change.
    let writes: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/groups/{group}/invites"), vec![]),
        (
            format!("/groups/{group}/invites/{invite_id}/revoke"),
            vec![],
        ),
        (format!("/groups/{group}/members/{alice_id}/remove"), vec![]),
        (
            format!("/groups/{group}/members/{alice_id}/role"),
            vec![("role", "admin")],
        ),
        (
            format!("/groups/{group}/delete"),
            vec![("confirm_name", "Alice's group")],
        ),
        (
            format!("/groups/{group}/setup/domain"),
            vec![("kind", "own"), ("domain", "stolen.example")],
        ),
        (format!("/groups/{group}/setup/dns"), vec![]),
        (
            format!("/groups/{group}/setup/settings"),
            vec![("contact_mail", "m@evil.example")],
        ),
        (
            format!("/groups/{group}/setup/hardware"),
            vec![("hardware", "raspberry_pi"), ("ipv4", "1.1.1.1")],
        ),
        (format!("/groups/{group}/setup/records"), vec![]),
        (
            format!("/groups/{group}/dns/connect"),
            vec![("method", "manual")],
        ),
        (format!("/groups/{group}/dns/apply"), vec![]),
        (format!("/groups/{group}/dns/remove"), vec![]),
        (format!("/groups/{group}/dns-check"), vec![]),
        (
            format!("/groups/{group}/dns-check/ignore"),
            vec![("finding", "ttl-high")],
        ),
        (
            format!("/operator/groups/{group}/disable"),
            vec![("reason", "mine now")],
        ),
        (format!("/operator/groups/{group}/enable"), vec![]),
    ];
    for (path, fields) in &writes {
        let posted = mallory.submit(path, fields).await;
        assert_eq!(posted.status, StatusCode::NOT_FOUND, "{path}: {posted:?}");
    }
    // Using Alice's token from Mallory's session does not help either.
    let alice_token = alice.csrf().await;
    let posted = mallory
        .post(
            &format!("/groups/{group}/invites"),
            &[("csrf", &alice_token)],
        )
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);

    let after: String = scalar(
        &s.pool,
        "SELECT string_agg(row(r.*)::text, ';') || (SELECT string_agg(row(m.*)::text, ';') FROM group_members m) \
         || (SELECT string_agg(row(i.*)::text, ';') FROM invites i) FROM relays r",
    )
    .await;
    assert_eq!(before, after, "nothing of Alice's group changed");
    // And Alice's own link still works for someone she sends it to.
    let bob = person(&s, "bob@example.org").await;
    assert_eq!(
        bob.submit(&invite, &[]).await.location,
        Some(format!("/groups/{group}"))
    );
}

#[tokio::test]
async fn the_wizard_checks_every_answer() {
    let s = setup().await;
    let alice = person(&s, "alice@example.org").await;
    let group = alice.create_group("Family").await;
    let step = |name: &str| format!("/groups/{group}/setup/{name}");

    // Later steps stay closed until the earlier ones are done.
    let posted = alice
        .submit(&step("settings"), &[("contact_mail", "a@example.org")])
        .await;
    assert_eq!(posted.location.as_deref(), Some(step("domain").as_str()));

    let long_label = format!("{}.example.org", "a".repeat(64));
    let long_name = format!("{}.example.org", ["abcdefghij"; 25].join("."));
    let bad_domains: &[(&str, &str)] = &[
        ("", "must not be empty"),
        ("localhost", "needs at least two labels"),
        ("192.0.2.1", "must be a domain name, not an IP address"),
        ("[2001:db8::1]", "must be a domain name, not an IP address"),
        ("my_server.example.org", "must not contain underscores"),
        ("a..example.org", "must not contain an empty label"),
        (&long_label, "DNS allows at most 63"),
        (&long_name, "at most"),
        ("<script>alert(1)</script>.org", "This name"),
        ("chat example.org", "must not contain spaces"),
    ];
    for (domain, problem) in bad_domains {
        alice
            .submit(&step("domain"), &[("kind", "own"), ("domain", domain)])
            .await;
        let body = alice.page(&step("domain")).await;
        let text = visible_text(&body);
        assert!(
            text.contains(problem),
            "{domain:?}: expected {problem:?} in {text}"
        );
        assert!(!body.contains("<script>alert(1)"), "escaped");
    }
    let relays: i64 = scalar(
        &s.pool,
        "SELECT count(*) FROM relays WHERE mail_domain IS NOT NULL",
    )
    .await;
    assert_eq!(relays, 0, "nothing stored half-way");

    // Uppercase, a trailing dot and an IDN are normalised.
    alice
        .submit(
            &step("domain"),
            &[("kind", "own"), ("domain", "Chat.Bücher.Example.")],
        )
        .await;
    let stored: String = scalar(&s.pool, "SELECT mail_domain FROM relays").await;
    assert_eq!(stored, "chat.xn--bcher-kva.example");
    assert!(visible_text(&alice.page(&step("domain")).await).contains("chat.bücher.example"));

    // A name another group uses is refused.
    let bob = person(&s, "bob@example.org").await;
    let other = bob.create_group("Other").await;
    bob.submit(
        &format!("/groups/{other}/setup/domain"),
        &[("kind", "own"), ("domain", "chat.bücher.example")],
    )
    .await;
    assert!(
        visible_text(&bob.page(&format!("/groups/{other}/setup/domain")).await)
            .contains("already used by another relay")
    );

    // Continuing without choosing how records reach DNS is refused.
    alice.submit(&step("dns"), &[]).await;
    assert!(visible_text(&alice.page(&step("dns")).await)
        .contains("Choose how the records reach your DNS"));
    alice
        .submit(
            &format!("/groups/{group}/dns/connect"),
            &[("method", "manual")],
        )
        .await;
    let bad_settings: &[(&str, &str, &str)] = &[
        (
            "contact_mail",
            "",
            "Enter an address where people can reach",
        ),
        (
            "contact_mail",
            "<b>not mail</b>",
            "does not look like an e-mail address",
        ),
        ("max_mailbox_size_mb", "0", "from 10 to 100000"),
        ("max_mailbox_size_mb", "99999999999", "from 10 to 100000"),
        ("max_mailbox_size_mb", "-5", "from 10 to 100000"),
        (
            "max_message_size_mb",
            "600",
            "must not exceed the mailbox size",
        ),
        ("delete_mails_after_days", "abc", "from 1 to 3650"),
        ("postal_address", "line\u{0}break", "This text"),
    ];
    for (field, value, problem) in bad_settings {
        let mut fields = vec![
            ("contact_mail", "admin@example.org"),
            ("max_mailbox_size_mb", "500"),
            ("max_message_size_mb", "30"),
            ("delete_mails_after_days", "20"),
            ("delete_inactive_users_after_days", "90"),
        ];
        fields.retain(|(name, _)| name != field);
        fields.push((field, value));
        alice.submit(&step("settings"), &fields).await;
        let text = visible_text(&alice.page(&step("settings")).await);
        assert!(
            text.contains(problem),
            "{field}={value:?}: expected {problem:?} in {text}"
        );
    }
    let configs: i64 = scalar(
        &s.pool,
        "SELECT count(*) FROM relays WHERE config_toml IS NOT NULL",
    )
    .await;
    assert_eq!(configs, 0, "no half-saved settings");
    // Script in a privacy field is stored as text and always shown escaped.
    alice
        .submit(
            &step("settings"),
            &[
                ("contact_mail", "admin@example.org"),
                ("postal_address", "<script>alert('x')</script> Main St 1"),
                ("max_mailbox_size_mb", "500"),
                ("max_message_size_mb", "30"),
                ("delete_mails_after_days", "20"),
                ("delete_inactive_users_after_days", "90"),
            ],
        )
        .await;
    let body = alice.page(&step("settings")).await;
    assert!(!body.contains("<script>alert('x')"), "escaped on the page");

    let bad_addresses: &[(&str, &str, &str)] = &[
        ("", "", "Enter at least one public address"),
        ("192.168.1.10", "", "is a private network address"),
        ("127.0.0.1", "", "is a loopback address"),
        ("100.64.1.1", "", "carrier-grade NAT"),
        ("300.1.1.1", "", "Enter an IPv4 address like"),
        ("", "fe80::1", "is a link-local address"),
        ("", "2001:db8::1", "reserved for documentation"),
        ("", "not-an-address", "Enter an IPv6 address like"),
        ("93.184.216.34", "::ffff:1.2.3.4", "written as IPv6"),
    ];
    for (v4, v6, problem) in bad_addresses {
        alice
            .submit(
                &step("hardware"),
                &[("hardware", "raspberry_pi"), ("ipv4", v4), ("ipv6", v6)],
            )
            .await;
        let text = visible_text(&alice.page(&step("hardware")).await);
        assert!(
            text.contains(problem),
            "{v4:?}/{v6:?}: expected {problem:?} in {text}"
        );
    }
    alice
        .submit(&step("hardware"), &[("ipv4", "93.184.216.34")])
        .await;
    assert!(visible_text(&alice.page(&step("hardware")).await)
        .contains("Choose a Raspberry Pi or a virtual machine."));
    let hardware: i64 = scalar(
        &s.pool,
        "SELECT count(*) FROM relays WHERE hardware IS NOT NULL",
    )
    .await;
    assert_eq!(hardware, 0);

    alice
        .submit(
            &step("hardware"),
            &[
                ("hardware", "raspberry_pi"),
                ("ipv4", "93.184.216.34"),
                ("ipv6", "2a01:4f8::1"),
            ],
        )
        .await;
    // The records step now lists the plan, with the addresses and the pending DKIM key.
    let text = visible_text(&alice.page(&step("records")).await);
    assert!(
        text.contains("chat.xn--bcher-kva.example A 93.184.216.34"),
        "{text}"
    );
    assert!(text.contains("AAAA 2a01:4f8::1"), "{text}");
    assert!(text.contains("later: waits for the signing key"), "{text}");
    let config: String = scalar(&s.pool, "SELECT config_toml FROM relays WHERE group_id::text = (SELECT id::text FROM groups WHERE name = 'Family')").await;
    let config =
        chatmail_shared::RelayConfig::from_toml(&config).expect("the stored config is valid");
    assert_eq!(
        config.addresses.ipv4,
        Some("93.184.216.34".parse().unwrap())
    );
}

#[tokio::test]
async fn community_operators_manage_zones_quotas_and_groups() {
    let s = setup().await;
    let alice = person(&s, "alice@example.org").await;
    let group = alice.create_group("Family").await;

    // Non-operators do not even learn the page exists.
    let (status, _, _) = alice.get("/operator").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        alice
            .submit("/operator/zones", &[("zone", "free.example")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let printed = s.command.create_operator(
        &s.dir.path().join("cli"),
        "op@example.org",
        "operator passphrase",
    );
    assert!(
        printed.contains("Created the operator account op@example.org"),
        "{printed}"
    );
    let operator = PortalClient::new(s.portal.base_url());
    operator
        .sign_in("op@example.org", "operator passphrase")
        .await;
    let text = visible_text(&operator.page("/operator").await);
    assert!(text.contains("Family"), "all groups are listed: {text}");

    // A zone for free names; groups can then pick a name under it.
    operator
        .submit("/operator/zones", &[("zone", "not a zone!")])
        .await;
    assert!(visible_text(&operator.page("/operator").await).contains("The zone was not added."));
    operator
        .submit("/operator/zones", &[("zone", "Free.Example.")])
        .await;
    let zone_id: String = scalar(
        &s.pool,
        "SELECT id::text FROM free_zones WHERE zone = 'free.example'",
    )
    .await;
    for (label, problem) in [
        ("ab", "Use 3 to 40 characters."),
        ("www", "reserved"),
        ("-x-y", "Hyphens"),
        ("UPPER_case", "Use only letters"),
    ] {
        alice
            .submit(
                &format!("/groups/{group}/setup/domain"),
                &[("kind", "free"), ("label", label), ("zone", &zone_id)],
            )
            .await;
        let text = visible_text(&alice.page(&format!("/groups/{group}/setup/domain")).await);
        assert!(text.contains(problem), "{label}: {text}");
    }
    alice
        .submit(
            &format!("/groups/{group}/setup/domain"),
            &[("kind", "own"), ("domain", "family.free.example")],
        )
        .await;
    assert!(
        visible_text(&alice.page(&format!("/groups/{group}/setup/domain")).await)
            .contains("under a zone this portal offers")
    );
    alice
        .submit(
            &format!("/groups/{group}/setup/domain"),
            &[("kind", "free"), ("label", "family"), ("zone", &zone_id)],
        )
        .await;
    let domain: String = scalar(&s.pool, "SELECT mail_domain FROM relays").await;
    assert_eq!(domain, "family.free.example");
    let text = visible_text(&alice.page(&format!("/groups/{group}/setup/dns")).await);
    assert!(
        text.contains("free name from this portal, so the portal writes its DNS records itself"),
        "{text}"
    );

    // Quotas: one group per person.
    operator
        .submit(
            "/operator/settings",
            &[
                ("max_groups_per_account", "1"),
                ("downloads_per_day", "5"),
                ("open_sign_up", "on"),
            ],
        )
        .await;
    alice.submit("/groups", &[("name", "Second")]).await;
    assert!(visible_text(&alice.page("/groups").await)
        .contains("the most this portal allows per person"));
    operator
        .submit(
            "/operator/settings",
            &[("max_groups_per_account", "-1"), ("downloads_per_day", "x")],
        )
        .await;
    let text = visible_text(&operator.page("/operator").await);
    assert!(
        text.contains("Enter a whole number from 0 to 1000."),
        "{text}"
    );

    // Disabling a group: its members can look but not change anything, and see why.
    operator
        .submit(
            &format!("/operator/groups/{group}/disable"),
            &[("reason", "")],
        )
        .await;
    assert!(visible_text(&operator.page("/operator").await).contains("Give a reason"));
    operator
        .submit(
            &format!("/operator/groups/{group}/disable"),
            &[("reason", "Spam complaints")],
        )
        .await;
    let posted = alice.submit(&format!("/groups/{group}/invites"), &[]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    let text = visible_text(&alice.page(&format!("/groups/{group}")).await);
    assert!(
        text.contains("disabled this group: Spam complaints"),
        "{text}"
    );
    let invites: i64 = scalar(&s.pool, "SELECT count(*) FROM invites").await;
    assert_eq!(invites, 0);
    operator
        .submit(&format!("/operator/groups/{group}/enable"), &[])
        .await;
    alice.submit(&format!("/groups/{group}/invites"), &[]).await;
    let invites: i64 = scalar(&s.pool, "SELECT count(*) FROM invites").await;
    assert_eq!(invites, 1);

    // Closing sign-up: only people with an invite link may create accounts.
    operator
        .submit(
            "/operator/settings",
            &[("max_groups_per_account", "3"), ("downloads_per_day", "5")],
        )
        .await;
    let stranger = PortalClient::new(s.portal.base_url());
    stranger.sign_up("stranger@example.org", PASSWORD).await;
    assert!(visible_text(&stranger.get("/signup").await.2).contains("not taking new accounts"));

    // The audit log saw all of it.
    let text = visible_text(&operator.page("/operator").await);
    for action in [
        "sign_in",
        "group.created",
        "operator.zone_added",
        "operator.group_disabled",
        "operator.group_enabled",
        "invite.created",
        "operator.settings",
    ] {
        assert!(text.contains(action), "audit log lacks {action}");
    }
}

/// The groups page starts a relay in one form: its name and address, everything else at
/// the settings and hardware steps' defaults. Bad input is explained and makes nothing.
#[tokio::test]
async fn a_new_relay_from_one_form() {
    let s = setup().await;
    let alice = person(&s, "alice@example.org").await;
    let groups = alice.page("/groups").await;
    assert!(groups.contains("id=\"new-relay\""), "{groups}");
    for field in ["domain", "ipv4", "ipv6", "name"] {
        assert!(groups.contains(&format!("name=\"{field}\"")), "{field}");
    }

    let long_domain = format!("{}.org", "a".repeat(300));
    let long_address = "1".repeat(100);
    let long_name = "n".repeat(81);
    let bad: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("kind", "own"),
                ("domain", "my_server.example.org"),
                ("ipv4", "93.184.216.34"),
            ],
            "must not contain underscores",
        ),
        (
            &[
                ("kind", "own"),
                ("domain", "chat.example.org"),
                ("ipv4", "10.0.0.1"),
            ],
            "10.0.0.1 is a private network address",
        ),
        (
            &[
                ("kind", "own"),
                ("domain", "chat.example.org"),
                ("ipv4", ""),
            ],
            "Enter at least one public address",
        ),
        (
            &[
                ("kind", "own"),
                ("domain", &long_domain),
                ("ipv4", "93.184.216.34"),
            ],
            "at most",
        ),
        (
            &[
                ("kind", "own"),
                ("domain", "chat.example.org"),
                ("ipv4", &long_address),
            ],
            "Enter an IPv4 address like",
        ),
        (
            &[
                ("kind", "own"),
                ("domain", "chat.example.org"),
                ("ipv4", "93.184.216.34"),
                ("name", &long_name),
            ],
            "Use at most 80 characters.",
        ),
        (
            &[("domain", ""), ("ipv4", "93.184.216.34"), ("name", "")],
            "The relay was not created",
        ),
    ];
    for (fields, problem) in bad {
        let posted = alice.submit("/groups", fields).await;
        assert_eq!(posted.location.as_deref(), Some("/groups"), "{problem}");
        let text = visible_text(&alice.page("/groups").await);
        assert!(
            text.contains("The relay was not created"),
            "{problem}: {text}"
        );
        assert!(text.contains(problem), "expected {problem:?} in {text}");
    }
    // Without the form's token nothing happens either.
    let posted = alice
        .post(
            "/groups",
            &[
                ("kind", "own"),
                ("domain", "chat.example.org"),
                ("ipv4", "93.184.216.34"),
            ],
        )
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    assert_eq!(
        scalar::<i64>(&s.pool, "SELECT count(*) FROM groups").await,
        0
    );
    assert_eq!(
        scalar::<i64>(&s.pool, "SELECT count(*) FROM relays").await,
        0
    );

    // Good input: group and relay at once, on to the DNS step.
    let posted = alice
        .submit(
            "/groups",
            &[
                ("kind", "own"),
                ("domain", "Chat.Example.org"),
                ("ipv4", "93.184.216.34"),
            ],
        )
        .await;
    let location = posted.location.expect("a redirect");
    let group = location
        .strip_prefix("/groups/")
        .and_then(|rest| rest.strip_suffix("/setup/dns"))
        .unwrap_or_else(|| panic!("to the DNS step: {location}"))
        .to_string();
    let (name, domain, hardware, ipv4, config, completed): (
        String,
        String,
        String,
        String,
        String,
        i16,
    ) = sqlx::query_as(
        "SELECT g.name, r.mail_domain, r.hardware, host(r.ipv4), r.config_toml, r.completed_step \
         FROM groups g JOIN relays r ON r.group_id = g.id",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(name, "chat.example.org", "named after its relay");
    assert_eq!(domain, "chat.example.org");
    assert_eq!(hardware, "raspberry_pi");
    assert_eq!(ipv4, "93.184.216.34");
    assert!(config.contains("alice@example.org"), "contact: {config}");
    assert!(config.contains("93.184.216.34"), "{config}");
    assert_eq!(completed, 1, "the DNS step is still to do");
    // The later steps stay closed until DNS is done: no skipping ahead.
    let posted = alice
        .submit(&format!("/groups/{group}/setup/records"), &[])
        .await;
    assert_eq!(
        posted.location.as_deref(),
        Some(format!("/groups/{group}/setup/dns").as_str())
    );

    // Once DNS is chosen, settings and hardware are done: on to the records.
    let posted = alice
        .submit(
            &format!("/groups/{group}/dns/connect"),
            &[("method", "manual")],
        )
        .await;
    assert_eq!(
        posted.location.as_deref(),
        Some(format!("/groups/{group}/setup/records").as_str())
    );
    let completed: i16 = scalar(&s.pool, "SELECT completed_step FROM relays").await;
    assert_eq!(completed, 4);
    // They stay open for changes, showing what was saved.
    let settings = alice.page(&format!("/groups/{group}/setup/settings")).await;
    assert!(
        settings.contains("value=\"alice@example.org\""),
        "{settings}"
    );
    let hardware = alice.page(&format!("/groups/{group}/setup/hardware")).await;
    assert!(hardware.contains("value=\"93.184.216.34\""), "{hardware}");

    // A group made the old way (a name alone) still walks through steps 3 and 4.
    let old = alice.create_group("Family").await;
    alice
        .submit(
            &format!("/groups/{old}/setup/domain"),
            &[("kind", "own"), ("domain", "family.example.org")],
        )
        .await;
    let posted = alice
        .submit(
            &format!("/groups/{old}/dns/connect"),
            &[("method", "manual")],
        )
        .await;
    assert_eq!(
        posted.location.as_deref(),
        Some(format!("/groups/{old}/setup/settings").as_str())
    );

    // The name is taken now: a second relay cannot have it, and nothing is made.
    alice
        .submit(
            "/groups",
            &[
                ("kind", "own"),
                ("domain", "chat.example.org"),
                ("ipv4", "93.184.216.34"),
            ],
        )
        .await;
    let text = visible_text(&alice.page("/groups").await);
    assert!(text.contains("already used by another relay"), "{text}");
    assert_eq!(
        scalar::<i64>(&s.pool, "SELECT count(*) FROM groups").await,
        2
    );
}
