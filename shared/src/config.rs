//! `RelayConfig`: the non-secret configuration the portal writes into a device image.
//!
//! The portal and the appliance must read the same file the same way, so this module owns
//! the TOML format, its schema version, the defaults (upstream chatmail's, research/
//! chatmail.md §2) and every validation rule. A config that fails a rule is refused with
//! a [`ConfigError`] naming the field and the rule, both when it is read and when it is
//! written, so a device never boots with a config the portal could not have produced.
//!
//! Secrets (DKIM key, ACME account key, passwords) are never part of it: the device makes
//! them on first boot (ARCHITECTURE.md, "No secret ever leaves the device").

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::domain::{DomainName, MailDomain};
use crate::email::EmailAddress;
use crate::signing_key::UpdateSigningKey;
use crate::update_manifest::Channel;
use crate::web_url::HttpsUrl;

/// The only schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Larger config files are refused before parsing (a real one is well under 2 KiB).
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// Let's Encrypt's production ACME directory, the default CA.
pub const DEFAULT_ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The CAA issuer domain of Let's Encrypt (research/chatmail.md §4: `0 issue "letsencrypt.org;…"`).
pub const DEFAULT_CAA_ISSUER: &str = "letsencrypt.org";

/// Longest free-text privacy field, in characters.
pub const MAX_FREE_TEXT_CHARS: usize = 2000;

/// Length of the local part Delta Chat generates when it creates an account on a relay by
/// itself (`DCACCOUNT:<domain>`, research/deltachat-client.md §1.2 (b)). The username
/// limits must admit it.
pub const CLIENT_GENERATED_USERNAME_LEN: u32 = 9;

/// Length of the password Delta Chat generates in that case (same source). The minimum
/// password length must not exceed it.
pub const CLIENT_GENERATED_PASSWORD_LEN: u32 = 22;

/// Allowed range of `limits.max_user_send_per_minute`.
pub const SEND_PER_MINUTE_RANGE: RangeInclusive<u32> = 1..=10_000;
/// Allowed range of `limits.max_user_send_burst_size`.
pub const SEND_BURST_RANGE: RangeInclusive<u32> = 1..=10_000;
/// Allowed range of `limits.max_mailbox_size_mb` (1 MB to about 100 GB).
pub const MAILBOX_MB_RANGE: RangeInclusive<u32> = 1..=100_000;
/// Allowed range of `limits.max_message_size_bytes` (64 KiB to 1 GiB); it must also fit in
/// the mailbox.
pub const MESSAGE_BYTES_RANGE: RangeInclusive<u32> = 65_536..=1_073_741_824;
/// Allowed range of the three `limits.delete_*_after_days` (1 day to 10 years).
pub const RETENTION_DAYS_RANGE: RangeInclusive<u32> = 1..=3650;
/// Allowed range of `limits.username_min_length`.
pub const USERNAME_MIN_RANGE: RangeInclusive<u32> = 3..=CLIENT_GENERATED_USERNAME_LEN;
/// Allowed range of `limits.username_max_length` (64 is RFC 5321's local-part limit).
pub const USERNAME_MAX_RANGE: RangeInclusive<u32> = CLIENT_GENERATED_USERNAME_LEN..=64;
/// Allowed range of `limits.password_min_length`.
pub const PASSWORD_MIN_RANGE: RangeInclusive<u32> = 8..=CLIENT_GENERATED_PASSWORD_LEN;

/// Why a config was refused. `Display` starts with the field path, then the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("the config file is {len} bytes long; at most {max} bytes are accepted")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not TOML at all.
    #[error("the config file is not valid TOML: {0}")]
    Syntax(String),
    /// `schema_version` is absent.
    #[error("schema_version: is missing; this software reads schema_version = {SCHEMA_VERSION}")]
    MissingSchemaVersion,
    /// `schema_version` is present but not one this build knows.
    #[error(
        "schema_version: {found} is not supported; this software reads schema_version = {supported} (a newer portal may have written this file)"
    )]
    UnsupportedSchemaVersion {
        /// The value found, as written.
        found: String,
        /// The version this build supports.
        supported: u32,
    },
    /// A field breaks a rule.
    #[error("{field}: {rule}")]
    Invalid {
        /// Dotted path, e.g. `limits.max_mailbox_size_mb`.
        field: String,
        /// The rule broken, e.g. `must be between 1 and 100000, got 0`.
        rule: String,
    },
}

