//! Compares a relay's [`DnsPlan`] with what DNS actually serves, and explains every
//! problem in plain language: what is wrong, what to do, and who has to do it.
//!
//! The portal's status page (and later the appliance's self-check) keeps one [`Checker`],
//! calls [`Checker::check_with`] and shows, or serves as JSON, the [`CheckReport`]: one
//! [`RecordCheck`] per planned record and a list of [`Finding`]s. The free functions
//! [`check`] and [`check_with`] run one check with nothing kept.
//!
//! # What is asked
//!
//! 1. **Discovery.** The configured recursive resolvers are asked for the NS records of the
//!    mail domain and of every name above it; the lowest name that has some is the zone
//!    apex, the next one up its parent zone. NS host addresses come from the glue in that
//!    answer, from [`CheckerConfig::nameserver_addresses`], or from A/AAAA lookups.
//! 2. **Authoritative view.** Every address of every name server is asked directly
//!    (recursion off) for every planned record, the zone's SOA and NS, and random names next
//!    to the planned ones (wildcard probes). UDP first, TCP when the answer is truncated.
//!    The parent zone's servers are asked where they delegate the zone.
//! 3. **Public view.** Every configured resolver is asked for every planned record, plus
//!    CAA of every parent name; a SERVFAIL is retried with DNSSEC checking disabled (CD),
//!    which tells broken DNSSEC from a dead zone.
//! 4. **Reverse DNS.** PTR of each planned address, then the forward lookup of each name
//!    (taken from step 3's address lookups when the PTR names the mail domain).
//!
//! Independent questions go out together ([`QueryMode::Parallel`]); each waits at most
//! [`CheckerConfig::timeout`] (twice when a truncated answer needs TCP), so a dead or slow
//! server costs one timeout, not one per question.
//!
//! # A long-lived checker
//!
//! Discovery is the only part that takes several dependent rounds (NS records up the
//! tree, then the NS hosts' addresses when the resolver sends no glue, then the parent's
//! servers). A [`Checker`] keeps what it found per mail domain ([`cache`]), so the next
//! check of the same relay (the status page refreshes every 30 seconds) asks the zone's
//! servers and the parent's at once, and takes about one round trip to the slowest
//! server. An entry lives at most as long as the shortest TTL among the answers it came
//! from, capped by [`CheckerConfig::discovery_cache_max_age`] (5 minutes by default). It
//! never makes a check wrong: every check still asks the servers everything, and when a
//! server that served the zone no longer does (gone, refusing, lame, NXDOMAIN for the
//! zone, a referral to a new zone cut) or the parent delegates elsewhere, the same check
//! discovers from scratch and reports only what that finds. [`Checker::cache_stats`] counts hits, misses and
//! rediscoveries. A checker is `Send + Sync`; share one (e.g. in an `Arc`) across
//! requests.
//!
//! # Pointing the checker at test servers
//!
//! There is no test mode. A test starts its own servers on loopback addresses and uses the
//! ordinary settings: [`CheckerConfig::recursive_resolvers`] names the server that plays
//! "the Internet's resolver" (it serves the parent zone, the NS glue, a possibly stale copy
//! of the relay's zone and the reverse zones), and [`CheckerConfig::nameserver_port`] is the
//! port on which the authoritative servers listen (each on its own 127.0.0.x address, which
//! the test zone's NS glue gives). [`CheckerConfig::nameserver_addresses`] can instead pin
//! single name servers to any `ip:port`.
//!
//! # Verdicts and findings
//!
//! Per record ([`compare`]): ok; missing; wrong (expected vs found); not yet propagated
//! (authoritative right, a resolver still caches the old answer, with the remaining TTL);
//! the authoritative servers disagree (marked as syncing when their SOA serials differ);
//! resolvers fail; unknown (no server answered); pending (the plan waits for the device).
//!
//! Findings ([`diagnose`]) recognise the common mistakes: MX pointing at an alias or
//! elsewhere, a CNAME at the apex or beside other data, several SPF records, a DKIM key
//! cut off or pasted with its quotes, CAA that forbids the CA or fails to resolve, addresses
//! in Cloudflare's proxy ranges, broken DNSSEC, records entered at a provider that is not
//! in charge, missing or mismatched forward-confirmed PTR, unreachable, slow, lame or
//! TCP-less name servers, TTLs so high that fixes take hours, alias loops, and records
//! answered only by a wildcard (counted as published, with an info finding).

