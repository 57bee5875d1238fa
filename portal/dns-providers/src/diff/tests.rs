use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use chatmail_shared::dns_plan::TxtStrings;
use proptest::prelude::*;

use super::*;
use crate::provider::{merge_plan, validate};
use crate::records::parse_rdata;

const DOMAIN: &str = "chat.example.org";

fn plan_records() -> Vec<DnsRecord> {
    chatmail_dns_world::plan(DOMAIN).ready_records()
}

fn rec(name: &str, rtype: &str, value: &str) -> DnsRecord {
    DnsRecord {
        name: name.to_string(),
        ttl: 3600,
        data: parse_rdata(rtype, value).unwrap(),
    }
}

fn txt(s: &str) -> RecordData {
    RecordData::Txt(TxtStrings::split(s))
}

fn none() -> BTreeSet<String> {
    BTreeSet::new()
}

fn ids(d: &Diff) -> BTreeSet<String> {
    d.conflicts.iter().map(|c| c.id.clone()).collect()
}

/// Applies changes as a provider would (the semantics documented on [`Change`]).
fn simulate(zone: &mut ZoneContents, changes: &[Change]) {
    for change in changes {
        let name = normalize_name(change.name());
        let rtype = change.rtype().to_string();
        let at = |r: &DnsRecord| normalize_name(&r.name) == name && r.data.rtype() == rtype;
        match change {
            Change::Remove { .. } => {
                zone.records.retain(|r| !at(r));
                zone.other.retain(|r| !(r.name == name && r.rtype == rtype));
            }
            Change::Put { ttl, values, .. } => {
                zone.records.retain(|r| !at(r));
                for v in values {
                    zone.records.push(DnsRecord {
                        name: name.clone(),
                        ttl: *ttl,
                        data: v.clone(),
                    });
                }
            }
            Change::Merge {
                ttl, add, remove, ..
            } => {
                let current: Vec<(String, DnsRecord)> = zone
                    .records
                    .iter()
                    .filter(|r| at(r))
                    .map(|r| (value_key(&r.data), r.clone()))
                    .collect();
                zone.records.retain(|r| !at(r));
                let (kept, added) = merge_plan(current, add, remove);
                let ttl = kept.first().map_or(*ttl, |r| r.ttl);
                zone.records.extend(kept);
                for v in added {
                    zone.records.push(DnsRecord {
                        name: name.clone(),
                        ttl,
                        data: v,
                    });
                }
            }
        }
    }
}

fn keys_at(zone: &ZoneContents, name: &str, rtype: &str) -> Vec<String> {
    let mut v: Vec<String> = zone
        .records
        .iter()
        .filter(|r| r.name == name && r.data.rtype() == rtype)
        .map(|r| value_key(&r.data))
        .collect();
    v.sort();
    v
}

fn foreign_zone() -> ZoneContents {
    ZoneContents {
        records: vec![
            rec(DOMAIN, "MX", "10 mail.example.net."),
            rec(&format!("www.{DOMAIN}"), "CNAME", "example.org."),
            rec(DOMAIN, "TXT", "\"google-site-verification=abc\""),
            rec(DOMAIN, "TXT", "\"v=spf1 include:_spf.example.net ~all\""),
            rec(DOMAIN, "CAA", "0 issue \"sectigo.com\""),
            rec("example.org", "A", "198.51.100.7"),
        ],
        other: vec![],
    }
}

#[test]
fn empty_zone_creates_everything() {
    let desired = plan_records();
    let d = diff(&desired, &ZoneContents::default(), &[]);
    assert!(d.conflicts.is_empty() && d.updates.is_empty() && d.deletes.is_empty());
    assert!(d.unchanged.is_empty());
    assert_eq!(d.creates.len(), desired.len());
    assert!(d.creates.iter().all(|i| i.ours && i.before.is_empty()));
    let mx = d.creates.iter().find(|i| i.rtype == "MX").unwrap();
    assert_eq!(
        mx.description,
        "Add an MX record for chat.example.org pointing to chat.example.org (preference 10)."
    );
    let changes = d.changes(&none());
    validate("example.org", &changes).unwrap();
    let owned = d.ownership_after(&none());
    assert_eq!(owned.len(), desired.len());

    let mut zone = ZoneContents::default();
    simulate(&mut zone, &changes);
    let again = diff(&desired, &zone, &owned);
    assert!(again.is_empty(), "{again:#?}");
    assert_eq!(again.unchanged.len(), desired.len());
    assert!(again.unchanged.iter().all(|i| i.ours));
    assert!(again.changes(&none()).is_empty());
}

