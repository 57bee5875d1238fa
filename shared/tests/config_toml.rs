//! `RelayConfig` TOML: defaults (research/chatmail.md §2), round trip, and refusal of every
//! kind of bad input with a message naming the field and the rule.

mod common;

use chatmail_shared::config::{ConfigError, Limits, RelayConfig, SCHEMA_VERSION};
use chatmail_shared::domain::MailDomain;
use common::*;
use proptest::prelude::*;

#[test]
fn defaults_are_upstreams() {
    // research/chatmail.md §2, the chatmail.ini table.
    let l = Limits::default();
    assert_eq!(l.max_user_send_per_minute, 60);
    assert_eq!(l.max_user_send_burst_size, 10);
    assert_eq!(l.max_mailbox_size_mb, 500);
    assert_eq!(l.max_message_size_bytes, 31_457_280);
    assert_eq!(l.delete_mails_after_days, 20);
    assert_eq!(l.delete_large_after_days, 7);
    assert_eq!(l.delete_inactive_users_after_days, 90);
    assert_eq!(l.username_min_length, 9);
    assert_eq!(l.username_max_length, 9);
    assert_eq!(l.password_min_length, 9);

    let c = RelayConfig::from_toml("schema_version = 1\nmail_domain = \"Chat.Example.ORG.\"\n")
        .unwrap();
    assert_eq!(c.mail_domain.as_str(), "chat.example.org");
    assert_eq!(c.limits, l);
    assert!(c.registration.open);
    assert!(!c.updates.enabled, "update checks are opt-in");
    assert_eq!(
        c.acme.directory_url.as_str(),
        "https://acme-v02.api.letsencrypt.org/directory"
    );
    assert_eq!(c.acme.caa_issuer.as_str(), "letsencrypt.org");
    assert_eq!(c.addresses.ipv4, None);
    assert_eq!(c.privacy.contact_mail, None);
    assert_eq!(c, RelayConfig::new(c.mail_domain.clone()));
}

#[test]
fn round_trip() {
    for config in [
        full_config(),
        RelayConfig::new(MailDomain::parse("bücher.example").unwrap()),
        {
            let mut testing = full_config();
            testing.updates.channel = chatmail_shared::update_manifest::Channel::Testing;
            testing
        },
    ] {
        let text = config.to_toml().unwrap();
        assert!(text.contains(&format!("schema_version = {SCHEMA_VERSION}")));
        let back = RelayConfig::from_toml(&text).unwrap();
        assert_eq!(back, config, "{text}");
        assert_eq!(back.to_toml().unwrap(), text);
    }
}

