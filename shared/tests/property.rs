//! Property test: any valid config, with any mix of device facts, renders pages that are
//! well-formed and carry no markup from the input, and a zone file that BIND's
//! `named-checkzone` and Knot's `kzonecheck` both accept.
//!
//! Each case runs both checkers, so the case count is kept modest.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chatmail_shared::config::{self, FreeText, RelayConfig};
use chatmail_shared::device_facts::{AcmeAccountUrl, DeviceFacts, DkimPublicKey};
use chatmail_shared::dns_plan::{DnsPlan, PlannedValue, RecordData};
use chatmail_shared::domain::MailDomain;
use chatmail_shared::email::EmailAddress;
use chatmail_shared::pages::Page;
use chatmail_shared::signing_key::UpdateSigningKey;
use chatmail_shared::web_url::HttpsUrl;
use chatmail_shared::zone_file;
use common::html::{check_balanced, check_only_our_markup};
use common::*;
use proptest::prelude::*;
use proptest::sample::select;

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?",
        1 => "[A-Z][a-zA-Z0-9]{0,10}",
        1 => select(vec!["bücher", "münchen", "пример", "例え", "ελληνικά", "straße", "café"])
            .prop_map(str::to_string),
        1 => "[a-z]{63}",
    ]
}

fn domain() -> impl Strategy<Value = MailDomain> {
    (
        prop::collection::vec(label(), 1..=3),
        select(vec!["org", "de", "example", "рф", "Net", "xn--p1ai"]),
        any::<bool>(),
    )
        .prop_filter_map("valid mail domain", |(labels, tld, dot)| {
            let text = format!("{}.{tld}{}", labels.join("."), if dot { "." } else { "" });
            MailDomain::parse(&text).ok()
        })
}

fn hostile_text() -> impl Strategy<Value = Option<FreeText>> {
    prop_oneof![
        1 => Just(None),
        2 => select(vec![
            "<script>alert(1)</script>",
            "\"><img src=x onerror=alert(1)>",
            "</p></main><script src=//evil.example/x.js></script>",
            "<svg onload=alert(1)>",
            "Müller & Söhne <GmbH>\nHauptstraße 1\n12345 Stadt",
            "javascript:alert(1)",
            "]]><!-- -->",
        ])
        .prop_map(|s| FreeText::new(s).ok()),
        2 => "[ -~\n]{1,120}".prop_map(|s| FreeText::new(&s).ok()),
        1 => "\\PC{1,60}".prop_map(|s| FreeText::new(&s).ok()),
    ]
}

fn contact() -> impl Strategy<Value = Option<EmailAddress>> {
    prop_oneof![
        Just(None),
        select(vec![
            "privacy@example.org",
            "a.b+c@bücher.example",
            "x-y_z@sub.example.net"
        ])
        .prop_map(|s| Some(EmailAddress::parse(s).unwrap())),
    ]
}

fn dkim() -> impl Strategy<Value = Option<DkimPublicKey>> {
    prop_oneof![
        Just(None),
        select(vec![1024usize, 2048, 3072, 4096])
            .prop_map(|bits| Some(DkimPublicKey::rsa(&rsa_spki_b64(bits)).unwrap())),
        any::<[u8; 32]>().prop_map(|k| Some(DkimPublicKey::ed25519(&STANDARD.encode(k)).unwrap())),
    ]
}

fn account_url() -> impl Strategy<Value = Option<AcmeAccountUrl>> {
    prop_oneof![
        Just(None),
        "[0-9]{1,12}".prop_map(|id| Some(
            AcmeAccountUrl::parse(&format!(
                "https://acme-v02.api.letsencrypt.org/acme/acct/{id}"
            ))
            .unwrap()
        )),
    ]
}