#[test]
fn foreign_records_make_conflicts_and_stay() {
    let desired = plan_records();
    let zone = foreign_zone();
    let d = diff(&desired, &zone, &[]);
    let kinds: BTreeSet<ConflictKind> = d.conflicts.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ConflictKind::ForeignMx,
            ConflictKind::ForeignAlias,
            ConflictKind::AnotherSpf
        ]
        .into_iter()
        .collect(),
        "{:#?}",
        d.conflicts
    );
    let mx = d
        .conflicts
        .iter()
        .find(|c| c.kind == ConflictKind::ForeignMx)
        .unwrap();
    assert_eq!(mx.existing, ["MX 10 mail.example.net."]);
    assert_eq!(mx.wanted, ["MX 10 chat.example.org."]);
    assert!(mx
        .description
        .starts_with("Replace MX 10 mail.example.net."));
    assert!(mx.problem.contains("not made by this portal"));

    let changes = d.changes(&none());
    validate("example.org", &changes).unwrap();
    assert!(!changes.iter().any(|c| c.rtype() == "MX"));
    assert!(!changes.iter().any(|c| c.name() == format!("www.{DOMAIN}")));
    let mut after = zone.clone();
    simulate(&mut after, &changes);
    for r in &zone.records {
        assert!(
            after.records.iter().any(|a| a.name == r.name
                && a.data.rtype() == r.data.rtype()
                && value_key(&a.data) == value_key(&r.data)),
            "foreign {r:?} was touched"
        );
    }
    // The relay's own SPF is not added beside the other one.
    assert_eq!(
        keys_at(&after, DOMAIN, "TXT"),
        [
            "google-site-verification=abc",
            "v=spf1 include:_spf.example.net ~all"
        ]
    );
    // CAA of another CA stays; the relay's is added beside it.
    assert_eq!(keys_at(&after, DOMAIN, "CAA").len(), 2);

    // Again: nothing more to do, the same conflicts.
    let owned = d.ownership_after(&none());
    let again = diff(&desired, &after, &owned);
    assert!(!again.has_changes(), "{again:#?}");
    assert_eq!(ids(&again), ids(&d));
}

#[test]
fn confirmed_conflicts_are_replaced() {
    let desired = plan_records();
    let zone = foreign_zone();
    let d = diff(&desired, &zone, &[]);
    let all = ids(&d);
    let changes = d.changes(&all);
    validate("example.org", &changes).unwrap();
    let mut after = zone.clone();
    simulate(&mut after, &changes);
    assert_eq!(keys_at(&after, DOMAIN, "MX"), ["10 chat.example.org"]);
    assert_eq!(
        keys_at(&after, &format!("www.{DOMAIN}"), "CNAME"),
        ["chat.example.org"]
    );
    assert_eq!(
        keys_at(&after, DOMAIN, "TXT"),
        ["google-site-verification=abc", "v=spf1 a ~all"]
    );
    assert_eq!(keys_at(&after, "example.org", "A"), ["198.51.100.7"]);
    let owned = d.ownership_after(&all);
    assert_eq!(owned.len(), desired.len());
    let again = diff(&desired, &after, &owned);
    assert!(again.is_empty(), "{again:#?}");

    // Only one confirmed: only that one happens.
    let mx_id = d
        .conflicts
        .iter()
        .find(|c| c.kind == ConflictKind::ForeignMx)
        .unwrap()
        .id
        .clone();
    let one: BTreeSet<String> = [mx_id].into_iter().collect();
    let mut partial = zone.clone();
    simulate(&mut partial, &d.changes(&one));
    assert_eq!(keys_at(&partial, DOMAIN, "MX"), ["10 chat.example.org"]);
    assert_eq!(
        keys_at(&partial, &format!("www.{DOMAIN}"), "CNAME"),
        ["example.org"]
    );
}

