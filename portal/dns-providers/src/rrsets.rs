//! [`Change`]s for APIs that write whole RRsets (Hetzner Cloud, deSEC, Gandi LiveDNS):
//! what each RRset must become, from the RRsets the API holds now.
//!
//! Values come and go in the API's own text (presentation form for all three), so foreign
//! values a [`Change::Merge`] keeps are written back exactly as they were read. An RRset
//! that already is what the change asks for is left alone, so a repeated `apply` sends
//! nothing; a `Remove` of an absent RRset sends nothing either.

use chatmail_shared::RecordData;

use crate::provider::{merge_plan, Change};
use crate::records::{normalize_name, parse_rdata, value_key, ZoneContents};

/// One RRset as an RRset API holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrSet {
    /// Owner name, absolute, lowercase, without the trailing dot.
    pub name: String,
    /// Type mnemonic, uppercase.
    pub rtype: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// The values, in the API's text.
    pub values: Vec<String>,
}

impl RrSet {
    fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.values.iter().map(|v| key(&self.rtype, v)).collect();
        k.sort();
        k.dedup();
        k
    }
}

fn key(rtype: &str, text: &str) -> String {
    parse_rdata(rtype, text)
        .map(|d| value_key(&d))
        .unwrap_or_else(|_| text.to_string())
}

/// Zone contents from RRsets (SOA and DNSSEC bookkeeping left out).
pub fn contents(sets: &[RrSet]) -> ZoneContents {
    let mut out = ZoneContents::default();
    for s in sets {
        for v in &s.values {
            out.push_presentation(&s.name, s.ttl, &s.rtype, v);
        }
    }
    out
}

/// What one RRset must become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RrSetOp {
    /// Make the RRset exactly these values with this TTL.
    Set {
        /// Owner name.
        name: String,
        /// Type mnemonic.
        rtype: String,
        /// TTL (already clamped).
        ttl: u32,
        /// The values, in the API's text.
        values: Vec<String>,
        /// The RRset as it is now, if it exists.
        before: Option<RrSet>,
    },
    /// Delete the RRset (it exists).
    Delete {
        /// Owner name.
        name: String,
        /// Type mnemonic.
        rtype: String,
    },
}

/// What `change` makes of `current` (all RRsets of the zone), or `None` if the RRset is
/// already right. `render` writes a value in the API's text; `clamp` maps a TTL to one the
/// provider accepts.
pub fn plan(
    change: &Change,
    current: &[RrSet],
    render: &dyn Fn(&RecordData) -> String,
    clamp: &dyn Fn(u32) -> u32,
) -> Option<RrSetOp> {
    let name = normalize_name(change.name());
    let rtype = change.rtype().to_ascii_uppercase();
    let before = current
        .iter()
        .find(|s| s.name == name && s.rtype == rtype)
        .cloned();
    let set = |ttl: u32, values: Vec<String>, before: Option<RrSet>| {
        if let Some(b) = &before {
            let mut want: Vec<String> = values.iter().map(|v| key(&rtype, v)).collect();
            want.sort();
            want.dedup();
            if b.ttl == ttl && b.keys() == want && b.values.len() == want.len() {
                return None;
            }
        }
        Some(RrSetOp::Set {
            name: name.clone(),
            rtype: rtype.clone(),
            ttl,
            values,
            before,
        })
    };
    match change {
        Change::Remove { .. } => before.map(|_| RrSetOp::Delete {
            name: name.clone(),
            rtype: rtype.clone(),
        }),
        Change::Put { ttl, values, .. } => {
            let mut out: Vec<String> = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            for v in values {
                let k = value_key(v);
                if !seen.contains(&k) {
                    seen.push(k);
                    out.push(render(v));
                }
            }
            set(clamp(*ttl), out, before)
        }
        Change::Merge {
            ttl, add, remove, ..
        } => {
            let keyed: Vec<(String, String)> = before
                .as_ref()
                .map(|b| {
                    let mut seen: Vec<String> = Vec::new();
                    b.values
                        .iter()
                        .filter_map(|v| {
                            let k = key(&rtype, v);
                            if seen.contains(&k) {
                                None
                            } else {
                                seen.push(k.clone());
                                Some((k, v.clone()))
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let (kept, added) = merge_plan(keyed, add, remove);
            if kept.is_empty() && added.is_empty() {
                return before.map(|_| RrSetOp::Delete {
                    name: name.clone(),
                    rtype: rtype.clone(),
                });
            }
            let ttl = match &before {
                Some(b) if !kept.is_empty() => b.ttl,
                _ => clamp(*ttl),
            };
            let mut values = kept;
            values.extend(added.iter().map(render));
            set(ttl, values, before)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatmail_shared::dns_plan::TxtStrings;

    fn t(s: &str) -> RecordData {
        RecordData::Txt(TxtStrings::split(s))
    }

    #[test]
    fn plans() {
        let render = |d: &RecordData| d.presentation();
        let clamp = |t: u32| t.max(300);
        let cur = vec![RrSet {
            name: "x.org".into(),
            rtype: "TXT".into(),
            ttl: 600,
            values: vec!["\"keep me\"".into(), "\"v=spf1 mx -all\"".into()],
        }];
        let m = Change::Merge {
            name: "x.org".into(),
            rtype: "TXT".into(),
            ttl: 3600,
            add: vec![t("v=spf1 a ~all")],
            remove: vec![t("v=spf1 mx -all")],
        };
        let op = plan(&m, &cur, &render, &clamp).unwrap();
        let RrSetOp::Set { ttl, values, .. } = &op else {
            panic!("{op:?}")
        };
        assert_eq!(*ttl, 600);
        assert_eq!(values, &["\"keep me\"", "\"v=spf1 a ~all\""]);
        let done = vec![RrSet {
            name: "x.org".into(),
            rtype: "TXT".into(),
            ttl: 600,
            values: values.clone(),
        }];
        assert_eq!(plan(&m, &done, &render, &clamp), None);
        let put = Change::Put {
            name: "x.org".into(),
            rtype: "A".into(),
            ttl: 60,
            values: vec![RecordData::A([192, 0, 2, 1].into())],
        };
        assert!(matches!(
            plan(&put, &[], &render, &clamp),
            Some(RrSetOp::Set {
                ttl: 300,
                before: None,
                ..
            })
        ));
        let rm = Change::Remove {
            name: "x.org".into(),
            rtype: "A".into(),
        };
        assert_eq!(plan(&rm, &cur, &render, &clamp), None);
    }
}
