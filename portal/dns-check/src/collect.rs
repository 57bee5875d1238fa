//! Decides which questions to ask, in which order, and gathers the answers.
//!
//! Questions that do not depend on each other are sent together; only real dependencies
//! wait (the authoritative servers must be known before they can be asked; a PTR target
//! must be known before it can be confirmed). Three chains run side by side:
//!
//! 1. discovery → authoritative round (every planned record at every server, the zone's
//!    SOA and NS, wildcard probes, the parent's delegation) → MX targets;
//! 2. the recursive view of every planned record (plus CAA of every parent name), with a
//!    DNSSEC checking-disabled retry after each SERVFAIL;
//! 3. reverse DNS of the relay's addresses → forward confirmation. When a PTR names the
//!    mail domain itself (the usual case), its forward lookup is the recursive view's
//!    A/AAAA question of chain 2, already under way, so it costs no extra round.
//!
//! So a full check takes about as long as its longest chain, not as the sum of its
//! questions. [`QueryMode::Sequential`] runs the same questions one by one instead.
//!
//! Discovery itself is two or three dependent rounds (NS records up the tree, then the NS
//! hosts' addresses unless the answer carried glue; the parent's servers likewise). A
//! long-lived [`crate::Checker`] passes what an earlier check found ([`KnownServers`]) to
//! [`collect_cached`], which asks those servers at once and falls back to discovery when
//! their answers do not confirm them (see [`crate::cache`]).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};

pub use crate::cache::{CacheUse, KnownServers};
use crate::config::{CheckerConfig, QueryMode};
use crate::observations::{
    normalize_name, Data, Discovery, Lookup, Nameserver, Observations, Outcome, PtrCheck, QKey,
    RType, Rcode, ResolverOutcome, ServerId, ServerOutcome, WildcardProbe,
};
use crate::resolve::{run_all, run_both, Flags, Querier};

/// What to ask about, derived from the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// The mail domain.
    pub mail_domain: String,
    /// Asked at every authoritative server and every resolver.
    pub keys: Vec<QKey>,
    /// The relay's addresses, for reverse DNS.
    pub addresses: Vec<IpAddr>,
}

impl Targets {
    /// Every (name, type) the policy layer reads: the planned records, plus what the
    /// common-mistake checks need at the mail domain (CNAME, both address types, MX,
    /// TXT, CAA).
    pub fn from_plan(plan: &chatmail_shared::DnsPlan) -> Self {
        let d = plan.domain().as_str().to_string();
        let mut keys: Vec<QKey> = Vec::new();
        let mut push = |k: QKey| {
            if !keys.contains(&k) {
                keys.push(k);
            }
        };
        let mut addresses = Vec::new();
        for r in plan.records() {
            if let Some(t) = RType::from_mnemonic(r.rtype()) {
                push(QKey::new(&r.name, t));
                if t == RType::Cname {
                    // Where the alias leads (loops, dead ends).
                    push(QKey::new(&r.name, RType::A));
                }
            }
            if let chatmail_shared::PlannedValue::Ready(data) = &r.value {
                match data {
                    chatmail_shared::RecordData::A(a) => addresses.push(IpAddr::V4(*a)),
                    chatmail_shared::RecordData::Aaaa(a) => addresses.push(IpAddr::V6(*a)),
                    _ => {}
                }
            }
        }
        for t in [
            RType::A,
            RType::Aaaa,
            RType::Mx,
            RType::Txt,
            RType::Caa,
            RType::Cname,
        ] {
            push(QKey::new(&d, t));
        }
        Targets {
            mail_domain: d,
            keys,
            addresses,
        }
    }
}

/// Names from `name` up to (and including) its top-level label.
pub fn ancestors(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = normalize_name(name);
    loop {
        out.push(rest.clone());
        match rest.split_once('.') {
            Some((_, parent)) if !parent.is_empty() => rest = parent.to_string(),
            _ => return out,
        }
    }
}