#[test]
fn written_file_is_readable() {
    let text = full_config().to_toml().unwrap();
    for needle in [
        "mail_domain = \"chat.example.org\"",
        "[addresses]",
        "ipv4 = \"203.0.113.7\"",
        "[privacy]",
        "[limits]",
        "max_mailbox_size_mb = 500",
        "[registration]",
        "open = true",
        "[acme]",
        "[updates]",
        "enabled = true",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn hostile_privacy_text_is_kept_verbatim() {
    let text = r#"
schema_version = 1
mail_domain = "chat.example.org"
[privacy]
postal_address = "<script>alert('x')</script>\n\"Quotes\" & <b>bold</b>"
supervisory_authority = "</p><img src=x onerror=alert(1)>"
"#;
    let c = RelayConfig::from_toml(text).unwrap();
    assert_eq!(
        c.privacy.postal_address.as_ref().unwrap().as_str(),
        "<script>alert('x')</script>\n\"Quotes\" & <b>bold</b>"
    );
    assert_eq!(RelayConfig::from_toml(&c.to_toml().unwrap()).unwrap(), c);
}

#[test]
fn empty_strings_mean_unset() {
    let c = RelayConfig::from_toml(
        "schema_version = 1\nmail_domain = \"chat.example.org\"\n[privacy]\npostal_address = \"  \"\ncontact_mail = \"\"\n",
    )
    .unwrap();
    assert_eq!(c.privacy.postal_address, None);
    assert_eq!(c.privacy.contact_mail, None);
}

#[test]
fn schema_version_is_checked() {
    let err = RelayConfig::from_toml("schema_version = 2\nmail_domain = \"chat.example.org\"")
        .unwrap_err();
    assert!(matches!(err, ConfigError::UnsupportedSchemaVersion { .. }));
    assert_eq!(
        err.to_string(),
        "schema_version: 2 is not supported; this software reads schema_version = 1 (a newer portal may have written this file)"
    );
    assert_eq!(err.field(), Some("schema_version"));
    let err = RelayConfig::from_toml("schema_version = \"1\"\nmail_domain = \"chat.example.org\"")
        .unwrap_err();
    assert!(matches!(err, ConfigError::UnsupportedSchemaVersion { .. }));
    let err = RelayConfig::from_toml("schema_version = 1\n").unwrap_err();
    assert_eq!(err.to_string(), "mail_domain: is missing");
    let err = RelayConfig::from_toml("mail_domain = \"chat.example.org\"").unwrap_err();
    assert_eq!(err, ConfigError::MissingSchemaVersion);
    assert!(err.to_string().starts_with("schema_version: is missing"));
}

/// Each case: TOML lines added to a valid minimal file (after `mail_domain` is replaced if
/// the case sets it), the expected error text.
#[test]
fn invalid_values_name_field_and_rule() {
    let cases: &[(&str, &str)] = &[
        (
            "mail_domain = \"1.2.3.4\"",
            "mail_domain: must be a domain name, not an IP address",
        ),
        (
            "mail_domain = \"[1.2.3.4]\"",
            "mail_domain: must be a domain name, not an IP address",
        ),
        (
            "mail_domain = \"_chat.example.org\"",
            "mail_domain: must not contain underscores",
        ),
        ("mail_domain = \"\"", "mail_domain: must not be empty"),
        ("mail_domain = \"localhost\"", "mail_domain: needs at least two labels"),
        (
            "mail_domain = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org\"",
            "mail_domain: has a label of 64 bytes",
        ),
        ("mail_domain = 5", "mail_domain: invalid type: integer `5`, expected a string"),
        (
            "[limits]\nmax_mailbox_size_mb = 0",
            "limits.max_mailbox_size_mb: must be between 1 and 100000, got 0",
        ),
        (
            "[limits]\nmax_mailbox_size_mb = -5",
            "limits.max_mailbox_size_mb: must be between 1 and 100000, got -5",
        ),
        (
            "[limits]\nmax_mailbox_size_mb = 9223372036854775807",
            "limits.max_mailbox_size_mb: must be between 1 and 100000, got 9223372036854775807",
        ),
        (
            "[limits]\nmax_user_send_per_minute = 0",
            "limits.max_user_send_per_minute: must be between 1 and 10000, got 0",
        ),
        (
            "[limits]\nmax_user_send_burst_size = 1000000",
            "limits.max_user_send_burst_size: must be between 1 and 10000, got 1000000",
        ),
        (
            "[limits]\nmax_message_size_bytes = 100",
            "limits.max_message_size_bytes: must be between 65536 and 1073741824, got 100",
        ),
        (
            "[limits]\nmax_mailbox_size_mb = 10\nmax_message_size_bytes = 31457280",
            "limits.max_message_size_bytes: must not exceed the mailbox size",
        ),
        (
            "[limits]\ndelete_mails_after_days = 0",
            "limits.delete_mails_after_days: must be between 1 and 3650, got 0",
        ),
        (
            "[limits]\ndelete_large_after_days = 100000",
            "limits.delete_large_after_days: must be between 1 and 3650, got 100000",
        ),
        (
            "[limits]\ndelete_inactive_users_after_days = -1",
            "limits.delete_inactive_users_after_days: must be between 1 and 3650, got -1",
        ),
        (
            "[limits]\nusername_min_length = 10\nusername_max_length = 12",
            "limits.username_min_length: must be between 3 and 9, got 10",
        ),
        (
            "[limits]\nusername_max_length = 8",
            "limits.username_max_length: must be between 9 and 64, got 8",
        ),
        (
            "[limits]\npassword_min_length = 30",
            "limits.password_min_length: must be between 8 and 22, got 30",
        ),
        (
            "[limits]\nmax_mailbox_size_mb = 1.5",
            "limits.max_mailbox_size_mb: invalid type: floating point `1.5`, expected i64",
        ),
        (
            "[limits]\nmax_user_send_per_minute = \"sixty\"",
            "limits.max_user_send_per_minute: invalid type: string \"sixty\", expected i64",
        ),
        (
            "[registration]\nopen = \"yes\"",
            "registration.open: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "[addresses]\nipv4 = \"999.1.1.1\"",
            "addresses.ipv4: must be an IPv4 address such as 203.0.113.7",
        ),
        (
            "[addresses]\nipv4 = \"0.0.0.0\"",
            "addresses.ipv4: must be a unicast address, not 0.0.0.0",
        ),
        (
            "[addresses]\nipv4 = \"224.0.0.1\"",
            "addresses.ipv4: must be a unicast address, not 224.0.0.1",
        ),
        (
            "[addresses]\nipv6 = \"[2001:db8::1]\"",
            "addresses.ipv6: must be an IPv6 address such as 2001:db8::7 (without brackets)",
        ),
        (
            "[addresses]\nipv6 = \"::\"",
            "addresses.ipv6: must be a unicast address, not ::",
        ),
        (
            "[addresses]\nipv6 = \"::ffff:192.0.2.1\"",
            "addresses.ipv6: must be a real IPv6 address; put IPv4 addresses in addresses.ipv4",
        ),
        (
            "[privacy]\ncontact_mail = \"not an address\"",
            "privacy.contact_mail: must look like name@example.org",
        ),
        (
            "[privacy]\ncontact_mail = \"a<b>@example.org\"",
            "privacy.contact_mail: the part before `@` must be",
        ),
        (
            "[privacy]\ncontact_mail = \"a@1.2.3.4\"",
            "privacy.contact_mail: the part after `@` must be a domain name, not an IP address",
        ),
        (
            "[privacy]\npostal_address = \"a\\u0000b\"",
            "privacy.postal_address: must not contain control characters",
        ),
        (
            "[privacy]\ndata_protection_officer = \"a\\u202Eb\"",
            "privacy.data_protection_officer: must not contain control characters other than line breaks and tabs, nor bidirectional overrides",
        ),
        (
            "[acme]\ndirectory_url = \"http://acme.example/dir\"",
            "acme.directory_url: must use https://",
        ),
        (
            "[acme]\ndirectory_url = \"acme\"",
            "acme.directory_url: must be an absolute URL",
        ),
        (
            "[acme]\ncaa_issuer = \"letsencrypt\"",
            "acme.caa_issuer: needs at least two labels",
        ),
        (
            "[acme]\ncontact_email = \"@\"",
            "acme.contact_email: the part before `@` must be",
        ),
        (
            "[updates]\nenabled = true",
            "updates.portal_url: is required when updates.enabled is true",
        ),
        (
            "[updates]\nenabled = true\nportal_url = \"https://portal.example.net/\"",
            "updates.signing_public_key: is required when updates.enabled is true",
        ),
        (
            "[updates]\nportal_url = \"https://user:pw@portal.example.net/\"",
            "updates.portal_url: must not contain a user name or password",
        ),
        (
            "[updates]\nsigning_public_key = \"RWQ garbage\"",
            "updates.signing_public_key: must be a minisign public key",
        ),
        (
            "[updates]\nchannel = \"beta\"",
            "updates.channel: must be \"stable\" or \"testing\"",
        ),
        ("colour = \"blue\"", "colour: unknown field `colour`, expected one of `schema_version`"),
        ("[limits]\nmax_foo = 1", "limits.max_foo: unknown field `max_foo`"),
        ("[extras]\nx = 1", "extras: unknown field `extras`"),
    ];
    for (snippet, want) in cases {
        let text = if snippet.starts_with("mail_domain") {
            format!("schema_version = 1\n{snippet}\n")
        } else {
            format!("schema_version = 1\nmail_domain = \"chat.example.org\"\n{snippet}\n")
        };
        let err = RelayConfig::from_toml(&text).expect_err(snippet);
        let msg = err.to_string();
        assert!(
            msg.starts_with(want),
            "for {snippet:?}\n  got:  {msg}\n  want: {want}…"
        );
    }
}

#[test]
fn too_large_and_not_toml() {
    let big = format!(
        "schema_version = 1\nmail_domain = \"chat.example.org\"\n#{}\n",
        "x".repeat(70_000)
    );
    assert!(matches!(
        RelayConfig::from_toml(&big),
        Err(ConfigError::TooLarge { .. })
    ));
    let err = RelayConfig::from_toml("schema_version = 1\nmail_domain = ").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)), "{err}");
    assert!(err
        .to_string()
        .starts_with("the config file is not valid TOML"));
}

