//! What applying a relay's records to a zone would change, in plain language, and the
//! provider operations that do it, without ever touching records the portal did not make
//! unless the person confirmed that one record.
//!
//! Pure: no I/O. Inputs are the records the relay needs (`DnsPlan::ready_records`), what
//! the zone holds now ([`ZoneContents`], from [`crate::DnsProvider::read`]) and the values
//! the portal wrote earlier ([`OwnedValue`], kept in PostgreSQL).
//!
//! # Rules
//!
//! * **Ours, freely.** Values the portal owns are updated and deleted without asking.
//!   `deletes` only ever hold owned values: when the relay is removed (nothing desired),
//!   exactly the portal's values go.
//! * **Already right.** A desired value that is already present is `unchanged`, even if
//!   someone else made it; it is not claimed (it stays when the relay is removed).
//! * **Foreign record in the way → [`Conflict`]**, never touched unless its
//!   [`Conflict::id`] is in the `confirmed` set given to [`Diff::changes`]:
//!   - A, AAAA, MX, SRV hold one answer per name: any foreign value there that is not
//!     desired (another address, another mail server, an extra backup MX) is a conflict;
//!     confirming replaces the whole record set.
//!   - An alias (CNAME) must be alone at its name: a foreign CNAME where other records must
//!     go, and any foreign record (of any type, also ones the portal does not write, e.g.
//!     TLSA or HTTPS) where the portal's CNAME must go, is one conflict per name;
//!     confirming removes what is in the way.
//!   - TXT and CAA are shared with other users of the domain (site verification, other
//!     CAs), so they are managed per value and foreign values stay. Exceptions, which are
//!     conflicts: a foreign TXT of the same kind as a desired one (the kind is the leading
//!     `v=` tag: a second SPF `v=spf1`, DMARC, MTA-STS, TLSRPT, DKIM record would make
//!     receivers see two policies), any foreign TXT at a DKIM-style name
//!     (`<label>._domainkey.…`, where every TXT is read as a key record), and a foreign
//!     CAA with the same tag and the same CA domain as a desired one (e.g.
//!     `issue "letsencrypt.org"` without the relay's `accounturi`, which would let any
//!     Let's Encrypt account issue). Foreign CAA for other CAs, `iodef`, `issuewild` and
//!     `issue ";"` are kept: they do not stop the relay's CA. Confirming removes only the
//!     conflicting values.
//!   - While a conflict is not confirmed, nothing of the blocked record set is written (an
//!     MX next to a foreign MX would split the mail; an SPF next to another would break
//!     both).
//!
//! # Ownership and crash safety
//!
//! [`Diff::ownership_after`] is what the portal owns once the changes are applied. To stay
//! correct if the portal crashes mid-apply: store `ownership_after ∪ current ownership`
//! before applying, apply, then store `ownership_after`. A value recorded as owned but
//! never written is harmless (it is simply created on the next run); a value written but
//! not recorded would look foreign forever.
//!
//! Conflict ids are derived from the name, the kind and the foreign values, so they are
//! stable between showing the diff and running the job, and a confirmation no longer
//! applies if the foreign record changed in between.

use std::collections::{BTreeMap, BTreeSet};

use chatmail_shared::{DnsRecord, RecordData};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::provider::Change;
use crate::records::{display_value, normalize_name, value_key, OwnedValue, ZoneContents};

/// One thing that will be added, changed, removed or left alone, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Owner name, absolute, without the trailing dot.
    pub name: String,
    /// Type mnemonic.
    pub rtype: String,
    /// TTL after the change (for deletions: before).
    pub ttl: u32,
    /// Values before (display form: presentation, TXT joined).
    pub before: Vec<String>,
    /// Values after.
    pub after: Vec<String>,
    /// Whether the portal made (or will make) these values.
    pub ours: bool,
    /// One sentence for a non-expert.
    pub description: String,
}

/// Why a foreign record is in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictKind {
    /// Another mail server (MX) is set for the name.
    ForeignMx,
    /// The name points to another address (A/AAAA).
    ForeignAddress,
    /// A service record (SRV) points elsewhere.
    ForeignService,
    /// The name is an alias (CNAME) of something else, where the relay needs its own alias.
    ForeignAlias,
    /// Records exist where the relay needs an alias, which must be alone at its name.
    DataAtAlias,
    /// The name is an alias (CNAME), so the relay's records cannot be added beside it.
    AliasInTheWay,
    /// Another SPF record (`v=spf1`); a domain may have only one.
    AnotherSpf,
    /// Another TXT record of the same kind (DMARC, DKIM, MTA-STS, TLSRPT, …).
    AnotherTxt,
    /// A CAA record for the same certificate authority with other settings.
    CaaSameIssuer,
}

