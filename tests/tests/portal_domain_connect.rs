//! Domain Connect's synchronous flow from the wizard (Domain Connect 2.3, `Domain Connect
//! Spec Draft.adoc` rev 67, sections "Discovery" and "Synchronous Flow"): the zone's
//! `_domainconnect` TXT record names a provider (the local one in `chatmail-dns-world`),
//! whose settings and template answer; the portal offers it in step 2, and in the records
//! step sends the browser to the provider's apply page with a signed link carrying the
//! relay's records. The provider sends the browser back with `state` (or `error`).
//!
//! Checked: the offer appears only where the zone supports it; the link carries the
//! relay's address and is signed with the portal's key (verified here with its public
//! key, as a provider would); the return is believed only with the state of this browser's
//! change, once; a refusal at the provider is explained.

use base64::Engine as _;
use chatmail_dns_providers::domain_connect::{PROVIDER_ID, SERVICE_ID};
use chatmail_dns_world::domain_connect_server::DomainConnectServer;
use chatmail_dns_world::{ServerSpec, World, RESOLVER_IP};
use chatmail_tests::{
    portal::PortalCommand,
    portal_client::{visible_text, PortalClient},
    postgres::{finished_dns_job, TestPostgres},
    shared_temp_dir,
};
use reqwest::{header, StatusCode};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::signature::Verifier;

const PASSWORD: &str = "correct horse battery";

/// example.org publishes `_domainconnect`; example.net does not.
fn zones(provider_url: &str) -> Vec<String> {
    vec![
        format!(
            "$ORIGIN example.org.\n$TTL 3600\n\
             @ IN SOA ns1.test-dns.example. hostmaster.example.org. 1 7200 3600 1209600 3600\n\
             @ IN NS ns1.test-dns.example.\n\
             _domainconnect IN TXT \"{provider_url}\"\n"
        ),
        "$ORIGIN example.net.\n$TTL 3600\n\
         @ IN SOA ns1.test-dns.example. hostmaster.example.net. 1 7200 3600 1209600 3600\n\
         @ IN NS ns1.test-dns.example.\n"
            .to_string(),
    ]
}

async fn location(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string()
}

/// Presses the records step's button; returns the provider link the portal sent to.
async fn press_apply(client: &PortalClient, group: &str) -> String {
    let token = client.csrf().await;
    let response = client
        .http
        .post(client.url(&format!("/groups/{group}/dns/domain-connect")))
        .header("origin", client.url(""))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    location(response).await
}

