//! The whole journey in a real browser: sign up, create a group, walk every setup step to
//! the status page with a real PowerDNS as the group's DNS provider, once with JavaScript
//! and once without. A screenshot of every step is saved under `target/test-artifacts/`.

use std::time::Duration;

use chatmail_dns_world::pdns::PowerDns;
use chatmail_tests::{
    browser::{Browser, JavaScript},
    portal::PortalCommand,
    shared_temp_dir,
    workspace::require_bundle,
};
use fantoccini::Locator;

const PASSWORD: &str = "correct horse battery";

async fn walk(javascript: JavaScript) {
    let label = match javascript {
        JavaScript::Enabled => "wizard-js",
        JavaScript::Disabled => "wizard-nojs",
    };
    let mut pdns = PowerDns::start().await;
    pdns.create_zone("example.org");
    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .arg("--dns-resolver")
        .arg(pdns.dns_addr().to_string())
        .arg("--dns-nameserver-port")
        .arg(pdns.dns_addr().port().to_string())
        .start()
        .await;
    let browser = Browser::start(javascript).await;
    let hydrated = || async {
        if javascript == JavaScript::Enabled {
            browser.wait_hydrated().await;
        }
    };

    // The start page carries the sign-up form itself, with one password field.
    browser.open(&portal.url("/start")).await;
    hydrated().await;
    browser.fill("email", "alice@example.org").await;
    browser.fill("password", PASSWORD).await;
    browser.screenshot(&format!("{label}/01-sign-up")).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_heading("Your groups").await;
    hydrated().await;

    browser.fill("name", "Family").await;
    browser
        .click("form[action='/groups'] button[type=submit]")
        .await;
    browser.wait_for_heading("Step 1: Name").await;
    hydrated().await;
    // Step 1: the name, typed as people type it.
    browser.fill("domain", "Chat.Example.ORG").await;
    browser.screenshot(&format!("{label}/02-step-name")).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_heading("Step 2: DNS provider").await;
    hydrated().await;
    let detected = browser.text_of("#nameservers").await;
    assert!(detected.contains("ns1.example.org"), "{detected}");
    // The server said it is PowerDNS: its form is open already; connect with the API key.
    let provider = browser.text_of("#dns-provider").await;
    assert!(provider.contains("PowerDNS"), "{provider}");
    browser.fill("url", &pdns.api_url()).await;
    browser.fill("api_key", pdns.api_key()).await;
    browser.screenshot(&format!("{label}/03-step-dns")).await;
    browser
        .click("details.connect-choice:first-of-type button[type=submit]")
        .await;
    browser.wait_for_heading("Step 3: Relay settings").await;
    let connected = browser.text_of("#flash").await;
    assert!(connected.contains("Connected: PowerDNS at"), "{connected}");
    browser.wait_for_heading("Step 3: Relay settings").await;
    hydrated().await;
    // A mistake first: the form comes back with the problem next to the field.
    browser.fill("contact_mail", "not an address").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_heading("Step 3: Relay settings").await;
    hydrated().await;
    let error = browser.text_of("#field-contact_mail-error").await;
    assert!(
        error.contains("does not look like an e-mail address"),
        "{error}"
    );
    browser.fill("contact_mail", "admin@example.org").await;
    browser
        .fill("postal_address", "Example Street 1, Example Town")
        .await;
    browser
        .screenshot(&format!("{label}/04-step-settings"))
        .await;
    browser.click("button[type=submit]").await;

    browser.wait_for_heading("Step 4: Hardware").await;
    hydrated().await;
    browser.click("#hardware-pi").await;
    browser.fill("ipv4", "93.184.216.34").await;
    browser
        .screenshot(&format!("{label}/05-step-hardware"))
        .await;
    browser.click("button[type=submit]").await;

    browser.wait_for_heading("Step 5: DNS records").await;
    hydrated().await;
    let records_page = browser.path().await;
    // The dry run lists what will be added; nothing is written before the click.
    let preview = browser.text_of("#dns-creates").await;
    assert!(preview.contains("chat.example.org"), "{preview}");
    assert!(preview.contains("93.184.216.34"), "{preview}");
    browser
        .screenshot(&format!("{label}/06-step-records"))
        .await;
    browser.click("#dns-apply").await;
    if javascript == JavaScript::Enabled {
        // The page refreshes itself until the job is done, then goes on by itself; the
        // records page, opened again, stays (and shows the job's result).
        let went_on = browser
            .client
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::XPath("//h1[contains(., 'Step 6: Download')]"))
            .await;
        if went_on.is_err() {
            let shot = browser
                .screenshot(&format!("{label}/06b-step-records-stayed"))
                .await;
            panic!("the page did not go on by itself: {}", shot.display());
        }
        browser.open(&portal.url(&records_page)).await;
    }
    // Without JavaScript, the page reloads itself until the job is done.
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#dns-job[data-state='done']"))
        .await
        .expect("the records were written");
    hydrated().await;
    browser
        .screenshot(&format!("{label}/06b-step-records-written"))
        .await;
    // Copy buttons come with JavaScript; without it the values are still there to select.
    let copy_buttons = browser
        .client
        .find_all(Locator::Css(".copy-button"))
        .await
        .unwrap()
        .len();
    match javascript {
        JavaScript::Enabled => assert!(
            copy_buttons > 5,
            "copy buttons after hydration: {copy_buttons}"
        ),
        JavaScript::Disabled => assert_eq!(copy_buttons, 0),
    }
    browser.click("#records-continue").await;

    browser.wait_for_heading("Step 6: Download").await;
    hydrated().await;
    browser
        .screenshot(&format!("{label}/07-step-download"))
        .await;
    browser.click("form button[type=submit]").await;

    browser.wait_for_heading("Step 7: Status").await;
    hydrated().await;
    // The checker asks the real server: the records the portal wrote are in place.
    let status = browser.text_of("#record-status").await;
    assert!(status.contains("In place"), "{status}");
    let progress = browser.text_of(".progress").await;
    for step in [
        "1. Name",
        "2. DNS provider",
        "3. Relay settings",
        "4. Hardware",
        "5. DNS records",
        "6. Download",
    ] {
        assert!(progress.contains(step), "{progress}");
    }
    browser.screenshot(&format!("{label}/08-step-status")).await;

    // Resumable: the group page knows how far the setup went.
    browser.open(&portal.url("/groups")).await;
    hydrated().await;
    let list = browser.text_of("#group-list").await;
    assert!(list.contains("chat.example.org"), "{list}");
    assert!(list.contains("Step 6 of 7 done"), "{list}");
    browser.close().await;
}

#[tokio::test]
async fn the_setup_wizard_with_javascript() {
    require_bundle();
    walk(JavaScript::Enabled).await;
}

#[tokio::test]
async fn the_setup_wizard_without_javascript() {
    walk(JavaScript::Disabled).await;
}