impl ConflictKind {
    fn slug(self) -> &'static str {
        match self {
            ConflictKind::ForeignMx => "foreign-mx",
            ConflictKind::ForeignAddress => "foreign-address",
            ConflictKind::ForeignService => "foreign-service",
            ConflictKind::ForeignAlias => "foreign-alias",
            ConflictKind::DataAtAlias => "data-at-alias",
            ConflictKind::AliasInTheWay => "alias-in-the-way",
            ConflictKind::AnotherSpf => "another-spf",
            ConflictKind::AnotherTxt => "another-txt",
            ConflictKind::CaaSameIssuer => "caa-same-issuer",
        }
    }

    fn consequence(self) -> &'static str {
        match self {
            ConflictKind::ForeignMx => {
                "Mail for this domain is delivered there now; as long as it stays, mail will not reach your relay."
            }
            ConflictKind::ForeignAddress => {
                "Apps and other mail servers would go to that address instead of your relay."
            }
            ConflictKind::ForeignService => "Mail apps would be sent elsewhere to connect.",
            ConflictKind::ForeignAlias | ConflictKind::DataAtAlias => {
                "An alias must be the only record at its name, so the relay's alias cannot be added while these stay."
            }
            ConflictKind::AliasInTheWay => {
                "Nothing can be added beside an alias, so the relay's records cannot be added while it stays."
            }
            ConflictKind::AnotherSpf => {
                "A domain may have only one SPF record; with two, receivers treat both as broken."
            }
            ConflictKind::AnotherTxt => {
                "Receivers would find two records of the same kind and may use the wrong one or none."
            }
            ConflictKind::CaaSameIssuer => {
                "It would let other accounts at the same certificate authority get certificates for your domain."
            }
        }
    }
}

/// A foreign record in the way of a desired one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Stable id; pass it in `confirmed` to let the portal replace the foreign record.
    pub id: String,
    /// Why it is in the way.
    pub kind: ConflictKind,
    /// Owner name.
    pub name: String,
    /// Type(s) of the records in the way, e.g. `MX` or `A, TXT`.
    pub rtype: String,
    /// The foreign values that would be removed or replaced, as `TYPE value`.
    pub existing: Vec<String>,
    /// What the portal would write instead, as `TYPE value`.
    pub wanted: Vec<String>,
    /// What is in the way and why it matters, for a non-expert.
    pub problem: String,
    /// What confirming does, in one sentence.
    pub description: String,
}

/// The result of [`diff`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Record sets or values that will be added.
    pub creates: Vec<Item>,
    /// Record sets or values of the portal's that will change.
    pub updates: Vec<Item>,
    /// Values of the portal's that will be removed.
    pub deletes: Vec<Item>,
    /// Foreign records in the way; only changed once confirmed.
    pub conflicts: Vec<Conflict>,
    /// Desired values already present.
    pub unchanged: Vec<Item>,
    ops: Vec<Op>,
    ownership: Vec<(Cond, OwnedValue)>,
}

/// An operation that happens when every id in `needs` is confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Op {
    needs: Vec<String>,
    change: Change,
}

/// Whether an owned value is owned after the apply: when all of `all_of` are confirmed
/// (or, with `negate`, when not all of them are).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cond {
    all_of: Vec<String>,
    negate: bool,
}

impl Cond {
    fn when(all_of: Vec<String>) -> Self {
        Cond {
            all_of,
            negate: false,
        }
    }

    fn unless(all_of: Vec<String>) -> Self {
        Cond {
            all_of,
            negate: true,
        }
    }

    fn holds(&self, confirmed: &BTreeSet<String>) -> bool {
        let all = self.all_of.iter().all(|id| confirmed.contains(id));
        // An empty `unless` never holds: "unless nothing is needed" is never.
        all != self.negate
    }
}

impl Diff {
    /// Nothing to add, change or remove, and nothing in the way.
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty()
            && self.updates.is_empty()
            && self.deletes.is_empty()
            && self.conflicts.is_empty()
    }

    /// Whether applying (without confirmations) would change anything.
    pub fn has_changes(&self) -> bool {
        !(self.creates.is_empty() && self.updates.is_empty() && self.deletes.is_empty())
    }

    /// The conflict with this id.
    pub fn conflict(&self, id: &str) -> Option<&Conflict> {
        self.conflicts.iter().find(|c| c.id == id)
    }

    /// The provider operations: creates, updates and deletes, plus the replacements of
    /// the confirmed conflicts. Removals come first (an alias can only be added once the
    /// name is empty, and the other way round); each record set appears at most once.
    /// Ids in `confirmed` that are not conflicts of this diff are ignored.
    pub fn changes(&self, confirmed: &BTreeSet<String>) -> Vec<Change> {
        let active = self
            .ops
            .iter()
            .filter(|op| op.needs.iter().all(|id| confirmed.contains(id)))
            .map(|op| op.change.clone());
        // Merge value-level operations on the same record set.
        let mut out: Vec<Change> = Vec::new();
        for change in active {
            if let Change::Merge {
                name,
                rtype,
                add,
                remove,
                ..
            } = &change
            {
                if let Some(Change::Merge {
                    add: a, remove: r, ..
                }) = out.iter_mut().find(|c| {
                    matches!(c, Change::Merge { .. }) && c.name() == name && c.rtype() == rtype
                }) {
                    for v in add {
                        if !a.iter().any(|x| value_key(x) == value_key(v)) {
                            a.push(v.clone());
                        }
                    }
                    for v in remove {
                        if !r.iter().any(|x| value_key(x) == value_key(v)) {
                            r.push(v.clone());
                        }
                    }
                    continue;
                }
            }
            out.push(change);
        }
        out.sort_by_key(|c| !matches!(c, Change::Remove { .. }));
        out
    }

    /// What the portal owns once [`Diff::changes`] with `confirmed` has been applied:
    /// every desired value it wrote or already owned, not the foreign ones that were
    /// already right, not the deleted ones. See the module doc for when to store it.
    pub fn ownership_after(&self, confirmed: &BTreeSet<String>) -> Vec<OwnedValue> {
        let mut out: BTreeSet<OwnedValue> = BTreeSet::new();
        for (cond, value) in &self.ownership {
            if cond.holds(confirmed) {
                out.insert(value.clone());
            }
        }
        out.into_iter().collect()
    }
}

