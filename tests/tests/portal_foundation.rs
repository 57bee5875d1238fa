//! The portal as a person meets it: started with no configuration, its landing page in a
//! real browser with and without JavaScript, and every start-up mistake explained in one line.

use std::time::Duration;

use chatmail_tests::{
    browser::{Browser, JavaScript},
    portal::PortalCommand,
    postgres::TestPostgres,
    shared_temp_dir,
    workspace::require_bundle,
};
use fantoccini::Locator;
use serde_json::Value;

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn started_like_a_user_it_creates_its_database_and_reuses_it_after_a_restart() {
    let dir = shared_temp_dir();
    let data_dir = dir.path().join("data");
    let command = PortalCommand::new(&data_dir, dir.path());

    let portal = command.start().await;
    let landing = reqwest::get(portal.url("/")).await.unwrap();
    assert_eq!(landing.status(), 200);
    let html = landing.text().await.unwrap();
    assert!(html.contains("Start setting up"), "landing page: {html}");
    let (status, health) = get_json(&portal.url("/healthz")).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["database"]["reachable"], true);
    let installed_at = health["database"]["installed_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        data_dir.join("postgres/pgdata/PG_VERSION").exists(),
        "the private cluster lives in the data directory"
    );
    let log = portal.log();
    assert!(
        log.contains("creating the private PostgreSQL cluster"),
        "{log}"
    );

    let status = portal.stop().await;
    assert!(
        status.success(),
        "SIGTERM is a clean shutdown, got {status}"
    );
    assert!(
        !data_dir.join("postgres/pgdata/postmaster.pid").exists(),
        "the private PostgreSQL stopped with the portal"
    );

    let portal = command.start().await;
    let (_, health) = get_json(&portal.url("/healthz")).await;
    assert_eq!(
        health["database"]["installed_at"].as_str(),
        Some(installed_at.as_str()),
        "the second start found the first start's data"
    );
    assert!(!portal
        .log()
        .contains("creating the private PostgreSQL cluster"));
    assert!(portal.stop().await.success());
}

#[tokio::test]
async fn with_database_url_it_uses_that_server_and_starts_none_of_its_own() {
    let postgres = TestPostgres::start().await;
    let dir = shared_temp_dir();
    let data_dir = dir.path().join("data");
    let portal = PortalCommand::new(&data_dir, dir.path())
        .database_url(postgres.url())
        .start()
        .await;
    let (status, health) = get_json(&portal.url("/healthz")).await;
    assert_eq!(status, 200);
    assert_eq!(health["database"]["reachable"], true);
    let migrations = std::fs::read_dir(chatmail_tests::workspace::root().join("migrations"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "sql")
        })
        .count();
    assert_eq!(
        health["database"]["schema_version"], migrations as i64,
        "every migration applied"
    );
    assert!(
        !data_dir.join("postgres").exists(),
        "no private cluster was made"
    );
    assert!(portal.stop().await.success());
    postgres.stop().await;
}

#[tokio::test]
async fn unknown_addresses_get_a_styled_404_page() {
    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .start()
        .await;

    for path in [
        "/no/such/page",
        "/start/extra",
        "/%3Cscript%3Ealert(1)%3C/script%3E",
    ] {
        let response = reqwest::get(portal.url(path)).await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("Page not found"), "{path}: {html}");
        assert!(
            html.contains("rel=\"stylesheet\""),
            "the 404 page is styled"
        );
        assert!(
            !html.contains("<script>alert"),
            "the path is never echoed raw"
        );
    }
    let missing_asset = reqwest::get(portal.url("/pkg/nothing.0123456789abcdef.js"))
        .await
        .unwrap();
    assert_eq!(missing_asset.status(), 404);
    let traversal = reqwest::get(portal.url("/pkg/..%2f..%2fCargo.toml"))
        .await
        .unwrap();
    assert_eq!(traversal.status(), 404);
    drop(portal);
}

