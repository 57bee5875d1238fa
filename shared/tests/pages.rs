//! The relay's web pages, autoconfig XML and MTA-STS policy, checked against the facts in
//! research/chatmail.md §3 and §5 and research/deltachat-client.md §1.

mod common;

use chatmail_shared::autoconfig::{autoconfig_xml, AUTOCONFIG_PATH};
use chatmail_shared::config::{FreeText, RelayConfig};
use chatmail_shared::mta_sts::{policy_text, POLICY_PATH};
use chatmail_shared::pages::{self, Page};
use chatmail_shared::{qr, MailDomain};
use common::html::{check_balanced, check_only_our_markup, decode_qr_svg};
use common::*;

fn all_pages(config: &RelayConfig) -> Vec<(Page, String)> {
    Page::ALL.iter().map(|p| (*p, p.render(config))).collect()
}

#[test]
fn every_page_is_a_complete_document() {
    let config = full_config();
    for (page, html) in all_pages(&config) {
        assert!(
            html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
            "{page:?}"
        );
        assert!(html.ends_with("</html>\n"));
        assert!(html.contains(&format!("<title>chat.example.org {}</title>", page.title())));
        for other in Page::ALL {
            assert!(html.contains(&format!("href=\"{}\"", other.file_name())));
        }
        check_balanced(&html).unwrap_or_else(|e| panic!("{page:?}: {e}"));
        assert!(!html.contains("<script"), "no scripts at all");
    }
    assert_eq!(Page::Home.file_name(), "index.html");
    assert_eq!(Page::Info.file_name(), "info.html");
    assert_eq!(Page::Privacy.file_name(), "privacy.html");
    assert_eq!(pages::ROBOTS_TXT, "User-agent: *\nDisallow: /\n");
}

#[test]
fn home_has_button_and_qr_for_dcaccount() {
    let html = pages::render_home(&full_config());
    let link = "DCACCOUNT:https://chat.example.org/new";
    assert_eq!(html.matches(&format!("href=\"{link}\"")).count(), 2);
    assert!(html.contains(&format!(
        "<a class=\"cta\" href=\"{link}\">Get a chat.example.org chat profile</a>"
    )));
    let svg_start = html.find("<svg").expect("inline SVG");
    let svg_end = html[svg_start..].find("</svg>").unwrap() + svg_start + 6;
    assert_eq!(decode_qr_svg(&html[svg_start..svg_end]), link);
    assert!(html.contains("https://get.delta.chat"));
    assert!(html.contains("20 days"));
}

#[test]
fn qr_payload_decodes_for_long_and_idn_domains() {
    for domain in [
        "bücher.example",
        &format!("{}.{}.example", "a".repeat(63), "b".repeat(63)),
    ] {
        let d = MailDomain::parse(domain).unwrap();
        let payload = qr::account_payload(&d);
        assert_eq!(payload, format!("DCACCOUNT:https://{}/new", d.as_str()));
        assert_eq!(decode_qr_svg(&qr::account_svg(&d)), payload);
    }
}

#[test]
fn closed_registration_has_no_button() {
    let mut config = full_config();
    config.registration.open = false;
    let html = pages::render_home(&config);
    assert!(!html.contains("DCACCOUNT:"));
    assert!(!html.contains("<svg"));
    assert!(html.contains("does not accept new profiles"));
    assert!(html.contains("https://delta.chat/en/chatmail"));
    assert!(pages::render_info(&config).contains("New accounts are not accepted"));
}

#[test]
fn info_states_limits_ports_and_retention() {
    let html = pages::render_info(&full_config());
    for fact in [
        "up to 60 messages per minute",
        "bursts of up to 10",
        "up to 500 MB of messages",
        "can be up to 30 MB",
        "deleted from the relay 20 days after it arrived",
        "larger than 200 kB that have already been read are deleted after 7 days",
        "logged in to for 90 days is deleted",
        "exactly 9 characters",
        "at least 9 characters",
        "<td>993</td><td>TLS</td>",
        "<td>143</td><td>STARTTLS</td>",
        "<td>465</td><td>TLS</td>",
        "<td>587</td><td>STARTTLS</td>",
        "<td>443</td>",
        "port 25",
        "only end-to-end encrypted messages",
        "<a href=\"mailto:privacy@example.org\">privacy@example.org</a>",
    ] {
        assert!(html.contains(fact), "info page lacks {fact:?}");
    }
    let mut config = full_config();
    config.limits.username_min_length = 5;
    config.limits.username_max_length = 12;
    config.limits.max_mailbox_size_mb = 2048;
    config.limits.delete_mails_after_days = 1;
    let html = pages::render_info(&config);
    assert!(html.contains("5 to 12 characters"));
    assert!(html.contains("2 GB"));
    assert!(html.contains("1 day after it arrived"));
}

#[test]
fn privacy_names_contacts_and_retention() {
    let html = pages::render_privacy(&full_config());
    for fact in [
        "Privacy policy for chat.example.org",
        "Example Chat e.V.\nMain Street 1\n12345 Town",
        "<a href=\"mailto:privacy@example.org\">privacy@example.org</a>",
        "Dana Protector\ndpo@example.org",
        "The Data Protection Authority of Somewhere",
        "after 20 days at the latest",
        "refuses to send unencrypted messages",
        "does not keep Internet (IP) addresses",
        "logged in to for 90 days is deleted",
        "after 7 days",
        "Art. 6 (1) (b) GDPR",
        "Art. 6 (1) (f) GDPR",
        "Articles 12 to 23 GDPR",
        "90 days are removed",
    ] {
        assert!(html.contains(fact), "privacy page lacks {fact:?}");
    }
    // Opted-in update checks are disclosed, with what the request reveals.
    assert!(html.contains("asks <strong>portal.example.net</strong> about once a day"));
    assert!(html.contains("update channel (stable)"));
    assert!(html.contains("without cookies"));
    assert!(html.contains("nothing that names this relay"));
    assert!(html.contains("IP address and the time of the check"));
}

