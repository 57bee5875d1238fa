//! Expiry on a populated relay with a controlled clock: real Maddy, messages delivered
//! through submission, then `chatmail-appliance expire --now <days later>` against the
//! stopped relay's state. A dry run lists exactly what the real run then removes (so it
//! removed nothing itself); afterwards IMAP shows the rest intact, the inactive account's
//! mailbox and push tokens are gone, and a second run weeks later takes the old mail.
//!
//! The account store keeps last logins by day only, so the inactive account is made by
//! moving its recorded login 100 days back while the relay is stopped.
//!
//! Needs Maddy (`appliance/scripts/install-test-deps.sh`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use chatmail_tests::appliance::{self, Appliance, RunningAppliance};
use chatmail_tests::mail_client::{imap_inbox, imap_session, Outcome, Smtp};
use redb::ReadableTable as _;

const DOMAIN: &str = "chat.example";
const ALICE: &str = "alice@chat.example";
const BOB: &str = "bob@chat.example";
const CAROL: &str = "carol@chat.example";
const SLEEPY: &str = "sleepy@chat.example";
const PASSWORD: &str = "expiry-test-password";
const DAY: u64 = 86_400;

/// An encrypted PGP/MIME message (one SEIPD packet of `len` bytes, so about 4/3 `len`
/// in base64), which the outgoing rules accept; `id` goes into its Message-ID.
fn encrypted(to: &str, id: &str, len: usize) -> Vec<u8> {
    let mut packet = vec![0xC0 | 18, 0xFF];
    packet.extend_from_slice(&(len as u32).to_be_bytes());
    packet.push(1);
    packet.extend((1..len).map(|i| (i * 7) as u8));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&packet);
    let armored: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: <{ALICE}>\r\nTo: <{to}>\r\nSubject: [...]\r\n\
         Message-ID: <{id}@chat.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\
         --B\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n\
         {}\r\n=AAAA\r\n-----END PGP MESSAGE-----\r\n\r\n--B--\r\n",
        armored.join("\r\n")
    )
    .into_bytes()
}

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

async fn send(app: &RunningAppliance, to: &str, id: &str, len: usize) {
    let mut smtp = Smtp::submission(addr(app.ports.submissions), ALICE, PASSWORD)
        .await
        .unwrap();
    let outcome = smtp
        .send(ALICE, &[to], &encrypted(to, id, len))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::Accepted(_)),
        "{id}: {outcome:?}\n{}",
        app.log()
    );
    smtp.quit().await;
}

/// The Message-IDs in `user`'s inbox, in stored order.
async fn inbox_ids(app: &RunningAppliance, user: &str) -> Vec<String> {
    imap_inbox(addr(app.ports.imaps), user, PASSWORD)
        .await
        .unwrap()
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(m);
            let start = text.find("Message-ID: <").expect("Message-ID") + 13;
            text[start..].split('@').next().unwrap().to_string()
        })
        .collect()
}

/// `chatmail-appliance <args…>` against the stopped relay's directories.
fn appliance_command(setup: &Appliance, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(appliance::binary())
        .args(args)
        .arg("--perm-dir")
        .arg(setup.perm_dir())
        .env_remove("CHATMAIL_PERM_DIR")
        .env_remove("CHATMAIL_RUN_DIR")
        .env_remove("CHATMAIL_CONFIG")
        .env_remove("CHATMAIL_MADDY_BIN")
        .output()
        .expect("run chatmail-appliance");
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// `expire` at `now`; the listing lines (without the summary) and the summary.
fn expire(setup: &Appliance, now: u64, dry_run: bool) -> (Vec<String>, String) {
    let now = now.to_string();
    let config = setup.scratch().join("relay.toml");
    let run_dir = setup.run_dir();
    let maddy = chatmail_tests::maddy::binary();
    let mut args = vec![
        "expire",
        "--now",
        &now,
        "--config",
        config.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--maddy",
        maddy.to_str().unwrap(),
    ];
    if dry_run {
        args.push("--dry-run");
    }
    let (ok, out, err) = appliance_command(setup, &args);
    assert!(ok, "expire {args:?} failed:\n{out}\n{err}");
    let mut lines: Vec<String> = out.lines().map(String::from).collect();
    let summary = lines.pop().expect("a summary line");
    (lines, summary)
}

/// The listing reduced to what the test knows: (kind, account, folder or "", uid, rule).
fn items(lines: &[String]) -> Vec<(String, String, String, String, String)> {
    lines
        .iter()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            match f[0] {
                "account" => (
                    "account".into(),
                    f[1].into(),
                    String::new(),
                    String::new(),
                    f[3].into(),
                ),
                "message" => (
                    "message".into(),
                    f[1].into(),
                    f[2].into(),
                    f[3].into(),
                    f[6].into(),
                ),
                other => panic!("unexpected listing line {other:?}"),
            }
        })
        .collect()
}

