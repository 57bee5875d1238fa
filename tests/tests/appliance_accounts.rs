//! Upstream chatmail's account rules, through the real login paths: IMAP LOGIN and SMTP
//! AUTH at Maddy, which asks the appliance's Dovecot auth socket (research/chatmail.md
//! §1.2). A refused login gets the same answer as upstream gives: the login fails, nothing
//! more is revealed. Also: the auth socket against hostile input, and concurrent first
//! logins creating the account exactly once.
//!
//! Needs Maddy: `appliance/scripts/install-test-deps.sh` builds it.

use std::time::Duration;

use chatmail_tests::appliance::{Appliance, RunningAppliance};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const DOMAIN: &str = "chat.relay.test";

fn addr(local: &str) -> String {
    format!("{local}@{DOMAIN}")
}

fn assert_ok(reply: &str, what: &str, app: &RunningAppliance) {
    assert!(
        reply.starts_with("a1 OK") || reply.starts_with("235"),
        "{what}: expected success, got {reply:?}\n{}",
        app.log()
    );
}

/// IMAP: a tagged NO. SMTP: upstream's Postfix answers 535; Maddy 0.8 answers every failed
/// AUTH PLAIN with `454 4.7.0 auth: invalid credentials` (its SASL layer reports all
/// failures that way), which clients treat as a failed login too.
fn assert_refused(reply: &str, what: &str) {
    assert!(
        reply.starts_with("a1 NO")
            || reply.starts_with("535")
            || reply.starts_with("454 4.7.0 auth: invalid credentials"),
        "{what}: expected the login to be refused, got {reply:?}"
    );
}

async fn refusals(app: &RunningAppliance, reason: &str) -> f64 {
    app.metric(&format!("chatmail_refusals_total{{reason=\"{reason}\"}}"))
        .await
        .unwrap_or_else(|| panic!("no refusal counter for {reason}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_login_rules_as_upstream() {
    let mut setup = Appliance::new(DOMAIN);
    let app = setup.start().await;

    // Accepted: 9 characters of [a-z0-9._-], password of 9 characters. Both IMAP and SMTP
    // create accounts (upstream: whichever logs in first).
    let reply = app.imap_login(&addr("ab.cd-e_f"), "123456789").await;
    assert_ok(&reply, "valid first IMAP login", &app);
    let reply = app.smtp_auth(&addr("smtpfirst"), "123456789").await;
    assert_ok(&reply, "valid first SMTP login", &app);
    assert_eq!(
        app.metric("chatmail_account_creations_total").await,
        Some(2.0)
    );

    // Logging in again works; a wrong password for an existing account does not, and does
    // not replace the account.
    assert_ok(
        &app.imap_login(&addr("ab.cd-e_f"), "123456789").await,
        "second login",
        &app,
    );
    assert_ok(
        &app.imap_login(&addr("smtpfirst"), "123456789").await,
        "IMAP login of the account SMTP created",
        &app,
    );
    assert_refused(
        &app.imap_login(&addr("ab.cd-e_f"), "987654321").await,
        "wrong password over IMAP",
    );
    assert_refused(
        &app.smtp_auth(&addr("ab.cd-e_f"), "987654321").await,
        "wrong password over SMTP",
    );
    assert_eq!(refusals(&app, "wrong_password").await, 2.0);
    assert_ok(
        &app.imap_login(&addr("ab.cd-e_f"), "123456789").await,
        "the right password still works",
        &app,
    );

    // Each creation rule, each refused as a failed login.
    let cases = [
        ("abcdefgh", "123456789", "username_too_short"),
        ("abcdefghij", "123456789", "username_too_long"),
        ("abcd+efgh", "123456789", "username_invalid_characters"),
        ("abcd!efgh", "123456789", "username_invalid_characters"),
        ("shortpass", "12345678", "password_too_short"),
        ("admintest", "admin", "password_too_short"),
    ];
    for (local, password, reason) in cases {
        let before = refusals(&app, reason).await;
        assert_refused(
            &app.imap_login(&addr(local), password).await,
            &format!("{local} / {password}"),
        );
        assert_eq!(
            refusals(&app, reason).await,
            before + 1.0,
            "{local} / {password} should be refused as {reason}"
        );
    }
    assert_refused(
        &app.smtp_auth(&addr("abcdefghij"), "123456789").await,
        "too long over SMTP",
    );
    // Another domain is not ours.
    assert_refused(
        &app.imap_login("abcdefghi@other.test", "123456789").await,
        "foreign domain",
    );
    assert_eq!(app.metric("chatmail_accounts").await, Some(2.0));

    // The operator's switch file: no new accounts while it exists, old ones still work.
    let nocreate = setup.perm_dir().join("chatmail/nocreate");
    std::fs::write(&nocreate, "").unwrap();
    assert_refused(
        &app.imap_login(&addr("whilesoff"), "123456789").await,
        "new account while the nocreate file exists",
    );
    assert_eq!(refusals(&app, "registration_closed").await, 1.0);
    assert_ok(
        &app.imap_login(&addr("ab.cd-e_f"), "123456789").await,
        "existing account while the nocreate file exists",
        &app,
    );
    let response = app.new_account().await;
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(response.json()["reason"]
        .as_str()
        .unwrap()
        .contains("new accounts"));
    std::fs::remove_file(&nocreate).unwrap();
    assert_ok(
        &app.imap_login(&addr("whilesoff"), "123456789").await,
        "new account once the nocreate file is gone",
        &app,
    );
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_and_low_resources_refuse_new_accounts() {
    // registration.open = false in the relay config.
    let mut setup = Appliance::new(DOMAIN).registration_open(false);
    let app = setup.start().await;
    assert_refused(
        &app.imap_login(&addr("abcdefghi"), "123456789").await,
        "registration closed",
    );
    let response = app.new_account().await;
    assert_eq!(response.status, 403, "{}", response.text());
    assert_eq!(refusals(&app, "registration_closed").await, 2.0);
    assert_eq!(app.metric("chatmail_accounts").await, Some(0.0));
    assert!(app.stop().success());

    // Less memory available than required (a threshold no machine meets).
    let mut setup = Appliance::new(DOMAIN).resources(1000.0, u64::MAX / 2048, 1);
    let app = setup.start().await;
    assert_refused(
        &app.imap_login(&addr("abcdefghi"), "123456789").await,
        "low memory",
    );
    let response = app.new_account().await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.json()["reason"].is_string());
    assert_eq!(refusals(&app, "low_memory").await, 2.0);
    assert!(app.stop().success());

    // Less free disk than required.
    let mut setup = Appliance::new(DOMAIN).resources(1000.0, 1, u64::MAX / 2048);
    let app = setup.start().await;
    assert_refused(
        &app.imap_login(&addr("abcdefghi"), "123456789").await,
        "low disk",
    );
    assert_eq!(refusals(&app, "low_disk").await, 1.0);
    assert!(app.stop().success());

    // A load average above the limit (a negative limit is always exceeded).
    let mut setup = Appliance::new(DOMAIN).resources(-1.0, 1, 1);
    let app = setup.start().await;
    assert_refused(
        &app.imap_login(&addr("abcdefghi"), "123456789").await,
        "high load",
    );
    assert_eq!(refusals(&app, "high_load").await, 1.0);
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_logins_create_the_account_once() {
    let mut setup = Appliance::new(DOMAIN);
    let app = std::sync::Arc::new(setup.start().await);
    // As upstream's test_concurrent_logins_same_account: ten at once, IMAP and SMTP mixed.
    let logins: Vec<_> = (0..10)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    app.imap_login(&addr("samename1"), "123456789").await
                } else {
                    app.smtp_auth(&addr("samename1"), "123456789").await
                }
            })
        })
        .collect();
    for login in logins {
        let reply = login.await.unwrap();
        assert_ok(&reply, "concurrent first login", &app);
    }
    assert_eq!(
        app.metric("chatmail_account_creations_total").await,
        Some(1.0)
    );
    assert_eq!(app.metric("chatmail_accounts").await, Some(1.0));
    assert_eq!(app.log().matches("Created address: ").count(), 1);
    let app = std::sync::Arc::into_inner(app).expect("no other users");
    assert!(app.stop().success());
}