/// The reverse-lookup name of an address (`in-addr.arpa` / `ip6.arpa`).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut labels = Vec::with_capacity(34);
            for byte in v6.octets().iter().rev() {
                labels.push(format!("{:x}", byte & 0x0f));
                labels.push(format!("{:x}", byte >> 4));
            }
            labels.push("ip6.arpa".into());
            labels.join(".")
        }
    }
}

/// Runs every query of a check, discovering the zone and its servers from scratch.
pub async fn collect(targets: &Targets, cfg: &CheckerConfig) -> Observations {
    Box::pin(collect_cached(targets, cfg, None))
        .await
        .observations
}

/// What [`collect_cached`] gathered, and what it means for the cache.
#[derive(Debug, Clone)]
pub struct Collected {
    /// Everything seen.
    pub observations: Observations,
    /// Whether the given discovery held, or what discovery found.
    pub cache: CacheUse,
    /// Questions sent for discovery (NS walk, NS host and parent server addresses).
    pub discovery_queries: u64,
}

/// Runs every query of a check. With `known` (what an earlier check of the same mail
/// domain found), the zone's and the parent's servers are asked at once; if their answers
/// do not confirm `known`, the check discovers from scratch and uses only those answers.
pub async fn collect_cached(
    targets: &Targets,
    cfg: &CheckerConfig,
    known: Option<KnownServers>,
) -> Collected {
    let q = Querier::new(cfg.timeout, cfg.edns_payload, cfg.mode);
    let counter = Arc::new(AtomicU64::new(0));
    let dq = q.counting(counter.clone());
    let mode = cfg.mode;
    let resolvers = cfg.recursive_resolvers.clone();

    // The recursive view also gets CAA for every name above the mail domain (RFC 8659
    // climbs the tree), except the top-level label.
    let mut rec_keys = targets.keys.clone();
    let climb = ancestors(&targets.mail_domain);
    for name in climb.iter().skip(1).take(climb.len().saturating_sub(2)) {
        rec_keys.push(QKey::new(name, RType::Caa));
    }
    // The mail domain's addresses go first and are shared with the reverse-DNS chain,
    // which needs them to confirm a PTR naming the mail domain.
    let (address_keys, other_keys): (Vec<QKey>, Vec<QKey>) = rec_keys
        .into_iter()
        .partition(|k| k.name == targets.mail_domain && matches!(k.rtype, RType::A | RType::Aaaa));
    let addresses = recursive_round(&q, &resolvers, &address_keys).shared();

    let auth_chain = authoritative_chain(&q, &dq, cfg, targets, known);
    let rec_chain = async {
        let (mut map, rest) = run_both(
            mode,
            addresses.clone(),
            recursive_round(&q, &resolvers, &other_keys),
        )
        .await;
        map.extend(rest);
        map
    };
    let ptr_chain = ptr_round(
        &q,
        &resolvers,
        &targets.addresses,
        &targets.mail_domain,
        addresses.clone(),
    );
    let (auth_results, (recursive, ptr)) =
        run_both(mode, auth_chain, run_both(mode, rec_chain, ptr_chain)).await;
    drop(addresses);
    let AuthResults {
        discovery,
        auth,
        probes,
        cache,
    } = auth_results;

    let mut lookups: BTreeMap<QKey, Lookup> = BTreeMap::new();
    for (k, v) in auth {
        lookups.entry(k).or_default().auth = v;
    }
    for (k, v) in recursive {
        lookups.entry(k).or_default().recursive = v;
    }

    // MX targets other than the mail domain: is the target an alias, does it have an
    // address? Only needed when the MX is wrong, so it waits for the answers.
    let mut mx_names: BTreeSet<String> = BTreeSet::new();
    if let Some(l) = lookups.get(&QKey::new(&targets.mail_domain, RType::Mx)) {
        for s in l
            .auth
            .iter()
            .map(|s| &s.outcome)
            .chain(l.recursive.iter().map(|r| &r.outcome))
        {
            if let Some(a) = s.answer() {
                for r in a.chain(&targets.mail_domain, RType::Mx).records {
                    if let Data::Mx { exchange, .. } = r.data {
                        if !exchange.is_empty() && exchange != targets.mail_domain {
                            mx_names.insert(exchange);
                        }
                    }
                }
            }
        }
    }
    let mx_keys: Vec<QKey> = mx_names
        .iter()
        .flat_map(|n| [QKey::new(n, RType::Cname), QKey::new(n, RType::A)])
        .collect();
    let mx_targets = recursive_round(&q, &resolvers, &mx_keys).await;

    Collected {
        observations: Observations {
            mail_domain: targets.mail_domain.clone(),
            discovery,
            lookups,
            probes,
            ptr,
            mx_targets,
            resolvers,
        },
        cache,
        discovery_queries: counter.load(Ordering::Relaxed),
    }
}