impl ConfigError {
    fn invalid(field: &str, rule: impl fmt::Display) -> Self {
        ConfigError::Invalid {
            field: field.to_string(),
            rule: rule.to_string(),
        }
    }

    /// The field path this error is about, if it is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::MissingSchemaVersion | ConfigError::UnsupportedSchemaVersion { .. } => {
                Some("schema_version")
            }
            _ => None,
        }
    }
}

/// The whole device configuration. Build one with [`RelayConfig::new`] and adjust the
/// public fields; [`RelayConfig::validate`] checks the rules that the field types cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The relay's mail domain; addresses are `<name>@<mail_domain>`.
    pub mail_domain: MailDomain,
    /// Public addresses for the A/AAAA records, where already known.
    pub addresses: Addresses,
    /// Who is responsible, shown on the privacy page.
    pub privacy: PrivacyContacts,
    /// Rate, size, retention and account-name limits.
    pub limits: Limits,
    /// Whether new accounts may be created.
    pub registration: Registration,
    /// Where the device gets its TLS certificate.
    pub acme: AcmeSettings,
    /// Optional update checks against the portal.
    pub updates: UpdateChecks,
}

/// Public addresses of the relay. Both are optional: an unknown address makes the address
/// record pending in the DNS plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    /// The public IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The public IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
}

/// The privacy page's contacts (upstream's `privacy_postal`, `privacy_mail`, `privacy_pdo`,
/// `privacy_supervisor`, research/chatmail.md §2). All optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivacyContacts {
    /// Name and postal address of whoever is responsible for the relay.
    pub postal_address: Option<FreeText>,
    /// Where people can write about privacy and account questions.
    pub contact_mail: Option<EmailAddress>,
    /// The data-protection officer, if one was appointed.
    pub data_protection_officer: Option<FreeText>,
    /// The supervisory authority responsible for the operator.
    pub supervisory_authority: Option<FreeText>,
}

/// Limits, with upstream's defaults (research/chatmail.md §2). Bounds are the `*_RANGE`
/// constants of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Messages a user may send per minute (`max_user_send_per_minute`, 60).
    pub max_user_send_per_minute: u32,
    /// Burst allowance of the send rate limiter (`max_user_send_burst_size`, 10).
    pub max_user_send_burst_size: u32,
    /// Mailbox quota in MB (`max_mailbox_size`, 500M).
    pub max_mailbox_size_mb: u32,
    /// Largest message in bytes (`max_message_size`, 31457280 = 30 MiB).
    pub max_message_size_bytes: u32,
    /// Every message is deleted this many days after arrival (`delete_mails_after`, 20).
    pub delete_mails_after_days: u32,
    /// Seen messages over [`LARGE_MESSAGE_BYTES`] are deleted after this many days
    /// (`delete_large_after`, 7).
    pub delete_large_after_days: u32,
    /// Accounts without a login for this many days are removed
    /// (`delete_inactive_users_after`, 90).
    pub delete_inactive_users_after_days: u32,
    /// Shortest local part for new accounts (`username_min_length`, 9).
    pub username_min_length: u32,
    /// Longest local part for new accounts (`username_max_length`, 9).
    pub username_max_length: u32,
    /// Shortest password for new accounts (`password_min_length`, 9).
    pub password_min_length: u32,
}

/// Size above which a seen message counts as large for `delete_large_after_days`
/// (upstream's expire, research/chatmail.md §1.6; not configurable upstream either).
pub const LARGE_MESSAGE_BYTES: u32 = 200_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_user_send_per_minute: 60,
            max_user_send_burst_size: 10,
            max_mailbox_size_mb: 500,
            max_message_size_bytes: 31_457_280,
            delete_mails_after_days: 20,
            delete_large_after_days: 7,
            delete_inactive_users_after_days: 90,
            username_min_length: 9,
            username_max_length: 9,
            password_min_length: 9,
        }
    }
}