#[test]
fn present_foreign_values_are_unchanged_and_not_claimed() {
    let desired = plan_records();
    let zone = ZoneContents::from(vec![rec(DOMAIN, "MX", "10 Chat.Example.org.")]);
    let d = diff(&desired, &zone, &[]);
    let mx = d.unchanged.iter().find(|i| i.rtype == "MX").unwrap();
    assert!(!mx.ours);
    assert!(mx.description.contains("not made by this portal"));
    let owned = d.ownership_after(&none());
    assert!(!owned.iter().any(|o| o.rtype == "MX"));
    // Removing the relay later leaves it alone.
    let mut after = zone.clone();
    simulate(&mut after, &d.changes(&none()));
    let gone = diff(&[], &after, &owned);
    let mut cleaned = after.clone();
    simulate(&mut cleaned, &gone.changes(&none()));
    assert_eq!(cleaned.records, zone.records);
}

#[test]
fn ip_change_only_touches_addresses() {
    let desired = plan_records();
    let d = diff(&desired, &ZoneContents::default(), &[]);
    let mut zone = ZoneContents::default();
    simulate(&mut zone, &d.changes(&none()));
    let owned = d.ownership_after(&none());

    let new_ip = Ipv4Addr::new(192, 0, 2, 99);
    let moved: Vec<DnsRecord> = desired
        .iter()
        .map(|r| match r.data {
            RecordData::A(_) => DnsRecord {
                data: RecordData::A(new_ip),
                ..r.clone()
            },
            _ => r.clone(),
        })
        .collect();
    let d2 = diff(&moved, &zone, &owned);
    assert!(d2.creates.is_empty() && d2.deletes.is_empty() && d2.conflicts.is_empty());
    assert_eq!(d2.updates.len(), 1);
    assert_eq!(d2.updates[0].rtype, "A");
    assert_eq!(
        d2.updates[0].description,
        "Change the A record for chat.example.org from 192.0.2.10 to 192.0.2.99."
    );
    let changes = d2.changes(&none());
    assert_eq!(changes.len(), 1);
    assert!(matches!(&changes[0], Change::Put { rtype, .. } if rtype == "A"));
    let owned2 = d2.ownership_after(&none());
    assert!(owned2
        .iter()
        .any(|o| o.rtype == "A" && o.value == "192.0.2.99"));
    assert!(!owned2.iter().any(|o| o.value == "192.0.2.10"));
}

#[test]
fn removing_the_relay_removes_only_ours() {
    let desired = plan_records();
    let zone = foreign_zone();
    let d = diff(&desired, &zone, &[]);
    let mut after = zone.clone();
    simulate(&mut after, &d.changes(&none()));
    let owned = d.ownership_after(&none());

    let gone = diff(&[], &after, &owned);
    assert!(gone.creates.is_empty() && gone.updates.is_empty() && gone.conflicts.is_empty());
    assert!(gone.deletes.iter().all(|i| i.ours));
    assert!(gone.deletes[0]
        .description
        .ends_with("which this portal added earlier."));
    let mut cleaned = after.clone();
    simulate(&mut cleaned, &gone.changes(&none()));
    let mut expect = zone.records.clone();
    let mut got = cleaned.records.clone();
    let k = |r: &DnsRecord| (r.name.clone(), r.data.rtype(), value_key(&r.data));
    expect.sort_by_key(k);
    got.sort_by_key(k);
    assert_eq!(got, expect);
    assert!(gone.ownership_after(&none()).is_empty());
}

