//! Signing in with the DNS provider, the whole OAuth 2.0 dance in headless Chromium: the
//! portal as the client, `chatmail_dns_world::oauth_server` playing Cloudflare's
//! authorization server (authorization code with PKCE S256 and state, RFC 6749 §4.1 and
//! RFC 7636; refresh, RFC 6749 §6; revocation, RFC 7009), and the Cloudflare API mock
//! (<https://developers.cloudflare.com/api/resources/dns/subresources/records/>) accepting
//! exactly the live access tokens.
//!
//! The person clicks "Sign in with Cloudflare", sees the provider's consent page, clicks
//! Allow and lands back in the wizard, connected; the tokens are sealed in the database.
//! A tampered state, a code bound to another PKCE verifier and a replayed code are all
//! refused. An expired access token is refreshed before use; a withdrawn grant makes the
//! wizard ask to reconnect, and reconnecting works; disconnecting revokes the grant.

use std::time::Duration;

use base64::Engine as _;
use chatmail_dns_providers::{credentials::Credentials, Keyring};
use chatmail_dns_world::cloud_mocks::{cloudflare::Cloudflare, MockServer};
use chatmail_dns_world::oauth_server::{Client, OAuthServer};
use chatmail_dns_world::{ServerSpec, World, RESOLVER_IP};
use chatmail_tests::{
    browser::{Browser, JavaScript},
    portal::PortalCommand,
    postgres::TestPostgres,
    shared_temp_dir,
    workspace::require_bundle,
};
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery";

fn cloudflare_delegation() -> String {
    "$ORIGIN example.org.\n$TTL 3600\n\
     @ 3600 IN SOA ada.ns.cloudflare.com. dns.cloudflare.com. 1 7200 3600 1209600 3600\n\
     @ 3600 IN NS ada.ns.cloudflare.com.\n\
     @ 3600 IN NS bob.ns.cloudflare.com.\n"
        .to_string()
}

/// The page's visible text.
async fn text(browser: &Browser) -> String {
    browser.text_of("body").await
}

/// The tokens the portal keeps for the group, opened with the portal's key.
async fn stored_tokens(pool: &PgPool, keyring: &Keyring) -> (String, String, String) {
    let (id, sealed): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, sealed_credentials FROM dns_connections WHERE kind = 'oauth'")
            .fetch_one(pool)
            .await
            .unwrap();
    match &keyring.open(&sealed, &id.to_string()).unwrap() {
        Credentials::OAuth(t) => (
            sealed,
            t.access_token.clone(),
            t.refresh_token.clone().unwrap(),
        ),
        other => panic!("not OAuth tokens: {other:?}"),
    }
}