pub mod cache;
pub mod cloudflare;
pub mod collect;
pub mod compare;
pub mod config;
pub mod diagnose;
/// The report's types live in `chatmail-shared`, so the portal's browser side can read them.
pub mod model {
    pub use chatmail_shared::dns_report::*;
}
pub mod observations;
pub mod resolve;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use cache::CacheStats;
pub use chatmail_shared::DnsPlan;
pub use compare::purpose_id;
pub use config::{CheckContext, CheckerConfig, ConnectionKind, QueryMode};
pub use model::{
    CheckReport, Finding, NameserverReport, NameserverStatus, RecordCheck, RecordStatus,
    ResolverView, ServerView, Severity, Summary, WhoActs,
};

use observations::{Data, Observations, RType};

/// Checks `plan` against DNS with no extra knowledge about the provider, discovering
/// everything from scratch.
pub async fn check(plan: &DnsPlan, config: &CheckerConfig) -> CheckReport {
    check_with(plan, &CheckContext::default(), config).await
}

/// Checks `plan` against DNS, using what the caller knows about the set-up, discovering
/// everything from scratch.
pub async fn check_with(
    plan: &DnsPlan,
    context: &CheckContext,
    config: &CheckerConfig,
) -> CheckReport {
    run_check(plan, context, config, None).await
}

/// A checker that keeps what discovery found between checks (see the crate docs and
/// [`cache`]). Share one across requests: it is `Send + Sync`, and concurrent checks
/// only take its lock briefly, never across an `.await`.
#[derive(Debug)]
pub struct Checker {
    config: CheckerConfig,
    cache: cache::DiscoveryCache,
}

impl Checker {
    /// A checker with these network settings (fixed for its life; the cache relies on
    /// them).
    pub fn new(config: CheckerConfig) -> Self {
        let cache = cache::DiscoveryCache::new(config.discovery_cache_max_age);
        Checker { config, cache }
    }

    /// The network settings.
    pub fn config(&self) -> &CheckerConfig {
        &self.config
    }

    /// Checks `plan` with no extra knowledge about the provider.
    pub async fn check(&self, plan: &DnsPlan) -> CheckReport {
        self.check_with(plan, &CheckContext::default()).await
    }

    /// Checks `plan`, using what the caller knows about the set-up. Starts from the kept
    /// discovery of the plan's mail domain when there is a live one.
    pub async fn check_with(&self, plan: &DnsPlan, context: &CheckContext) -> CheckReport {
        run_check(plan, context, &self.config, Some(&self.cache)).await
    }

    /// Counters of the discovery cache since the checker was created.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// How long the kept discovery of `mail_domain` has left, if there is one.
    pub fn cache_expires_in(&self, mail_domain: &str) -> Option<Duration> {
        self.cache
            .expires_in(&observations::normalize_name(mail_domain))
    }

    /// Drops the kept discovery of `mail_domain` (e.g. after the portal changed its
    /// delegation), so the next check discovers from scratch.
    pub fn forget(&self, mail_domain: &str) {
        self.cache
            .forget(&observations::normalize_name(mail_domain));
    }

    /// Drops every kept discovery.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }
}

