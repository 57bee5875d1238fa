//! The whole journey in a real browser: sign up, create a group, walk every setup step to
//! the status page, once with JavaScript and once without. A screenshot of every step is
//! saved under `target/test-artifacts/`.

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
    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .start()
        .await;
    let browser = Browser::start(javascript).await;
    let hydrated = || async {
        if javascript == JavaScript::Enabled {
            browser.wait_hydrated().await;
        }
    };

    browser.open(&portal.url("/start")).await;
    hydrated().await;
    browser.click("#signup-button").await;
    browser.wait_for_heading("Create an account").await;
    hydrated().await;
    browser.fill("email", "alice@example.org").await;
    browser.fill("password", PASSWORD).await;
    browser.fill("password_confirm", PASSWORD).await;
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
    // This test has no DNS provider to connect: the records are entered by hand.
    browser
        .click("details.connect-choice:last-of-type summary")
        .await;
    browser.screenshot(&format!("{label}/03-step-dns")).await;
    browser
        .click("details.connect-choice:last-of-type button[type=submit]")
        .await;

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
    let plan = browser.text_of("#record-plan").await;
    assert!(plan.contains("chat.example.org"), "{plan}");
    assert!(plan.contains("93.184.216.34"), "{plan}");
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
    let zone_file = browser
        .client
        .find(Locator::Id("zone-file"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap();
    assert!(zone_file.unwrap_or_default().ends_with("/zone-file"));
    browser
        .screenshot(&format!("{label}/06-step-records"))
        .await;
    browser.click("#records-continue").await;

    browser.wait_for_heading("Step 6: Download").await;
    hydrated().await;
    browser
        .screenshot(&format!("{label}/07-step-download"))
        .await;
    browser.click("form button[type=submit]").await;

    browser.wait_for_heading("Step 7: Status").await;
    hydrated().await;
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