/// A random-looking label for wildcard probes (unique per check and process).
fn probe_label() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    format!("wildcard-probe-{:012x}", mixed & 0xffff_ffff_ffff)
}

/// The authoritative chain's results.
struct AuthResults {
    discovery: Discovery,
    auth: BTreeMap<QKey, Vec<ServerOutcome>>,
    probes: Vec<WildcardProbe>,
    cache: CacheUse,
}

async fn authoritative_chain(
    q: &Querier,
    dq: &Querier,
    cfg: &CheckerConfig,
    targets: &Targets,
    known: Option<KnownServers>,
) -> AuthResults {
    let replaced = match known.filter(|k| is_at_or_below(&targets.mail_domain, &k.zone)) {
        Some(known) => {
            let (discovery, auth, probes) = ask_known(q, cfg, targets, &known).await;
            if confirms(cfg, &known, &discovery, &auth) {
                return AuthResults {
                    discovery,
                    auth,
                    probes,
                    cache: CacheUse::Kept,
                };
            }
            true
        }
        None => false,
    };
    let (discovery, auth, probes, known) = discover_and_ask(q, dq, cfg, targets).await;
    AuthResults {
        discovery,
        auth,
        probes,
        cache: CacheUse::Discovered { replaced, known },
    }
}

fn is_at_or_below(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|head| head.ends_with('.'))
}

/// Discovery from the resolvers, then the authoritative round and the parent's
/// delegation; also what of it may be kept for later checks.
async fn discover_and_ask(
    q: &Querier,
    dq: &Querier,
    cfg: &CheckerConfig,
    targets: &Targets,
) -> (
    Discovery,
    BTreeMap<QKey, Vec<ServerOutcome>>,
    Vec<WildcardProbe>,
    Option<KnownServers>,
) {
    let (mut discovery, ttl) = discover(dq, cfg, &targets.mail_domain).await;
    let Some(zone) = discovery.zone.clone() else {
        return (discovery, BTreeMap::new(), Vec::new(), None);
    };
    let servers = servers_to_ask(cfg, &discovery.nameservers);
    let parent_round = async {
        let (parent_servers, parent_ttl) = parent_servers(dq, cfg, &discovery).await;
        let delegation = ask_parent(q, &parent_servers, &zone).await;
        (parent_servers, parent_ttl, delegation)
    };
    let ((auth, probes), (parent_servers, parent_ttl, delegation)) = run_both(
        q.mode(),
        zone_round(q, cfg, targets, &zone, &servers),
        parent_round,
    )
    .await;
    discovery.parent_delegation = delegation;

    let complete = discovery.error.is_none()
        && !discovery.nameservers.is_empty()
        && discovery.nameservers.iter().all(|n| !n.addrs.is_empty())
        && (discovery.parent_zone.is_none() || discovery.parent_delegation.is_some());
    let healthy = healthy_servers(&zone, &servers, &auth);
    let known = (complete && !healthy.is_empty()).then(|| KnownServers {
        zone: zone.clone(),
        nameservers: discovery.nameservers.clone(),
        parent_zone: discovery.parent_zone.clone(),
        parent_servers,
        parent_delegation: discovery.parent_delegation.clone(),
        healthy,
        walk: discovery.walk.clone(),
        ttl_secs: min_ttl(ttl, parent_ttl).unwrap_or(u32::MAX),
    });
    (discovery, auth, probes, known)
}