async fn run_check(
    plan: &DnsPlan,
    context: &CheckContext,
    config: &CheckerConfig,
    cache: Option<&cache::DiscoveryCache>,
) -> CheckReport {
    let start = Instant::now();
    let targets = collect::Targets::from_plan(plan);
    let known = cache.and_then(|c| c.get(&targets.mail_domain));
    let collected = Box::pin(collect::collect_cached(&targets, config, known)).await;
    if let Some(c) = cache {
        c.record(
            &targets.mail_domain,
            &collected.cache,
            collected.discovery_queries,
        );
    }
    let mut report = evaluate(plan, &collected.observations, context, config);
    report.duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

/// The policy half of a check: turns observations into a report, without I/O.
pub fn evaluate(
    plan: &DnsPlan,
    obs: &Observations,
    context: &CheckContext,
    config: &CheckerConfig,
) -> CheckReport {
    let zone = obs.discovery.zone.clone().unwrap_or_default();
    let serials: BTreeSet<u32> = obs
        .lookup(&zone, RType::Soa)
        .map(|l| {
            l.auth
                .iter()
                .filter_map(|s| s.outcome.answer())
                .filter_map(|a| a.soa())
                .filter_map(|r| match r.data {
                    Data::Soa { serial, .. } => Some(serial),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let opts = compare::CompareOptions {
        serials_differ: serials.len() > 1,
    };
    let records: Vec<RecordCheck> = plan
        .records()
        .iter()
        .map(|p| compare::check_record(p, obs, opts))
        .collect();
    let input = diagnose::Input {
        plan,
        obs,
        records: &records,
        ctx: context,
        thresholds: diagnose::Thresholds {
            high_ttl_secs: config.high_ttl_secs,
            slow_ms: u64::try_from(config.slow_threshold.as_millis()).unwrap_or(u64::MAX),
            timeout_ms: u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX),
        },
    };
    let (findings, nameservers) = diagnose::diagnose(&input);
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let records_ok = records
        .iter()
        .filter(|r| r.status == RecordStatus::Ok)
        .count();
    let records_pending = records
        .iter()
        .filter(|r| matches!(r.status, RecordStatus::Pending { .. }))
        .count();
    let summary = Summary {
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        infos: count(Severity::Info),
        records_ok,
        records_pending,
        records_total: records.len(),
        all_green: count(Severity::Error) == 0
            && count(Severity::Warning) == 0
            && records_ok + records_pending == records.len(),
    };
    CheckReport {
        checked_at_unix_secs: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        duration_ms: 0,
        mail_domain: plan.domain().as_str().to_string(),
        zone: obs.discovery.zone.clone(),
        nameservers,
        resolvers: obs.resolvers.iter().map(ToString::to_string).collect(),
        records,
        findings,
        summary,
    }
}

#[cfg(test)]
mod tests {
    //! The policy half on hand-made observations: no sockets.
    use super::*;
    use chatmail_shared::{DeviceFacts, MailDomain, RelayConfig};
    use observations::{
        Answer, Discovery, Lookup, Nameserver, QKey, Rcode, ResolverOutcome, Rr, ServerId,
        ServerOutcome,
    };

    fn answer(records: Vec<Rr>) -> observations::Outcome {
        let mut a = Answer::empty(Rcode::NoError);
        a.answers = records;
        observations::Outcome::Answer(a)
    }

    #[test]
    fn a_checker_can_be_shared_across_tasks() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let checker = Checker::new(CheckerConfig::with_resolvers(vec![]));
        send_sync(&checker);
        let plan = DnsPlan::new(
            &RelayConfig::new(MailDomain::parse("chat.example.org").unwrap()),
            &DeviceFacts::default(),
        );
        let context = CheckContext::default();
        // Not polled: only its type matters.
        send(&checker.check_with(&plan, &context));
    }

    #[test]
    fn caa_on_the_parent_forbidding_the_ca_is_found_without_sockets() {
        let mut config = RelayConfig::new(MailDomain::parse("chat.example.org").unwrap());
        config.addresses.ipv4 = Some("192.0.2.10".parse().unwrap());
        let plan = DnsPlan::new(&config, &DeviceFacts::default());
        let server = ServerId {
            name: "ns1.example.net".into(),
            addr: "192.0.2.53:53".parse().unwrap(),
        };
        let resolver = "192.0.2.1:53".parse().unwrap();
        let mut obs = Observations {
            mail_domain: "chat.example.org".into(),
            discovery: Discovery {
                zone: Some("example.org".into()),
                nameservers: vec![Nameserver {
                    name: server.name.clone(),
                    addrs: vec![server.addr],
                    resolve_error: None,
                }],
                ..Discovery::default()
            },
            resolvers: vec![resolver],
            ..Observations::default()
        };
        let mut put = |name: &str, rtype: RType, auth: Option<Vec<Rr>>, rec: Vec<Rr>| {
            obs.lookups.insert(
                QKey::new(name, rtype),
                Lookup {
                    auth: auth
                        .map(|a| {
                            vec![ServerOutcome {
                                server: server.clone(),
                                outcome: answer(a),
                            }]
                        })
                        .unwrap_or_default(),
                    recursive: vec![ResolverOutcome {
                        resolver,
                        outcome: answer(rec),
                        with_cd: None,
                    }],
                },
            );
        };
        let caa = Rr::new(
            "example.org",
            3600,
            Data::Caa {
                flags: 0,
                tag: "issue".into(),
                value: "sectigo.com".into(),
            },
        );
        put("chat.example.org", RType::Caa, Some(vec![]), vec![]);
        put("example.org", RType::Caa, None, vec![caa]);
        let report = evaluate(
            &plan,
            &obs,
            &CheckContext::default(),
            &CheckerConfig::with_resolvers(vec![]),
        );
        let f: Vec<_> = report.findings_with_id("caa-forbids-ca").collect();
        assert_eq!(f.len(), 1, "{:#?}", report.findings);
        assert_eq!(f[0].subject.as_deref(), Some("example.org CAA"));
        assert!(f[0].explanation.contains("apply to chat.example.org"));
        assert!(f[0].fix.contains("letsencrypt.org"));
        // The CAA record itself is pending (no ACME account yet): no record finding.
        assert!(matches!(
            report.record("caa").unwrap().status,
            RecordStatus::Pending { .. }
        ));
    }
}
