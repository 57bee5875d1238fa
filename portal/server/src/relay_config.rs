//! The relay's device configuration as the wizard builds it: loaded from the relay's row,
//! or started from upstream's defaults for its name.

use std::sync::OnceLock;

use chatmail_shared::{web_url::HttpsUrl, ConfigError, DomainName, MailDomain, RelayConfig};

use crate::db::relays::RelayRow;

/// The CA every relay asks for its certificate when the operator names one instead of
/// Let's Encrypt (`--relay-acme-directory` with `--relay-acme-caa-issuer`).
#[derive(Debug, Clone)]
pub struct OperatorAcme {
    pub directory: HttpsUrl,
    /// The CA's CAA domain (its directory's `meta.caaIdentities`): the relay's CAA record
    /// must name it, or the CA refuses to issue.
    pub caa_issuer: DomainName,
}

/// Set once at start. A process-wide setting rather than a parameter: the DNS plan is made
/// from the configuration in many places (status, jobs, previews, zone files, images), and
/// all of them must agree on the CA.
static OPERATOR_ACME: OnceLock<OperatorAcme> = OnceLock::new();

/// Records the operator's CA for every relay; the first call wins.
pub fn set_operator_acme(acme: OperatorAcme) {
    let _ = OPERATOR_ACME.set(acme);
}

/// `config` with the operator's CA, if one was named: the directory the image names and
/// the issuer the CAA record names.
pub fn with_operator_acme(mut config: RelayConfig) -> RelayConfig {
    if let Some(acme) = OPERATOR_ACME.get() {
        config.acme.directory_url = acme.directory.clone();
        config.acme.caa_issuer = acme.caa_issuer.clone();
    }
    config
}

/// The saved configuration, or a new one for `domain` with the addresses known so far.
pub fn load_or_new(relay: &RelayRow, domain: MailDomain) -> RelayConfig {
    if let Some(config) = relay
        .config_toml
        .as_deref()
        .and_then(|text| RelayConfig::from_toml(text).ok())
    {
        return with_operator_acme(config);
    }
    let mut config = RelayConfig::new(domain);
    config.addresses.ipv4 = relay.ipv4.as_deref().and_then(|a| a.parse().ok());
    config.addresses.ipv6 = relay.ipv6.as_deref().and_then(|a| a.parse().ok());
    with_operator_acme(config)
}

/// A configuration error for a person rather than a file: without the field path.
pub fn explain(err: &ConfigError) -> String {
    match err {
        ConfigError::Invalid { rule, .. } => {
            let mut text = rule.clone();
            if let Some(first) = text.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            format!("{text}.")
        }
        other => other.to_string(),
    }
}