impl Limits {
    fn ranged(&self) -> [(&'static str, u32, RangeInclusive<u32>); 10] {
        [
            (
                "max_user_send_per_minute",
                self.max_user_send_per_minute,
                SEND_PER_MINUTE_RANGE,
            ),
            (
                "max_user_send_burst_size",
                self.max_user_send_burst_size,
                SEND_BURST_RANGE,
            ),
            (
                "max_mailbox_size_mb",
                self.max_mailbox_size_mb,
                MAILBOX_MB_RANGE,
            ),
            (
                "max_message_size_bytes",
                self.max_message_size_bytes,
                MESSAGE_BYTES_RANGE,
            ),
            (
                "delete_mails_after_days",
                self.delete_mails_after_days,
                RETENTION_DAYS_RANGE,
            ),
            (
                "delete_large_after_days",
                self.delete_large_after_days,
                RETENTION_DAYS_RANGE,
            ),
            (
                "delete_inactive_users_after_days",
                self.delete_inactive_users_after_days,
                RETENTION_DAYS_RANGE,
            ),
            (
                "username_min_length",
                self.username_min_length,
                USERNAME_MIN_RANGE,
            ),
            (
                "username_max_length",
                self.username_max_length,
                USERNAME_MAX_RANGE,
            ),
            (
                "password_min_length",
                self.password_min_length,
                PASSWORD_MIN_RANGE,
            ),
        ]
    }

    /// Checks every bound and the rules between limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value, range) in self.ranged() {
            if !range.contains(&value) {
                return Err(range_error(&format!("limits.{name}"), &range, value));
            }
        }
        let mailbox_bytes = u64::from(self.max_mailbox_size_mb) * 1024 * 1024;
        if u64::from(self.max_message_size_bytes) > mailbox_bytes {
            return Err(ConfigError::invalid(
                "limits.max_message_size_bytes",
                format!(
                    "must not exceed the mailbox size (limits.max_mailbox_size_mb = {} MB = {} bytes), got {}",
                    self.max_mailbox_size_mb, mailbox_bytes, self.max_message_size_bytes
                ),
            ));
        }
        if self.username_max_length < self.username_min_length {
            return Err(ConfigError::invalid(
                "limits.username_max_length",
                format!(
                    "must be at least limits.username_min_length ({}), got {}",
                    self.username_min_length, self.username_max_length
                ),
            ));
        }
        Ok(())
    }

    /// Mailbox quota in bytes.
    pub fn max_mailbox_size_bytes(&self) -> u64 {
        u64::from(self.max_mailbox_size_mb) * 1024 * 1024
    }
}

fn range_error(field: &str, range: &RangeInclusive<u32>, got: impl fmt::Display) -> ConfigError {
    ConfigError::invalid(
        field,
        format!(
            "must be between {} and {}, got {}",
            range.start(),
            range.end(),
            got
        ),
    )
}

/// Whether the relay accepts new accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// `true` (the default): anyone may create an account.
    pub open: bool,
}

impl Default for Registration {
    fn default() -> Self {
        Registration { open: true }
    }
}

/// TLS certificates via ACME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The CA's ACME directory (default: Let's Encrypt production).
    pub directory_url: HttpsUrl,
    /// Contact address for the ACME account (upstream's `acme_email`); optional.
    pub contact_email: Option<EmailAddress>,
    /// The CA's domain for the CAA record (default `letsencrypt.org`); must match the CA
    /// behind `directory_url`.
    pub caa_issuer: DomainName,
}

impl Default for AcmeSettings {
    fn default() -> Self {
        AcmeSettings {
            directory_url: HttpsUrl::parse(DEFAULT_ACME_DIRECTORY).expect("constant URL"),
            contact_email: None,
            caa_issuer: DomainName::parse(DEFAULT_CAA_ISSUER).expect("constant domain"),
        }
    }
}

/// Opt-in update checks: the device asks the portal whether a signed update exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateChecks {
    /// Off unless the operator opts in.
    pub enabled: bool,
    /// The portal URL the device asks; required when enabled.
    pub portal_url: Option<HttpsUrl>,
    /// The key update manifests must be signed with; required when enabled.
    pub signing_public_key: Option<UpdateSigningKey>,
    /// Which releases to follow (default stable).
    pub channel: Channel,
}

/// Free text for the privacy page: trimmed, non-empty, at most [`MAX_FREE_TEXT_CHARS`]
/// characters, line breaks as `\n`, no other control or bidirectional-override characters.
/// It may contain anything else, including `<` and `&`: pages escape it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FreeText(String);

/// Why a string is not acceptable free text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FreeTextError {
    /// Only whitespace.
    #[error("must not be empty (leave the field out instead)")]
    Empty,
    /// Over the limit.
    #[error("must be at most {MAX_FREE_TEXT_CHARS} characters long, got {0}")]
    TooLong(usize),
    /// Control or bidi-override characters.
    #[error("must not contain control characters other than line breaks and tabs, nor bidirectional overrides")]
    ControlCharacter,
}

