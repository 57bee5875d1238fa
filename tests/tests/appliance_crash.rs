//! Crash safety of account creation: the appliance is killed with SIGKILL while it creates
//! an account; after a restart the account exists completely (its password works) or not at
//! all (the address is free again).
//!
//! Two deterministic cases use the appliance's test crash point
//! (`CHATMAIL_TEST_CRASH_POINT`), which stops creation right before or right after the
//! database commit and waits there to be killed; a third kills the appliance at an
//! arbitrary moment during a burst of creations.
//!
//! Needs Maddy: `appliance/scripts/install-test-deps.sh` builds it.

use std::{path::Path, time::Duration};

use chatmail_tests::appliance::Appliance;

const DOMAIN: &str = "chat.relay.test";
const LIMIT: Duration = Duration::from_secs(120);

fn marker(dir: &Path, address: &str) -> std::path::PathBuf {
    dir.join(format!("reached-{address}"))
}

/// Starts a first login that will stop at `point`, kills the appliance there, restarts it.
async fn kill_at(point: &str) -> (Appliance, chatmail_tests::appliance::RunningAppliance) {
    let crash_dir = tempfile::tempdir().unwrap();
    let address = format!("crashtest@{DOMAIN}");
    let mut setup = Appliance::new(DOMAIN).env(
        "CHATMAIL_TEST_CRASH_POINT",
        format!("{point}:{}", crash_dir.path().display()),
    );
    let mut app = setup.start().await;
    let login = {
        let address = address.clone();
        let app_port = app.ports.imaps;
        tokio::spawn(async move {
            chatmail_tests::tls_client::imap_login(
                ([127, 0, 0, 1], app_port).into(),
                &address,
                "123456789",
            )
            .await
        })
    };
    let reached = marker(crash_dir.path(), &address);
    app.wait_for("the crash point", LIMIT, || {
        let reached = reached.clone();
        async move { reached.exists().then_some(()) }
    })
    .await;
    app.kill_hard();
    login.abort();

    // Restart on the same /perm, without the crash point.
    let mut setup = setup_without_crash_point(setup);
    let app = setup.start().await;
    (setup, app)
}

fn setup_without_crash_point(setup: Appliance) -> Appliance {
    // Appliance::env only adds; an empty value turns the crash point off.
    setup.env("CHATMAIL_TEST_CRASH_POINT", "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_commit_leaves_no_account() {
    let (_setup, app) = kill_at("before-commit").await;
    assert_eq!(
        app.metric("chatmail_accounts").await,
        Some(0.0),
        "{}",
        app.log()
    );
    // The address is free: a first login with another password creates it now.
    let reply = app
        .imap_login(&format!("crashtest@{DOMAIN}"), "another-password")
        .await;
    assert!(reply.starts_with("a1 OK"), "{reply}\n{}", app.log());
    assert_eq!(
        app.metric("chatmail_account_creations_total").await,
        Some(1.0)
    );
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_commit_keeps_the_whole_account() {
    let (_setup, app) = kill_at("after-commit").await;
    assert_eq!(
        app.metric("chatmail_accounts").await,
        Some(1.0),
        "{}",
        app.log()
    );
    let address = format!("crashtest@{DOMAIN}");
    let reply = app.imap_login(&address, "123456789").await;
    assert!(reply.starts_with("a1 OK"), "{reply}\n{}", app.log());
    let reply = app.imap_login(&address, "another-password").await;
    assert!(reply.starts_with("a1 NO"), "{reply}");
    // It was an existing account, not a new one.
    assert_eq!(
        app.metric("chatmail_account_creations_total").await,
        Some(0.0)
    );
    // Every other address of the burst is either complete (the password works) or absent
    // (the login creates it now): a half-written account would refuse the login.
    for i in 0..20 {
        let address = format!("burst{i:04}@{DOMAIN}");
        let reply = app.imap_login(&address, "123456789").await;
        assert!(
            reply.starts_with("a1 OK"),
            "{address}: {reply}\n{}",
            app.log()
        );
    }
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_burst_of_creations() {
    let mut setup = Appliance::new(DOMAIN);
    let mut app = setup.start().await;
    let https = app.ports.https;
    // Twenty first logins and twenty /new requests at once; kill as soon as one is answered.
    let (answered_tx, mut answered_rx) = tokio::sync::mpsc::unbounded_channel();
    let app_ports = app.ports;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let answered = answered_tx.clone();
        tasks.push(tokio::spawn(async move {
            let address = format!("burst{i:04}@{DOMAIN}");
            let reply = chatmail_tests::tls_client::imap_login(
                ([127, 0, 0, 1], app_ports.imaps).into(),
                &address,
                "123456789",
            )
            .await;
            if reply.starts_with("a1 OK") {
                let _ = answered.send((address, "123456789".to_string()));
            }
        }));
        let answered = answered_tx.clone();
        tasks.push(tokio::spawn(async move {
            let response = chatmail_tests::tls_client::https(
                ([127, 0, 0, 1], https).into(),
                DOMAIN,
                &chatmail_tests::tls_client::Trust::Anything,
                "POST",
                "/new",
            )
            .await;
            if response.status == 200 {
                let json = response.json();
                let _ = answered.send((
                    json["email"].as_str().unwrap().to_string(),
                    json["password"].as_str().unwrap().to_string(),
                ));
            }
        }));
    }
    drop(answered_tx);
    let mut confirmed = Vec::new();
    confirmed.push(
        tokio::time::timeout(LIMIT, answered_rx.recv())
            .await
            .expect("a creation was answered")
            .expect("a creation succeeded"),
    );
    app.kill_hard();
    // The in-flight requests fail now; collect what had been confirmed before the kill.
    for task in &tasks {
        task.abort();
    }
    while let Ok(Some(extra)) =
        tokio::time::timeout(Duration::from_millis(200), answered_rx.recv()).await
    {
        confirmed.push(extra);
    }

    let app = setup.start().await;
    let stored = app.metric("chatmail_accounts").await.unwrap();
    assert!(
        stored >= confirmed.len() as f64,
        "{stored} accounts stored, {} confirmed",
        confirmed.len()
    );
    // Every account the relay confirmed is complete: its password works.
    for (address, password) in &confirmed {
        let reply = app.imap_login(address, password).await;
        assert!(
            reply.starts_with("a1 OK"),
            "{address} was confirmed before the kill but does not log in: {reply}\n{}",
            app.log()
        );
    }
    assert_eq!(
        app.metric("chatmail_account_creations_total").await,
        Some(0.0)
    );
    // Every other address of the burst is either complete (the password works) or absent
    // (the login creates it now): a half-written account would refuse the login.
    for i in 0..20 {
        let address = format!("burst{i:04}@{DOMAIN}");
        let reply = app.imap_login(&address, "123456789").await;
        assert!(
            reply.starts_with("a1 OK"),
            "{address}: {reply}\n{}",
            app.log()
        );
    }
    assert!(app.stop().success());
}