/// Compares the `desired` records with the zone's `current` contents, knowing which
/// values the portal `owned` before. See the module doc for the rules.
///
/// `desired` must not put a CNAME beside other records at one name (a `DnsPlan` never
/// does); if it does, the CNAME wins and the other desired records at that name are
/// ignored.
pub fn diff(desired: &[DnsRecord], current: &ZoneContents, owned: &[OwnedValue]) -> Diff {
    let mut b = Builder::new(desired, current, owned);
    let names: BTreeSet<String> = b
        .desired
        .keys()
        .map(|(n, _)| n.clone())
        .chain(b.owned.iter().map(|(n, _, _)| n.clone()))
        .collect();
    for name in names {
        if b.desired.contains_key(&(name.clone(), "CNAME".to_string())) {
            b.alias_name(&name);
        } else {
            b.regular_name(&name);
        }
    }
    b.diff
}

type RrKey = (String, String);

/// A current value with its key and TTL.
#[derive(Debug, Clone)]
struct Cur {
    key: String,
    ttl: u32,
    data: RecordData,
}

struct Builder {
    desired: BTreeMap<RrKey, (u32, Vec<RecordData>)>,
    current: BTreeMap<RrKey, Vec<Cur>>,
    /// Records of types the portal does not write: (name, type) → (ttl, values).
    other: BTreeMap<RrKey, Vec<String>>,
    owned: BTreeSet<(String, String, String)>,
    diff: Diff,
}

fn item(
    name: &str,
    rtype: &str,
    ttl: u32,
    before: Vec<String>,
    after: Vec<String>,
    ours: bool,
    description: String,
) -> Item {
    Item {
        name: name.to_string(),
        rtype: rtype.to_string(),
        ttl,
        before,
        after,
        ours,
        description,
    }
}

fn is_shared(rtype: &str) -> bool {
    rtype == "TXT" || rtype == "CAA"
}

fn typed(rtype: &str, values: &[String]) -> Vec<String> {
    values.iter().map(|v| format!("{rtype} {v}")).collect()
}

fn conflict_id(kind: ConflictKind, name: &str, existing: &[String]) -> String {
    let mut sorted = existing.to_vec();
    sorted.sort();
    let mut h = Sha256::new();
    h.update(kind.slug());
    h.update([0]);
    h.update(name);
    for v in &sorted {
        h.update([0]);
        h.update(v);
    }
    let digest = h.finalize();
    let hex: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}:{name}:{hex}", kind.slug())
}

impl Builder {
    fn new(desired: &[DnsRecord], current: &ZoneContents, owned: &[OwnedValue]) -> Self {
        let mut d: BTreeMap<RrKey, (u32, Vec<RecordData>)> = BTreeMap::new();
        for r in desired {
            let entry = d
                .entry((normalize_name(&r.name), r.data.rtype().to_string()))
                .or_insert((r.ttl, Vec::new()));
            entry.0 = entry.0.min(r.ttl);
            if !entry.1.iter().any(|v| value_key(v) == value_key(&r.data)) {
                entry.1.push(r.data.clone());
            }
        }
        let mut c: BTreeMap<RrKey, Vec<Cur>> = BTreeMap::new();
        for r in &current.records {
            let list = c
                .entry((normalize_name(&r.name), r.data.rtype().to_string()))
                .or_default();
            let key = value_key(&r.data);
            if !list.iter().any(|x| x.key == key) {
                list.push(Cur {
                    key,
                    ttl: r.ttl,
                    data: r.data.clone(),
                });
            }
        }
        let mut o: BTreeMap<RrKey, Vec<String>> = BTreeMap::new();
        for r in &current.other {
            let list = o
                .entry((normalize_name(&r.name), r.rtype.to_ascii_uppercase()))
                .or_default();
            if !list.contains(&r.value) {
                list.push(r.value.clone());
            }
        }
        let owned = owned
            .iter()
            .map(|v| {
                (
                    normalize_name(&v.name),
                    v.rtype.to_ascii_uppercase(),
                    v.key(),
                )
            })
            .collect();
        Builder {
            desired: d,
            current: c,
            other: o,
            owned,
            diff: Diff::default(),
        }
    }