/// The authoritative round and the parent's delegation, at servers known from an
/// earlier check.
async fn ask_known(
    q: &Querier,
    cfg: &CheckerConfig,
    targets: &Targets,
    known: &KnownServers,
) -> (
    Discovery,
    BTreeMap<QKey, Vec<ServerOutcome>>,
    Vec<WildcardProbe>,
) {
    let servers = servers_to_ask(cfg, &known.nameservers);
    let ((auth, probes), delegation) = run_both(
        q.mode(),
        zone_round(q, cfg, targets, &known.zone, &servers),
        ask_parent(q, &known.parent_servers, &known.zone),
    )
    .await;
    let discovery = Discovery {
        zone: Some(known.zone.clone()),
        error: None,
        nameservers: known.nameservers.clone(),
        parent_zone: known.parent_zone.clone(),
        parent_delegation: delegation,
        walk: known.walk.clone(),
        from_cache: true,
    };
    (discovery, auth, probes)
}

/// Whether this check's answers confirm a discovery kept from an earlier check: every
/// server that served the zone then still does, and the parent delegates as before.
fn confirms(
    cfg: &CheckerConfig,
    known: &KnownServers,
    discovery: &Discovery,
    auth: &BTreeMap<QKey, Vec<ServerOutcome>>,
) -> bool {
    let servers = servers_to_ask(cfg, &known.nameservers);
    let healthy = healthy_servers(&known.zone, &servers, auth);
    !known.healthy.is_empty()
        && known.healthy.iter().all(|s| healthy.contains(s))
        && discovery.parent_delegation == known.parent_delegation
}

/// The servers that serve `zone` properly: an authoritative SOA of the apex, and an
/// authoritative answer (data, no data or NXDOMAIN, not a referral) to every question. A
/// server that stopped doing so (gone, refusing, lame, a referral to a new zone cut)
/// means the delegation may have changed.
fn healthy_servers(
    zone: &str,
    servers: &[ServerId],
    auth: &BTreeMap<QKey, Vec<ServerOutcome>>,
) -> Vec<ServerId> {
    let soa_key = QKey::new(zone, RType::Soa);
    let serves_soa = |s: &ServerId| {
        auth.get(&soa_key).is_some_and(|v| {
            v.iter().any(|so| {
                &so.server == s
                    && so.outcome.answer().is_some_and(|a| {
                        a.rcode == Rcode::NoError
                            && a.authoritative
                            && a.answers
                                .iter()
                                .any(|r| r.name == zone && matches!(r.data, Data::Soa { .. }))
                    })
            })
        })
    };
    // A referral: no answer, NS records of a name below the apex. (Some servers, hickory
    // among them, set the AA bit on referrals, so the bit alone does not tell.)
    let referral = |a: &crate::observations::Answer| {
        a.answers.is_empty()
            && a.authority
                .iter()
                .any(|r| matches!(r.data, Data::Ns(_)) && r.name != zone)
    };
    let all_authoritative = |s: &ServerId| {
        auth.values()
            .flatten()
            .filter(|so| &so.server == s)
            .all(|so| {
                so.outcome.answer().is_some_and(|a| {
                    a.authoritative
                        && matches!(a.rcode, Rcode::NoError | Rcode::NxDomain)
                        && !referral(a)
                })
            })
    };
    servers
        .iter()
        .filter(|s| serves_soa(s) && all_authoritative(s))
        .cloned()
        .collect()
}