impl FreeText {
    /// Normalizes line breaks to `\n`, trims surrounding whitespace, and validates.
    pub fn new(input: &str) -> Result<Self, FreeTextError> {
        let text = input.replace("\r\n", "\n");
        let text = text.trim();
        if text.is_empty() {
            return Err(FreeTextError::Empty);
        }
        let chars = text.chars().count();
        if chars > MAX_FREE_TEXT_CHARS {
            return Err(FreeTextError::TooLong(chars));
        }
        let bad = |c: char| {
            (c.is_control() && c != '\n' && c != '\t')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        };
        if text.chars().any(bad) {
            return Err(FreeTextError::ControlCharacter);
        }
        Ok(FreeText(text.to_string()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FreeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl RelayConfig {
    /// A config for `mail_domain` with every other setting at its default.
    pub fn new(mail_domain: MailDomain) -> Self {
        RelayConfig {
            mail_domain,
            addresses: Addresses::default(),
            privacy: PrivacyContacts::default(),
            limits: Limits::default(),
            registration: Registration::default(),
            acme: AcmeSettings::default(),
            updates: UpdateChecks::default(),
        }
    }

    /// Checks the rules the field types cannot express: limit bounds and relations,
    /// address kinds, and that enabled update checks have a URL and a key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(v4) = self.addresses.ipv4 {
            check_ipv4(v4)?;
        }
        if let Some(v6) = self.addresses.ipv6 {
            check_ipv6(v6)?;
        }
        self.limits.validate()?;
        if self.updates.enabled {
            if self.updates.portal_url.is_none() {
                return Err(ConfigError::invalid(
                    "updates.portal_url",
                    "is required when updates.enabled is true",
                ));
            }
            if self.updates.signing_public_key.is_none() {
                return Err(ConfigError::invalid(
                    "updates.signing_public_key",
                    "is required when updates.enabled is true",
                ));
            }
        }
        Ok(())
    }

    /// Reads a config file. Unknown keys, an unknown `schema_version` and any invalid
    /// value are refused.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                len: text.len(),
                max: MAX_CONFIG_BYTES,
            });
        }
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::Syntax(e.to_string().trim_end().to_string())
        })?;
        match table.get("schema_version") {
            None => return Err(ConfigError::MissingSchemaVersion),
            Some(toml::Value::Integer(v)) if *v == i64::from(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(ConfigError::UnsupportedSchemaVersion {
                    found: other.to_string(),
                    supported: SCHEMA_VERSION,
                })
            }
        }
        let raw: RawConfig = serde_path_to_error::deserialize(table).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().message().to_string();
            // serde reports a missing key at its parent; name the key itself.
            let missing = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.strip_suffix('`'));
            match (missing, path.as_str()) {
                (Some(name), ".") => ConfigError::invalid(name, "is missing"),
                (Some(name), parent) => {
                    ConfigError::invalid(&format!("{parent}.{name}"), "is missing")
                }
                (None, ".") => ConfigError::invalid("(top level)", message),
                (None, _) => ConfigError::invalid(&path, message),
            }
        })?;
        let config = raw.into_config()?;
        config.validate()?;
        Ok(config)
    }

    /// Writes the config file, after validating it.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        self.validate()?;
        let raw = RawConfig::from_config(self);
        toml::to_string(&raw).map_err(|e| ConfigError::Syntax(e.to_string()))
    }
}

/// Serializes to the same shape as the TOML file (e.g. for JSON between portal server and
/// browser). It does not validate; [`RelayConfig::to_toml`] does.
impl Serialize for RelayConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawConfig::from_config(self).serialize(s)
    }
}

/// Deserializes from the TOML file's shape and applies every rule of
/// [`RelayConfig::from_toml`], including the schema version.
impl<'de> Deserialize<'de> for RelayConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawConfig::deserialize(d)?;
        if raw.schema_version != i64::from(SCHEMA_VERSION) {
            return Err(serde::de::Error::custom(
                ConfigError::UnsupportedSchemaVersion {
                    found: raw.schema_version.to_string(),
                    supported: SCHEMA_VERSION,
                },
            ));
        }
        let config = raw.into_config().map_err(serde::de::Error::custom)?;
        config.validate().map_err(serde::de::Error::custom)?;
        Ok(config)
    }
}

fn check_ipv4(a: Ipv4Addr) -> Result<(), ConfigError> {
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
        return Err(ConfigError::invalid(
            "addresses.ipv4",
            format!("must be a unicast address, not {a}"),
        ));
    }
    Ok(())
}

