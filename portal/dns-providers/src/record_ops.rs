//! RRset-level [`Change`]s for APIs that only know single records with ids (Cloudflare,
//! DigitalOcean, Linode, Porkbun, OVH): which records to create, update and delete.
//!
//! The plan is computed from the records the API holds *now* (read at the start of every
//! `apply`), never from an earlier plan, so a job that crashed half-way simply runs again
//! and converges: a value already written is not written twice, and a value present twice
//! (from any earlier mishap) is deleted down to one. Rules:
//!
//! * `Put`: keep one record per wanted value (its TTL corrected if needed); reuse records
//!   that are no longer wanted for missing values (an update keeps the name answering all
//!   the time); create what is still missing; delete the rest (and duplicates).
//! * `Remove`: delete every record of the name and type.
//! * `Merge`: delete the values to remove and duplicates; create the values to add that
//!   are missing, with the TTL the remaining records have (or the change's TTL).
//!
//! Within one change the order is updates, creates, deletes for `Put` (an address never
//! disappears on the way) and deletes before creates for `Merge` (two SPF policies never
//! stand side by side). Changes are handled in the order given; the diff puts removals
//! first, so an alias replaces what was in its way.

use async_trait::async_trait;
use chatmail_shared::{DnsRecord, RecordData};

use crate::error::ProviderError;
use crate::provider::{validate, Change};
use crate::records::{normalize_name, value_key, ZoneContents};

/// One record as a per-record API holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRecord {
    /// The API's id for it.
    pub id: String,
    /// Owner name, absolute, lowercase, without the trailing dot.
    pub name: String,
    /// Type mnemonic, uppercase.
    pub rtype: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Typed data, or presentation text for types the portal does not write (or values
    /// that do not parse).
    pub content: Content,
}

/// A record's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A value of one of the types the portal writes.
    Data(RecordData),
    /// Anything else, in presentation form.
    Other(String),
}

impl ApiRecord {
    /// The key the value compares by ([`value_key`], or the text).
    pub fn key(&self) -> String {
        match &self.content {
            Content::Data(d) => value_key(d),
            Content::Other(s) => s.clone(),
        }
    }
}

/// Adds API records to zone contents (SOA skipped, other types kept as
/// [`crate::OtherRecord`]s).
pub fn contents(records: &[ApiRecord]) -> ZoneContents {
    let mut out = ZoneContents::default();
    for r in records {
        match &r.content {
            Content::Data(d) => out.records.push(DnsRecord {
                name: r.name.clone(),
                ttl: r.ttl,
                data: d.clone(),
            }),
            Content::Other(text) => out.push_presentation(&r.name, r.ttl, &r.rtype, text),
        }
    }
    out
}

/// One request to a per-record API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create a record.
    Create {
        /// Owner name.
        name: String,
        /// TTL (already clamped to what the provider accepts).
        ttl: u32,
        /// The value.
        value: RecordData,
    },
    /// Overwrite the record `id` (name and type stay).
    Update {
        /// The record's id.
        id: String,
        /// Owner name.
        name: String,
        /// TTL (already clamped).
        ttl: u32,
        /// The new value.
        value: RecordData,
    },
    /// Delete the record `id`.
    Delete {
        /// The record's id.
        id: String,
    },
}

