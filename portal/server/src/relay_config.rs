//! The relay's device configuration as the wizard builds it: loaded from the relay's row,
//! or started from upstream's defaults for its name.

use chatmail_shared::{ConfigError, MailDomain, RelayConfig};

use crate::db::relays::RelayRow;

/// The saved configuration, or a new one for `domain` with the addresses known so far.
pub fn load_or_new(relay: &RelayRow, domain: MailDomain) -> RelayConfig {
    if let Some(config) = relay
        .config_toml
        .as_deref()
        .and_then(|text| RelayConfig::from_toml(text).ok())
    {
        return config;
    }
    let mut config = RelayConfig::new(domain);
    config.addresses.ipv4 = relay.ipv4.as_deref().and_then(|a| a.parse().ok());
    config.addresses.ipv6 = relay.ipv6.as_deref().and_then(|a| a.parse().ok());
    config
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