#[test]
fn privacy_without_update_checks_says_so() {
    let mut config = full_config();
    config.updates.enabled = false;
    let html = pages::render_privacy(&config);
    assert!(html.contains("does not contact anyone to check for software updates"));
    assert!(!html.contains("portal.example.net"));
}

#[test]
fn privacy_renders_sensibly_without_contacts() {
    let config = RelayConfig::new(MailDomain::parse("chat.example.org").unwrap());
    let html = pages::render_privacy(&config);
    check_balanced(&html).unwrap();
    assert!(html.contains("has not published contact details"));
    assert!(html.contains("has not published a contact address"));
    assert!(html.contains("supervisory authority"));
    assert!(!html.contains("Responsible for processing"));
    assert!(!html.contains("mailto:"));
    let info = pages::render_info(&config);
    assert!(info.contains("has not published a contact address"));
    // Only the mail address: the postal address is said to be missing.
    let mut config = config;
    config.privacy.contact_mail =
        Some(chatmail_shared::EmailAddress::parse("a@example.org").unwrap());
    let html = pages::render_privacy(&config);
    assert!(html.contains("has not published a postal address"));
    check_balanced(&html).unwrap();
}

#[test]
fn hostile_operator_text_is_escaped() {
    let mut config = full_config();
    let hostile = [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "</p></main><script src=//evil.example/x.js></script>",
        "<svg onload=alert(1)>",
        "&lt;already escaped&gt; & 'single' \"double\"",
    ];
    config.privacy.postal_address = Some(FreeText::new(&hostile.join("\n")).unwrap());
    config.privacy.data_protection_officer = Some(FreeText::new(hostile[1]).unwrap());
    config.privacy.supervisory_authority = Some(FreeText::new(hostile[2]).unwrap());
    for (page, html) in all_pages(&config) {
        let lower = html.to_lowercase();
        assert!(!lower.contains("<script"), "{page:?}");
        assert!(!lower.contains("<img"), "{page:?}");
        assert!(!lower.contains("<svg onload"), "{page:?}");
        check_balanced(&html).unwrap_or_else(|e| panic!("{page:?}: {e}"));
        check_only_our_markup(&html).unwrap_or_else(|e| panic!("{page:?}: {e}"));
    }
    let html = pages::render_privacy(&config);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html
        .contains("&amp;lt;already escaped&amp;gt; &amp; &#x27;single&#x27; &quot;double&quot;"));
}

#[test]
fn idn_domain_shown_in_unicode_linked_in_ascii() {
    let mut config = full_config();
    config.mail_domain = MailDomain::parse("bücher.example").unwrap();
    let html = pages::render_home(&config);
    assert!(html.contains("<title>bücher.example home</title>"));
    assert!(html.contains("Get a bücher.example chat profile"));
    assert!(html.contains("href=\"DCACCOUNT:https://xn--bcher-kva.example/new\""));
}

#[test]
fn autoconfig_matches_upstream() {
    // research/chatmail.md §5 "Autoconfig".
    assert_eq!(
        AUTOCONFIG_PATH,
        "/.well-known/autoconfig/mail/config-v1.1.xml"
    );
    let xml = autoconfig_xml(&MailDomain::parse("chat.example.org").unwrap());
    check_balanced(&xml).unwrap();
    assert!(xml
        .starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">"));
    for fact in [
        "<emailProvider id=\"chat.example.org\">",
        "<domain>chat.example.org</domain>",
        "<displayName>chat.example.org chatmail</displayName>",
        "<displayShortName>chat.example.org</displayShortName>",
    ] {
        assert!(xml.contains(fact), "{fact}");
    }
    let mut entries = Vec::new();
    for (element, protocol) in [("incomingServer", "imap"), ("outgoingServer", "smtp")] {
        let open = format!("<{element} type=\"{protocol}\">");
        for chunk in xml.split(&open).skip(1) {
            let body = &chunk[..chunk.find(&format!("</{element}>")).unwrap()];
            let field = |name: &str| {
                let s = body.find(&format!("<{name}>")).unwrap() + name.len() + 2;
                body[s..s + body[s..].find('<').unwrap()].to_string()
            };
            assert_eq!(field("hostname"), "chat.example.org");
            assert_eq!(field("authentication"), "password-cleartext");
            assert_eq!(field("username"), "%EMAILADDRESS%");
            entries.push((protocol, field("port"), field("socketType")));
        }
    }
    let want: Vec<(&str, String, String)> = [
        ("imap", "993", "SSL"),
        ("imap", "143", "STARTTLS"),
        ("imap", "443", "SSL"),
        ("smtp", "465", "SSL"),
        ("smtp", "587", "STARTTLS"),
        ("smtp", "443", "SSL"),
    ]
    .iter()
    .map(|(p, port, s)| (*p, port.to_string(), s.to_string()))
    .collect();
    assert_eq!(entries, want);
}

#[test]
fn mta_sts_policy_matches_upstream() {
    // research/chatmail.md §5 "MTA-STS policy".
    assert_eq!(POLICY_PATH, "/.well-known/mta-sts.txt");
    assert_eq!(
        policy_text(&MailDomain::parse("Chat.Example.org").unwrap()),
        "version: STSv1\nmode: enforce\nmx: chat.example.org\nmax_age: 2419200\n"
    );
}