#[test]
fn shared_address_set_keeps_foreign_value_on_removal() {
    let ours = rec(DOMAIN, "A", "192.0.2.10");
    let theirs = rec(DOMAIN, "A", "198.51.100.1");
    let zone = ZoneContents::from(vec![ours.clone(), theirs.clone()]);
    let d = diff(&[], &zone, &[OwnedValue::of(&ours)]);
    let changes = d.changes(&none());
    assert_eq!(changes.len(), 1);
    assert!(
        matches!(&changes[0], Change::Merge { remove, add, .. } if add.is_empty() && remove.len() == 1)
    );
    let mut after = zone.clone();
    simulate(&mut after, &changes);
    assert_eq!(after.records, vec![theirs]);
}

#[test]
fn extra_foreign_address_is_a_conflict() {
    let ours = rec(DOMAIN, "A", "192.0.2.10");
    let theirs = rec(DOMAIN, "A", "198.51.100.1");
    let zone = ZoneContents::from(vec![ours.clone(), theirs]);
    let d = diff(std::slice::from_ref(&ours), &zone, &[]);
    assert_eq!(d.conflicts.len(), 1);
    assert_eq!(d.conflicts[0].kind, ConflictKind::ForeignAddress);
    assert!(d.changes(&none()).is_empty());
    let mut after = zone.clone();
    simulate(&mut after, &d.changes(&ids(&d)));
    assert_eq!(after.records, vec![ours]);
}

#[test]
fn alias_rules() {
    let www = format!("www.{DOMAIN}");
    let want_alias = rec(&www, "CNAME", "chat.example.org.");
    // Foreign A and TLSA where the alias goes: one conflict naming both.
    let zone = ZoneContents {
        records: vec![rec(&www, "A", "198.51.100.1")],
        other: vec![crate::records::OtherRecord {
            name: www.clone(),
            ttl: 300,
            rtype: "TLSA".into(),
            value: "3 1 1 abcd".into(),
        }],
    };
    let d = diff(std::slice::from_ref(&want_alias), &zone, &[]);
    assert_eq!(d.conflicts.len(), 1);
    let c = &d.conflicts[0];
    assert_eq!(c.kind, ConflictKind::DataAtAlias);
    assert_eq!(c.rtype, "A, TLSA");
    assert_eq!(c.existing, ["A 198.51.100.1", "TLSA 3 1 1 abcd"]);
    assert!(d.changes(&none()).is_empty());
    let changes = d.changes(&ids(&d));
    validate("example.org", &changes).unwrap();
    assert_eq!(changes.len(), 3);
    assert!(matches!(changes[0], Change::Remove { .. }));
    assert!(matches!(changes[1], Change::Remove { .. }));
    assert!(matches!(&changes[2], Change::Put { rtype, .. } if rtype == "CNAME"));

    // A foreign alias where the relay's records go.
    let zone = ZoneContents::from(vec![rec(DOMAIN, "CNAME", "elsewhere.example.net.")]);
    let desired = plan_records();
    let d = diff(&desired, &zone, &[]);
    let c = d
        .conflicts
        .iter()
        .find(|c| c.kind == ConflictKind::AliasInTheWay)
        .unwrap();
    assert!(c.wanted.iter().any(|w| w.starts_with("MX ")));
    assert!(c.wanted.iter().any(|w| w == "TXT \"v=spf1 a ~all\""));
    assert!(
        d.creates.iter().all(|i| i.name != DOMAIN),
        "blocked records are not listed as creates"
    );
    assert!(!d.changes(&none()).iter().any(|c| c.name() == DOMAIN));
    let mut after = zone.clone();
    let all = d.changes(&ids(&d));
    validate("example.org", &all).unwrap();
    assert!(matches!(&all[0], Change::Remove { rtype, .. } if rtype == "CNAME"));
    simulate(&mut after, &all);
    let again = diff(&desired, &after, &d.ownership_after(&ids(&d)));
    assert!(again.is_empty(), "{again:#?}");

    // The portal's own records give way to its alias, and the other way round.
    let old_a = rec(&www, "A", "192.0.2.10");
    let zone = ZoneContents::from(vec![old_a.clone()]);
    let d = diff(
        std::slice::from_ref(&want_alias),
        &zone,
        &[OwnedValue::of(&old_a)],
    );
    assert!(d.conflicts.is_empty());
    assert_eq!(d.deletes.len(), 1);
    assert_eq!(d.creates.len(), 1);
    let zone = ZoneContents::from(vec![want_alias.clone()]);
    let d = diff(
        std::slice::from_ref(&old_a),
        &zone,
        &[OwnedValue::of(&want_alias)],
    );
    assert!(d.conflicts.is_empty());
    let changes = d.changes(&none());
    assert!(matches!(&changes[0], Change::Remove { rtype, .. } if rtype == "CNAME"));
    assert!(matches!(&changes[1], Change::Put { rtype, .. } if rtype == "A"));

    // A foreign alias with the right target is fine.
    let d = diff(std::slice::from_ref(&want_alias), &zone, &[]);
    assert!(d.is_empty());
    assert!(!d.unchanged[0].ours);
}

