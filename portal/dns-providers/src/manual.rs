//! Manual mode: for people whose DNS provider the portal cannot write to. They get a zone
//! file to download or import, and one row per record with copy buttons, in the form DNS
//! web panels ask for (name relative to the zone, type, value, TTL). The DNS checker then
//! confirms what they entered. No I/O here.
//!
//! The zone-file text comes from `chatmail_shared::zone_file`, so the download and the
//! checker use the same plan. When the portal can read the zone (e.g. through public DNS),
//! [`steps`] turns a [`Diff`] into "add / change / remove" instructions instead of a full
//! list.

use chatmail_shared::zone_file::{self, ZoneError, ZoneHeader};
use chatmail_shared::{DnsPlan, DnsRecord, RecordData};
use serde::{Deserialize, Serialize};

use crate::diff::{Diff, Item};
use crate::records::{normalize_name, parse_rdata};

/// One record as a DNS web panel wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualRow {
    /// Name relative to the zone (`@` for the apex), what most panels ask for.
    pub name: String,
    /// The absolute name, without the trailing dot.
    pub fqdn: String,
    /// Type mnemonic.
    pub rtype: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// The value in zone-file form (absolute names end with a dot; TXT quoted and split).
    pub value: String,
    /// For panels with separate fields: MX/SRV priority.
    pub priority: Option<u16>,
    /// The value without the priority and without the quotes: MX and SRV target (for SRV
    /// `weight port target`), TXT as one unquoted text (panels split it themselves), CAA
    /// and other types as in `value`. Host names without the trailing dot.
    pub plain: String,
}

/// What to do with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Add this record.
    Add,
    /// Change the existing record of this name and type to this value.
    Change,
    /// Remove this record.
    Remove,
}

/// One instruction for people editing by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualStep {
    /// Add, change or remove.
    pub action: Action,
    /// The record (for `Remove`, the value to remove).
    pub row: ManualRow,
    /// The sentence from the diff.
    pub description: String,
}

/// The relay's records with absolute names and reasons, to paste into an existing zone
/// (as upstream's `cmdeploy dns --zonefile`).
pub fn records_file(plan: &DnsPlan) -> String {
    zone_file::records_text(plan)
}

/// A complete zone file (SOA, NS and the relay's records) for providers that import one.
pub fn zone_file(plan: &DnsPlan, header: &ZoneHeader) -> Result<String, ZoneError> {
    zone_file::zone_text(plan, header)
}

/// The name relative to `zone`: `@` for the apex, the full name if outside the zone.
pub fn relative_name(name: &str, zone: &str) -> String {
    let name = normalize_name(name);
    let zone = normalize_name(zone);
    if name == zone {
        return "@".into();
    }
    name.strip_suffix(&format!(".{zone}"))
        .map(str::to_string)
        .unwrap_or(name)
}

/// One row for a record.
pub fn row(record: &DnsRecord, zone: &str) -> ManualRow {
    let (priority, plain) = match &record.data {
        RecordData::Mx {
            preference,
            exchange,
        } => (Some(*preference), exchange.clone()),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => (Some(*priority), format!("{weight} {port} {target}")),
        RecordData::Txt(t) => (None, t.joined()),
        RecordData::Cname(target) => (None, target.clone()),
        other => (None, other.presentation()),
    };
    ManualRow {
        name: relative_name(&record.name, zone),
        fqdn: normalize_name(&record.name),
        rtype: record.data.rtype().to_string(),
        ttl: record.ttl,
        value: record.data.presentation(),
        priority,
        plain,
    }
}

/// Rows for every ready record of the plan, in the plan's order (required first).
pub fn rows(plan: &DnsPlan, zone: &str) -> Vec<ManualRow> {
    plan.ready_records().iter().map(|r| row(r, zone)).collect()
}

/// Instructions from a diff: creates and updates become "add"/"change" rows, deletes
/// "remove" rows. Conflicts are not included: the person decides about those.
pub fn steps(diff: &Diff, zone: &str) -> Vec<ManualStep> {
    let mut out = Vec::new();
    let mut push = |action: Action, item: &Item, values: &[String]| {
        for v in values {
            // Item values are display forms; TXT is shown joined in quotes.
            let text = if item.rtype == "TXT" {
                let inner = v.strip_prefix('"').and_then(|s| s.strip_suffix('"'));
                match inner {
                    Some(t) => RecordData::Txt(chatmail_shared::dns_plan::TxtStrings::split(t))
                        .presentation(),
                    None => v.clone(),
                }
            } else {
                v.clone()
            };
            let Ok(data) = parse_rdata(&item.rtype, &text) else {
                continue;
            };
            let record = DnsRecord {
                name: item.name.clone(),
                ttl: item.ttl,
                data,
            };
            out.push(ManualStep {
                action,
                row: row(&record, zone),
                description: item.description.clone(),
            });
        }
    };
    for item in &diff.creates {
        push(Action::Add, item, &item.after);
    }
    for item in &diff.updates {
        push(Action::Change, item, &item.after);
    }
    for item in &diff.deletes {
        push(Action::Remove, item, &item.before);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff;
    use crate::records::ZoneContents;

    #[test]
    fn rows_for_web_panels() {
        let plan = chatmail_dns_world::plan("chat.example.org");
        let rows = rows(&plan, "example.org");
        assert_eq!(rows.len(), plan.ready_records().len());
        let mx = rows.iter().find(|r| r.rtype == "MX").unwrap();
        assert_eq!(mx.name, "chat");
        assert_eq!(mx.priority, Some(10));
        assert_eq!(mx.plain, "chat.example.org");
        assert_eq!(mx.value, "10 chat.example.org.");
        let dkim = rows
            .iter()
            .find(|r| r.name == "opendkim._domainkey.chat")
            .unwrap();
        assert!(
            dkim.value.starts_with("\"v=DKIM1;k=rsa;p="),
            "{}",
            dkim.value
        );
        assert!(dkim.value.contains("\" \""), "split into strings");
        assert!(!dkim.plain.contains('"'));
        let srv = rows
            .iter()
            .find(|r| r.name == "_submission._tcp.chat")
            .unwrap();
        assert_eq!(srv.plain, "1 587 chat.example.org");
        let apex = super::rows(&plan, "chat.example.org");
        assert_eq!(apex.iter().find(|r| r.rtype == "MX").unwrap().name, "@");
        assert_eq!(relative_name("a.other.net", "example.org"), "a.other.net");
    }

    #[test]
    fn files_come_from_the_shared_export() {
        let plan = chatmail_dns_world::plan("chat.example.org");
        let text = records_file(&plan);
        assert!(text.contains("; Required DNS entries"));
        assert!(text.contains("chat.example.org."));
    }

    #[test]
    fn steps_from_a_diff() {
        let plan = chatmail_dns_world::plan("chat.example.org");
        let d = diff(&plan.ready_records(), &ZoneContents::default(), &[]);
        let steps = steps(&d, "example.org");
        assert_eq!(steps.len(), plan.ready_records().len());
        assert!(steps.iter().all(|s| s.action == Action::Add));
        let dkim = steps
            .iter()
            .find(|s| s.row.name == "opendkim._domainkey.chat")
            .unwrap();
        let want = plan
            .ready_records()
            .into_iter()
            .find(|r| r.name.starts_with("opendkim."))
            .unwrap();
        assert_eq!(dkim.row.value, want.data.presentation());
    }
}