fn check_ipv6(a: Ipv6Addr) -> Result<(), ConfigError> {
    if a.is_unspecified() || a.is_multicast() {
        return Err(ConfigError::invalid(
            "addresses.ipv6",
            format!("must be a unicast address, not {a}"),
        ));
    }
    if a.to_ipv4_mapped().is_some() {
        return Err(ConfigError::invalid(
            "addresses.ipv6",
            "must be a real IPv6 address; put IPv4 addresses in addresses.ipv4",
        ));
    }
    Ok(())
}

// ---- The TOML shape. Loose types (strings, i64) so that every rule is checked by our own
// ---- code and reported with the field name.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    schema_version: i64,
    mail_domain: String,
    #[serde(default)]
    addresses: RawAddresses,
    #[serde(default)]
    privacy: RawPrivacy,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    registration: RawRegistration,
    #[serde(default)]
    acme: RawAcme,
    #[serde(default)]
    updates: RawUpdates,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAddresses {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv6: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    postal_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contact_mail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_protection_officer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    supervisory_authority: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_user_send_per_minute: i64,
    max_user_send_burst_size: i64,
    max_mailbox_size_mb: i64,
    max_message_size_bytes: i64,
    delete_mails_after_days: i64,
    delete_large_after_days: i64,
    delete_inactive_users_after_days: i64,
    username_min_length: i64,
    username_max_length: i64,
    password_min_length: i64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits::from(&Limits::default())
    }
}

