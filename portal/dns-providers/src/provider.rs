//! The interface every DNS provider implements, and the RRset-level changes it applies.
//!
//! The portal plans with the provider-neutral records of `chatmail_shared`, computes a
//! [`crate::diff::Diff`] and hands its [`Change`]s to a [`DnsProvider`]. Every change is
//! idempotent (applying it twice leaves the same zone as applying it once), so a job that
//! crashed half-way simply reads the zone again, diffs and applies again.
//!
//! Providers apply one `apply` call as one request where the protocol allows it (one
//! PowerDNS PATCH, one RFC 2136 UPDATE message), so a call is all-or-nothing there.

use async_trait::async_trait;
use chatmail_shared::RecordData;

use crate::error::ProviderError;
use crate::records::{normalize_name, value_key, ZoneContents};

/// One RRset-level operation. Names are absolute, without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Make the RRset at `name`/`rtype` exactly `values` (PowerDNS `REPLACE`; RFC 2136
    /// "delete RRset" plus "add" in one message).
    Put {
        /// Owner name.
        name: String,
        /// Type mnemonic; every value has this type.
        rtype: String,
        /// TTL for the whole RRset.
        ttl: u32,
        /// The complete new RRset (not empty).
        values: Vec<RecordData>,
    },
    /// Delete the whole RRset at `name`/`rtype` (any type, also ones the portal does not
    /// write, e.g. a TLSA record in the way of an alias). Nothing happens if it is absent.
    Remove {
        /// Owner name.
        name: String,
        /// Type mnemonic.
        rtype: String,
    },
    /// Add `add` and remove `remove` in the RRset at `name`/`rtype`, leaving every other
    /// value as it is (for TXT and CAA, which the relay shares with other users of the
    /// domain). Values compare as in [`value_key`]: a value already present is not added
    /// again, a value absent is not removed. If nothing is left, the RRset is deleted.
    Merge {
        /// Owner name.
        name: String,
        /// Type mnemonic; every value has this type.
        rtype: String,
        /// TTL of the RRset if it is new (or only added values remain); an RRset that
        /// keeps other values keeps its TTL, so foreign values are not rewritten.
        ttl: u32,
        /// Values to add if absent.
        add: Vec<RecordData>,
        /// Values to remove if present.
        remove: Vec<RecordData>,
    },
}

impl Change {
    /// The owner name.
    pub fn name(&self) -> &str {
        match self {
            Change::Put { name, .. } | Change::Remove { name, .. } | Change::Merge { name, .. } => {
                name
            }
        }
    }

    /// The type mnemonic.
    pub fn rtype(&self) -> &str {
        match self {
            Change::Put { rtype, .. }
            | Change::Remove { rtype, .. }
            | Change::Merge { rtype, .. } => rtype,
        }
    }
}

/// A DNS provider the portal can write records through.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// A short name for people and logs, e.g. `PowerDNS (https://dns.example.net)`.
    fn name(&self) -> &str;

    /// The zones this credential can see, absolute, without the trailing dot. Providers
    /// that cannot list zones (RFC 2136) return the zone they were configured with.
    async fn list_zones(&self) -> Result<Vec<String>, ProviderError>;

    /// The zone that holds `domain`: the longest of [`DnsProvider::list_zones`] that is
    /// `domain` or a parent of it, or [`ProviderError::ZoneNotFound`].
    async fn find_zone(&self, domain: &str) -> Result<String, ProviderError> {
        let zones = self.list_zones().await?;
        longest_zone(domain, &zones).ok_or_else(|| ProviderError::ZoneNotFound {
            domain: normalize_name(domain),
        })
    }

    /// Every record in `zone` except the SOA. NS records (apex and delegations) and types
    /// the portal does not write are in [`ZoneContents::other`].
    async fn read(&self, zone: &str) -> Result<ZoneContents, ProviderError>;

    /// The records at `names` only. Defaults to [`DnsProvider::read`] filtered; a provider
    /// that cannot read whole zones (RFC 2136 without zone-transfer permission) asks for
    /// each name instead.
    async fn read_names(
        &self,
        zone: &str,
        names: &[String],
    ) -> Result<ZoneContents, ProviderError> {
        Ok(self.read(zone).await?.only_names(names))
    }

    /// Applies `changes` to `zone`, as one request where the provider allows it.
    async fn apply(&self, zone: &str, changes: &[Change]) -> Result<(), ProviderError>;

    /// The TTL this provider stores when asked for `ttl`: providers with a minimum (or a
    /// fixed set of TTLs) clamp it. The job maps the desired records' TTLs through this
    /// before diffing (see [`with_effective_ttls`]), so a clamped TTL does not look like a
    /// change on every run. Defaults to `ttl` unchanged.
    fn effective_ttl(&self, ttl: u32) -> u32 {
        ttl
    }

    /// Why this provider cannot hold `record` in `zone`, in words for people, or `None`.
    /// The portal leaves such records out of what it writes and shows them as "add by
    /// hand" (Namecheap's API has no SRV; Linode keeps SRV only at a domain's apex).
    fn unsupported(&self, _zone: &str, _record: &chatmail_shared::DnsRecord) -> Option<String> {
        None
    }
}