fn item(
    kind: &str,
    account: &str,
    folder: &str,
    uid: &str,
    rule: &str,
) -> (String, String, String, String, String) {
    (
        kind.into(),
        account.into(),
        folder.into(),
        uid.into(),
        rule.into(),
    )
}

/// Moves `address`'s recorded login and creation `days` back in the account store.
fn age_account(perm: &Path, address: &str, days: u64) {
    let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("accounts");
    let db = redb::Database::create(perm.join("chatmail/accounts.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut accounts = txn.open_table(table).unwrap();
        let text = accounts.get(address).unwrap().unwrap().value().to_string();
        let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
        for field in ["last_login_day", "created"] {
            let value = record[field].as_u64().unwrap();
            record[field] = (value - days * DAY).into();
        }
        accounts
            .insert(address, record.to_string().as_str())
            .unwrap();
    }
    txn.commit().unwrap();
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_removes_exactly_the_right_messages_and_accounts() {
    // A 1 MB quota: trimming starts above 786432 bytes and stops at 734003. A "250000"
    // message takes about 343000 bytes: Bob's three stay below, Carol's four are above.
    let mut setup = Appliance::new(DOMAIN)
        .config("[limits]\nusername_min_length = 3\nmax_mailbox_size_mb = 1\nmax_message_size_bytes = 500000\n");
    let app = setup.start().await;
    for user in [ALICE, BOB, CAROL, SLEEPY] {
        let reply = app.imap_login(user, PASSWORD).await;
        assert!(reply.contains("OK"), "{user}: {reply}");
    }
    // Bob: a small message and two large ones, the first of which he reads.
    send(&app, BOB, "small", 2_000).await;
    send(&app, BOB, "large-seen", 250_000).await;
    send(&app, BOB, "large-unseen", 250_000).await;
    // Carol: four large unread ones, about 1 MB together.
    for i in 1..=4 {
        send(&app, CAROL, &format!("quota-{i}"), 250_000).await;
    }
    send(&app, SLEEPY, "sleepy", 2_000).await;
    let replies = imap_session(
        addr(app.ports.imaps),
        BOB,
        PASSWORD,
        &["SELECT INBOX", "UID STORE 2 +FLAGS (\\Seen)"],
    )
    .await
    .unwrap();
    assert!(replies.iter().all(|r| r.contains(" OK")), "{replies:?}");
    assert_eq!(
        inbox_ids(&app, CAROL).await,
        ["quota-1", "quota-2", "quota-3", "quota-4"]
    );
    let exit = app.stop();
    assert!(exit.success(), "{exit:?}");

    // Sleepy last logged in 100 days ago, and has a push token.
    age_account(&setup.perm_dir(), SLEEPY, 100);
    for (user, token) in [(SLEEPY, "openpgp:sleepy"), (BOB, "openpgp:bob")] {
        let (ok, _, err) = appliance_command(&setup, &["push-token", "add", user, token]);
        assert!(ok, "{err}");
    }

    // Eight days later: the seen large message, Carol's two oldest and Sleepy go.
    let later = unix_now() + 8 * DAY;
    let started = std::time::Instant::now();
    let (dry, dry_summary) = expire(&setup, later, true);
    eprintln!("dry run took {:?}", started.elapsed());
    assert_eq!(
        items(&dry),
        vec![
            item("account", SLEEPY, "", "", "inactive"),
            item("message", BOB, "INBOX", "2", "large"),
            item("message", CAROL, "INBOX", "1", "quota"),
            item("message", CAROL, "INBOX", "2", "quota"),
        ],
        "{dry_summary}"
    );
    assert!(dry_summary.starts_with("would remove 1 accounts and 3 messages"));
    // The real run finds the same: the dry run changed nothing.
    let (real, summary) = expire(&setup, later, false);
    assert_eq!(real, dry);
    assert!(summary.starts_with("removed 1 accounts and 3 messages"));
    // Nothing is left to do at the same time.
    let (again, _) = expire(&setup, later, true);
    assert_eq!(again, Vec::<String>::new());
    let (_, tokens, _) = appliance_command(&setup, &["push-token", "list", SLEEPY]);
    assert_eq!(tokens, "");
    let (_, tokens, _) = appliance_command(&setup, &["push-token", "list", BOB]);
    assert_eq!(tokens, "openpgp:bob\n");

    // IMAP shows the rest intact; Sleepy's next login makes a new, empty account.
    let app = setup.start().await;
    assert_eq!(inbox_ids(&app, BOB).await, ["small", "large-unseen"]);
    assert_eq!(inbox_ids(&app, CAROL).await, ["quota-3", "quota-4"]);
    let creations = app.metric("chatmail_account_creations_total").await;
    assert_eq!(inbox_ids(&app, SLEEPY).await, Vec::<String>::new());
    assert_eq!(
        app.metric("chatmail_account_creations_total").await,
        creations.map(|n| n + 1.0)
    );
    let exit = app.stop();
    assert!(exit.success(), "{exit:?}");

    // Three weeks later every remaining message is older than 20 days.
    let (old, _) = expire(&setup, unix_now() + 21 * DAY, false);
    assert_eq!(
        items(&old),
        vec![
            item("message", BOB, "INBOX", "1", "old"),
            item("message", BOB, "INBOX", "3", "old"),
            item("message", CAROL, "INBOX", "3", "old"),
            item("message", CAROL, "INBOX", "4", "old"),
        ]
    );
    let app = setup.start().await;
    assert_eq!(inbox_ids(&app, BOB).await, Vec::<String>::new());
    assert_eq!(inbox_ids(&app, CAROL).await, Vec::<String>::new());
}

/// The daily run inside the running relay, beside a running Maddy: with its clock eight
/// days ahead and runs every two seconds, it removes the same messages as the command
/// would, and counts them in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_relay_expires_by_itself() {
    let mut setup = Appliance::new(DOMAIN)
        .config("[limits]\nusername_min_length = 3\nmax_mailbox_size_mb = 1\nmax_message_size_bytes = 500000\n")
        .arg("--expiry-first-secs=1")
        .arg("--expiry-interval-secs=2")
        .arg("--expiry-jitter-secs=0")
        .arg(format!("--expiry-clock-offset-secs={}", 8 * DAY));
    let app = setup.start().await;
    for user in [ALICE, BOB, CAROL] {
        let reply = app.imap_login(user, PASSWORD).await;
        assert!(reply.contains("OK"), "{user}: {reply}");
    }
    // Carol's client has her inbox open all along, as Delta Chat does.
    let mut carol_client = OpenSession::select_inbox(&app, CAROL).await;
    send(&app, BOB, "small", 2_000).await;
    send(&app, BOB, "large-seen", 250_000).await;
    send(&app, BOB, "large-unseen", 250_000).await;
    for i in 1..=4 {
        send(&app, CAROL, &format!("quota-{i}"), 250_000).await;
    }
    let replies = imap_session(
        addr(app.ports.imaps),
        BOB,
        PASSWORD,
        &["SELECT INBOX", "UID STORE 2 +FLAGS (\\Seen)"],
    )
    .await
    .unwrap();
    assert!(replies.iter().all(|r| r.contains(" OK")), "{replies:?}");

    let limit = std::time::Duration::from_secs(60);
    app.wait_for("the expiry's removals counted", limit, || async {
        let large = app
            .metric("chatmail_expiry_messages_removed_total{rule=\"large\"}")
            .await;
        let quota = app
            .metric("chatmail_expiry_messages_removed_total{rule=\"quota\"}")
            .await;
        (large == Some(1.0) && quota == Some(2.0)).then_some(())
    })
    .await;
    assert_eq!(
        app.metric("chatmail_expiry_messages_removed_total{rule=\"old\"}")
            .await,
        Some(0.0)
    );
    assert_eq!(
        app.metric("chatmail_expiry_accounts_removed_total").await,
        Some(0.0)
    );
    let freed = app
        .metric("chatmail_expiry_freed_bytes_total")
        .await
        .unwrap();
    // Three messages of about 343000 bytes each (the 250000-byte packet in base64).
    assert!((1_000_000.0..1_050_000.0).contains(&freed), "{freed}");
    let last_run = app
        .metric("chatmail_expiry_last_run_timestamp_seconds")
        .await
        .unwrap();
    assert!(last_run as u64 >= unix_now() + 8 * DAY - 60, "{last_run}");
    assert_eq!(inbox_ids(&app, BOB).await, ["small", "large-unseen"]);
    assert_eq!(inbox_ids(&app, CAROL).await, ["quota-3", "quota-4"]);

    // The open session was not told (Maddy 0.8 without cgo has no update pipe), but it
    // keeps working: fetching by UID returns what is left, and nothing fails.
    for command in ["NOOP", "UID FETCH 1:* (UID)", "FETCH 1:* (UID)", "NOOP"] {
        let (tagged, untagged) = carol_client.command(command).await;
        eprintln!("{command}: {untagged:?} {tagged}");
        assert!(tagged.contains(" OK"), "{command}: {tagged}");
        if command.starts_with("UID FETCH") {
            let uids: Vec<&str> = untagged
                .iter()
                .filter_map(|l| l.strip_suffix(")")?.rsplit_once("UID "))
                .map(|(_, uid)| uid)
                .collect();
            assert_eq!(uids, ["3", "4"], "{untagged:?}");
        }
    }
}

/// An IMAP session kept open across other steps of a test.
struct OpenSession {
    stream: tokio::io::BufReader<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    tag: u32,
}

impl OpenSession {
    async fn select_inbox(app: &RunningAppliance, user: &str) -> OpenSession {
        let stream = chatmail_tests::tls_client::connect_tls(
            addr(app.ports.imaps),
            "localhost",
            &chatmail_tests::tls_client::Trust::Anything,
            &[],
        )
        .await
        .unwrap();
        let mut session = OpenSession {
            stream: tokio::io::BufReader::new(stream),
            tag: 0,
        };
        session.line().await; // greeting
        let (tagged, _) = session.command(&format!("LOGIN {user} {PASSWORD}")).await;
        assert!(tagged.contains(" OK"), "{tagged}");
        let (tagged, _) = session.command("SELECT INBOX").await;
        assert!(tagged.contains(" OK"), "{tagged}");
        session
    }

    async fn line(&mut self) -> String {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        line.trim_end().to_string()
    }

    /// The tagged reply and the untagged lines (no literals expected).
    async fn command(&mut self, command: &str) -> (String, Vec<String>) {
        use tokio::io::AsyncWriteExt;
        self.tag += 1;
        let tag = format!("s{}", self.tag);
        let stream = self.stream.get_mut();
        stream
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await
            .unwrap();
        stream.flush().await.unwrap();
        let mut untagged = Vec::new();
        loop {
            let line = self.line().await;
            assert!(!line.is_empty(), "connection closed during {command}");
            if line.starts_with(&format!("{tag} ")) {
                return (line, untagged);
            }
            untagged.push(line);
        }
    }
}