/// The operations that make `current` (every record of the change's name and type)
/// what `change` asks. `clamp` maps a TTL to one the provider accepts.
pub fn plan(change: &Change, current: &[ApiRecord], clamp: &dyn Fn(u32) -> u32) -> Vec<Op> {
    let name = normalize_name(change.name());
    let rtype = change.rtype().to_ascii_uppercase();
    let here: Vec<&ApiRecord> = current
        .iter()
        .filter(|r| r.name == name && r.rtype == rtype)
        .collect();
    let mut ops = Vec::new();
    match change {
        Change::Remove { .. } => {
            ops.extend(here.iter().map(|r| Op::Delete { id: r.id.clone() }));
        }
        Change::Put { ttl, values, .. } => {
            let ttl = clamp(*ttl);
            let mut wanted: Vec<&RecordData> = Vec::new();
            for v in values {
                if !wanted.iter().any(|w| value_key(w) == value_key(v)) {
                    wanted.push(v);
                }
            }
            let mut matched = vec![false; wanted.len()];
            let mut spare: Vec<&ApiRecord> = Vec::new();
            let mut updates = Vec::new();
            for r in &here {
                match wanted
                    .iter()
                    .enumerate()
                    .find(|(i, w)| !matched[*i] && value_key(w) == r.key())
                {
                    Some((i, w)) => {
                        matched[i] = true;
                        if r.ttl != ttl {
                            updates.push(Op::Update {
                                id: r.id.clone(),
                                name: name.clone(),
                                ttl,
                                value: (*w).clone(),
                            });
                        }
                    }
                    None => spare.push(r),
                }
            }
            let mut creates = Vec::new();
            let mut spare = spare.into_iter();
            for (i, w) in wanted.iter().enumerate() {
                if matched[i] {
                    continue;
                }
                match spare.next() {
                    Some(r) => updates.push(Op::Update {
                        id: r.id.clone(),
                        name: name.clone(),
                        ttl,
                        value: (*w).clone(),
                    }),
                    None => creates.push(Op::Create {
                        name: name.clone(),
                        ttl,
                        value: (*w).clone(),
                    }),
                }
            }
            ops.extend(updates);
            ops.extend(creates);
            ops.extend(spare.map(|r| Op::Delete { id: r.id.clone() }));
        }
        Change::Merge {
            ttl, add, remove, ..
        } => {
            let remove: Vec<String> = remove.iter().map(value_key).collect();
            let mut kept: Vec<&ApiRecord> = Vec::new();
            for r in &here {
                let k = r.key();
                if remove.contains(&k) || kept.iter().any(|c| c.key() == k) {
                    ops.push(Op::Delete { id: r.id.clone() });
                } else {
                    kept.push(r);
                }
            }
            let ttl = kept.first().map_or_else(|| clamp(*ttl), |r| r.ttl);
            let mut added: Vec<String> = Vec::new();
            for v in add {
                let k = value_key(v);
                if kept.iter().any(|r| r.key() == k) || added.contains(&k) {
                    continue;
                }
                added.push(k);
                ops.push(Op::Create {
                    name: name.clone(),
                    ttl,
                    value: v.clone(),
                });
            }
        }
    }
    ops
}

/// The plan for a whole change list over the zone's records.
pub fn plan_all(changes: &[Change], current: &[ApiRecord], clamp: &dyn Fn(u32) -> u32) -> Vec<Op> {
    changes
        .iter()
        .flat_map(|c| plan(c, current, clamp))
        .collect()
}

/// A per-record API, for [`apply`] and [`read`].
#[async_trait]
pub trait RecordApi: Send + Sync {
    /// How the API addresses a zone (its id, or its name).
    type Zone: Send + Sync;
    /// Finds the zone, or [`ProviderError::ZoneNotFound`].
    async fn zone(&self, zone: &str) -> Result<Self::Zone, ProviderError>;
    /// Every record of the zone (all pages).
    async fn records(&self, zone: &Self::Zone) -> Result<Vec<ApiRecord>, ProviderError>;
    /// Creates a record.
    async fn create(
        &self,
        zone: &Self::Zone,
        name: &str,
        ttl: u32,
        value: &RecordData,
    ) -> Result<(), ProviderError>;
    /// Overwrites a record.
    async fn update(
        &self,
        zone: &Self::Zone,
        id: &str,
        name: &str,
        ttl: u32,
        value: &RecordData,
    ) -> Result<(), ProviderError>;
    /// Deletes a record; one that is already gone is not an error.
    async fn delete(&self, zone: &Self::Zone, id: &str) -> Result<(), ProviderError>;
    /// Called after the operations (OVH publishes the zone here).
    async fn finish(&self, _zone: &Self::Zone) -> Result<(), ProviderError> {
        Ok(())
    }
    /// The TTL the provider will store for `ttl`.
    fn clamp_ttl(&self, ttl: u32) -> u32;
}