/// Every planned record, the zone's SOA and NS at every server, and the wildcard probes.
async fn zone_round(
    q: &Querier,
    cfg: &CheckerConfig,
    targets: &Targets,
    zone: &str,
    servers: &[ServerId],
) -> (BTreeMap<QKey, Vec<ServerOutcome>>, Vec<WildcardProbe>) {
    let mut keys = targets.keys.clone();
    keys.push(QKey::new(zone, RType::Soa));
    keys.push(QKey::new(zone, RType::Ns));

    let mut probe_specs: Vec<(String, RType)> = Vec::new();
    if cfg.probe_wildcards {
        for k in &targets.keys {
            if k.name == zone || k.rtype == RType::Cname && k.name == targets.mail_domain {
                continue;
            }
            if let Some((_, parent)) = k.name.split_once('.') {
                let spec = (parent.to_string(), k.rtype);
                if !probe_specs.contains(&spec) {
                    probe_specs.push(spec);
                }
            }
        }
    }
    let label = probe_label();

    let auth_round = ask_servers(q, servers, &keys);
    let probes_round = async {
        let keys: Vec<QKey> = probe_specs
            .iter()
            .map(|(parent, t)| QKey::new(&format!("{label}.{parent}"), *t))
            .collect();
        let answers = ask_servers(q, servers, &keys).await;
        probe_specs
            .iter()
            .zip(keys)
            .map(|((parent, t), k)| WildcardProbe {
                parent: parent.clone(),
                rtype: *t,
                probe_name: k.name.clone(),
                auth: answers.get(&k).cloned().unwrap_or_default(),
            })
            .collect::<Vec<_>>()
    };
    run_both(q.mode(), auth_round, probes_round).await
}

