//! The relay's web server as clients, browsers, other mail servers and the portal see it:
//! pages, `/new` (including hostile requests), MTA-STS, autoconfig, the status document,
//! redirects, metrics, and a clean shutdown. Runs with the placeholder certificate (no CA).
//!
//! Needs Maddy: `appliance/scripts/install-test-deps.sh` builds it.

use chatmail_tests::{appliance::Appliance, tls_client::Trust};

const DOMAIN: &str = "chat.relay.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_new_well_known_redirects_and_metrics() {
    // Started as a service manager may leave it: 64 open files, fewer than the relay needs
    // for its own listeners and a handful of clients.
    let mut setup = Appliance::new(DOMAIN).soft_open_files(64);
    let app = setup.start().await;
    let any = Trust::Anything;

    // The relay raised its soft limit to the hard one, so connections don't run out of files.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", app.pid())).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files")
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect();
    assert_eq!(
        open_files[0], open_files[1],
        "soft and hard limit: {limits}"
    );

    // Pages from chatmail-shared, with the QR code for DCACCOUNT:https://<domain>/new.
    let home = app.https(DOMAIN, &any, "GET", "/").await;
    assert_eq!(home.status, 200);
    assert!(home
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let html = home.text();
    assert!(html.contains("<svg"), "no QR code");
    assert!(html.contains(&format!("DCACCOUNT:https://{DOMAIN}/new")));
    for page in ["/index.html", "/info.html", "/privacy.html"] {
        let response = app.https(DOMAIN, &any, "GET", page).await;
        assert_eq!(response.status, 200, "{page}");
        assert!(response.text().contains(DOMAIN), "{page}");
    }
    let robots = app.https(DOMAIN, &any, "GET", "/robots.txt").await;
    assert_eq!(robots.text(), "User-agent: *\nDisallow: /\n");
    assert_eq!(app.https(DOMAIN, &any, "GET", "/nope").await.status, 404);

    // /new: POST creates, GET (a browser) goes on to the dcaccount: link.
    let (email, password) = app.new_account_ok().await;
    assert!(email.ends_with(&format!("@{DOMAIN}")));
    assert!(password.len() >= 12);
    let reply = app.imap_login(&email, &password).await;
    assert!(reply.starts_with("a1 OK"), "{reply}");
    let get = app.https(DOMAIN, &any, "GET", "/new").await;
    assert_eq!(get.status, 301);
    assert_eq!(
        get.header("location"),
        Some(format!("dcaccount:https://{DOMAIN}/new").as_str())
    );
    let legacy = app
        .https(DOMAIN, &any, "POST", "/cgi-bin/newemail.py")
        .await;
    assert_eq!(legacy.status, 200);

    // Hostile /new requests: other methods, a large body, junk in the query.
    assert_eq!(app.https(DOMAIN, &any, "PUT", "/new").await.status, 405);
    assert_eq!(app.https(DOMAIN, &any, "DELETE", "/new").await.status, 405);
    let big = chatmail_tests::tls_client::https_with_body(
        ([127, 0, 0, 1], app.ports.https).into(),
        DOMAIN,
        &any,
        "POST",
        "/new",
        &vec![b'x'; 1 << 20],
    )
    .await;
    assert!(
        big.status == 200 || big.status == 413,
        "a large body must not break /new: {}",
        big.status
    );
    let junk = app
        .https(
            DOMAIN,
            &any,
            "POST",
            "/new?%ff%00=%3Cscript%3E&email=root@x&email=",
        )
        .await;
    assert_eq!(junk.status, 200);
    // Not even a valid request target: refused before any handler runs.
    let malformed = app.https(DOMAIN, &any, "POST", "/new?<script>").await;
    assert_eq!(malformed.status, 400);
    assert!(junk.json()["email"].as_str().unwrap().ends_with(DOMAIN));

    // MTA-STS on mta-sts.<domain>, and nothing else there.
    let policy = app
        .https(
            &format!("mta-sts.{DOMAIN}"),
            &any,
            "GET",
            "/.well-known/mta-sts.txt",
        )
        .await;
    assert_eq!(policy.status, 200);
    assert_eq!(
        policy.text(),
        format!("version: STSv1\nmode: enforce\nmx: {DOMAIN}\nmax_age: 2419200\n")
    );
    assert_eq!(
        app.https(&format!("mta-sts.{DOMAIN}"), &any, "GET", "/")
            .await
            .status,
        404
    );

    // Autoconfig.
    let xml = app
        .https(
            DOMAIN,
            &any,
            "GET",
            "/.well-known/autoconfig/mail/config-v1.1.xml",
        )
        .await;
    assert_eq!(xml.status, 200);
    assert!(xml
        .text()
        .contains(&format!("<emailProvider id=\"{DOMAIN}\">")));

    // www. and plain HTTP redirect to https://<domain>.
    let www = app
        .https(&format!("www.{DOMAIN}"), &any, "GET", "/info.html?a=b")
        .await;
    assert_eq!(www.status, 301);
    assert_eq!(
        www.header("location"),
        Some(format!("https://{DOMAIN}:{}/info.html?a=b", app.ports.https).as_str())
    );
    let http = app.http(DOMAIN, "GET", "/privacy.html").await;
    assert_eq!(http.status, 301);
    assert_eq!(
        http.header("location"),
        Some(format!("https://{DOMAIN}:{}/privacy.html", app.ports.https).as_str())
    );
    // Port 80 answers on IPv6 too: ACME validates there when the relay has an AAAA record.
    let v6 = (std::net::Ipv6Addr::LOCALHOST, app.ports.http).into();
    let http_v6 = chatmail_tests::tls_client::http(v6, DOMAIN, "GET", "/privacy.html").await;
    assert_eq!(http_v6.status, 301, "port 80 on ::1");
    let http_www = app.http(&format!("www.{DOMAIN}"), "GET", "/").await;
    assert_eq!(
        http_www.header("location"),
        Some(format!("https://{DOMAIN}:{}/", app.ports.https).as_str())
    );
    let unknown_challenge = app
        .http(DOMAIN, "GET", "/.well-known/acme-challenge/unknown")
        .await;
    assert_eq!(unknown_challenge.status, 404);

    // The status document: DKIM made on first boot, no ACME account yet, placeholder.
    let status = app.status().await;
    assert_eq!(status["format"], 1);
    assert_eq!(status["mail_domain"], DOMAIN);
    assert!(status["dkim"]["txt"]
        .as_str()
        .unwrap()
        .starts_with("v=DKIM1;k=rsa;p=MII"));
    assert!(status["acme"]["account_url"].is_null());
    assert_eq!(status["health"]["certificate_placeholder"], true);
    assert_eq!(status["health"]["status"], "degraded");
    assert_eq!(status["health"]["maddy_running"], true);
    assert_eq!(status["health"]["accounts_store_ok"], true);
    assert!(
        std::fs::read_to_string(setup.perm_dir().join("chatmail/dkim/opendkim.key"))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(setup
        .perm_dir()
        .join("chatmail/acme/account-key.pem")
        .exists());

    // Metrics (OpenMetrics text). /new ignores a request body, so the large one may have
    // created an account too.
    let accounts = 3 + u32::from(big.status == 200);
    let metrics = app.metrics().await;
    for name in [
        &format!("chatmail_accounts {accounts}") as &str,
        &format!("chatmail_account_creations_total {accounts}"),
        "chatmail_logins_total{result=\"ok\"} 1",
        "chatmail_refusals_total{reason=\"password_too_short\"} 0",
        "chatmail_certificate_placeholder 1",
        "chatmail_maddy_restarts_total 0",
    ] {
        assert!(metrics.contains(name), "missing {name:?} in\n{metrics}");
    }
    assert!(metrics.ends_with("# EOF\n"));

    // The DKIM key survives a restart; SIGTERM is a clean shutdown (exit 0) that also
    // ends Maddy, so the next start finds every port free.
    let dkim = status["dkim"]["txt"].clone();
    assert!(app.stop().success());
    let app = setup.start().await;
    assert_eq!(app.status().await["dkim"]["txt"], dkim);
    assert_eq!(
        app.metric("chatmail_accounts").await,
        Some(f64::from(accounts))
    );
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maddy_is_restarted_when_it_dies() {
    let mut setup = Appliance::new(DOMAIN);
    let app = setup.start().await;
    let maddy_pid = app
        .wait_for(
            "maddy's pid in the log",
            std::time::Duration::from_secs(60),
            || async {
                app.log().lines().find_map(|l| {
                    let rest = l.split("pid=").nth(1)?;
                    let pid: i32 = rest.split_whitespace().next()?.parse().ok()?;
                    l.contains("maddy started").then_some(pid)
                })
            },
        )
        .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(maddy_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    app.wait_for(
        "a restarted maddy",
        std::time::Duration::from_secs(120),
        || async {
            (app.metric("chatmail_maddy_restarts_total").await == Some(1.0)
                && app.status().await["health"]["maddy_running"] == true)
                .then_some(())
        },
    )
    .await;
    // Maddy's listener comes back and logins work again.
    let reply = app
        .wait_for(
            "IMAP after the restart",
            std::time::Duration::from_secs(120),
            || async {
                let reply = app
                    .imap_login(&format!("afterboom@{DOMAIN}"), "123456789")
                    .await;
                reply.starts_with("a1 OK").then_some(reply)
            },
        )
        .await;
    assert!(reply.starts_with("a1 OK"));
    // The rest of the appliance never went down.
    assert_eq!(
        app.https(DOMAIN, &Trust::Anything, "GET", "/").await.status,
        200
    );
    assert!(app.stop().success());
}