/// Reads a zone through a per-record API.
pub async fn read<A: RecordApi>(api: &A, zone: &str) -> Result<ZoneContents, ProviderError> {
    let z = api.zone(zone).await?;
    Ok(contents(&api.records(&z).await?))
}

/// Applies `changes` through a per-record API, one request per operation.
pub async fn apply<A: RecordApi>(
    api: &A,
    zone: &str,
    changes: &[Change],
) -> Result<(), ProviderError> {
    validate(zone, changes)?;
    if changes.is_empty() {
        return Ok(());
    }
    let z = api.zone(zone).await?;
    let current = api.records(&z).await?;
    let ops = plan_all(changes, &current, &|t| api.clamp_ttl(t));
    for op in &ops {
        match op {
            Op::Create { name, ttl, value } => api.create(&z, name, *ttl, value).await?,
            Op::Update {
                id,
                name,
                ttl,
                value,
            } => api.update(&z, id, name, *ttl, value).await?,
            Op::Delete { id } => api.delete(&z, id).await?,
        }
    }
    if !ops.is_empty() {
        api.finish(&z).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatmail_shared::dns_plan::TxtStrings;

    fn a(last: u8) -> RecordData {
        RecordData::A(std::net::Ipv4Addr::new(192, 0, 2, last))
    }
    fn t(s: &str) -> RecordData {
        RecordData::Txt(TxtStrings::split(s))
    }
    fn rec(id: &str, ttl: u32, d: RecordData) -> ApiRecord {
        ApiRecord {
            id: id.into(),
            name: "x.org".into(),
            rtype: d.rtype().into(),
            ttl,
            content: Content::Data(d),
        }
    }
    fn same(t: u32) -> u32 {
        t.max(60)
    }

    #[test]
    fn put_reuses_and_dedups() {
        let cur = vec![
            rec("1", 300, a(1)),
            rec("2", 300, a(2)),
            rec("3", 300, a(2)),
        ];
        let put = Change::Put {
            name: "X.org".into(),
            rtype: "A".into(),
            ttl: 300,
            values: vec![a(2), a(3)],
        };
        let ops = plan(&put, &cur, &same);
        assert_eq!(
            ops,
            [
                Op::Update {
                    id: "1".into(),
                    name: "x.org".into(),
                    ttl: 300,
                    value: a(3)
                },
                Op::Delete { id: "3".into() },
            ]
        );
        // Already right: nothing.
        let done = vec![rec("1", 300, a(3)), rec("2", 300, a(2))];
        assert!(plan(&put, &done, &same).is_empty());
        // TTL differs: updated in place; TTL clamped.
        let low = Change::Put {
            name: "x.org".into(),
            rtype: "A".into(),
            ttl: 5,
            values: vec![a(2)],
        };
        assert_eq!(
            plan(&low, &[rec("2", 300, a(2))], &same),
            [Op::Update {
                id: "2".into(),
                name: "x.org".into(),
                ttl: 60,
                value: a(2)
            }]
        );
        // Empty: created.
        assert_eq!(plan(&put, &[], &same).len(), 2);
    }

    #[test]
    fn merge_and_remove() {
        let cur = vec![
            rec("1", 900, t("google-site-verification=x")),
            rec("2", 900, t("v=spf1 mx -all")),
            rec("3", 900, t("google-site-verification=x")),
        ];
        let m = Change::Merge {
            name: "x.org".into(),
            rtype: "TXT".into(),
            ttl: 3600,
            add: vec![t("v=spf1 a ~all"), t("google-site-verification=x")],
            remove: vec![t("v=spf1 mx -all")],
        };
        assert_eq!(
            plan(&m, &cur, &same),
            [
                Op::Delete { id: "2".into() },
                Op::Delete { id: "3".into() },
                Op::Create {
                    name: "x.org".into(),
                    ttl: 900,
                    value: t("v=spf1 a ~all")
                },
            ]
        );
        let r = Change::Remove {
            name: "x.org".into(),
            rtype: "TXT".into(),
        };
        assert_eq!(plan(&r, &cur, &same).len(), 3);
        let other_type = Change::Remove {
            name: "x.org".into(),
            rtype: "A".into(),
        };
        assert!(plan(&other_type, &cur, &same).is_empty());
    }
}