async fn connections(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM dns_connections")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The authorize URL the browser is at, with one query parameter replaced.
fn with_param(url: &reqwest::Url, name: &str, value: &str) -> String {
    let mut out = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out.to_string()
}

fn param(url: &reqwest::Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

async fn current(browser: &Browser) -> reqwest::Url {
    let url = browser.client.current_url().await.unwrap();
    reqwest::Url::parse(url.as_str()).unwrap()
}

async fn wait_for_path(browser: &Browser, prefix: &str) {
    for _ in 0..200 {
        if browser.path().await.starts_with(prefix) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never reached {prefix}; at {}", browser.path().await);
}

async fn job_finished(pool: &PgPool) -> (String, Option<String>) {
    for _ in 0..600 {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT state, last_error FROM dns_jobs ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(row) = row.filter(|(state, _)| state == "done" || state == "failed") {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the DNS job did not finish within a minute");
}

#[tokio::test]
async fn sign_in_with_the_provider_refresh_revoke_reconnect() {
    require_bundle();
    let postgres = TestPostgres::start().await;
    let pool = PgPool::connect(&postgres.url()).await.unwrap();
    let world = World::start(vec![ServerSpec::new(
        RESOLVER_IP,
        vec![cloudflare_delegation()],
    )])
    .await;
    let dir = shared_temp_dir();
    let command = PortalCommand::new(&dir.path().join("data"), dir.path());
    let base = format!("http://127.0.0.1:{}", command.port);
    let oauth = OAuthServer::start(vec![Client {
        id: "portal-client".into(),
        secret: Some("portal-secret".into()),
        redirect_uri: format!("{base}/dns/oauth/callback"),
    }])
    .await;
    let api = MockServer::start(Box::new(Cloudflare), 3).await;
    api.add_zone("example.org");
    api.accept_tokens(oauth.token_checker());
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let keys = format!("k1:{key}");
    let keyring = Keyring::parse(&keys).unwrap();
    let endpoints = format!(
        "cloudflare.api={},cloudflare.authorize={},cloudflare.token={},cloudflare.revoke={}",
        api.url(),
        oauth.authorize_url(),
        oauth.token_url(),
        oauth.revoke_url()
    );
    let portal = command
        .database_url(postgres.url())
        .arg("--dns-resolver")
        .arg(world.resolver().to_string())
        .arg("--dns-nameserver-port")
        .arg(world.port.to_string())
        .arg("--secret-keys")
        .arg(keys.clone())
        .arg("--oauth-cloudflare-client-id")
        .arg("portal-client")
        .arg("--oauth-cloudflare-client-secret")
        .arg("portal-secret")
        .arg("--dns-endpoint")
        .arg(endpoints)
        .start()
        .await;
    assert_eq!(portal.base_url(), base);

    let browser = Browser::start(JavaScript::Disabled).await;
    // Access tokens live a minute, inside the portal's refresh margin: every use after
    // the sign-in refreshes them first.
    oauth.set_access_lifetime(Duration::from_secs(60));
    // Signing up right on the start page.
    browser.open(&portal.url("/start")).await;
    browser.fill("email", "alice@example.org").await;
    browser.fill("password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_heading("Your groups").await;
    browser.fill("name", "Family").await;
    browser
        .click("form[action='/groups'] button[type=submit]")
        .await;
    browser.wait_for_heading("Step 1: Name").await;
    browser.fill("domain", "example.org").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_heading("Step 2: DNS provider").await;
    let dns_step = browser.path().await;
    let group = dns_step.split('/').nth(2).unwrap().to_string();

    // The detected provider first, with its sign-in button.
    let page = text(&browser).await;
    assert!(page.contains("Your DNS provider is Cloudflare"), "{page}");
    assert!(page.contains("Sign in with Cloudflare"), "{page}");
    browser.screenshot("oauth/01-dns-step").await;

    // The dance: the provider's consent page, Allow, back in the wizard.
    browser.click("#sign-in-cloudflare").await;
    wait_for_path(&browser, "/authorize").await;
    let authorize = current(&browser).await;
    assert_eq!(param(&authorize, "code_challenge_method"), "S256");
    assert!(!param(&authorize, "state").is_empty());
    browser.screenshot("oauth/02-consent").await;
    browser.click("#allow").await;
    browser.wait_for_heading("Step 3: Relay settings").await;
    let flash = browser.text_of("#flash").await;
    assert!(
        flash.contains("Connected: Cloudflare (signed in), zone example.org"),
        "{flash}"
    );
    // Sealed at rest: no column holds a token in clear.
    let (sealed, access, refresh) = stored_tokens(&pool, &keyring).await;
    assert!(sealed.starts_with("v1:"));
    assert!(oauth.is_live(&access));
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(row(c.*)::text, ';') FROM dns_connections c")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        !dump.contains(&access) && !dump.contains(&refresh),
        "{dump}"
    );

    // A tampered state is refused, and the connection stays as it was.
    browser.open(&portal.url(&dns_step)).await;
    browser.click("#sign-in-cloudflare").await;
    wait_for_path(&browser, "/authorize").await;
    let url = current(&browser).await;
    browser
        .open(&with_param(&url, "state", "tampered-state"))
        .await;
    browser.click("#allow").await;
    browser.wait_for_heading("Step 2: DNS provider").await;
    let flash = browser.text_of("#flash").await;
    assert!(flash.contains("does not belong to this sign-in"), "{flash}");
    assert_eq!(stored_tokens(&pool, &keyring).await.0, sealed);

    // A code bound to another PKCE challenge (an injected code) is refused by the token
    // endpoint: start one sign-in, keep its challenge, start another, and authorize the
    // second sign-in's state with the first one's challenge.
    browser.click("#sign-in-cloudflare").await;
    wait_for_path(&browser, "/authorize").await;
    let first = current(&browser).await;
    browser.open(&portal.url(&dns_step)).await;
    browser.click("#sign-in-cloudflare").await;
    wait_for_path(&browser, "/authorize").await;
    let second = current(&browser).await;
    assert_ne!(
        param(&first, "code_challenge"),
        param(&second, "code_challenge")
    );
    browser
        .open(&with_param(
            &second,
            "code_challenge",
            &param(&first, "code_challenge"),
        ))
        .await;
    browser.click("#allow").await;
    browser.wait_for_heading("Step 2: DNS provider").await;
    let flash = browser.text_of("#flash").await;
    assert!(flash.contains("refused to complete the sign-in"), "{flash}");
    assert_eq!(stored_tokens(&pool, &keyring).await.0, sealed);

    // Settings and hardware, then the dry run: the access token expires within the
    // refresh margin, so it is refreshed (and stored again, sealed) before use.
    let before = oauth.log().iter().filter(|l| l.contains("refresh")).count();
    browser
        .open(&portal.url(&format!("/groups/{group}/setup/settings")))
        .await;
    browser.fill("contact_mail", "admin@example.org").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_heading("Step 4: Hardware").await;
    browser.click("#hardware-pi").await;
    browser.fill("ipv4", "93.184.216.34").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_heading("Step 5: DNS records").await;
    let refreshes = |log: Vec<String>| log.iter().filter(|l| l.contains("refresh")).count();
    assert!(refreshes(oauth.log()) > before, "{:?}", oauth.log());
    let (sealed2, access2, _) = stored_tokens(&pool, &keyring).await;
    assert_ne!(sealed2, sealed, "the refreshed tokens are stored");
    assert_ne!(access2, access);
    assert!(oauth.is_live(&access2));
    let page = text(&browser).await;
    assert!(page.contains("What the portal will change"), "{page}");
    browser.click("#dns-apply").await;
    let (state, error) = job_finished(&pool).await;
    assert_eq!(state, "done", "{error:?}");
    assert!(
        api.records("example.org")
            .iter()
            .any(|(n, t, _, v)| n == "example.org" && t == "A" && v == "93.184.216.34"),
        "{:#?}",
        api.records("example.org")
    );

    // The grant is withdrawn at the provider: the wizard asks to reconnect.
    let (_, access3, refresh3) = stored_tokens(&pool, &keyring).await;
    reqwest::Client::new()
        .post(oauth.revoke_url())
        .basic_auth("portal-client", Some("portal-secret"))
        .form(&[
            ("token", refresh3.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert!(!oauth.is_live(&access3));
    browser
        .open(&portal.url(&format!("/groups/{group}/setup/records")))
        .await;
    let page = text(&browser).await;
    assert!(page.contains("Connect Cloudflare again"), "{page}");
    browser.open(&portal.url(&dns_step)).await;
    let prompt = browser.text_of("#dns-reconnect").await;
    assert!(prompt.contains("stopped working"), "{prompt}");
    browser.screenshot("oauth/03-reconnect").await;
    browser.click("#dns-reconnect-button").await;
    wait_for_path(&browser, "/authorize").await;
    browser.click("#allow").await;
    // Settings and hardware are saved already: back to the records, where the person was.
    browser.wait_for_heading("Step 5: DNS records").await;
    browser.open(&portal.url(&dns_step)).await;
    let page = text(&browser).await;
    assert!(!page.contains("stopped working"), "{page}");
    assert!(page.contains("Connected: Cloudflare (signed in)"), "{page}");

    // A replayed code: the consent answered outside the browser, the code used once by
    // the browser (connects), then again: refused by the portal (no sign-in under way)
    // and, within a new sign-in, by the provider (a used code).
    browser.click("#sign-in-cloudflare").await;
    wait_for_path(&browser, "/authorize").await;
    let url = current(&browser).await;
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("decision".into(), "allow".into()));
    let answer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(oauth.authorize_url())
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = answer.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.starts_with(&format!("{base}/dns/oauth/callback?")));
    browser.open(&callback).await;
    browser.wait_for_heading("Step 5: DNS records").await;
    browser.open(&callback).await;
    let flash = browser.text_of("#flash").await;
    assert!(flash.contains("no sign-in under way"), "{flash}");
    browser.open(&portal.url(&dns_step)).await;
    browser.click("#sign-in-cloudflare").await;
    wait_for_path(&browser, "/authorize").await;
    let fresh_state = param(&current(&browser).await, "state");
    let callback = reqwest::Url::parse(&callback).unwrap();
    browser
        .open(&with_param(&callback, "state", &fresh_state))
        .await;
    browser.wait_for_heading("Step 2: DNS provider").await;
    let flash = browser.text_of("#flash").await;
    assert!(flash.contains("refused to complete the sign-in"), "{flash}");

    // Disconnecting revokes the grant at the provider and forgets the tokens.
    let (_, access4, _) = stored_tokens(&pool, &keyring).await;
    let revocations = oauth.log().iter().filter(|l| *l == "revoke").count();
    browser.open(&portal.url(&dns_step)).await;
    browser.click("#dns-disconnect").await;
    browser.wait_for_heading("Step 2: DNS provider").await;
    let flash = browser.text_of("#flash").await;
    assert!(flash.contains("Disconnected"), "{flash}");
    assert!(oauth.log().iter().filter(|l| *l == "revoke").count() > revocations);
    assert!(!oauth.is_live(&access4));
    assert_eq!(connections(&pool).await, 0);
    browser.close().await;
    drop(portal);
}
