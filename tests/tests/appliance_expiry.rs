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

/// An encrypted PGP/MIME message (one SEIPD packet of `len` bytes), which the outgoing
/// rules accept; `id` goes into its Message-ID.
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
    // A 1 MB quota: trimming starts above 786432 bytes and stops at 734003.
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