/// The smaller of two optional TTLs.
fn min_ttl(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The addresses to ask: IPv4 ones, plus IPv6 when configured or when a server has no
/// IPv4 address.
fn servers_to_ask(cfg: &CheckerConfig, nameservers: &[Nameserver]) -> Vec<ServerId> {
    let mut out = Vec::new();
    for ns in nameservers {
        let has_v4 = ns.addrs.iter().any(SocketAddr::is_ipv4);
        for addr in &ns.addrs {
            if addr.is_ipv4() || cfg.query_nameservers_over_ipv6 || !has_v4 {
                out.push(ServerId {
                    name: ns.name.clone(),
                    addr: *addr,
                });
            }
        }
    }
    out
}

async fn ask_servers(
    q: &Querier,
    servers: &[ServerId],
    keys: &[QKey],
) -> BTreeMap<QKey, Vec<ServerOutcome>> {
    let mut futs = Vec::new();
    for k in keys {
        for s in servers {
            futs.push(async move {
                let outcome = q
                    .query(s.addr, &k.name, k.rtype, Flags::AUTHORITATIVE)
                    .await;
                (
                    k.clone(),
                    ServerOutcome {
                        server: s.clone(),
                        outcome,
                    },
                )
            });
        }
    }
    let mut map: BTreeMap<QKey, Vec<ServerOutcome>> = BTreeMap::new();
    for (k, so) in run_all(q.mode(), futs).await {
        map.entry(k).or_default().push(so);
    }
    map
}

/// Asks one resolver, retrying with DNSSEC checking disabled after a SERVFAIL.
async fn ask_resolver(
    q: &Querier,
    resolver: SocketAddr,
    name: &str,
    rtype: RType,
) -> ResolverOutcome {
    let outcome = q.query(resolver, name, rtype, Flags::RECURSIVE).await;
    let servfail = matches!(&outcome, Outcome::Answer(a) if a.rcode == Rcode::ServFail);
    let with_cd = if servfail {
        Some(q.query(resolver, name, rtype, Flags::RECURSIVE_CD).await)
    } else {
        None
    };
    ResolverOutcome {
        resolver,
        outcome,
        with_cd,
    }
}

async fn recursive_round(
    q: &Querier,
    resolvers: &[SocketAddr],
    keys: &[QKey],
) -> BTreeMap<QKey, Vec<ResolverOutcome>> {
    let mut futs = Vec::new();
    for k in keys {
        for r in resolvers {
            futs.push(async move { (k.clone(), ask_resolver(q, *r, &k.name, k.rtype).await) });
        }
    }
    let mut map: BTreeMap<QKey, Vec<ResolverOutcome>> = BTreeMap::new();
    for (k, ro) in run_all(q.mode(), futs).await {
        map.entry(k).or_default().push(ro);
    }
    map
}

/// Asks one resolver; after a SERVFAIL, asks again with DNSSEC checking disabled and
/// keeps that answer if it is better. Discovery must find the servers even when DNSSEC
/// is broken; the record lookups keep both answers so that the breakage is reported.
async fn ask_lenient(q: &Querier, resolver: SocketAddr, name: &str, rtype: RType) -> Outcome {
    lenient(ask_resolver(q, resolver, name, rtype).await)
}

/// The better of a resolver's two answers (see [`ask_lenient`]).
fn lenient(o: ResolverOutcome) -> Outcome {
    match o.with_cd {
        Some(cd) if cd.answer().is_some_and(|a| a.rcode != Rcode::ServFail) => cd,
        _ => o.outcome,
    }
}

/// What no resolver gives when none is configured.
fn no_resolver() -> Outcome {
    Outcome::Unreachable("no recursive resolver is configured".into())
}

/// Asks the resolvers and returns the first answer (in arrival order when parallel, in
/// configured order when sequential); the last failure if none answers.
async fn first_answer(q: &Querier, resolvers: &[SocketAddr], name: &str, rtype: RType) -> Outcome {
    let mut last = no_resolver();
    match q.mode() {
        QueryMode::Sequential => {
            for r in resolvers {
                let o = ask_lenient(q, *r, name, rtype).await;
                if o.answer().is_some() {
                    return o;
                }
                last = o;
            }
        }
        QueryMode::Parallel => {
            let mut pending: FuturesUnordered<_> = resolvers
                .iter()
                .map(|r| ask_lenient(q, *r, name, rtype))
                .collect();
            while let Some(o) = pending.next().await {
                if o.answer().is_some() {
                    return o;
                }
                last = o;
            }
        }
    }
    last
}

/// [`first_answer`] made of answers already received from every resolver (in configured
/// order).
fn first_of(outcomes: &[ResolverOutcome]) -> Outcome {
    let mut last = no_resolver();
    for o in outcomes {
        let o = lenient(o.clone());
        if o.answer().is_some() {
            return o;
        }
        last = o;
    }
    last
}

/// Lowers `slot` to `ttl`.
fn lower(slot: &mut Option<u32>, ttl: u32) {
    *slot = Some(slot.map_or(ttl, |s| s.min(ttl)));
}

/// NS names at `name` in an answer, with the smallest of their TTLs.
fn ns_at(name: &str, outcome: &Outcome) -> (Vec<String>, Option<u32>) {
    let mut ttl = None;
    let names = outcome
        .answer()
        .map(|a| {
            a.answers
                .iter()
                .filter(|r| r.name == name)
                .filter_map(|r| match &r.data {
                    Data::Ns(n) => {
                        lower(&mut ttl, r.ttl);
                        Some(n.clone())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    (names, ttl)
}

/// Finds the zone cut above the mail domain, its NS set and their addresses; also the
/// smallest TTL of the answers this rests on (the "no NS here" answers below the cut,
/// the zone's and the parent's NS records, the NS hosts' addresses).
async fn discover(q: &Querier, cfg: &CheckerConfig, mail_domain: &str) -> (Discovery, Option<u32>) {
    let resolvers = &cfg.recursive_resolvers;
    let names = ancestors(mail_domain);
    let walk: Vec<(String, Outcome)> = run_all(
        q.mode(),
        names
            .iter()
            .map(|n| async move { (n.clone(), first_answer(q, resolvers, n, RType::Ns).await) })
            .collect(),
    )
    .await;

    let mut discovery = Discovery::default();
    let Some(zi) = walk.iter().position(|(n, o)| !ns_at(n, o).0.is_empty()) else {
        let answered = walk.iter().any(|(_, o)| o.answer().is_some());
        discovery.error = Some(if answered {
            format!("no name servers are published for {mail_domain} or any domain above it")
        } else {
            "no recursive resolver answered".to_string()
        });
        discovery.walk = walk;
        return (discovery, None);
    };
    let mut ttl = None;
    for (_, o) in &walk[..zi] {
        if let Some(t) = o.answer().and_then(|a| a.negative_ttl()) {
            lower(&mut ttl, t);
        }
    }
    let (zone, zone_outcome) = &walk[zi];
    discovery.zone = Some(zone.clone());
    let (mut ns_names, zone_ttl) = ns_at(zone, zone_outcome);
    ttl = min_ttl(ttl, zone_ttl);
    ns_names.sort();
    ns_names.dedup();

    if let Some((parent, _)) = walk[zi + 1..]
        .iter()
        .find(|(n, o)| !ns_at(n, o).0.is_empty())
    {
        discovery.parent_zone = Some(parent.clone());
    }

    let (nameservers, hosts_ttl) = resolve_hosts(q, cfg, &ns_names, zone_outcome).await;
    discovery.nameservers = nameservers;
    discovery.walk = walk;
    (discovery, min_ttl(ttl, hosts_ttl))
}

/// Addresses for NS host names: configured overrides first, then glue from `glue_from`,
/// then A (and AAAA) lookups at the resolvers. Also the smallest TTL of the glue and
/// lookup answers used (configured addresses have none).
async fn resolve_hosts(
    q: &Querier,
    cfg: &CheckerConfig,
    names: &[String],
    glue_from: &Outcome,
) -> (Vec<Nameserver>, Option<u32>) {
    let port = cfg.nameserver_port;
    let glue = |name: &str| -> (Vec<SocketAddr>, Option<u32>) {
        let mut ttl = None;
        let addrs = glue_from
            .answer()
            .map(|a| {
                a.additional
                    .iter()
                    .filter(|r| r.name == name)
                    .filter_map(|r| {
                        let addr = match r.data {
                            Data::A(ip) => SocketAddr::new(IpAddr::V4(ip), port),
                            Data::Aaaa(ip) => SocketAddr::new(IpAddr::V6(ip), port),
                            _ => return None,
                        };
                        lower(&mut ttl, r.ttl);
                        Some(addr)
                    })
                    .collect()
            })
            .unwrap_or_default();
        (addrs, ttl)
    };
    let futs = names
        .iter()
        .map(|name| async move {
            if let Some(addrs) = cfg.nameserver_addresses.get(name) {
                let ns = Nameserver {
                    name: name.clone(),
                    addrs: addrs.clone(),
                    resolve_error: None,
                };
                return (ns, None);
            }
            let (glued, glue_ttl) = glue(name);
            if !glued.is_empty() {
                let ns = Nameserver {
                    name: name.clone(),
                    addrs: glued,
                    resolve_error: None,
                };
                return (ns, glue_ttl);
            }
            let resolvers = &cfg.recursive_resolvers;
            let (v4, v6) = run_both(
                q.mode(),
                first_answer(q, resolvers, name, RType::A),
                first_answer(q, resolvers, name, RType::Aaaa),
            )
            .await;
            let mut addrs = Vec::new();
            let mut ttl = None;
            for (o, t) in [(&v4, RType::A), (&v6, RType::Aaaa)] {
                if let Some(a) = o.answer() {
                    let records = a.chain(name, t).records;
                    if records.is_empty() {
                        if let Some(n) = a.negative_ttl() {
                            lower(&mut ttl, n);
                        }
                    }
                    for r in records {
                        match r.data {
                            Data::A(ip) => addrs.push(SocketAddr::new(IpAddr::V4(ip), port)),
                            Data::Aaaa(ip) => addrs.push(SocketAddr::new(IpAddr::V6(ip), port)),
                            _ => continue,
                        }
                        lower(&mut ttl, r.ttl);
                    }
                }
            }
            let resolve_error = if addrs.is_empty() {
                Some(match (v4.failure(), v4.answer()) {
                    (Some(f), _) => format!("the address lookup failed: the resolver {f}"),
                    (None, Some(a)) if a.rcode == Rcode::NxDomain => {
                        "this name does not exist".to_string()
                    }
                    _ => "this name has no address".to_string(),
                })
            } else {
                None
            };
            let ns = Nameserver {
                name: name.clone(),
                addrs,
                resolve_error,
            };
            (ns, ttl)
        })
        .collect();
    let mut ttl = None;
    let hosts = run_all(q.mode(), futs)
        .await
        .into_iter()
        .map(|(ns, t)| {
            ttl = min_ttl(ttl, t);
            ns
        })
        .collect();
    (hosts, ttl)
}

/// The parent zone's servers to ask for the delegation (two are enough: they serve the
/// same delegation), and the smallest TTL of the answers that gave them.
async fn parent_servers(
    q: &Querier,
    cfg: &CheckerConfig,
    discovery: &Discovery,
) -> (Vec<ServerId>, Option<u32>) {
    let Some(parent) = discovery.parent_zone.as_ref() else {
        return (Vec::new(), None);
    };
    let Some((_, outcome)) = discovery.walk.iter().find(|(n, _)| n == parent) else {
        return (Vec::new(), None);
    };
    let (mut names, ns_ttl) = ns_at(parent, outcome);
    names.sort();
    names.dedup();
    names.truncate(2);
    let (hosts, hosts_ttl) = resolve_hosts(q, cfg, &names, outcome).await;
    (servers_to_ask(cfg, &hosts), min_ttl(ns_ttl, hosts_ttl))
}

/// Asks the parent zone's servers which servers they delegate `zone` to.
async fn ask_parent(q: &Querier, servers: &[ServerId], zone: &str) -> Option<Vec<String>> {
    let answers = run_all(
        q.mode(),
        servers
            .iter()
            .map(|s| q.query(s.addr, zone, RType::Ns, Flags::AUTHORITATIVE))
            .collect(),
    )
    .await;
    for o in answers {
        if let Some(a) = o.answer() {
            let mut ns: Vec<String> = a
                .answers
                .iter()
                .chain(&a.authority)
                .filter(|r| r.name == zone)
                .filter_map(|r| match &r.data {
                    Data::Ns(n) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            if !ns.is_empty() {
                ns.sort();
                ns.dedup();
                return Some(ns);
            }
        }
    }
    None
}

/// Reverse DNS of each address, then the forward lookup of each name it gives. A name
/// equal to the mail domain takes its answer from `addresses`, the recursive view's
/// A/AAAA lookups of the mail domain (asked at the same time as the PTR).
async fn ptr_round<F>(
    q: &Querier,
    resolvers: &[SocketAddr],
    ips: &[IpAddr],
    mail_domain: &str,
    addresses: F,
) -> Vec<PtrCheck>
where
    F: Future<Output = BTreeMap<QKey, Vec<ResolverOutcome>>> + Clone,
{
    let futs = ips
        .iter()
        .map(|ip| {
            let addresses = addresses.clone();
            async move {
                let reverse = reverse_name(*ip);
                let ptr = first_answer(q, resolvers, &reverse, RType::Ptr).await;
                let targets: Vec<String> = ptr
                    .answer()
                    .map(|a| {
                        a.chain(&reverse, RType::Ptr)
                            .records
                            .into_iter()
                            .filter_map(|r| match r.data {
                                Data::Ptr(t) => Some(t),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let rtype = if ip.is_ipv4() { RType::A } else { RType::Aaaa };
                let forward = run_all(
                    q.mode(),
                    targets
                        .iter()
                        .map(|t| {
                            let addresses = addresses.clone();
                            async move {
                                if t == mail_domain {
                                    let known = addresses.await;
                                    if let Some(v) = known.get(&QKey::new(t, rtype)) {
                                        return (t.clone(), first_of(v));
                                    }
                                }
                                (t.clone(), first_answer(q, resolvers, t, rtype).await)
                            }
                        })
                        .collect(),
                )
                .await;
                PtrCheck {
                    ip: *ip,
                    reverse_name: reverse,
                    ptr,
                    forward,
                }
            }
        })
        .collect();
    run_all(q.mode(), futs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.10".parse().unwrap()),
            "10.2.0.192.in-addr.arpa"
        );
        let v6 = reverse_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0"));
        assert!(v6.ends_with("8.b.d.0.1.0.0.2.ip6.arpa"));
        assert_eq!(v6.split('.').count(), 34);
    }

    #[test]
    fn ancestor_walk() {
        assert_eq!(
            ancestors("Chat.Example.org."),
            ["chat.example.org", "example.org", "org"]
        );
    }
}