#[test]
fn txt_and_caa_kinds() {
    let dkim_name = format!("opendkim._domainkey.{DOMAIN}");
    let dmarc_name = format!("_dmarc.{DOMAIN}");
    let zone = ZoneContents::from(vec![
        rec(&dkim_name, "TXT", "\"k=rsa; p=OTHERKEY\""),
        rec(&dmarc_name, "TXT", "\"v=DMARC1; p=none\""),
        rec(&dmarc_name, "TXT", "\"unrelated\""),
        rec(DOMAIN, "CAA", "0 issue \"letsencrypt.org\""),
        rec(DOMAIN, "CAA", "0 iodef \"mailto:sec@example.org\""),
        rec(DOMAIN, "CAA", "0 issuewild \";\""),
    ]);
    let d = diff(&plan_records(), &zone, &[]);
    let by_name = |n: &str| {
        d.conflicts
            .iter()
            .filter(|c| c.name == n)
            .map(|c| (c.kind, c.existing.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by_name(&dkim_name),
        [(
            ConflictKind::AnotherTxt,
            vec!["TXT \"k=rsa; p=OTHERKEY\"".to_string()]
        )]
    );
    assert_eq!(
        by_name(&dmarc_name),
        [(
            ConflictKind::AnotherTxt,
            vec!["TXT \"v=DMARC1; p=none\"".to_string()]
        )]
    );
    assert_eq!(
        by_name(DOMAIN)
            .into_iter()
            .filter(|(k, _)| *k == ConflictKind::CaaSameIssuer)
            .collect::<Vec<_>>(),
        [(
            ConflictKind::CaaSameIssuer,
            vec!["CAA 0 issue \"letsencrypt.org\"".to_string()]
        )]
    );
    let mut after = zone.clone();
    simulate(&mut after, &d.changes(&ids(&d)));
    assert_eq!(
        keys_at(&after, &dmarc_name, "TXT"),
        ["unrelated", "v=DMARC1;p=reject;adkim=s;aspf=s"]
    );
    let caa = keys_at(&after, DOMAIN, "CAA");
    assert_eq!(caa.len(), 3, "{caa:?}");
    assert!(caa.iter().any(|v| v.starts_with("0 iodef")));
    assert!(caa.iter().any(|v| v.starts_with("0 issuewild")));
}

#[test]
fn rotated_dkim_key_is_an_update() {
    let name = format!("opendkim._domainkey.{DOMAIN}");
    let old = DnsRecord {
        name: name.clone(),
        ttl: 3600,
        data: txt("v=DKIM1; k=rsa; p=OLD"),
    };
    let new = DnsRecord {
        data: txt("v=DKIM1; k=rsa; p=NEW"),
        ..old.clone()
    };
    let zone = ZoneContents::from(vec![old.clone()]);
    let d = diff(std::slice::from_ref(&new), &zone, &[OwnedValue::of(&old)]);
    assert!(d.conflicts.is_empty() && d.creates.is_empty() && d.deletes.is_empty());
    assert_eq!(d.updates.len(), 1);
    let changes = d.changes(&none());
    assert_eq!(changes.len(), 1);
    let mut after = zone.clone();
    simulate(&mut after, &changes);
    assert_eq!(keys_at(&after, &name, "TXT"), ["v=DKIM1; k=rsa; p=NEW"]);
    assert_eq!(d.ownership_after(&none()), vec![OwnedValue::of(&new)]);
}

#[test]
fn ttl_change_only_for_our_records() {
    let mut ours = rec(DOMAIN, "AAAA", "2001:db8::10");
    ours.ttl = 300;
    let zone = ZoneContents::from(vec![ours.clone()]);
    let want = DnsRecord {
        ttl: 3600,
        data: RecordData::Aaaa(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
        name: DOMAIN.into(),
    };
    let d = diff(std::slice::from_ref(&want), &zone, &[OwnedValue::of(&ours)]);
    assert_eq!(d.updates.len(), 1);
    assert!(d.updates[0]
        .description
        .contains("from 300 to 3600 seconds"));
    let d = diff(std::slice::from_ref(&want), &zone, &[]);
    assert!(d.is_empty(), "a foreign record with the right value stays");
}

#[test]
fn conflict_ids_are_stable_and_follow_the_foreign_value() {
    let desired = plan_records();
    let a = diff(&desired, &foreign_zone(), &[]);
    let b = diff(&desired, &foreign_zone(), &[]);
    assert_eq!(ids(&a), ids(&b));
    let mut changed = foreign_zone();
    changed.records[0] = rec(DOMAIN, "MX", "20 mail.example.net.");
    let c = diff(&desired, &changed, &[]);
    let old_mx = a
        .conflicts
        .iter()
        .find(|c| c.kind == ConflictKind::ForeignMx)
        .unwrap();
    let new_mx = c
        .conflicts
        .iter()
        .find(|c| c.kind == ConflictKind::ForeignMx)
        .unwrap();
    assert_ne!(old_mx.id, new_mx.id);
    assert!(old_mx.id.starts_with("foreign-mx:chat.example.org:"));
    // A confirmation of the old record does not replace the new one.
    let stale: BTreeSet<String> = [old_mx.id.clone()].into_iter().collect();
    assert!(!c.changes(&stale).iter().any(|ch| ch.rtype() == "MX"));
}

#[test]
fn txt_split_does_not_matter() {
    let name = format!("opendkim._domainkey.{DOMAIN}");
    let key = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(380);
    let want = DnsRecord {
        name: name.clone(),
        ttl: 3600,
        data: txt(&key),
    };
    // Published by someone in 100-byte pieces.
    let pieces: Vec<String> = key
        .as_bytes()
        .chunks(100)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    let zone = ZoneContents::from(vec![rec(&name, "TXT", &pieces.join(" "))]);
    let d = diff(std::slice::from_ref(&want), &zone, &[]);
    assert!(d.is_empty(), "{d:#?}");
}

// ---------- properties ----------

const NAMES: [&str; 4] = [
    "ex.org",
    "www.ex.org",
    "_dmarc.ex.org",
    "sel._domainkey.ex.org",
];

fn value_strategy() -> impl Strategy<Value = RecordData> {
    prop_oneof![
        (1u8..4).prop_map(|i| RecordData::A(Ipv4Addr::new(192, 0, 2, i))),
        (1u16..3).prop_map(|p| RecordData::Mx {
            preference: p * 10,
            exchange: "ex.org".into()
        }),
        prop_oneof![Just("mx.ex.net"), Just("ex.org")].prop_map(|h| RecordData::Mx {
            preference: 10,
            exchange: h.into()
        }),
        prop_oneof![
            Just("v=spf1 a ~all"),
            Just("v=spf1 mx -all"),
            Just("v=DMARC1;p=reject"),
            Just("site-verification=1"),
            Just("k=rsa; p=XYZ"),
        ]
        .prop_map(txt),
        prop_oneof![Just("ex.org"), Just("other.ex.net")].prop_map(|t| RecordData::Cname(t.into())),
        prop_oneof![
            Just("letsencrypt.org"),
            Just("letsencrypt.org;accounturi=https://a/1"),
            Just("sectigo.com")
        ]
        .prop_map(|v| RecordData::Caa {
            flags: 0,
            tag: "issue".into(),
            value: v.into()
        }),
    ]
}

fn record_strategy() -> impl Strategy<Value = DnsRecord> {
    (
        0..NAMES.len(),
        value_strategy(),
        prop_oneof![Just(300u32), Just(3600u32)],
    )
        .prop_map(|(n, data, ttl)| DnsRecord {
            name: NAMES[n].to_string(),
            ttl,
            data,
        })
}

/// Desired records as a plan would have them: no alias beside other data, one TTL per set.
fn desired_strategy() -> impl Strategy<Value = Vec<DnsRecord>> {
    proptest::collection::vec(record_strategy(), 0..8).prop_map(|mut v| {
        let alias_names: BTreeSet<String> = v
            .iter()
            .filter(|r| r.data.rtype() == "CNAME")
            .map(|r| r.name.clone())
            .collect();
        v.retain(|r| !alias_names.contains(&r.name) || r.data.rtype() == "CNAME");
        // One alias per name.
        let mut seen = BTreeSet::new();
        v.retain(|r| r.data.rtype() != "CNAME" || seen.insert(r.name.clone()));
        for r in &mut v {
            r.ttl = 3600;
        }
        v
    })
}

/// A zone (possibly careless: an alias beside other data) and which of its values, plus
/// some absent ones, the portal owns.
fn world_strategy() -> impl Strategy<Value = (ZoneContents, Vec<OwnedValue>)> {
    (
        proptest::collection::vec((record_strategy(), any::<bool>()), 0..10),
        proptest::collection::vec(record_strategy(), 0..3),
    )
        .prop_map(|(current, absent)| {
            // One TTL per record set, as DNS has it.
            let mut records: Vec<DnsRecord> = Vec::new();
            let mut owned = Vec::new();
            for (mut r, ours) in current {
                if records.iter().any(|x| {
                    x.name == r.name
                        && x.data.rtype() == r.data.rtype()
                        && value_key(&x.data) == value_key(&r.data)
                }) {
                    continue;
                }
                if let Some(first) = records
                    .iter()
                    .find(|x| x.name == r.name && x.data.rtype() == r.data.rtype())
                {
                    r.ttl = first.ttl;
                }
                if ours {
                    owned.push(OwnedValue::of(&r));
                }
                records.push(r);
            }
            owned.extend(absent.iter().map(OwnedValue::of));
            (ZoneContents::from(records), owned)
        })
}

fn key_set(zone: &ZoneContents) -> BTreeSet<(String, String, String)> {
    zone.records
        .iter()
        .map(|r| {
            (
                normalize_name(&r.name),
                r.data.rtype().to_string(),
                value_key(&r.data),
            )
        })
        .collect()
}

fn owned_keys(owned: &[OwnedValue]) -> BTreeSet<(String, String, String)> {
    owned
        .iter()
        .map(|o| (o.name.clone(), o.rtype.clone(), o.key()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Without confirmations, no foreign value is removed or rewritten with another value.
    #[test]
    fn foreign_values_survive((zone, owned) in world_strategy(), desired in desired_strategy()) {
        let d = diff(&desired, &zone, &owned);
        let changes = d.changes(&BTreeSet::new());
        prop_assert!(validate("ex.org", &changes).is_ok(), "{:?}", validate("ex.org", &changes));
        let mut after = zone.clone();
        simulate(&mut after, &changes);
        let ours = owned_keys(&owned);
        let now = key_set(&after);
        for k in key_set(&zone) {
            if !ours.contains(&k) {
                prop_assert!(now.contains(&k), "foreign {:?} removed by {:?}", k, changes);
            }
        }
    }

    /// `deletes` and removals only ever concern owned values.
    #[test]
    fn deletes_are_owned((zone, owned) in world_strategy(), desired in desired_strategy()) {
        let d = diff(&desired, &zone, &owned);
        prop_assert!(d.deletes.iter().all(|i| i.ours));
        let ours = owned_keys(&owned);
        for item in &d.deletes {
            for v in &item.before {
                let key = parse_rdata(&item.rtype, v).map(|d| value_key(&d)).unwrap_or_else(|_| v.clone());
                let key = if item.rtype == "TXT" { v.trim_matches('"').to_string() } else { key };
                prop_assert!(ours.contains(&(item.name.clone(), item.rtype.clone(), key.clone())),
                    "deleting {:?} {} {}", item.name, item.rtype, key);
            }
        }
    }

    /// With every conflict confirmed, one apply reaches the plan: a second diff is empty
    /// and every desired value is present, nothing duplicated.
    #[test]
    fn confirmed_apply_converges((zone, owned) in world_strategy(), desired in desired_strategy()) {
        let d = diff(&desired, &zone, &owned);
        let all = ids(&d);
        let changes = d.changes(&all);
        prop_assert!(validate("ex.org", &changes).is_ok());
        let mut after = zone.clone();
        simulate(&mut after, &changes);
        let owned_after = d.ownership_after(&all);
        let again = diff(&desired, &after, &owned_after);
        prop_assert!(again.is_empty(), "not converged: {:#?}\nzone after: {:#?}", again, after);
        let now = key_set(&after);
        for r in &desired {
            prop_assert!(now.contains(&(normalize_name(&r.name), r.data.rtype().to_string(), value_key(&r.data))));
        }
        let total = after.records.len();
        let distinct = now.len();
        prop_assert_eq!(total, distinct);
    }

    /// Without confirmations the apply is stable: a second diff has nothing more to do,
    /// and reports the same conflicts.
    #[test]
    fn unconfirmed_apply_is_stable((zone, owned) in world_strategy(), desired in desired_strategy()) {
        let d = diff(&desired, &zone, &owned);
        let changes = d.changes(&BTreeSet::new());
        let mut after = zone.clone();
        simulate(&mut after, &changes);
        let owned_after: Vec<OwnedValue> = d.ownership_after(&BTreeSet::new());
        let again = diff(&desired, &after, &owned_after);
        prop_assert!(!again.has_changes(), "{:#?}", again);
        prop_assert_eq!(ids(&again), ids(&d));
    }

    /// Applying the same changes twice (a crash between apply and bookkeeping) gives the
    /// same zone as once.
    #[test]
    fn changes_are_idempotent((zone, owned) in world_strategy(), desired in desired_strategy(), confirm in any::<bool>()) {
        let d = diff(&desired, &zone, &owned);
        let confirmed = if confirm { ids(&d) } else { BTreeSet::new() };
        let changes = d.changes(&confirmed);
        let mut once = zone.clone();
        simulate(&mut once, &changes);
        let mut twice = once.clone();
        simulate(&mut twice, &changes);
        prop_assert_eq!(key_set(&once), key_set(&twice));
        prop_assert_eq!(once.records.len(), twice.records.len());
    }

    /// Removing the relay afterwards leaves exactly the foreign values.
    #[test]
    fn removal_restores_foreign((zone, _owned) in world_strategy(), desired in desired_strategy()) {
        // Start from a zone the portal has never touched.
        let d = diff(&desired, &zone, &[]);
        let mut after = zone.clone();
        simulate(&mut after, &d.changes(&BTreeSet::new()));
        let owned = d.ownership_after(&BTreeSet::new());
        let gone = diff(&[], &after, &owned);
        prop_assert!(gone.conflicts.is_empty() && gone.creates.is_empty());
        let mut cleaned = after.clone();
        simulate(&mut cleaned, &gone.changes(&BTreeSet::new()));
        prop_assert_eq!(key_set(&cleaned), key_set(&zone));
    }
}