prop_compose! {
    fn limits()(
        send in config::SEND_PER_MINUTE_RANGE,
        burst in config::SEND_BURST_RANGE,
        mailbox in config::MAILBOX_MB_RANGE,
        message in config::MESSAGE_BYTES_RANGE,
        keep in config::RETENTION_DAYS_RANGE,
        large in config::RETENTION_DAYS_RANGE,
        inactive in config::RETENTION_DAYS_RANGE,
        umin in config::USERNAME_MIN_RANGE,
        umax in config::USERNAME_MAX_RANGE,
        pw in config::PASSWORD_MIN_RANGE,
    ) -> config::Limits {
        let mailbox_bytes = u64::from(mailbox) * 1024 * 1024;
        config::Limits {
            max_user_send_per_minute: send,
            max_user_send_burst_size: burst,
            max_mailbox_size_mb: mailbox,
            max_message_size_bytes: u32::try_from(u64::from(message).min(mailbox_bytes)).unwrap(),
            delete_mails_after_days: keep,
            delete_large_after_days: large,
            delete_inactive_users_after_days: inactive,
            username_min_length: umin,
            username_max_length: umax,
            password_min_length: pw,
        }
    }
}

prop_compose! {
    fn case()(
        domain in domain(),
        ipv4 in prop::option::of(any::<[u8; 4]>()),
        ipv6 in prop::option::of(any::<[u16; 8]>()),
        postal in hostile_text(),
        dpo in hostile_text(),
        authority in hostile_text(),
        contact in contact(),
        limits in limits(),
        open in any::<bool>(),
        updates in any::<bool>(),
        dkim in dkim(),
        account_url in account_url(),
    ) -> (RelayConfig, DeviceFacts) {
        let mut c = RelayConfig::new(domain);
        // Keep only addresses the config accepts (unicast, real IPv6).
        c.addresses.ipv4 = ipv4.map(Into::into).filter(|a: &std::net::Ipv4Addr| {
            !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast()
        });
        c.addresses.ipv6 = ipv6.map(Into::into).filter(|a: &std::net::Ipv6Addr| {
            !a.is_unspecified() && !a.is_multicast() && a.to_ipv4_mapped().is_none()
        });
        c.privacy.postal_address = postal;
        c.privacy.data_protection_officer = dpo;
        c.privacy.supervisory_authority = authority;
        c.privacy.contact_mail = contact;
        c.limits = limits;
        c.registration.open = open;
        if updates {
            c.updates.enabled = true;
            c.updates.portal_url = Some(HttpsUrl::parse("https://portal.example.net/").unwrap());
            c.updates.signing_public_key = Some(UpdateSigningKey::parse(&signing_key_b64()).unwrap());
        }
        (c, DeviceFacts { dkim_public_key: dkim, acme_account_url: account_url })
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_valid_config_renders_and_passes_the_checkers((config, facts) in case()) {
        prop_assert_eq!(config.validate(), Ok(()));
        // Round trip through TOML.
        prop_assert_eq!(&RelayConfig::from_toml(&config.to_toml().unwrap()).unwrap(), &config);

        for page in Page::ALL {
            let html = page.render(&config);
            prop_assert!(!html.to_lowercase().contains("<script"), "{:?} has a script", page);
            if let Err(e) = check_balanced(&html).and_then(|()| check_only_our_markup(&html)) {
                prop_assert!(false, "{:?}: {}", page, e);
            }
        }

        let plan = DnsPlan::new(&config, &facts);
        for r in plan.records() {
            prop_assert!(r.name.len() <= 253);
            if let PlannedValue::Ready(RecordData::Txt(t)) = &r.value {
                prop_assert!(t.strings().iter().all(|s| s.len() <= 255));
            }
        }
        let origin = plan.domain().as_str().to_string();
        assert_plan_zone_accepted(&plan, &origin, &zone_for(&plan));
        // Also as part of the parent zone, when there is one.
        if let Some((_, parent)) = origin.split_once('.') {
            if parent.contains('.') {
                let zone = zone_file::zone_text(&plan, &header_for(parent)).unwrap();
                assert_plan_zone_accepted(&plan, parent, &zone);
            }
        }
    }
}