#[tokio::test]
async fn assets_carry_cache_headers() {
    require_bundle();
    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .start()
        .await;
    let html = reqwest::get(portal.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let links: Vec<&str> = html
        .split('"')
        .filter(|part| part.starts_with("/pkg/"))
        .collect();
    let link = |prefix: &str, suffix: &str| -> String {
        links
            .iter()
            .find(|l| l.starts_with(prefix) && l.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {prefix}…{suffix} in {html}"))
            .to_string()
    };
    for (path, content_type) in [
        (link("/pkg/portal.", ".css"), "text/css"),
        (link("/pkg/portal_bg.", ".wasm"), "application/wasm"),
        (link("/pkg/portal.", ".js"), "javascript"),
    ] {
        let response = reqwest::get(portal.url(&path)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            header("cache-control"),
            "public, max-age=31536000, immutable",
            "{path}"
        );
        assert!(
            header("content-type").contains(content_type),
            "{path}: {}",
            header("content-type")
        );
    }
    let health = reqwest::get(portal.url("/healthz")).await.unwrap();
    assert_eq!(health.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn in_a_browser_the_landing_page_hydrates_and_switches_devices_without_reloading() {
    require_bundle();
    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .start()
        .await;
    let browser = Browser::start(JavaScript::Enabled).await;

    browser.open(&portal.url("/")).await;
    assert_eq!(browser.client.title().await.unwrap(), "Chatmail Relay Kit");
    browser.wait_hydrated().await;
    assert!(browser
        .text_of("#device-details h3")
        .await
        .contains("Raspberry Pi"));

    // A marker on the window survives client-side navigation but not a page load.
    browser
        .client
        .execute("window.__sameDocument = true;", vec![])
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css("[data-device='vm']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//div[@id='device-details']/h3[contains(., 'Virtual machine')]",
        ))
        .await
        .expect("the device details switched to the virtual machine");
    let same_document = browser
        .client
        .execute("return window.__sameDocument === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same_document,
        Value::Bool(true),
        "switching did not reload the page"
    );
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(
        url.query(),
        Some("device=vm"),
        "the choice is kept in the address"
    );
    let pressed = browser
        .client
        .find(Locator::Css("[data-device='vm']"))
        .await
        .unwrap()
        .attr("aria-pressed")
        .await
        .unwrap();
    assert_eq!(pressed.as_deref(), Some("true"));

    browser
        .client
        .find(Locator::Id("start-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_url(&url.join("/start").unwrap())
        .await
        .expect("the start button leads to /start");
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//h1[contains(., 'Before you begin')]"))
        .await
        .unwrap();
    browser.close().await;
}

#[tokio::test]
async fn without_javascript_the_landing_page_still_works() {
    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .start()
        .await;
    let browser = Browser::start(JavaScript::Disabled).await;

    browser.open(&portal.url("/")).await;
    assert!(browser.text_of("h1").await.contains("Your own chat server"));
    let hydrated = browser
        .client
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("data-hydrated")
        .await
        .unwrap();
    assert_eq!(hydrated, None, "no script ran");

    browser
        .client
        .find(Locator::Css("[data-device='vm']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//div[@id='device-details']/h3[contains(., 'Virtual machine')]",
        ))
        .await
        .expect("the link loaded the virtual machine details from the server");

    browser
        .client
        .find(Locator::Id("start-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//h1[contains(., 'Before you begin')]"))
        .await
        .expect("the start button works without JavaScript");
    browser.close().await;
}

/// The one line a failed start prints: no panic, no backtrace, nothing else on "error:".
fn single_error_line(output: &str) -> String {
    assert!(
        !output.contains("panicked"),
        "a panic instead of an error:\n{output}"
    );
    assert!(!output.to_lowercase().contains("backtrace"), "{output}");
    let errors: Vec<&str> = output.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line expected:\n{output}"
    );
    errors[0].to_string()
}

#[test]
fn an_unreachable_database_url_is_one_clear_error() {
    let dir = shared_temp_dir();
    let port = chatmail_tests::free_port(); // nothing listens there
    let (status, output) = PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(format!(
            "postgres://portal:secret-password@127.0.0.1:{port}/portal"
        ))
        .run_to_failure(Duration::from_secs(60));
    assert!(!status.success());
    assert_eq!(status.code(), Some(1));
    let line = single_error_line(&output);
    assert!(line.contains("cannot reach the database"), "{line}");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.to_lowercase().contains("refused"), "{line}");
    assert!(
        !output.contains("secret-password"),
        "the password is never printed:\n{output}"
    );
}

#[test]
fn a_malformed_database_url_is_one_clear_error() {
    let dir = shared_temp_dir();
    for url in ["not a url", "mysql://x@y/z", "postgres://[::1"] {
        let (status, output) = PortalCommand::new(&dir.path().join("data"), dir.path())
            .database_url(url)
            .run_to_failure(Duration::from_secs(30));
        assert_eq!(status.code(), Some(1), "{url}");
        let line = single_error_line(&output);
        assert!(
            line.contains("DATABASE_URL is not a valid PostgreSQL URL"),
            "{url}: {line}"
        );
    }
}

#[test]
fn a_data_directory_that_is_not_writable_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = shared_temp_dir();
    let locked = dir.path().join("read-only");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();

    let mut command = PortalCommand::new(&locked, dir.path());
    // Root may write anywhere; run as an ordinary user so the permissions mean something.
    if nix::unistd::geteuid().is_root() {
        let nobody = nix::unistd::User::from_name("nobody")
            .unwrap()
            .expect("user nobody");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        command = command.run_as(nobody.uid.as_raw(), nobody.gid.as_raw());
    }
    let (status, output) = command.run_to_failure(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1));
    let line = single_error_line(&output);
    assert!(line.contains("is not writable"), "{line}");
    assert!(line.contains(&locked.display().to_string()), "{line}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let (status, output) =
        PortalCommand::new(&file, dir.path()).run_to_failure(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1));
    assert!(single_error_line(&output).contains("is not a directory"));
}