#[test]
fn deep_nesting_does_not_overflow() {
    for open in ["[", "{a="] {
        let text = format!("schema_version = 1\nx = {}", open.repeat(20_000));
        assert!(RelayConfig::from_toml(&text).is_err());
    }
    let text = format!("schema_version = 1\n{} = 1", vec!["a"; 10_000].join("."));
    assert!(RelayConfig::from_toml(&text).is_err());
}

#[test]
fn writing_an_invalid_config_is_refused() {
    let mut c = full_config();
    c.limits.max_mailbox_size_mb = 0;
    assert_eq!(
        c.to_toml().unwrap_err().to_string(),
        "limits.max_mailbox_size_mb: must be between 1 and 100000, got 0"
    );
    let mut c = full_config();
    c.updates.signing_public_key = None;
    assert_eq!(
        c.to_toml().unwrap_err().field(),
        Some("updates.signing_public_key")
    );
    let mut c = full_config();
    c.addresses.ipv4 = Some("255.255.255.255".parse().unwrap());
    assert!(c.validate().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary text never panics the loader.
    #[test]
    fn loader_never_panics(text in ".{0,400}") {
        let _ = RelayConfig::from_toml(&text);
    }

    /// TOML-shaped input with random keys and values never panics, and whatever loads
    /// round-trips.
    #[test]
    fn toml_shaped_input(
        domain in prop_oneof![
            Just("chat.example.org".to_string()),
            "[a-zA-Z0-9._-]{0,30}",
            ".{0,30}",
        ],
        section in prop_oneof![
            Just("limits"), Just("privacy"), Just("addresses"), Just("acme"),
            Just("updates"), Just("registration"), Just("nope"),
        ],
        key in prop_oneof![
            prop::sample::select(vec![
                "max_mailbox_size_mb", "username_min_length", "postal_address",
                "contact_mail", "ipv4", "ipv6", "directory_url", "enabled", "open",
                "signing_public_key",
            ]).prop_map(str::to_string),
            "[a-z_]{1,10}",
        ],
        value in prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<bool>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:?}")),
            ".{0,40}".prop_map(|s| format!("{s:?}")),
            Just("[1, 2]".to_string()),
            Just("{ a = 1 }".to_string()),
        ],
    ) {
        let text = format!(
            "schema_version = 1\nmail_domain = {domain:?}\n[{section}]\n{key} = {value}\n"
        );
        if let Ok(config) = RelayConfig::from_toml(&text) {
            let again = config.to_toml().expect("a loaded config is valid");
            prop_assert_eq!(RelayConfig::from_toml(&again).unwrap(), config);
        }
    }

    /// `MailDomain::parse` never panics; what it accepts is normalized and fits DNS.
    #[test]
    fn mail_domain_parse_is_total(input in prop_oneof![
        ".{0,300}",
        "[a-zA-Z0-9.\\-_]{0,300}",
        "([a-zA-Zäöü0-9-]{1,70}\\.){1,6}[a-zA-Z]{2,6}\\.?",
    ]) {
        if let Ok(d) = MailDomain::parse(&input) {
            let s = d.as_str();
            prop_assert!(s.len() <= 233);
            prop_assert!(s.split('.').count() >= 2);
            prop_assert!(s.split('.').all(|l| !l.is_empty() && l.len() <= 63
                && !l.starts_with('-') && !l.ends_with('-')));
            prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()
                || b == b'-' || b == b'.'));
            prop_assert_eq!(MailDomain::parse(s).unwrap(), d.clone());
            prop_assert_eq!(MailDomain::parse(&d.to_unicode()).unwrap(), d);
        }
    }
}

/// `RelayConfig` also travels through serde (e.g. as JSON between portal server and
/// browser) in the TOML file's shape, with the same rules.
#[test]
fn serde_uses_the_same_shape_and_rules() {
    let config = full_config();
    let value = toml::Value::try_from(&config).unwrap();
    assert_eq!(value.get("schema_version").unwrap().as_integer(), Some(1));
    let back: RelayConfig = value.clone().try_into().unwrap();
    assert_eq!(back, config);
    let mut bad = value;
    bad.as_table_mut().unwrap()["limits"]
        .as_table_mut()
        .unwrap()
        .insert("max_mailbox_size_mb".into(), toml::Value::Integer(0));
    let err = bad.try_into::<RelayConfig>().unwrap_err().to_string();
    assert!(
        err.contains("limits.max_mailbox_size_mb: must be between 1 and 100000, got 0"),
        "{err}"
    );
}