/// `desired` with every TTL as `provider` will store it ([`DnsProvider::effective_ttl`]).
pub fn with_effective_ttls(
    provider: &dyn DnsProvider,
    desired: &[chatmail_shared::DnsRecord],
) -> Vec<chatmail_shared::DnsRecord> {
    desired
        .iter()
        .map(|r| chatmail_shared::DnsRecord {
            ttl: provider.effective_ttl(r.ttl),
            ..r.clone()
        })
        .collect()
}

/// The longest zone in `zones` that is `domain` or a parent of it.
pub fn longest_zone(domain: &str, zones: &[String]) -> Option<String> {
    let domain = normalize_name(domain);
    zones
        .iter()
        .map(|z| normalize_name(z))
        .filter(|z| in_zone(&domain, z))
        .max_by_key(|z| z.len())
}

/// Whether `name` is `zone` or below it (both normalized).
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || zone.is_empty() || name.ends_with(&format!(".{zone}"))
}

/// Checks a change list before anything is sent, so a bad list is refused whole instead of
/// being half applied: every name inside `zone`, every value of the change's type, no
/// empty `Put`, no RRset touched twice.
pub fn validate(zone: &str, changes: &[Change]) -> Result<(), ProviderError> {
    let zone = normalize_name(zone);
    let mut seen = std::collections::BTreeSet::new();
    for change in changes {
        let name = normalize_name(change.name());
        if !in_zone(&name, &zone) {
            return Err(ProviderError::Rejected(format!(
                "{name} is not inside the zone {zone}"
            )));
        }
        let rtype = change.rtype().to_ascii_uppercase();
        if !seen.insert((name.clone(), rtype.clone())) {
            return Err(ProviderError::Rejected(format!(
                "the {rtype} records of {name} are changed twice in one step"
            )));
        }
        let values: Vec<&RecordData> = match change {
            Change::Put { values, .. } => {
                if values.is_empty() {
                    return Err(ProviderError::Rejected(format!(
                        "empty {rtype} record set for {name}"
                    )));
                }
                values.iter().collect()
            }
            Change::Remove { .. } => Vec::new(),
            Change::Merge { add, remove, .. } => add.iter().chain(remove).collect(),
        };
        if let Some(bad) = values.iter().find(|v| v.rtype() != rtype) {
            return Err(ProviderError::Rejected(format!(
                "a {} value in the {rtype} records of {name}",
                bad.rtype()
            )));
        }
    }
    Ok(())
}

/// What a [`Change::Merge`] leaves of an RRset: the current entries (with their key) not
/// removed, in their order, and the values to add that are not present yet.
pub fn merge_plan<T>(
    current: Vec<(String, T)>,
    add: &[RecordData],
    remove: &[RecordData],
) -> (Vec<T>, Vec<RecordData>) {
    let remove: Vec<String> = remove.iter().map(value_key).collect();
    let kept: Vec<(String, T)> = current
        .into_iter()
        .filter(|(k, _)| !remove.contains(k))
        .collect();
    let mut added: Vec<RecordData> = Vec::new();
    for v in add {
        let k = value_key(v);
        if !kept.iter().any(|(c, _)| *c == k) && !added.iter().any(|a| value_key(a) == k) {
            added.push(v.clone());
        }
    }
    (kept.into_iter().map(|(_, t)| t).collect(), added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn longest_matching_zone() {
        let zones = vec![
            "example.org".to_string(),
            "chat.example.org.".to_string(),
            "org".to_string(),
            "ample.org".to_string(),
        ];
        assert_eq!(
            longest_zone("mx.Chat.example.org", &zones).as_deref(),
            Some("chat.example.org")
        );
        assert_eq!(
            longest_zone("example.org.", &zones).as_deref(),
            Some("example.org")
        );
        assert_eq!(
            longest_zone("badexample.org", &zones).as_deref(),
            Some("org")
        );
        assert_eq!(longest_zone("example.net", &zones), None);
    }

    #[test]
    fn validation_refuses_bad_lists() {
        let a = RecordData::A(Ipv4Addr::LOCALHOST);
        let ok = [
            Change::Put {
                name: "example.org".into(),
                rtype: "A".into(),
                ttl: 60,
                values: vec![a.clone()],
            },
            Change::Remove {
                name: "www.example.org".into(),
                rtype: "HTTPS".into(),
            },
        ];
        validate("example.org", &ok).unwrap();
        assert!(validate("example.net", &ok).is_err());
        let twice = [ok[0].clone(), ok[0].clone()];
        assert!(validate("example.org", &twice).is_err());
        let wrong_type = [Change::Merge {
            name: "example.org".into(),
            rtype: "TXT".into(),
            ttl: 60,
            add: vec![a],
            remove: vec![],
        }];
        assert!(validate("example.org", &wrong_type).is_err());
        let empty = [Change::Put {
            name: "example.org".into(),
            rtype: "A".into(),
            ttl: 60,
            values: vec![],
        }];
        assert!(validate("example.org", &empty).is_err());
    }

    #[test]
    fn merging_keeps_others() {
        let t = |s: &str| RecordData::Txt(chatmail_shared::dns_plan::TxtStrings::split(s));
        let current = vec![
            ("google-site-verification=x".to_string(), 1),
            ("v=spf1 mx -all".to_string(), 2),
        ];
        let (kept, added) = merge_plan(
            current,
            &[t("v=spf1 a ~all"), t("google-site-verification=x")],
            &[t("v=spf1 mx -all"), t("absent")],
        );
        assert_eq!(kept, [1]);
        assert_eq!(added, [t("v=spf1 a ~all")]);
    }
}
