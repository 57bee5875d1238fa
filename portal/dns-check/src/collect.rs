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
//! 3. reverse DNS of the relay's addresses → forward confirmation.
//!
//! So a full check takes about as long as its longest chain, not as the sum of its
//! questions. [`QueryMode::Sequential`] runs the same questions one by one instead.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::{FuturesUnordered, StreamExt};

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

/// Runs every query of a check.
pub async fn collect(targets: &Targets, cfg: &CheckerConfig) -> Observations {
    let q = Querier::new(cfg.timeout, cfg.edns_payload, cfg.mode);
    let mode = cfg.mode;
    let resolvers = cfg.recursive_resolvers.clone();

    // The recursive view also gets CAA for every name above the mail domain (RFC 8659
    // climbs the tree), except the top-level label.
    let mut rec_keys = targets.keys.clone();
    let climb = ancestors(&targets.mail_domain);
    for name in climb.iter().skip(1).take(climb.len().saturating_sub(2)) {
        rec_keys.push(QKey::new(name, RType::Caa));
    }

    let auth_chain = authoritative_chain(&q, cfg, targets);
    let rec_chain = recursive_round(&q, &resolvers, &rec_keys);
    let ptr_chain = ptr_round(&q, &resolvers, &targets.addresses);
    let ((discovery, auth, probes), (recursive, ptr)) =
        run_both(mode, auth_chain, run_both(mode, rec_chain, ptr_chain)).await;

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

    Observations {
        mail_domain: targets.mail_domain.clone(),
        discovery,
        lookups,
        probes,
        ptr,
        mx_targets,
        resolvers,
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

type AuthResults = (
    Discovery,
    BTreeMap<QKey, Vec<ServerOutcome>>,
    Vec<WildcardProbe>,
);

async fn authoritative_chain(q: &Querier, cfg: &CheckerConfig, targets: &Targets) -> AuthResults {
    let mut discovery = discover(q, cfg, &targets.mail_domain).await;
    let Some(zone) = discovery.zone.clone() else {
        return (discovery, BTreeMap::new(), Vec::new());
    };
    let servers = servers_to_ask(cfg, &discovery.nameservers);

    let mut keys = targets.keys.clone();
    keys.push(QKey::new(&zone, RType::Soa));
    keys.push(QKey::new(&zone, RType::Ns));

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

    let auth_round = ask_servers(q, &servers, &keys);
    let probes_round = async {
        let keys: Vec<QKey> = probe_specs
            .iter()
            .map(|(parent, t)| QKey::new(&format!("{label}.{parent}"), *t))
            .collect();
        let answers = ask_servers(q, &servers, &keys).await;
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
    let parent_round = parent_delegation(q, cfg, &discovery, &zone);
    let ((auth, probes), parent) = run_both(
        q.mode(),
        run_both(q.mode(), auth_round, probes_round),
        parent_round,
    )
    .await;
    discovery.parent_delegation = parent;
    (discovery, auth, probes)
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
    let o = ask_resolver(q, resolver, name, rtype).await;
    match o.with_cd {
        Some(cd) if cd.answer().is_some_and(|a| a.rcode != Rcode::ServFail) => cd,
        _ => o.outcome,
    }
}

/// Asks the resolvers and returns the first answer (in arrival order when parallel, in
/// configured order when sequential); the last failure if none answers.
async fn first_answer(q: &Querier, resolvers: &[SocketAddr], name: &str, rtype: RType) -> Outcome {
    let mut last = Outcome::Unreachable("no recursive resolver is configured".into());
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

/// Finds the zone cut above the mail domain, its NS set and their addresses.
async fn discover(q: &Querier, cfg: &CheckerConfig, mail_domain: &str) -> Discovery {
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

    let ns_at = |name: &str, outcome: &Outcome| -> Vec<String> {
        outcome
            .answer()
            .map(|a| {
                a.answers
                    .iter()
                    .filter(|r| r.name == name)
                    .filter_map(|r| match &r.data {
                        Data::Ns(n) => Some(n.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };

    let mut discovery = Discovery::default();
    let mut zone_idx = None;
    for (i, (name, outcome)) in walk.iter().enumerate() {
        if !ns_at(name, outcome).is_empty() {
            zone_idx = Some(i);
            break;
        }
    }
    let Some(zi) = zone_idx else {
        let answered = walk.iter().any(|(_, o)| o.answer().is_some());
        discovery.error = Some(if answered {
            format!("no name servers are published for {mail_domain} or any domain above it")
        } else {
            "no recursive resolver answered".to_string()
        });
        discovery.walk = walk;
        return discovery;
    };
    let (zone, zone_outcome) = &walk[zi];
    discovery.zone = Some(zone.clone());
    let mut ns_names = ns_at(zone, zone_outcome);
    ns_names.sort();
    ns_names.dedup();

    let parent = walk[zi + 1..]
        .iter()
        .find(|(n, o)| !ns_at(n, o).is_empty())
        .map(|(n, o)| (n.clone(), ns_at(n, o), o.clone()));
    discovery.parent_zone = parent.as_ref().map(|p| p.0.clone());

    discovery.nameservers = resolve_hosts(q, cfg, &ns_names, zone_outcome).await;
    discovery.walk = walk;
    discovery
}

/// Addresses for NS host names: configured overrides first, then glue from `glue_from`,
/// then A (and AAAA) lookups at the resolvers.
async fn resolve_hosts(
    q: &Querier,
    cfg: &CheckerConfig,
    names: &[String],
    glue_from: &Outcome,
) -> Vec<Nameserver> {
    let port = cfg.nameserver_port;
    let glue = |name: &str| -> Vec<SocketAddr> {
        glue_from
            .answer()
            .map(|a| {
                a.additional
                    .iter()
                    .filter(|r| r.name == name)
                    .filter_map(|r| match r.data {
                        Data::A(ip) => Some(SocketAddr::new(IpAddr::V4(ip), port)),
                        Data::Aaaa(ip) => Some(SocketAddr::new(IpAddr::V6(ip), port)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let futs = names
        .iter()
        .map(|name| async move {
            if let Some(addrs) = cfg.nameserver_addresses.get(name) {
                return Nameserver {
                    name: name.clone(),
                    addrs: addrs.clone(),
                    resolve_error: None,
                };
            }
            let glued = glue(name);
            if !glued.is_empty() {
                return Nameserver {
                    name: name.clone(),
                    addrs: glued,
                    resolve_error: None,
                };
            }
            let resolvers = &cfg.recursive_resolvers;
            let (v4, v6) = run_both(
                q.mode(),
                first_answer(q, resolvers, name, RType::A),
                first_answer(q, resolvers, name, RType::Aaaa),
            )
            .await;
            let mut addrs = Vec::new();
            for (o, t) in [(&v4, RType::A), (&v6, RType::Aaaa)] {
                if let Some(a) = o.answer() {
                    for r in a.chain(name, t).records {
                        match r.data {
                            Data::A(ip) => addrs.push(SocketAddr::new(IpAddr::V4(ip), port)),
                            Data::Aaaa(ip) => addrs.push(SocketAddr::new(IpAddr::V6(ip), port)),
                            _ => {}
                        }
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
            Nameserver {
                name: name.clone(),
                addrs,
                resolve_error,
            }
        })
        .collect();
    run_all(q.mode(), futs).await
}

/// Asks the parent zone's servers which servers they delegate `zone` to.
async fn parent_delegation(
    q: &Querier,
    cfg: &CheckerConfig,
    discovery: &Discovery,
    zone: &str,
) -> Option<Vec<String>> {
    let parent = discovery.parent_zone.as_ref()?;
    let (_, outcome) = discovery.walk.iter().find(|(n, _)| n == parent)?;
    let mut names: Vec<String> = outcome
        .answer()?
        .answers
        .iter()
        .filter(|r| &r.name == parent)
        .filter_map(|r| match &r.data {
            Data::Ns(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    // Two parent servers are enough: they serve the same delegation.
    names.truncate(2);
    let hosts = resolve_hosts(q, cfg, &names, outcome).await;
    let servers: Vec<ServerId> = servers_to_ask(cfg, &hosts);
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

/// Reverse DNS of each address, then the forward lookup of each name it gives.
async fn ptr_round(q: &Querier, resolvers: &[SocketAddr], ips: &[IpAddr]) -> Vec<PtrCheck> {
    let futs = ips
        .iter()
        .map(|ip| async move {
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
                    .map(|t| async move { (t.clone(), first_answer(q, resolvers, t, rtype).await) })
                    .collect(),
            )
            .await;
            PtrCheck {
                ip: *ip,
                reverse_name: reverse,
                ptr,
                forward,
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
