//! Push notifications through the running relay: a message delivered by Maddy makes the
//! appliance POST the recipient's device token to the notification service, here a local
//! HTTP server given by `--push-url`; the service's 410 removes the token for good.
//!
//! The tokens are put in with the appliance's own `push-token add` command before it starts
//! (the store the IMAP front's `SETMETADATA` writes; `appliance_imap_front.rs` sets them
//! that way). Needs Maddy (`appliance/scripts/install-test-deps.sh`).

use chatmail_tests::push_service::notification_service;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chatmail_tests::appliance::{self, Appliance, RunningAppliance};
use chatmail_tests::mail_client::{imap_inbox, Outcome, Smtp};

const DOMAIN: &str = "chat.example";
const ALICE: &str = "alice@chat.example";
const BOB: &str = "bob@chat.example";
const PASSWORD: &str = "push-test-password";
/// What Delta Chat sets: `openpgp:` and base64 (shortened).
const BOB_TOKEN: &str = "openpgp:wcFMA+/9Zz0Bob/Token==";
const ALICE_TOKEN: &str = "openpgp:wcFMA+/9Zz0Alice/Token==";

/// Guards against hangs only.
const LIMIT: Duration = Duration::from_secs(60);

/// `chatmail-appliance push-token <args…> --perm-dir <perm>`: its standard output.
fn push_token(setup: &Appliance, args: &[&str]) -> String {
    let output = Command::new(appliance::binary())
        .arg("push-token")
        .args(args)
        .arg("--perm-dir")
        .arg(setup.perm_dir())
        .env_remove("CHATMAIL_PERM_DIR")
        .output()
        .expect("run chatmail-appliance push-token");
    assert!(
        output.status.success(),
        "push-token {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An encrypted message from Alice (the outgoing rules accept it).
fn message() -> Vec<u8> {
    let path =
        chatmail_tests::workspace::root().join("tests/corpus/messages/synthetic-pkesk-seipd.eml");
    std::fs::read(path).unwrap()
}

async fn send_from_alice(app: &RunningAppliance, rcpts: &[&str]) {
    let addr: SocketAddr = ([127, 0, 0, 1], app.ports.submissions).into();
    let mut smtp = Smtp::submission(addr, ALICE, PASSWORD).await.unwrap();
    let outcome = smtp.send(ALICE, rcpts, &message()).await.unwrap();
    assert!(
        matches!(outcome, Outcome::Accepted(_)),
        "{outcome:?}\n{}",
        app.log()
    );
    smtp.quit().await;
}

async fn inbox_len(app: &RunningAppliance, user: &str) -> usize {
    let addr: SocketAddr = ([127, 0, 0, 1], app.ports.imaps).into();
    imap_inbox(addr, user, PASSWORD).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_posts_the_recipients_token_and_410_removes_it() {
    let status = Arc::new(AtomicU16::new(410));
    let (service, mut requests) = notification_service(status.clone()).await;
    let mut setup = Appliance::new(DOMAIN)
        .config("[limits]\nusername_min_length = 3\n")
        .arg(format!("--push-url=http://{service}/notify"));
    push_token(&setup, &["add", BOB, BOB_TOKEN]);
    push_token(&setup, &["add", ALICE, ALICE_TOKEN]);
    let app = setup.start().await;
    // Both accounts exist from their first login.
    for user in [ALICE, BOB] {
        let reply = app.imap_login(user, PASSWORD).await;
        assert!(reply.contains("OK"), "{user}: {reply}");
    }

    // To Bob, and Alice's own copy: only Bob's token is posted, once, as the whole body.
    send_from_alice(&app, &[BOB, ALICE]).await;
    let request = tokio::time::timeout(LIMIT, requests.recv())
        .await
        .unwrap_or_else(|_| panic!("no notification; appliance log:\n{}", app.log()))
        .unwrap();
    assert!(
        request.head.starts_with("POST /notify HTTP/1.1\r\n"),
        "{}",
        request.head
    );
    assert_eq!(request.body, BOB_TOKEN);
    // The service said 410: the token is gone.
    app.wait_for("the 410 counted", LIMIT, || async {
        (app.metric("chatmail_push_notifications_total{result=\"gone\"}")
            .await
            == Some(1.0))
        .then_some(())
    })
    .await;

    // The next message is delivered, and nobody is notified.
    status.store(200, Ordering::SeqCst);
    send_from_alice(&app, &[BOB]).await;
    app.wait_for("the second message in Bob's inbox", LIMIT, || async {
        (inbox_len(&app, BOB).await == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(requests.try_recv().is_err(), "posted again");
    assert_eq!(inbox_len(&app, ALICE).await, 1);
    assert_eq!(
        app.metric("chatmail_push_notifications_total{result=\"sent\"}")
            .await,
        Some(0.0)
    );

    // The store says the same once the relay is stopped.
    let exit = app.stop();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(push_token(&setup, &["list", BOB]), "");
    assert_eq!(
        push_token(&setup, &["list", ALICE]),
        format!("{ALICE_TOKEN}\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_notification_is_sent_after_a_restart() {
    let status = Arc::new(AtomicU16::new(500));
    let (service, mut requests) = notification_service(status.clone()).await;
    let mut setup = Appliance::new(DOMAIN)
        .config("[limits]\nusername_min_length = 3\n")
        .arg(format!("--push-url=http://{service}/notify"));
    push_token(&setup, &["add", BOB, BOB_TOKEN]);
    let app = setup.start().await;
    for user in [ALICE, BOB] {
        let reply = app.imap_login(user, PASSWORD).await;
        assert!(reply.contains("OK"), "{user}: {reply}");
    }
    send_from_alice(&app, &[BOB]).await;
    let first = tokio::time::timeout(LIMIT, requests.recv())
        .await
        .unwrap_or_else(|_| panic!("no notification; appliance log:\n{}", app.log()))
        .unwrap();
    assert_eq!(first.body, BOB_TOKEN);
    // The first try failed (500); the retry would come 8 s later. Stop before it.
    app.wait_for("the retry scheduled", LIMIT, || async {
        (app.metric("chatmail_push_notifications_total{result=\"retried\"}")
            .await
            == Some(1.0))
        .then_some(())
    })
    .await;
    let exit = app.stop();
    assert!(exit.success(), "{exit:?}");

    // The service is back; the restarted relay sends the pending item at once.
    status.store(200, Ordering::SeqCst);
    let app = setup.start().await;
    let again = tokio::time::timeout(Duration::from_secs(5), requests.recv())
        .await
        .unwrap_or_else(|_| panic!("not re-sent after the restart; log:\n{}", app.log()))
        .unwrap();
    assert_eq!(again.body, BOB_TOKEN);
    app.wait_for("the notification counted as sent", LIMIT, || async {
        (app.metric("chatmail_push_notifications_total{result=\"sent\"}")
            .await
            == Some(1.0))
        .then_some(())
    })
    .await;
    assert!(app.log().contains("re-queued pending push notifications"));
}