impl From<&Limits> for RawLimits {
    fn from(l: &Limits) -> Self {
        RawLimits {
            max_user_send_per_minute: l.max_user_send_per_minute.into(),
            max_user_send_burst_size: l.max_user_send_burst_size.into(),
            max_mailbox_size_mb: l.max_mailbox_size_mb.into(),
            max_message_size_bytes: l.max_message_size_bytes.into(),
            delete_mails_after_days: l.delete_mails_after_days.into(),
            delete_large_after_days: l.delete_large_after_days.into(),
            delete_inactive_users_after_days: l.delete_inactive_users_after_days.into(),
            username_min_length: l.username_min_length.into(),
            username_max_length: l.username_max_length.into(),
            password_min_length: l.password_min_length.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRegistration {
    open: bool,
}

impl Default for RawRegistration {
    fn default() -> Self {
        RawRegistration {
            open: Registration::default().open,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAcme {
    directory_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_email: Option<String>,
    caa_issuer: String,
}

impl Default for RawAcme {
    fn default() -> Self {
        RawAcme {
            directory_url: DEFAULT_ACME_DIRECTORY.to_string(),
            contact_email: None,
            caa_issuer: DEFAULT_CAA_ISSUER.to_string(),
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawUpdates {
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    portal_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
}

/// An absent key and an empty string both mean "not set".
fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn field<T, E: fmt::Display>(name: &str, r: Result<T, E>) -> Result<T, ConfigError> {
    r.map_err(|e| ConfigError::invalid(name, e))
}

fn opt_field<T, E: fmt::Display>(
    name: &str,
    v: Option<String>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, ConfigError> {
    non_empty(v).map(|s| field(name, parse(&s))).transpose()
}

impl RawConfig {
    fn into_config(self) -> Result<RelayConfig, ConfigError> {
        let mail_domain = field("mail_domain", MailDomain::parse(&self.mail_domain))?;
        let addresses = Addresses {
            ipv4: opt_field("addresses.ipv4", self.addresses.ipv4, |s| {
                s.parse::<Ipv4Addr>()
                    .map_err(|_| "must be an IPv4 address such as 203.0.113.7")
            })?,
            ipv6: opt_field("addresses.ipv6", self.addresses.ipv6, |s| {
                s.parse::<Ipv6Addr>()
                    .map_err(|_| "must be an IPv6 address such as 2001:db8::7 (without brackets)")
            })?,
        };
        let p = self.privacy;
        let privacy = PrivacyContacts {
            postal_address: opt_field("privacy.postal_address", p.postal_address, FreeText::new)?,
            contact_mail: opt_field("privacy.contact_mail", p.contact_mail, EmailAddress::parse)?,
            data_protection_officer: opt_field(
                "privacy.data_protection_officer",
                p.data_protection_officer,
                FreeText::new,
            )?,
            supervisory_authority: opt_field(
                "privacy.supervisory_authority",
                p.supervisory_authority,
                FreeText::new,
            )?,
        };
        let l = self.limits;
        let limit = |name: &str, v: i64, range: RangeInclusive<u32>| -> Result<u32, ConfigError> {
            match u32::try_from(v) {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(range_error(&format!("limits.{name}"), &range, v)),
            }
        };
        let limits = Limits {
            max_user_send_per_minute: limit(
                "max_user_send_per_minute",
                l.max_user_send_per_minute,
                SEND_PER_MINUTE_RANGE,
            )?,
            max_user_send_burst_size: limit(
                "max_user_send_burst_size",
                l.max_user_send_burst_size,
                SEND_BURST_RANGE,
            )?,
            max_mailbox_size_mb: limit(
                "max_mailbox_size_mb",
                l.max_mailbox_size_mb,
                MAILBOX_MB_RANGE,
            )?,
            max_message_size_bytes: limit(
                "max_message_size_bytes",
                l.max_message_size_bytes,
                MESSAGE_BYTES_RANGE,
            )?,
            delete_mails_after_days: limit(
                "delete_mails_after_days",
                l.delete_mails_after_days,
                RETENTION_DAYS_RANGE,
            )?,
            delete_large_after_days: limit(
                "delete_large_after_days",
                l.delete_large_after_days,
                RETENTION_DAYS_RANGE,
            )?,
            delete_inactive_users_after_days: limit(
                "delete_inactive_users_after_days",
                l.delete_inactive_users_after_days,
                RETENTION_DAYS_RANGE,
            )?,
            username_min_length: limit(
                "username_min_length",
                l.username_min_length,
                USERNAME_MIN_RANGE,
            )?,
            username_max_length: limit(
                "username_max_length",
                l.username_max_length,
                USERNAME_MAX_RANGE,
            )?,
            password_min_length: limit(
                "password_min_length",
                l.password_min_length,
                PASSWORD_MIN_RANGE,
            )?,
        };
        let acme = AcmeSettings {
            directory_url: field(
                "acme.directory_url",
                HttpsUrl::parse(self.acme.directory_url.trim()),
            )?,
            contact_email: opt_field(
                "acme.contact_email",
                self.acme.contact_email,
                EmailAddress::parse,
            )?,
            caa_issuer: field("acme.caa_issuer", DomainName::parse(&self.acme.caa_issuer))?,
        };
        let updates = UpdateChecks {
            enabled: self.updates.enabled,
            portal_url: opt_field("updates.portal_url", self.updates.portal_url, |s| {
                HttpsUrl::parse(s.trim())
            })?,
            signing_public_key: opt_field(
                "updates.signing_public_key",
                self.updates.signing_public_key,
                UpdateSigningKey::parse,
            )?,
            channel: opt_field("updates.channel", self.updates.channel, |s| {
                Channel::parse(s.trim())
            })?
            .unwrap_or_default(),
        };
        Ok(RelayConfig {
            mail_domain,
            addresses,
            privacy,
            limits,
            registration: Registration {
                open: self.registration.open,
            },
            acme,
            updates,
        })
    }

    fn from_config(c: &RelayConfig) -> Self {
        let text = |t: &Option<FreeText>| t.as_ref().map(|t| t.as_str().to_string());
        RawConfig {
            schema_version: SCHEMA_VERSION.into(),
            mail_domain: c.mail_domain.as_str().to_string(),
            addresses: RawAddresses {
                ipv4: c.addresses.ipv4.map(|a| a.to_string()),
                ipv6: c.addresses.ipv6.map(|a| a.to_string()),
            },
            privacy: RawPrivacy {
                postal_address: text(&c.privacy.postal_address),
                contact_mail: c.privacy.contact_mail.as_ref().map(|m| m.to_string()),
                data_protection_officer: text(&c.privacy.data_protection_officer),
                supervisory_authority: text(&c.privacy.supervisory_authority),
            },
            limits: RawLimits::from(&c.limits),
            registration: RawRegistration {
                open: c.registration.open,
            },
            acme: RawAcme {
                directory_url: c.acme.directory_url.to_string(),
                contact_email: c.acme.contact_email.as_ref().map(|m| m.to_string()),
                caa_issuer: c.acme.caa_issuer.to_string(),
            },
            updates: RawUpdates {
                enabled: c.updates.enabled,
                portal_url: c.updates.portal_url.as_ref().map(|u| u.to_string()),
                signing_public_key: c.updates.signing_public_key.as_ref().map(|k| k.to_string()),
                // The default stays implicit, so existing files read back unchanged.
                channel: (c.updates.channel != Channel::Stable)
                    .then(|| c.updates.channel.id().to_string()),
            },
        }
    }
}