fn query_value(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn set_up_group(client: &PortalClient, name: &str, domain: &str) -> String {
    let group = client.create_group(name).await;
    client
        .submit(
            &format!("/groups/{group}/setup/domain"),
            &[("kind", "own"), ("domain", domain)],
        )
        .await;
    group
}

#[tokio::test]
async fn domain_connect_synchronous_apply() {
    let postgres = TestPostgres::start().await;
    let provider = DomainConnectServer::start(
        "test-dns.example",
        &["example.org"],
        (PROVIDER_ID, SERVICE_ID),
        None,
    )
    .await;
    let world = World::start(vec![ServerSpec::new(RESOLVER_IP, zones(&provider.url()))]).await;

    let dir = shared_temp_dir();
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let key_path = dir.path().join("domain-connect.pem");
    std::fs::write(
        &key_path,
        key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(postgres.url())
        .arg("--dns-resolver")
        .arg(world.resolver().to_string())
        .arg("--dns-nameserver-port")
        .arg(world.port.to_string())
        .arg("--domain-connect-key")
        .arg(key_path.display().to_string())
        .start()
        .await;
    let base = portal.base_url().trim_end_matches('/').to_string();
    let alice = PortalClient::new(&base);
    alice.sign_up("alice@example.org", PASSWORD).await;

    // No `_domainconnect` record: not offered.
    let other = set_up_group(&alice, "Neighbours", "example.net").await;
    let body = alice.page(&format!("/groups/{other}/setup/dns")).await;
    assert!(!body.contains("id=\"provider-domain-connect\""));

    // Offered for example.org, named as the provider names itself.
    let group = set_up_group(&alice, "Family", "example.org").await;
    let body = alice.page(&format!("/groups/{group}/setup/dns")).await;
    let text = visible_text(&body);
    assert!(body.contains("id=\"provider-domain-connect\""), "{text}");
    assert!(
        text.contains("Use Domain Connect with Test DNS Provider"),
        "{text}"
    );
    let chosen = alice
        .submit(
            &format!("/groups/{group}/dns/connect"),
            &[("method", "domain_connect")],
        )
        .await;
    assert!(
        chosen
            .location
            .as_deref()
            .unwrap_or("")
            .ends_with("/setup/settings"),
        "{chosen:?}"
    );
    alice.defaults_and_address(&group, "93.184.216.34").await;
    let body = alice.page(&format!("/groups/{group}/setup/records")).await;
    assert!(body.contains("id=\"dc-apply\""), "{}", visible_text(&body));

    // The link: the provider's apply page for our template, the relay's address, our
    // return address, and a signature over the query that the public key verifies.
    let link = press_apply(&alice, &group).await;
    assert!(
        link.starts_with(&format!(
            "{}/v2/domainTemplates/providers/{PROVIDER_ID}/services/{SERVICE_ID}/apply?",
            provider.url()
        )),
        "{link}"
    );
    assert_eq!(query_value(&link, "domain").as_deref(), Some("example.org"));
    assert_eq!(query_value(&link, "host").as_deref(), Some(""));
    assert_eq!(query_value(&link, "ip4").as_deref(), Some("93.184.216.34"));
    assert_eq!(
        query_value(&link, "redirect_uri"),
        Some(format!("{base}/dns/domain-connect/return"))
    );
    assert_eq!(query_value(&link, "key").as_deref(), Some("_dck1"));
    let query = link.split_once('?').unwrap().1;
    let signed = query.split_once("&key=").unwrap().0;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(query_value(&link, "sig").unwrap())
        .unwrap();
    let verifier = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key.to_public_key());
    verifier
        .verify(
            signed.as_bytes(),
            &rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap(),
        )
        .expect("the signature verifies with the published key");

    // A return with another state is not believed (and uses up the change under way).
    let (_, _, body) = alice.get("/dns/domain-connect/return?state=forged").await;
    assert!(
        visible_text(&body).contains("did not come from the change started here"),
        "{}",
        visible_text(&body)
    );

    // Refused at the provider: explained, nothing claimed.
    let link = press_apply(&alice, &group).await;
    let state = query_value(&link, "state").unwrap();
    let (_, _, body) = alice
        .get(&format!(
            "/dns/domain-connect/return?state={state}&error=access_denied"
        ))
        .await;
    assert!(
        visible_text(&body).contains("You did not confirm the records"),
        "{}",
        visible_text(&body)
    );

    // Confirmed at the provider: it applied our template with our variables and sent the
    // browser back; the return works once.
    let link = press_apply(&alice, &group).await;
    let back = location(alice.http.get(&link).send().await.unwrap()).await;
    let applied = provider.applied();
    let last = applied.last().expect("the provider received the apply");
    assert_eq!(last.provider_id, PROVIDER_ID);
    assert_eq!(last.get("ip4"), Some("93.184.216.34"));
    let back_path = back.strip_prefix(&base).expect("back to the portal");
    let (status, path, body) = alice.get(back_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(path.ends_with("/setup/records"), "{path}");
    assert!(
        visible_text(&body).contains("Your DNS provider has the records"),
        "{}",
        visible_text(&body)
    );
    let (_, _, body) = alice.get(back_path).await;
    assert!(visible_text(&body).contains("No Domain Connect change is under way"));

    // Another member's browser, or someone outside the group, cannot press the button.
    let bob = PortalClient::new(&base);
    bob.sign_up("bob@example.org", PASSWORD).await;
    let token = bob.csrf().await;
    let response = bob
        .http
        .post(bob.url(&format!("/groups/{group}/dns/domain-connect")))
        .header("origin", bob.url(""))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    let refused = response.status() == StatusCode::NOT_FOUND
        || response
            .headers()
            .get(header::LOCATION)
            .is_some_and(|l| !l.to_str().unwrap().starts_with(&provider.url()));
    assert!(refused, "a stranger is never sent to the provider");
    drop(portal);
}

/// The asynchronous flow ("Asynchronous Flow: OAuth"): the person allows the portal once
/// on the provider's consent page; the portal keeps the tokens sealed and applies the
/// template through the provider's API in its DNS jobs.
#[tokio::test]
async fn domain_connect_grant_then_apply_by_api() {
    const CLIENT: &str = "portal-client";
    const SECRET: &str = "portal-client-secret-0123456789";
    let postgres = TestPostgres::start().await;
    let pool = sqlx::PgPool::connect(&postgres.url()).await.unwrap();
    let provider = DomainConnectServer::start(
        "test-dns.example",
        &["example.org"],
        (PROVIDER_ID, SERVICE_ID),
        Some((CLIENT, SECRET)),
    )
    .await;
    let world = World::start(vec![ServerSpec::new(RESOLVER_IP, zones(&provider.url()))]).await;
    let dir = shared_temp_dir();
    let url = provider.url();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(postgres.url())
        .arg("--dns-resolver")
        .arg(world.resolver().to_string())
        .arg("--dns-nameserver-port")
        .arg(world.port.to_string())
        .arg("--domain-connect-async")
        .arg(format!("test-dns.example|{url}|{url}|{CLIENT}|{SECRET}"))
        .start()
        .await;
    let base = portal.base_url().trim_end_matches('/').to_string();
    let alice = PortalClient::new(&base);
    alice.sign_up("alice@example.org", PASSWORD).await;
    let group = set_up_group(&alice, "Family", "example.org").await;

    // Only the grant is offered: this portal has no signing key for the synchronous flow.
    let body = alice.page(&format!("/groups/{group}/setup/dns")).await;
    assert!(
        body.contains("id=\"grant-domain-connect\""),
        "{}",
        visible_text(&body)
    );
    assert!(!body.contains("id=\"choose-domain-connect\""));

    // Consent page, then "Deny": nothing connected, and the page says so.
    let consent = {
        let token = alice.csrf().await;
        let response = alice
            .http
            .post(alice.url(&format!("/groups/{group}/dns/connect")))
            .header("origin", alice.url(""))
            .form(&[("csrf", token.as_str()), ("method", "domain_connect_async")])
            .send()
            .await
            .unwrap();
        location(response).await
    };
    assert!(consent.starts_with(&format!(
        "{url}/v2/domainTemplates/providers/{PROVIDER_ID}?"
    )));
    assert_eq!(query_value(&consent, "client_id").as_deref(), Some(CLIENT));
    assert_eq!(query_value(&consent, "scope").as_deref(), Some(SERVICE_ID));
    let decide = |decision: &'static str, consent: String| {
        let http = alice.http.clone();
        async move {
            let fields: Vec<(String, String)> = [
                "client_id",
                "scope",
                "domain",
                "host",
                "redirect_uri",
                "state",
            ]
            .iter()
            .map(|k| (k.to_string(), query_value(&consent, k).unwrap_or_default()))
            .chain([("decision".to_string(), decision.to_string())])
            .collect();
            let action = consent.split_once('?').unwrap().0.to_string();
            location(http.post(action).form(&fields).send().await.unwrap()).await
        }
    };
    let back = decide("deny", consent).await;
    let (_, _, body) = alice.get(back.strip_prefix(&base).unwrap()).await;
    assert!(
        visible_text(&body).contains("access was not allowed"),
        "{}",
        visible_text(&body)
    );
    let connections: i64 = sqlx::query_scalar("SELECT count(*) FROM dns_connections")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(connections, 0);

    // Allow: the code is exchanged, the tokens kept sealed.
    let consent = {
        let token = alice.csrf().await;
        let response = alice
            .http
            .post(alice.url(&format!("/groups/{group}/dns/connect")))
            .header("origin", alice.url(""))
            .form(&[("csrf", token.as_str()), ("method", "domain_connect_async")])
            .send()
            .await
            .unwrap();
        location(response).await
    };
    let back = decide("allow", consent).await;
    let back_path = back.strip_prefix(&base).unwrap().to_string();
    let (_, path, body) = alice.get(&back_path).await;
    assert!(path.ends_with("/setup/settings"), "{path}");
    assert!(
        visible_text(&body)
            .contains("Connected: Test DNS Provider (Domain Connect), zone example.org"),
        "{}",
        visible_text(&body)
    );
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(row(c.*)::text, ';') FROM dns_connections c")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        !dump.contains("dc-at-") && !dump.contains("dc-rt-"),
        "tokens are sealed"
    );
    // The same answer again (a replayed code) connects nothing new.
    let (_, _, body) = alice.get(&back_path).await;
    assert!(visible_text(&body).contains("No Domain Connect connection is under way"));

    // Settings and address, then the records step lists what will be written.
    alice.defaults_and_address(&group, "93.184.216.34").await;
    let body = alice.page(&format!("/groups/{group}/setup/records")).await;
    assert!(
        body.contains("id=\"dns-creates\""),
        "{}",
        visible_text(&body)
    );

    // Records in the way at the provider: the job stops and names them.
    provider.set_conflicts(vec![serde_json::json!(
        {"type": "A", "host": "@", "data": "198.51.100.9"}
    )]);
    alice
        .submit(&format!("/groups/{group}/dns/apply"), &[])
        .await;
    let (state, _, error) = finished_dns_job(&pool).await;
    assert_eq!(state, "failed");
    let error = error.unwrap();
    assert!(
        error.contains("records in the way") && error.contains("198.51.100.9"),
        "{error}"
    );
    assert!(provider.applied().is_empty());

    // Without them, the template is applied through the API with the relay's address.
    provider.set_conflicts(Vec::new());
    alice
        .submit(&format!("/groups/{group}/dns/apply"), &[])
        .await;
    let (state, summary, error) = finished_dns_job(&pool).await;
    assert_eq!(state, "done", "{error:?}");
    assert!(summary.unwrap().contains("Domain Connect"));
    let applied = provider.applied();
    assert_eq!(applied.len(), 1);
    assert!(applied[0].api);
    assert_eq!(applied[0].get("domain"), Some("example.org"));
    assert_eq!(applied[0].get("ip4"), Some("93.184.216.34"));
    assert_eq!(applied[0].get("force"), Some("0"));

    // Removal is not something Domain Connect can do: said plainly.
    alice
        .submit(&format!("/groups/{group}/dns/remove"), &[])
        .await;
    let (state, _, error) = finished_dns_job(&pool).await;
    assert_eq!(state, "failed");
    assert!(error.unwrap().contains("cannot remove records"));
    drop(portal);
}