/// Talks the Dovecot auth protocol directly, as Maddy does, and misbehaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_socket_survives_hostile_clients() {
    use base64::Engine as _;
    let mut setup = Appliance::new(DOMAIN);
    let app = setup.start().await;
    let socket = setup.run_dir().join("chatmail/auth.sock");

    async fn session(socket: &std::path::Path, lines: &[Vec<u8>]) -> Vec<String> {
        let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        for line in lines {
            // The server may close on a bad line; later writes may then fail.
            let _ = write.write_all(line).await;
        }
        let _ = write.shutdown().await;
        let mut out = Vec::new();
        let mut line = String::new();
        while tokio::time::timeout(Duration::from_secs(30), read.read_line(&mut line))
            .await
            .expect("the auth socket answers or closes")
            .unwrap_or(0)
            > 0
        {
            out.push(line.trim_end().to_string());
            line.clear();
        }
        out
    }
    let plain = |user: &str, pass: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
    };
    let hello = b"VERSION\t1\t2\nCPID\t1\n".to_vec();

    // The well-behaved exchange.
    let lines = session(
        &socket,
        &[
            hello.clone(),
            format!(
                "AUTH\t7\tPLAIN\tservice=imap\tresp={}\n",
                plain(&addr("socketusr"), "123456789")
            )
            .into_bytes(),
        ],
    )
    .await;
    assert_eq!(lines.first().map(String::as_str), Some("VERSION\t1\t2"));
    assert!(lines.contains(&"DONE".to_string()), "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        &format!("OK\t7\tuser={}", addr("socketusr"))
    );

    // Garbage, an oversized line, AUTH before VERSION, a bad PLAIN blob, broken base64,
    // an unknown mechanism: each gets FAIL or a closed connection, never a crash.
    let hostile: Vec<Vec<Vec<u8>>> = vec![
        vec![b"\xff\xfe\x00garbage\n".to_vec()],
        vec![vec![b'A'; 100_000]],
        vec![b"AUTH\t1\tPLAIN\tresp=AA==\n".to_vec()],
        vec![hello.clone(), b"AUTH\t1\tPLAIN\tresp=AGFiYw==\n".to_vec()],
        vec![hello.clone(), b"AUTH\t1\tPLAIN\tresp=%%%\n".to_vec()],
        vec![hello.clone(), b"AUTH\t2\tCRAM-MD5\n".to_vec()],
        vec![hello.clone(), b"CONT\t9\tAAAA\n".to_vec()],
    ];
    for lines in &hostile {
        let answer = session(&socket, lines).await;
        assert!(
            !answer.iter().any(|l| l.starts_with("OK")),
            "hostile input was accepted: {answer:?}"
        );
    }
    let answer = session(&socket, &hostile[3]).await;
    assert_eq!(answer.last().unwrap(), "FAIL\t1");
    let answer = session(&socket, &hostile[5]).await;
    assert_eq!(answer.last().unwrap(), "FAIL\t2");

    // Still serving, through Maddy too.
    let reply = app.imap_login(&addr("socketusr"), "123456789").await;
    assert_ok(&reply, "login after hostile clients", &app);
    assert!(app.stop().success());
}