    fn is_owned(&self, name: &str, rtype: &str, key: &str) -> bool {
        self.owned
            .contains(&(name.to_string(), rtype.to_string(), key.to_string()))
    }

    fn cur(&self, name: &str, rtype: &str) -> Vec<Cur> {
        self.current
            .get(&(name.to_string(), rtype.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn op(&mut self, needs: &[String], change: Change) {
        self.diff.ops.push(Op {
            needs: needs.to_vec(),
            change,
        });
    }

    fn own(&mut self, cond: Cond, name: &str, data: &RecordData) {
        self.diff.ownership.push((
            cond,
            OwnedValue {
                name: name.to_string(),
                rtype: data.rtype().to_string(),
                value: data.presentation(),
            },
        ));
    }

    fn conflict(
        &mut self,
        kind: ConflictKind,
        name: &str,
        rtype: &str,
        existing: Vec<String>,
        wanted: Vec<String>,
    ) -> String {
        let id = conflict_id(kind, name, &existing);
        let shown = |v: &[String]| v.iter().map(|s| short(s)).collect::<Vec<_>>().join(", ");
        let problem = format!(
            "{name} already has {} not made by this portal: {}. {}",
            if existing.len() == 1 {
                "a record"
            } else {
                "records"
            },
            shown(&existing),
            kind.consequence()
        );
        let description = if wanted.is_empty() {
            format!("Remove {} at {name}.", shown(&existing))
        } else {
            format!(
                "Replace {} at {name} (not made by this portal) with {}.",
                shown(&existing),
                shown(&wanted)
            )
        };
        self.diff.conflicts.push(Conflict {
            id: id.clone(),
            kind,
            name: name.to_string(),
            rtype: rtype.to_string(),
            existing,
            wanted,
            problem,
            description,
        });
        id
    }

    /// A name where the relay wants an alias.
    fn alias_name(&mut self, name: &str) {
        let (ttl, values) = self.desired[&(name.to_string(), "CNAME".to_string())].clone();
        let target = values[0].clone();
        let target_key = value_key(&target);
        let cnames = self.cur(name, "CNAME");

        // Everything else at the name: (type, values, fully owned, owned values).
        let mut others: Vec<(String, Vec<String>, bool)> = Vec::new();
        let mut owned_in_mixed: Vec<RecordData> = Vec::new();
        for ((n, t), list) in self.current.clone() {
            if n != name || t == "CNAME" {
                continue;
            }
            let owned: Vec<&Cur> = list
                .iter()
                .filter(|c| self.is_owned(name, &t, &c.key))
                .collect();
            let all_owned = owned.len() == list.len();
            if !all_owned {
                owned_in_mixed.extend(owned.iter().map(|c| c.data.clone()));
            }
            others.push((
                t.clone(),
                list.iter().map(|c| display_value(&c.data)).collect(),
                all_owned,
            ));
        }
        for ((n, t), list) in self.other.clone() {
            if n != name {
                continue;
            }
            let all_owned = list.iter().all(|v| self.is_owned(name, &t, v));
            others.push((t, list, all_owned));
        }

        // The portal's own records there go freely.
        for (t, values, all_owned) in &others {
            if *all_owned {
                self.op(
                    &[],
                    Change::Remove {
                        name: name.to_string(),
                        rtype: t.clone(),
                    },
                );
                let item = item(
                    name,
                    t,
                    0,
                    values.clone(),
                    vec![],
                    true,
                    describe_delete(name, t, values),
                );
                self.diff.deletes.push(item);
            }
        }

        let in_way_other: Vec<&(String, Vec<String>, bool)> =
            others.iter().filter(|(_, _, o)| !o).collect();
        let foreign_cname: Vec<&Cur> = cnames
            .iter()
            .filter(|c| c.key != target_key && !self.is_owned(name, "CNAME", &c.key))
            .collect();

        let put = Change::Put {
            name: name.to_string(),
            rtype: "CNAME".into(),
            ttl,
            values: vec![target.clone()],
        };
        if in_way_other.is_empty() && foreign_cname.is_empty() {
            let present = cnames.iter().any(|c| c.key == target_key);
            if present && cnames.len() == 1 {
                let ours = self.is_owned(name, "CNAME", &target_key);
                if ours && cnames[0].ttl != ttl {
                    self.op(&[], put);
                    let item = item(
                        name,
                        "CNAME",
                        ttl,
                        vec![display_value(&target)],
                        vec![display_value(&target)],
                        true,
                        describe_ttl(name, "CNAME", cnames[0].ttl, ttl),
                    );
                    self.diff.updates.push(item);
                } else {
                    let item = item(
                        name,
                        "CNAME",
                        cnames[0].ttl,
                        vec![display_value(&target)],
                        vec![display_value(&target)],
                        ours,
                        describe_unchanged(name, "CNAME", &[display_value(&target)], ours),
                    );
                    self.diff.unchanged.push(item);
                }
                if ours {
                    self.own(Cond::when(vec![]), name, &target);
                }
            } else {
                self.op(&[], put);
                let before: Vec<String> = cnames.iter().map(|c| display_value(&c.data)).collect();
                let after = vec![display_value(&target)];
                let item = if before.is_empty() {
                    item(
                        name,
                        "CNAME",
                        ttl,
                        before,
                        after,
                        true,
                        describe_create(name, std::slice::from_ref(&target)),
                    )
                } else {
                    let d = describe_update(name, "CNAME", &before, &after);
                    item(name, "CNAME", ttl, before, after, true, d)
                };
                if item.before.is_empty() {
                    self.diff.creates.push(item);
                } else {
                    self.diff.updates.push(item);
                }
                self.own(Cond::when(vec![]), name, &target);
            }
            return;
        }

        // Foreign data in the way: one conflict for the name.
        let mut existing: Vec<String> = Vec::new();
        let mut rtypes: Vec<String> = Vec::new();
        if !foreign_cname.is_empty() {
            rtypes.push("CNAME".into());
            existing.extend(
                cnames
                    .iter()
                    .map(|c| format!("CNAME {}", display_value(&c.data))),
            );
        }
        for (t, values, _) in &in_way_other {
            rtypes.push(t.clone());
            existing.extend(typed(t, values));
        }
        let kind = if in_way_other.is_empty() {
            ConflictKind::ForeignAlias
        } else {
            ConflictKind::DataAtAlias
        };
        let id = self.conflict(
            kind,
            name,
            &rtypes.join(", "),
            existing,
            vec![format!("CNAME {}", display_value(&target))],
        );
        let needs = vec![id.clone()];
        for (t, _, _) in in_way_other
            .iter()
            .map(|x| (*x).clone())
            .collect::<Vec<_>>()
        {
            self.op(
                &needs,
                Change::Remove {
                    name: name.to_string(),
                    rtype: t,
                },
            );
        }
        self.op(&needs, put);
        self.own(Cond::when(needs.clone()), name, &target);
        let stale_own: Vec<RecordData> = cnames
            .iter()
            .filter(|c| c.key != target_key && self.is_owned(name, "CNAME", &c.key))
            .map(|c| c.data.clone())
            .collect();
        for data in owned_in_mixed.into_iter().chain(stale_own) {
            self.own(Cond::unless(needs.clone()), name, &data);
        }
        if cnames
            .iter()
            .any(|c| c.key == target_key && self.is_owned(name, "CNAME", &c.key))
        {
            self.own(Cond::when(vec![]), name, &target);
        }
    }

    /// A name without a desired alias (or with nothing desired, only owned values).
    fn regular_name(&mut self, name: &str) {
        let desired_types: BTreeSet<String> = self
            .desired
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .collect();
        let owned_types: BTreeSet<String> = self
            .owned
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, t, _)| t.clone())
            .collect();

        // An alias at the name.
        let cnames = self.cur(name, "CNAME");
        let mut alias_block: Option<String> = None;
        if !cnames.is_empty() {
            let owned_count = cnames
                .iter()
                .filter(|c| self.is_owned(name, "CNAME", &c.key))
                .count();
            let values: Vec<String> = cnames.iter().map(|c| display_value(&c.data)).collect();
            if owned_count == cnames.len() {
                self.op(
                    &[],
                    Change::Remove {
                        name: name.to_string(),
                        rtype: "CNAME".into(),
                    },
                );
                let item = item(
                    name,
                    "CNAME",
                    cnames[0].ttl,
                    values.clone(),
                    vec![],
                    true,
                    describe_delete(name, "CNAME", &values),
                );
                self.diff.deletes.push(item);
            } else if !desired_types.is_empty() {
                let mut wanted = Vec::new();
                for t in &desired_types {
                    let (_, vals) = &self.desired[&(name.to_string(), t.clone())];
                    wanted.extend(vals.iter().map(|v| format!("{t} {}", display_value(v))));
                }
                let id = self.conflict(
                    ConflictKind::AliasInTheWay,
                    name,
                    "CNAME",
                    typed("CNAME", &values),
                    wanted,
                );
                self.op(
                    std::slice::from_ref(&id),
                    Change::Remove {
                        name: name.to_string(),
                        rtype: "CNAME".into(),
                    },
                );
                let mine: Vec<Cur> = cnames
                    .iter()
                    .filter(|c| self.is_owned(name, "CNAME", &c.key))
                    .cloned()
                    .collect();
                for c in mine {
                    self.own(Cond::unless(vec![id.clone()]), name, &c.data);
                }
                alias_block = Some(id);
            } else {
                // Only owned values of other types here, under someone's alias: leave it.
                let mine: Vec<Cur> = cnames
                    .iter()
                    .filter(|c| self.is_owned(name, "CNAME", &c.key))
                    .cloned()
                    .collect();
                for c in mine {
                    self.own(Cond::when(vec![]), name, &c.data);
                }
            }
        }

        let types: BTreeSet<String> = desired_types
            .union(&owned_types)
            .filter(|t| *t != "CNAME")
            .cloned()
            .collect();
        for t in types {
            if is_shared(&t) {
                self.shared_rrset(name, &t, alias_block.as_deref());
            } else {
                self.exclusive_rrset(name, &t, alias_block.as_deref());
            }
        }
    }

    /// A, AAAA, MX, SRV (and owned values of any other type): one answer per name.
    fn exclusive_rrset(&mut self, name: &str, rtype: &str, alias: Option<&str>) {
        let cur = self.cur(name, rtype);
        let owned: Vec<&Cur> = cur
            .iter()
            .filter(|c| self.is_owned(name, rtype, &c.key))
            .collect();
        let Some((ttl, values)) = self.desired.get(&(name.to_string(), rtype.to_string())) else {
            // Nothing desired: remove what is ours, keep the rest.
            if owned.is_empty() {
                return;
            }
            let before: Vec<String> = owned.iter().map(|c| display_value(&c.data)).collect();
            let change = if owned.len() == cur.len() {
                Change::Remove {
                    name: name.to_string(),
                    rtype: rtype.to_string(),
                }
            } else {
                Change::Merge {
                    name: name.to_string(),
                    rtype: rtype.to_string(),
                    ttl: owned[0].ttl,
                    add: vec![],
                    remove: owned.iter().map(|c| c.data.clone()).collect(),
                }
            };
            let item = item(
                name,
                rtype,
                owned[0].ttl,
                before.clone(),
                vec![],
                true,
                describe_delete(name, rtype, &before),
            );
            self.op(&[], change);
            self.diff.deletes.push(item);
            return;
        };
        let (ttl, values) = (*ttl, values.clone());
        let keys: Vec<String> = values.iter().map(value_key).collect();
        let missing = keys.iter().any(|k| !cur.iter().any(|c| &c.key == k));
        let extra_owned: Vec<&Cur> = owned
            .iter()
            .copied()
            .filter(|c| !keys.contains(&c.key))
            .collect();
        let extra_foreign: Vec<&Cur> = cur
            .iter()
            .filter(|c| !keys.contains(&c.key) && !self.is_owned(name, rtype, &c.key))
            .collect();
        let mut needs: Vec<String> = alias.map(str::to_string).into_iter().collect();
        let put = Change::Put {
            name: name.to_string(),
            rtype: rtype.to_string(),
            ttl,
            values: values.clone(),
        };
        let after: Vec<String> = values.iter().map(display_value).collect();
        let before: Vec<String> = cur.iter().map(|c| display_value(&c.data)).collect();

        if !extra_foreign.is_empty() {
            let kind = match rtype {
                "MX" => ConflictKind::ForeignMx,
                "SRV" => ConflictKind::ForeignService,
                _ => ConflictKind::ForeignAddress,
            };
            let id = self.conflict(
                kind,
                name,
                rtype,
                typed(rtype, &before),
                typed(rtype, &after),
            );
            needs.push(id);
            self.op(&needs, put);
            self.own_put(name, rtype, &values, &cur, &needs);
            return;
        }
        if !missing && extra_owned.is_empty() {
            let all_ours = owned.len() == cur.len();
            let cur_ttl = cur[0].ttl;
            if all_ours && cur_ttl != ttl {
                self.op(&needs, put);
                let item = item(
                    name,
                    rtype,
                    ttl,
                    before,
                    after,
                    true,
                    describe_ttl(name, rtype, cur_ttl, ttl),
                );
                self.push_change(alias, item, false);
            } else {
                let item = item(
                    name,
                    rtype,
                    cur_ttl,
                    before,
                    after.clone(),
                    all_ours,
                    describe_unchanged(name, rtype, &after, all_ours),
                );
                self.diff.unchanged.push(item);
            }
            for c in &owned {
                self.own(Cond::when(vec![]), name, &c.data);
            }
            return;
        }
        self.op(&needs, put);
        self.own_put(name, rtype, &values, &cur, &needs);
        let create = cur.is_empty();
        let description = if create {
            describe_create(name, &values)
        } else {
            describe_update(name, rtype, &before, &after)
        };
        let item = item(name, rtype, ttl, before, after, true, description);
        self.push_change(alias, item, create);
    }

    /// Ownership after a `Put` of `values` over `cur` that needs `needs`: new values become
    /// ours, values someone else had already published stay theirs, and the portal's
    /// replaced values stay ours only if the `Put` does not happen.
    fn own_put(
        &mut self,
        name: &str,
        rtype: &str,
        values: &[RecordData],
        cur: &[Cur],
        needs: &[String],
    ) {
        let keys: Vec<String> = values.iter().map(value_key).collect();
        for v in values {
            let k = value_key(v);
            let present = cur.iter().any(|c| c.key == k);
            if self.is_owned(name, rtype, &k) && present {
                self.own(Cond::when(vec![]), name, v);
            } else if !present {
                self.own(Cond::when(needs.to_vec()), name, v);
            }
        }
        for c in cur {
            if !keys.contains(&c.key) && self.is_owned(name, rtype, &c.key) {
                self.own(Cond::unless(needs.to_vec()), name, &c.data);
            }
        }
    }

    /// Records an item that happens without confirmation, unless an alias blocks the name
    /// (then the alias conflict already lists it as wanted).
    fn push_change(&mut self, alias: Option<&str>, item: Item, create: bool) {
        if alias.is_some() {
            return;
        }
        if create {
            self.diff.creates.push(item);
        } else {
            self.diff.updates.push(item);
        }
    }

    /// TXT and CAA: shared with other users, managed per value.
    fn shared_rrset(&mut self, name: &str, rtype: &str, alias: Option<&str>) {
        let cur = self.cur(name, rtype);
        let (ttl, values) = self
            .desired
            .get(&(name.to_string(), rtype.to_string()))
            .cloned()
            .unwrap_or((cur.first().map_or(0, |c| c.ttl), Vec::new()));
        let keys: Vec<String> = values.iter().map(value_key).collect();
        let base_needs: Vec<String> = alias.map(str::to_string).into_iter().collect();
        let mut consumed: BTreeSet<String> = BTreeSet::new();

        for d in &values {
            let k = value_key(d);
            if let Some(present) = cur.iter().find(|c| c.key == k) {
                let ours = self.is_owned(name, rtype, &k);
                let shown = vec![display_value(d)];
                let item = item(
                    name,
                    rtype,
                    present.ttl,
                    shown.clone(),
                    shown.clone(),
                    ours,
                    describe_unchanged(name, rtype, &shown, ours),
                );
                self.diff.unchanged.push(item);
                if ours {
                    self.own(Cond::when(vec![]), name, d);
                }
                continue;
            }
            let conflicting: Vec<&Cur> = cur
                .iter()
                .filter(|c| {
                    !keys.contains(&c.key)
                        && !self.is_owned(name, rtype, &c.key)
                        && in_the_way(name, d, &c.data)
                })
                .collect();
            if !conflicting.is_empty() {
                let kind = match d {
                    RecordData::Caa { .. } => ConflictKind::CaaSameIssuer,
                    RecordData::Txt(t) if txt_kind(&t.joined()).as_deref() == Some("v=spf1") => {
                        ConflictKind::AnotherSpf
                    }
                    _ => ConflictKind::AnotherTxt,
                };
                let existing: Vec<String> =
                    conflicting.iter().map(|c| display_value(&c.data)).collect();
                let id = self.conflict(
                    kind,
                    name,
                    rtype,
                    typed(rtype, &existing),
                    typed(rtype, &[display_value(d)]),
                );
                let mut needs = base_needs.clone();
                needs.push(id);
                self.op(
                    &needs,
                    Change::Merge {
                        name: name.to_string(),
                        rtype: rtype.to_string(),
                        ttl,
                        add: vec![d.clone()],
                        remove: conflicting.iter().map(|c| c.data.clone()).collect(),
                    },
                );
                self.own(Cond::when(needs), name, d);
                continue;
            }
            let replaced: Vec<Cur> = cur
                .iter()
                .filter(|c| {
                    !keys.contains(&c.key)
                        && !consumed.contains(&c.key)
                        && self.is_owned(name, rtype, &c.key)
                        && same_kind(name, d, &c.data)
                })
                .cloned()
                .collect();
            self.op(
                &base_needs,
                Change::Merge {
                    name: name.to_string(),
                    rtype: rtype.to_string(),
                    ttl,
                    add: vec![d.clone()],
                    remove: replaced.iter().map(|c| c.data.clone()).collect(),
                },
            );
            self.own(Cond::when(base_needs.clone()), name, d);
            let after = vec![display_value(d)];
            if replaced.is_empty() {
                let item = item(
                    name,
                    rtype,
                    ttl,
                    vec![],
                    after,
                    true,
                    describe_create(name, std::slice::from_ref(d)),
                );
                self.push_change(alias, item, true);
            } else {
                let before: Vec<String> = replaced.iter().map(|c| display_value(&c.data)).collect();
                for c in &replaced {
                    consumed.insert(c.key.clone());
                    self.own(Cond::unless(base_needs.clone()), name, &c.data);
                }
                let d = describe_update(name, rtype, &before, &after);
                let item = item(name, rtype, ttl, before, after, true, d);
                self.push_change(alias, item, false);
            }
        }

        // The portal's values that are no longer wanted.
        let stale: Vec<Cur> = cur
            .iter()
            .filter(|c| {
                !keys.contains(&c.key)
                    && !consumed.contains(&c.key)
                    && self.is_owned(name, rtype, &c.key)
            })
            .cloned()
            .collect();
        if !stale.is_empty() {
            self.op(
                &[],
                Change::Merge {
                    name: name.to_string(),
                    rtype: rtype.to_string(),
                    ttl,
                    add: vec![],
                    remove: stale.iter().map(|c| c.data.clone()).collect(),
                },
            );
            for c in &stale {
                let shown = vec![display_value(&c.data)];
                let item = item(
                    name,
                    rtype,
                    c.ttl,
                    shown.clone(),
                    vec![],
                    true,
                    describe_delete(name, rtype, &shown),
                );
                self.diff.deletes.push(item);
            }
        }
    }
}

/// The kind of a TXT value: its leading `v=` tag, lowercase (`v=spf1`, `v=dmarc1`,
/// `v=dkim1`, `v=stsv1`, `v=tlsrptv1`), if it has one.
pub fn txt_kind(text: &str) -> Option<String> {
    let t = text.trim_start().to_ascii_lowercase();
    if !t.starts_with("v=") {
        return None;
    }
    let end = t.find([';', ' ', '\t']).unwrap_or(t.len());
    Some(t[..end].to_string())
}

/// Whether the name is a DKIM key name (`<selector>._domainkey.<domain>`), where every
/// TXT record is read as a key.
fn is_dkim_name(name: &str) -> bool {
    name.split('.').nth(1) == Some("_domainkey")
}

/// The CA domain of a CAA `issue`/`issuewild` value, lowercase.
fn caa_issuer(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Whether the two values are "of the same kind": the foreign one cannot stay beside the
/// desired one (see the module doc).
fn same_kind(name: &str, desired: &RecordData, other: &RecordData) -> bool {
    match (desired, other) {
        (RecordData::Txt(d), RecordData::Txt(o)) => {
            if is_dkim_name(name) {
                return true;
            }
            match txt_kind(&d.joined()) {
                Some(k) => txt_kind(&o.joined()).as_deref() == Some(k.as_str()),
                None => false,
            }
        }
        (
            RecordData::Caa {
                tag: dt, value: dv, ..
            },
            RecordData::Caa {
                tag: ot, value: ov, ..
            },
        ) => {
            dt.eq_ignore_ascii_case(ot)
                && (dt.eq_ignore_ascii_case("issue") || dt.eq_ignore_ascii_case("issuewild"))
                && !caa_issuer(dv).is_empty()
                && caa_issuer(dv) == caa_issuer(ov)
        }
        _ => false,
    }
}

fn in_the_way(name: &str, desired: &RecordData, foreign: &RecordData) -> bool {
    same_kind(name, desired, foreign)
}

/// Shortens long values (DKIM keys) for sentences.
fn short(v: &str) -> String {
    const MAX: usize = 72;
    if v.chars().count() <= MAX {
        return v.to_string();
    }
    let cut: String = v.chars().take(MAX - 1).collect();
    format!("{cut}…")
}

fn article(rtype: &str) -> &'static str {
    match rtype {
        "A" | "AAAA" | "MX" | "SRV" | "NS" | "HTTPS" => "an",
        _ => "a",
    }
}

fn list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| short(v))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_create(name: &str, values: &[RecordData]) -> String {
    let rtype = values[0].rtype();
    let what = match &values[0] {
        RecordData::A(_) | RecordData::Aaaa(_) => format!(
            "pointing to {}",
            values
                .iter()
                .map(display_value)
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        RecordData::Mx {
            preference,
            exchange,
        } => format!("pointing to {exchange} (preference {preference})"),
        RecordData::Cname(target) => format!("making it an alias of {target}"),
        RecordData::Srv { port, target, .. } => format!("pointing to {target}, port {port}"),
        RecordData::Txt(t) => format!("with the text \"{}\"", short(&t.joined())),
        RecordData::Caa { .. } => format!("saying {}", short(&values[0].presentation())),
    };
    format!("Add {} {rtype} record for {name} {what}.", article(rtype))
}

fn describe_update(name: &str, rtype: &str, before: &[String], after: &[String]) -> String {
    format!(
        "Change the {rtype} record for {name} from {} to {}.",
        list(before),
        list(after)
    )
}

fn describe_ttl(name: &str, rtype: &str, before: u32, after: u32) -> String {
    format!(
        "Change how long the {rtype} record for {name} may be cached, from {before} to {after} seconds."
    )
}

fn describe_delete(name: &str, rtype: &str, values: &[String]) -> String {
    format!(
        "Remove the {rtype} record for {name} ({}), which this portal added earlier.",
        list(values)
    )
}

fn describe_unchanged(name: &str, rtype: &str, values: &[String], ours: bool) -> String {
    if ours {
        format!("The {rtype} record for {name} is already correct.")
    } else {
        format!(
            "The {rtype} record for {name} already has the right value ({}); it was not made by this portal and stays as it is.",
            list(values)
        )
    }
}

#[cfg(test)]
mod tests;
