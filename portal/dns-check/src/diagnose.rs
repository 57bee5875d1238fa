//! The common mistakes, recognised and explained: who has to do what.
//!
//! Pure functions from [`Observations`] and the per-record verdicts to [`Finding`]s. Each
//! detector looks for one known mistake (research/registrars.md §6; research/anchors-ux.md
//! §1, §3, §4, §7) and writes its own title, explanation and fix for someone who has never
//! seen a zone file. When a specific detector explains a record's problem, the generic
//! "missing" or "wrong" finding for that record is left out, so each problem is told once.

use std::collections::BTreeSet;
use std::net::IpAddr;

use chatmail_shared::dns_plan::{Purpose, Requirement, DEFAULT_TTL};
use chatmail_shared::{DnsPlan, PlannedRecord, PlannedValue, RecordData};

use crate::cloudflare::is_cloudflare;
use crate::compare::{caa_issue, dkim_key, is_kind};
use crate::config::{CheckContext, ConnectionKind};
use crate::model::{
    Finding, NameserverReport, NameserverStatus, RecordCheck, RecordStatus, Severity, WhoActs,
};
use crate::observations::{Answer, Data, Observations, Outcome, QKey, RType, Rcode, ServerId};

/// Settings the policy depends on.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// TTL above which a warning is given, in seconds.
    pub high_ttl_secs: u32,
    /// An authoritative server slower than this is "slow", in milliseconds.
    pub slow_ms: u64,
    /// The per-query timeout, in milliseconds (for messages).
    pub timeout_ms: u64,
}

/// Builds findings step by step.
struct Out {
    findings: Vec<Finding>,
    covered: BTreeSet<usize>,
}

impl Out {
    fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }
}

fn finding(
    id: &str,
    severity: Severity,
    who_acts: WhoActs,
    subject: impl Into<Option<String>>,
    title: String,
    explanation: String,
    fix: String,
) -> Finding {
    Finding {
        id: id.to_string(),
        severity,
        title,
        explanation,
        expected: None,
        found: None,
        fix,
        who_acts,
        subject: subject.into(),
    }
}

fn with(mut f: Finding, expected: Option<String>, found: Option<String>) -> Finding {
    f.expected = expected;
    f.found = found;
    f
}

/// "about 2 hours", "45 minutes", "30 seconds".
pub fn human_duration(secs: u32) -> String {
    match secs {
        0..=90 => format!("{secs} seconds"),
        91..=5399 => format!("{} minutes", secs.div_ceil(60)),
        5400..=172_799 => format!("about {} hours", (secs + 1800) / 3600),
        _ => format!("about {} days", (secs + 43_200) / 86_400),
    }
}

/// A zone-file line for a planned record.
pub fn zone_line(r: &PlannedRecord) -> Option<String> {
    match &r.value {
        PlannedValue::Ready(d) => Some(format!(
            "{}. {} IN {} {}",
            r.name,
            r.ttl,
            d.rtype(),
            d.presentation()
        )),
        PlannedValue::Pending(_) => None,
    }
}

fn purpose_title(p: Purpose) -> &'static str {
    match p {
        Purpose::Ipv4Address => "IPv4 address record (A)",
        Purpose::Ipv6Address => "IPv6 address record (AAAA)",
        Purpose::MailExchanger => "Mail exchanger record (MX)",
        Purpose::MtaStsPolicyId => "MTA-STS policy record",
        Purpose::MtaStsHost => "mta-sts alias record",
        Purpose::WwwAlias => "www alias record",
        Purpose::Dkim => "DKIM signing key record",
        Purpose::Spf => "SPF sender record",
        Purpose::Dmarc => "DMARC policy record",
        Purpose::Caa => "CAA certificate record",
        Purpose::Adsp => "ADSP record",
        Purpose::SubmissionSrv => "Service record for sending (port 587)",
        Purpose::SubmissionsSrv => "Service record for sending (port 465)",
        Purpose::ImapSrv => "Service record for reading (port 143)",
        Purpose::ImapsSrv => "Service record for reading (port 993)",
        Purpose::TlsReporting => "TLS reporting record",
    }
}

/// The answer of the first authoritative server that answered `key`.
fn first_auth<'a>(obs: &'a Observations, name: &str, rtype: RType) -> Option<&'a Answer> {
    obs.lookup(name, rtype)?
        .auth
        .iter()
        .filter_map(|s| s.outcome.answer())
        .find(|a| matches!(a.rcode, Rcode::NoError | Rcode::NxDomain))
}

/// The answer of the first resolver that answered `key`.
fn first_recursive(recursive: &[crate::observations::ResolverOutcome]) -> Option<&Answer> {
    recursive
        .iter()
        .filter_map(|r| r.outcome.answer())
        .find(|a| matches!(a.rcode, Rcode::NoError | Rcode::NxDomain))
}

/// Everything the detectors need.
pub struct Input<'a> {
    /// The plan.
    pub plan: &'a DnsPlan,
    /// What was seen.
    pub obs: &'a Observations,
    /// Per-record verdicts, in plan order.
    pub records: &'a [RecordCheck],
    /// What the caller knows.
    pub ctx: &'a CheckContext,
    /// Limits.
    pub thresholds: Thresholds,
}

/// All findings, most severe first, and the name-server table.
pub fn diagnose(input: &Input<'_>) -> (Vec<Finding>, Vec<NameserverReport>) {
    let mut out = Out {
        findings: Vec::new(),
        covered: BTreeSet::new(),
    };
    let nameservers = nameserver_reports(input);
    resolvers(input, &mut out);
    if input.obs.discovery.zone.is_none() {
        zone_missing(input, &mut out);
    } else {
        nameserver_findings(input, &nameservers, &mut out);
        delegation(input, &mut out);
        cname_at_domain(input, &mut out);
        cname_loops(input, &mut out);
        mx_target(input, &mut out);
        spf_multiple(input, &mut out);
        dkim_shape(input, &mut out);
        caa(input, &mut out);
        cloudflare(input, &mut out);
        unplanned_addresses(input, &mut out);
        dnssec(input, &mut out);
        ptr(input, &mut out);
        ttl(input, &mut out);
        wildcards(input, &mut out);
        generic(input, &mut out);
    }
    let mut findings = out.findings;
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    (findings, nameservers)
}

fn mail_domain(input: &Input<'_>) -> String {
    input.plan.domain().as_str().to_string()
}

fn zone(input: &Input<'_>) -> String {
    input.obs.discovery.zone.clone().unwrap_or_default()
}

fn index_of(input: &Input<'_>, purpose: Purpose) -> Option<usize> {
    input
        .plan
        .records()
        .iter()
        .position(|r| r.purpose == purpose)
}

fn cover(input: &Input<'_>, out: &mut Out, purpose: Purpose) {
    for (i, r) in input.plan.records().iter().enumerate() {
        if r.purpose == purpose {
            out.covered.insert(i);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Resolvers and zone discovery

fn resolvers(input: &Input<'_>, out: &mut Out) {
    let obs = input.obs;
    for resolver in &obs.resolvers {
        let mut asked = 0;
        let mut answered = 0;
        let mut failure = None;
        for l in obs.lookups.values() {
            for r in l.recursive.iter().filter(|r| &r.resolver == resolver) {
                asked += 1;
                match r.outcome.failure() {
                    None => answered += 1,
                    Some(f) => failure = Some(f),
                }
            }
        }
        if asked > 0 && answered == 0 {
            out.push(finding(
                "resolver-unreachable",
                Severity::Error,
                WhoActs::PortalAdmin,
                resolver.to_string(),
                format!("The DNS resolver {resolver} used for this check does not work"),
                format!(
                    "This check compares your name servers with what a public DNS resolver sees. \
                     The resolver {resolver} {}, so the public view could not be checked. This is \
                     a problem of the system running the check, not of your domain.",
                    failure.unwrap_or_else(|| "did not answer".into())
                ),
                "Try again in a few minutes. If it keeps happening, the people who run this \
                 portal need to check its DNS resolver settings."
                    .into(),
            ));
        }
    }
}

fn zone_missing(input: &Input<'_>, out: &mut Out) {
    let d = mail_domain(input);
    let reason = input.obs.discovery.error.clone().unwrap_or_default();
    if reason.contains("no recursive resolver answered") {
        // Already explained by resolver-unreachable.
        if out.findings.iter().any(|f| f.id == "resolver-unreachable") {
            return;
        }
    }
    out.push(finding(
        "domain-not-found",
        Severity::Error,
        WhoActs::YouAtRegistrar,
        d.clone(),
        format!("{d} cannot be found in DNS"),
        format!(
            "No name servers are published for {d} or for any domain above it ({reason}). \
             Without them nobody can look up any record of your relay. This happens when the \
             domain is not registered (yet), has expired, or its registration has no name \
             servers set."
        ),
        format!(
            "Log in at the company where you registered the domain (your registrar). Check that \
             the domain is registered and paid, and that its name server list contains your DNS \
             provider's servers. If you only just registered {d}, wait an hour and check again."
        ),
    ));
}

// ---------------------------------------------------------------------------------------
// Authoritative servers

fn server_outcomes<'a>(obs: &'a Observations, server: &ServerId) -> Vec<&'a Outcome> {
    obs.lookups
        .values()
        .flat_map(|l| l.auth.iter())
        .chain(obs.probes.iter().flat_map(|p| p.auth.iter()))
        .filter(|s| &s.server == server)
        .map(|s| &s.outcome)
        .collect()
}

fn nameserver_reports(input: &Input<'_>) -> Vec<NameserverReport> {
    let obs = input.obs;
    let zone = zone(input);
    let child_ns = zone_ns_from_auth(obs, &zone);
    let mut reports = Vec::new();
    for ns in &obs.discovery.nameservers {
        let in_parent = obs
            .discovery
            .parent_delegation
            .as_ref()
            .map(|p| p.contains(&ns.name));
        let in_zone_ns = child_ns.is_empty() || child_ns.contains(&ns.name);
        let servers: Vec<ServerId> = obs
            .lookups
            .values()
            .flat_map(|l| l.auth.iter().map(|s| s.server.clone()))
            .filter(|s| s.name == ns.name)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let addresses = if servers.is_empty() {
            ns.addrs.iter().map(ToString::to_string).collect()
        } else {
            servers.iter().map(|s| s.addr.to_string()).collect()
        };
        if ns.addrs.is_empty() {
            reports.push(NameserverReport {
                name: ns.name.clone(),
                addresses,
                in_parent_delegation: in_parent,
                in_zone_ns,
                status: NameserverStatus::NoAddress {
                    reason: ns
                        .resolve_error
                        .clone()
                        .unwrap_or_else(|| "no address".into()),
                },
                soa_serial: None,
                slowest_answer_ms: None,
            });
            continue;
        }
        let outcomes: Vec<&Outcome> = servers
            .iter()
            .flat_map(|s| server_outcomes(obs, s))
            .collect();
        let answers: Vec<&Answer> = outcomes.iter().filter_map(|o| o.answer()).collect();
        let slowest = answers.iter().map(|a| a.elapsed_ms).max();
        let soa = obs.lookup(&zone, RType::Soa).and_then(|l| {
            l.auth
                .iter()
                .filter(|s| s.server.name == ns.name)
                .filter_map(|s| s.outcome.answer())
                .find_map(|a| a.soa().cloned())
        });
        let soa_serial = soa.and_then(|r| match r.data {
            Data::Soa { serial, .. } => Some(serial),
            _ => None,
        });
        let soa_answer = obs.lookup(&zone, RType::Soa).and_then(|l| {
            l.auth
                .iter()
                .filter(|s| s.server.name == ns.name)
                .find_map(|s| s.outcome.answer())
        });
        let status = if answers.is_empty() {
            let timeouts = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Timeout))
                .count();
            NameserverStatus::Unreachable {
                reason: if timeouts > 0 {
                    format!(
                        "did not answer any question within {:.1} seconds",
                        input.thresholds.timeout_ms as f64 / 1000.0
                    )
                } else {
                    outcomes
                        .first()
                        .and_then(|o| o.failure())
                        .unwrap_or_else(|| "was not asked".into())
                },
            }
        } else if let Some(a) = soa_answer
            .filter(|a| !a.authoritative || !matches!(a.rcode, Rcode::NoError | Rcode::NxDomain))
        {
            NameserverStatus::Lame {
                reason: if a.authoritative {
                    format!("answered {} for the zone", a.rcode)
                } else {
                    format!(
                        "answered {} without authority: it does not serve the zone",
                        a.rcode
                    )
                },
            }
        } else if slowest.is_some_and(|s| s > input.thresholds.slow_ms) {
            NameserverStatus::Slow {
                slowest_ms: slowest.unwrap_or_default(),
            }
        } else {
            NameserverStatus::Ok
        };
        reports.push(NameserverReport {
            name: ns.name.clone(),
            addresses,
            in_parent_delegation: in_parent,
            in_zone_ns,
            status,
            soa_serial,
            slowest_answer_ms: slowest,
        });
    }
    reports
}

fn zone_ns_from_auth(obs: &Observations, zone: &str) -> BTreeSet<String> {
    obs.lookup(zone, RType::Ns)
        .map(|l| {
            l.auth
                .iter()
                .filter_map(|s| s.outcome.answer())
                .flat_map(|a| a.chain(zone, RType::Ns).records)
                .filter_map(|r| match r.data {
                    Data::Ns(n) => Some(n),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn nameserver_findings(input: &Input<'_>, reports: &[NameserverReport], out: &mut Out) {
    let working = reports
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                NameserverStatus::Ok | NameserverStatus::Slow { .. }
            )
        })
        .count();
    let severity = if working == 0 {
        Severity::Error
    } else {
        Severity::Warning
    };
    let consequence = if working == 0 {
        "No name server of your domain works, so nobody can look up your relay's records: \
         apps cannot connect and mail cannot be delivered."
    } else {
        "Resolvers that try this server first have to wait for it and then try another one, so \
         looking up your relay is slow, and it fails completely if the other servers have a \
         problem too."
    };
    for r in reports {
        match &r.status {
            NameserverStatus::Unreachable { reason } => out.push(finding(
                "nameserver-unreachable",
                severity,
                WhoActs::YouAtDnsProvider,
                r.name.clone(),
                format!("Name server {} does not answer", r.name),
                format!(
                    "{} ({}) is listed as a name server of your domain but {reason}. {consequence}",
                    r.name,
                    r.addresses.join(", ")
                ),
                format!(
                    "If {} belongs to your DNS provider, tell their support that it does not \
                     answer. If it is an old server you no longer use, remove it from your \
                     domain's name server list at your registrar.",
                    r.name
                ),
            )),
            NameserverStatus::NoAddress { reason } => out.push(finding(
                "nameserver-no-address",
                severity,
                WhoActs::YouAtRegistrar,
                r.name.clone(),
                format!("Name server {} has no address", r.name),
                format!(
                    "{} is listed as a name server of your domain, but {reason}, so it can never \
                     be asked. {consequence}",
                    r.name
                ),
                format!(
                    "Check the spelling of {} in the name server list at your registrar, and \
                     replace it with the exact names your DNS provider gives you.",
                    r.name
                ),
            )),
            NameserverStatus::Lame { reason } => out.push(finding(
                "nameserver-lame",
                Severity::Error,
                WhoActs::YouAtRegistrar,
                r.name.clone(),
                format!("Name server {} does not serve your domain", r.name),
                format!(
                    "{} is listed as a name server of your domain, but it {reason}. Resolvers \
                     that ask it get no answer for your relay. Typically the domain was moved \
                     to another DNS provider and an old server stayed in the list, or the zone \
                     was never created at this provider.",
                    r.name
                ),
                format!(
                    "Either create the zone at the provider that runs {}, or remove {} from the \
                     name server list at your registrar.",
                    r.name, r.name
                ),
            )),
            NameserverStatus::Slow { slowest_ms } => out.push(finding(
                "nameserver-slow",
                Severity::Warning,
                WhoActs::YouAtDnsProvider,
                r.name.clone(),
                format!("Name server {} answers slowly", r.name),
                format!(
                    "{} took up to {:.1} seconds to answer (more than {:.1} s). Resolvers may \
                     give up on it and try another server, which makes looking up your relay \
                     slow.",
                    r.name,
                    *slowest_ms as f64 / 1000.0,
                    input.thresholds.slow_ms as f64 / 1000.0
                ),
                "If this keeps happening, tell your DNS provider's support which server is slow."
                    .into(),
            )),
            NameserverStatus::Ok => {}
        }
    }
    // Truncated UDP answers whose TCP retry failed.
    let mut tcp_failed: BTreeSet<String> = BTreeSet::new();
    for l in input.obs.lookups.values() {
        for s in &l.auth {
            if matches!(s.outcome, Outcome::Truncated(_)) {
                tcp_failed.insert(s.server.name.clone());
            }
        }
    }
    for name in tcp_failed {
        out.push(finding(
            "nameserver-tcp-failed",
            Severity::Error,
            WhoActs::YouAtDnsProvider,
            name.clone(),
            format!("Name server {name} cannot send large answers"),
            format!(
                "Answers that do not fit into one UDP packet (such as your DKIM key or a long \
                 list of TXT records) must be fetched over TCP. {name} said its answer was too \
                 large for UDP, but then did not answer over TCP. Mail servers that check your \
                 relay's signatures may fail to read its key."
            ),
            format!(
                "Tell your DNS provider's support that {name} does not answer DNS over TCP \
                 (port 53), which every name server must (RFC 7766)."
            ),
        ));
    }
}

fn ns_matches(ns: &str, pattern: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    ns == p || ns.ends_with(&format!(".{p}"))
}

fn delegation(input: &Input<'_>, out: &mut Out) {
    let obs = input.obs;
    let zone = zone(input);
    let recursive_ns: BTreeSet<String> = obs
        .discovery
        .nameservers
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let child = zone_ns_from_auth(obs, &zone);
    let child = if child.is_empty() {
        recursive_ns.clone()
    } else {
        child
    };
    let parent: Option<BTreeSet<String>> = obs
        .discovery
        .parent_delegation
        .as_ref()
        .map(|p| p.iter().cloned().collect());
    if let Some(parent) = &parent {
        if parent != &child {
            let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
            out.push(with(
                finding(
                    "ns-delegation-mismatch",
                    Severity::Warning,
                    WhoActs::YouAtRegistrar,
                    zone.clone(),
                    format!("Two different name server lists for {zone}"),
                    format!(
                        "The registry of {} sends everyone to the name servers {}, but your \
                         zone itself lists {}. Resolvers may use either list, so some people \
                         may see old or missing records.",
                        obs.discovery.parent_zone.clone().unwrap_or_default(),
                        list(parent),
                        list(&child)
                    ),
                    "Make both lists the same: at your registrar, set the name servers to \
                     exactly the ones your DNS provider tells you to use, and make sure the NS \
                     records in your zone at the DNS provider show the same names."
                        .into(),
                ),
                Some(list(parent)),
                Some(list(&child)),
            ));
        }
    }
    if input.ctx.provider_nameservers.is_empty() {
        return;
    }
    let delegated: BTreeSet<String> = parent.unwrap_or(recursive_ns);
    let at_provider = delegated
        .iter()
        .filter(|ns| {
            input
                .ctx
                .provider_nameservers
                .iter()
                .any(|p| ns_matches(ns, p))
        })
        .count();
    if at_provider == delegated.len() {
        return;
    }
    let provider = input
        .ctx
        .provider_name
        .clone()
        .unwrap_or_else(|| "your DNS provider".into());
    let wanted = input.ctx.provider_nameservers.join(", ");
    let actual = delegated.iter().cloned().collect::<Vec<_>>().join(", ");
    let (severity, title, explanation) = if at_provider == 0 {
        (
            Severity::Error,
            format!("Your records were entered at {provider}, but {provider} is not in charge of {zone}"),
            format!(
                "The records were written at {provider} (name servers {wanted}), but your domain \
                 is handed to the name servers {actual}. Only those are ever asked, so everything \
                 entered at {provider} is invisible to the rest of the Internet."
            ),
        )
    } else {
        (
            Severity::Warning,
            format!("Only some of {zone}'s name servers belong to {provider}"),
            format!(
                "The records were written at {provider} (name servers {wanted}), but your domain \
                 is handed to {actual}. The servers that do not belong to {provider} do not get \
                 your records, so part of the Internet sees them and part does not."
            ),
        )
    };
    out.push(with(
        finding(
            "ns-not-at-provider",
            severity,
            WhoActs::YouAtRegistrar,
            zone.clone(),
            title,
            explanation,
            format!(
                "At your registrar, set the name servers of {zone} to exactly {provider}'s \
                 ({wanted}). Alternatively, enter the records at the provider that runs {actual}. \
                 A change of name servers can take up to two days to reach everyone."
            ),
        ),
        Some(wanted.clone()),
        Some(actual),
    ));
}

// ---------------------------------------------------------------------------------------
// Records at the mail domain

fn cname_at_domain(input: &Input<'_>, out: &mut Out) {
    let d = mail_domain(input);
    let zone = zone(input);
    let Some(answer) = first_auth(input.obs, &d, RType::Cname) else {
        return;
    };
    let Some(target) = answer
        .chain(&d, RType::Cname)
        .records
        .first()
        .and_then(|r| match &r.data {
            Data::Cname(t) => Some(t.clone()),
            _ => None,
        })
    else {
        return;
    };
    // Other data at the same name, served directly (not through the alias)?
    let mut beside: Vec<&str> = Vec::new();
    for t in [RType::A, RType::Aaaa, RType::Mx, RType::Txt, RType::Caa] {
        if let Some(a) = first_auth(input.obs, &d, t) {
            let c = a.chain(&d, t);
            if c.aliases.is_empty() && !c.records.is_empty() {
                beside.push(t.as_str());
            }
        }
    }
    let addresses = address_lines(input.plan);
    let fix = format!(
        "At your DNS provider, delete the CNAME record of {d} and add the address record{} \
         instead:\n{}",
        if addresses.len() > 1 { "s" } else { "" },
        addresses.join("\n")
    );
    let found = Some(format!("{d}. CNAME {target}."));
    let f = if d == zone {
        finding(
            "cname-at-apex",
            Severity::Error,
            WhoActs::YouAtDnsProvider,
            format!("{d} CNAME"),
            format!("Your domain {d} is an alias (CNAME) at the top of its zone"),
            format!(
                "{d} is set up as an alias for {target}. DNS forbids an alias at the top of a \
                 zone, because the zone's own SOA and NS records, and your relay's MX, SPF and \
                 CAA records, must live there, and an alias may have no other record beside it. \
                 Depending on the provider, mail servers then see the alias or the mail records \
                 at random, or nothing."
            ),
            fix,
        )
    } else {
        let served = if beside.is_empty() {
            String::new()
        } else {
            format!(
                " Your DNS provider serves the alias and {} records at the same name, which \
                 breaks the DNS rules: resolvers see one or the other at random.",
                beside.join(", ")
            )
        };
        finding(
            "cname-beside-other-data",
            Severity::Error,
            WhoActs::YouAtDnsProvider,
            format!("{d} CNAME"),
            format!("{d} is an alias (CNAME), so it cannot carry your relay's mail records"),
            format!(
                "{d} is set up as an alias for {target}. A name that is an alias may have no \
                 other record, but your relay needs its MX, SPF and CAA records exactly at \
                 {d}.{served}"
            ),
            fix,
        )
    };
    out.push(with(f, address_lines(input.plan).first().cloned(), found));
    for (i, (r, c)) in input.plan.records().iter().zip(input.records).enumerate() {
        if r.name == d && !matches!(c.status, RecordStatus::Ok | RecordStatus::Pending { .. }) {
            out.covered.insert(i);
        }
    }
}

fn address_lines(plan: &DnsPlan) -> Vec<String> {
    plan.records()
        .iter()
        .filter(|r| matches!(r.purpose, Purpose::Ipv4Address | Purpose::Ipv6Address))
        .filter_map(zone_line)
        .collect()
}

fn cname_loops(input: &Input<'_>, out: &mut Out) {
    for (i, r) in input.plan.records().iter().enumerate() {
        let Some(t) = RType::from_mnemonic(r.rtype()) else {
            continue;
        };
        let asked = if t == RType::Cname { RType::A } else { t };
        let looped = [t, asked].iter().find_map(|t| {
            let l = input.obs.lookup(&r.name, *t)?;
            l.auth
                .iter()
                .filter_map(|s| s.outcome.answer())
                .chain(l.recursive.iter().filter_map(|s| s.outcome.answer()))
                .map(|a| a.chain(&r.name, RType::A))
                .find(|c| c.looped)
        });
        let Some(chain) = looped else {
            continue;
        };
        let mut path = vec![r.name.clone()];
        path.extend(chain.aliases.iter().cloned());
        out.covered.insert(i);
        out.push(with(
            finding(
                "cname-loop",
                Severity::Error,
                WhoActs::YouAtDnsProvider,
                format!("{} CNAME", r.name),
                format!("The alias {} goes round in a circle", r.name),
                format!(
                    "Following the aliases (CNAME records) from {} leads back to where it \
                     started: {}. Such a name never ends at an address, so nothing can use it.",
                    r.name,
                    path.join(" → ")
                ),
                match zone_line(r) {
                    Some(line) => format!(
                        "At your DNS provider, replace the record of {} with:\n{line}",
                        r.name
                    ),
                    None => format!(
                        "At your DNS provider, delete the aliases in this circle: {}.",
                        path.join(", ")
                    ),
                },
            ),
            zone_line(r),
            Some(path.join(" → ")),
        ));
    }
}

fn mx_target(input: &Input<'_>, out: &mut Out) {
    let d = mail_domain(input);
    let Some(i) = index_of(input, Purpose::MailExchanger) else {
        return;
    };
    let Some(answer) = first_auth(input.obs, &d, RType::Mx) else {
        return;
    };
    let chain = answer.chain(&d, RType::Mx);
    if !chain.aliases.is_empty() {
        return; // The mail domain itself is an alias: cname_at_domain explains it.
    }
    let planned = zone_line(&input.plan.records()[i]).unwrap_or_default();
    let exchanges: Vec<String> = chain
        .records
        .iter()
        .filter_map(|r| match &r.data {
            Data::Mx { exchange, .. } => Some(exchange.clone()),
            _ => None,
        })
        .collect();
    let others: Vec<&String> = exchanges.iter().filter(|e| **e != d).collect();
    if others.is_empty() {
        return;
    }
    let found = chain
        .records
        .iter()
        .map(|r| format!("{d}. MX {}", r.data.presentation()))
        .collect::<Vec<_>>()
        .join("\n");
    let fix = format!(
        "At your DNS provider, change the MX record of {d} so that it is exactly:\n{planned}\n\
         and delete any other MX record of {d}."
    );
    // Is any target an alias?
    let alias_target = others.iter().find_map(|e| {
        let rec = input.obs.mx_targets.get(&QKey::new(e, RType::Cname))?;
        let a = first_recursive(rec)?;
        a.chain(e, RType::Cname)
            .records
            .first()
            .and_then(|r| match &r.data {
                Data::Cname(t) => Some(((*e).clone(), t.clone())),
                _ => None,
            })
    });
    out.covered.insert(i);
    if let Some((name, target)) = alias_target {
        out.push(with(
            finding(
                "mx-points-to-cname",
                Severity::Error,
                WhoActs::YouAtDnsProvider,
                format!("{d} MX"),
                format!("The MX record of {d} points to an alias"),
                format!(
                    "Mail for {d} is sent to {name}, but {name} is an alias (CNAME) for {target}. \
                     An MX record must name a host directly, never an alias (RFC 2181 §10.3): \
                     many mail servers refuse to deliver, and your relay's MTA-STS policy only \
                     allows {d} itself."
                ),
                fix,
            ),
            Some(planned),
            Some(found),
        ));
        return;
    }
    let null = exchanges.iter().any(String::is_empty);
    let ip_like = others.iter().any(|e| e.parse::<IpAddr>().is_ok());
    let extra = if null {
        " The record \"0 .\" is a \"null MX\": it tells everyone that this domain accepts no \
         mail at all."
            .to_string()
    } else if ip_like {
        " An MX record must contain a host name, not an IP address.".to_string()
    } else if exchanges.contains(&d) {
        format!(
            " Your relay is listed too, but senders may pick the other host{} first.",
            if others.len() > 1 { "s" } else { "" }
        )
    } else {
        String::new()
    };
    out.push(with(
        finding(
            "mx-points-elsewhere",
            Severity::Error,
            WhoActs::YouAtDnsProvider,
            format!("{d} MX"),
            format!("Mail for {d} does not go to your relay"),
            format!(
                "The MX record of {d} sends mail to {}, not to your relay at {d}. Other mail \
                 servers deliver to the MX host, so messages for your users end up elsewhere \
                 or bounce.{extra}",
                others
                    .iter()
                    .map(|e| if e.is_empty() {
                        "\".\"".to_string()
                    } else {
                        (*e).clone()
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fix,
        ),
        Some(planned),
        Some(found),
    ));
}

fn spf_multiple(input: &Input<'_>, out: &mut Out) {
    let d = mail_domain(input);
    let Some(answer) = first_auth(input.obs, &d, RType::Txt) else {
        return;
    };
    let chain = answer.chain(&d, RType::Txt);
    let spf: Vec<String> = chain
        .records
        .iter()
        .filter_map(|r| r.data.txt_joined())
        .filter(|t| is_kind(t, "v=spf1"))
        .collect();
    if spf.len() < 2 {
        return;
    }
    let planned = index_of(input, Purpose::Spf)
        .and_then(|i| zone_line(&input.plan.records()[i]))
        .unwrap_or_default();
    cover(input, out, Purpose::Spf);
    out.push(with(
        finding(
            "spf-multiple",
            Severity::Error,
            WhoActs::YouAtDnsProvider,
            format!("{d} TXT"),
            format!("{d} has {} SPF records instead of one", spf.len()),
            format!(
                "A domain may have only one SPF record (a TXT record starting with v=spf1). With \
                 {} of them, receiving mail servers must treat your SPF as broken (RFC 7208 \
                 §4.5), so it protects nothing, and some receivers file your relay's mail as \
                 spam.",
                spf.len()
            ),
            format!(
                "At your DNS provider, delete all TXT records of {d} that start with v=spf1 \
                 except one, and make that one exactly:\n{planned}\nIf another service must \
                 send mail for {d} too, add it into this single record instead of a second one."
            ),
        ),
        Some(planned),
        Some(
            spf.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    ));
}

fn dkim_shape(input: &Input<'_>, out: &mut Out) {
    let Some(i) = index_of(input, Purpose::Dkim) else {
        return;
    };
    let planned = &input.plan.records()[i];
    let PlannedValue::Ready(RecordData::Txt(strings)) = &planned.value else {
        return;
    };
    let line = zone_line(planned).unwrap_or_default();
    // Every server fails this one question while answering others: the classic result of
    // a key stored as one string over 255 bytes, which DNS cannot transmit.
    let servfails = input
        .obs
        .lookup(&planned.name, RType::Txt)
        .is_some_and(|l| {
            !l.auth.is_empty()
                && l.auth.iter().all(|s| {
                    s.outcome
                        .answer()
                        .is_none_or(|a| a.rcode == Rcode::ServFail)
                })
        });
    let servers_work = input.obs.lookups.values().any(|l| {
        l.auth.iter().any(|s| {
            s.outcome
                .answer()
                .is_some_and(|a| a.rcode == Rcode::NoError)
        })
    });
    if servfails && servers_work {
        out.covered.insert(i);
        out.push(with(
            finding(
                "dkim-not-split",
                Severity::Error,
                WhoActs::YouAtDnsProvider,
                format!("{} TXT", planned.name),
                "The DKIM key cannot be sent: probably stored as one piece over 255 characters"
                    .into(),
                format!(
                    "Your name servers answer every other question but fail (no answer, or \
                     SERVFAIL) for the \
                     DKIM key at {}. A single text piece in DNS may hold at most 255 characters; \
                     the key is {} characters long, so it must be stored as several pieces. \
                     Some providers accept a longer piece and then cannot send it. Receivers \
                     cannot read the key, so your relay's signatures fail.",
                    planned.name,
                    strings.joined().len()
                ),
                format!(
                    "At your DNS provider, delete the TXT record of {} and enter it as several \
                     quoted strings of at most 255 characters, exactly as in this zone-file line \
                     (or import the line):\n{line}",
                    planned.name
                ),
            ),
            Some(line.clone()),
            Some("no usable answer from any name server".into()),
        ));
        return;
    }
    let Some(answer) = first_auth(input.obs, &planned.name, RType::Txt) else {
        return;
    };
    let found: Vec<String> = answer
        .chain(&planned.name, RType::Txt)
        .records
        .iter()
        .filter_map(|r| r.data.txt_joined())
        .collect();
    let (want_key, _) = dkim_key(&strings.joined());
    for text in found {
        let (key, _) = dkim_key(&text);
        if key == want_key {
            continue;
        }
        if text.contains('"') {
            out.covered.insert(i);
            out.push(with(
                finding(
                    "dkim-badly-split",
                    Severity::Error,
                    WhoActs::YouAtDnsProvider,
                    format!("{} TXT", planned.name),
                    "The DKIM key contains quote characters".into(),
                    "Long TXT values are written in zone files as several quoted pieces, \
                     \"like\" \"this\". Here the pieces were pasted, quotes and all, into a field \
                     that expects the plain text, so the quotes became part of the key. Mail \
                     servers cannot use the key, so your relay's signatures fail and strict \
                     receivers reject its mail."
                        .into(),
                    format!(
                        "At your DNS provider, edit the TXT record of {} and enter the value \
                         without any quotes, as one piece:\n{}\nMost providers split long values \
                         by themselves. If yours accepts only 255 characters per field, use its \
                         zone-file import with this line instead:\n{line}",
                        planned.name,
                        strings.joined()
                    ),
                ),
                Some(line.clone()),
                Some(text.clone()),
            ));
            return;
        }
        if !key.is_empty() && want_key.starts_with(&key) {
            out.covered.insert(i);
            out.push(with(
                finding(
                    "dkim-truncated",
                    Severity::Error,
                    WhoActs::YouAtDnsProvider,
                    format!("{} TXT", planned.name),
                    "The DKIM key is cut off".into(),
                    format!(
                        "The published key has only {} of its {} characters. Many DNS panels \
                         silently cut TXT values at 255 characters. Mail servers cannot use a \
                         cut-off key, so your relay's signatures fail and strict receivers \
                         reject its mail.",
                        key.len(),
                        want_key.len()
                    ),
                    format!(
                        "At your DNS provider, delete the TXT record of {} and enter it again in \
                         full. If the field stops at 255 characters, enter the value as several \
                         quoted strings of at most 255 characters each, exactly as in this \
                         zone-file line (or import the line):\n{line}",
                        planned.name
                    ),
                ),
                Some(line.clone()),
                Some(text.clone()),
            ));
            return;
        }
    }
}

/// A CAA record: flags, tag, value.
type CaaProperty = (u8, String, String);

fn caa(input: &Input<'_>, out: &mut Out) {
    let d = mail_domain(input);
    let obs = input.obs;
    let planned_idx = index_of(input, Purpose::Caa);
    let planned = planned_idx.map(|i| &input.plan.records()[i]);
    let (issuer, account) = match planned.map(|p| &p.value) {
        Some(PlannedValue::Ready(RecordData::Caa { value, .. })) => {
            let (i, a) = caa_issue(value);
            (i, a)
        }
        _ => (
            input
                .ctx
                .ca_issuer
                .clone()
                .unwrap_or_else(|| chatmail_shared::config::DEFAULT_CAA_ISSUER.to_string())
                .to_ascii_lowercase(),
            None,
        ),
    };
    let planned_line = planned.and_then(zone_line);

    // 1. Lookups that fail: the CA must refuse to issue.
    let mut failures: Vec<String> = Vec::new();
    if let Some(l) = obs.lookup(&d, RType::Caa) {
        for s in &l.auth {
            match &s.outcome {
                Outcome::Answer(a) if !matches!(a.rcode, Rcode::NoError | Rcode::NxDomain) => {
                    failures.push(format!("{} answered {}", s.server, a.rcode))
                }
                Outcome::Timeout => failures.push(format!("{} did not answer", s.server)),
                _ => {}
            }
        }
    }
    // Only blame CAA when the same server answers other questions.
    let answers_others = |server: &ServerId| {
        obs.lookups
            .iter()
            .filter(|(k, _)| k.rtype != RType::Caa)
            .flat_map(|(_, l)| l.auth.iter())
            .any(|s| {
                &s.server == server
                    && s.outcome
                        .answer()
                        .is_some_and(|a| a.rcode == Rcode::NoError)
            })
    };
    failures.retain(|f| {
        obs.lookup(&d, RType::Caa)
            .map(|l| {
                l.auth
                    .iter()
                    .any(|s| f.starts_with(&s.server.to_string()) && answers_others(&s.server))
            })
            .unwrap_or(false)
    });
    let climb = crate::collect::ancestors(&d);
    let climb: Vec<&String> = climb.iter().take(climb.len().saturating_sub(1)).collect();
    for name in &climb {
        if let Some(l) = obs.lookup(name, RType::Caa) {
            for r in &l.recursive {
                if let Outcome::Answer(a) = &r.outcome {
                    let cd_ok = r
                        .with_cd
                        .as_ref()
                        .and_then(|o| o.answer())
                        .is_some_and(|c| matches!(c.rcode, Rcode::NoError | Rcode::NxDomain));
                    if !matches!(a.rcode, Rcode::NoError | Rcode::NxDomain) && !cd_ok {
                        failures.push(format!(
                            "the resolver {} answered {} for {name}",
                            r.resolver, a.rcode
                        ));
                    }
                }
            }
        }
    }
    if !failures.is_empty() {
        if let Some(i) = planned_idx {
            out.covered.insert(i);
        }
        out.push(with(
            finding(
                "caa-lookup-fails",
                Severity::Error,
                WhoActs::YouAtDnsProvider,
                format!("{d} CAA"),
                "Certificate authorities cannot read your CAA records".into(),
                format!(
                    "Before issuing a certificate, Let's Encrypt looks up the CAA records of {d}. \
                     That lookup fails ({}), and a certificate authority must then refuse to issue \
                     (RFC 8659). Your relay cannot get or renew its HTTPS certificate, so apps \
                     cannot connect securely.",
                    failures.join("; ")
                ),
                "Your DNS provider's servers must answer CAA questions, with an empty answer if \
                 there are none. Tell their support that CAA queries fail; if they cannot fix it, \
                 move the domain's DNS to a provider that supports CAA."
                    .into(),
            ),
            planned_line.clone(),
            Some(failures.join("\n")),
        ));
        return;
    }

    // 2. The relevant CAA set (RFC 8659 §3): the first name from d upwards that has any.
    let mut relevant: Option<(String, Vec<CaaProperty>)> = None;
    for name in &climb {
        let answer = if **name == d {
            first_auth(obs, name, RType::Caa)
        } else {
            obs.lookup(name, RType::Caa)
                .and_then(|l| first_recursive(&l.recursive))
        };
        let Some(a) = answer else { continue };
        let set: Vec<CaaProperty> = a
            .chain(name, RType::Caa)
            .records
            .into_iter()
            .filter_map(|r| match r.data {
                Data::Caa { flags, tag, value } => Some((flags, tag, value)),
                _ => None,
            })
            .collect();
        if !set.is_empty() {
            relevant = Some(((*name).clone(), set));
            break;
        }
    }
    let Some((owner, set)) = relevant else {
        return;
    };
    let issues: Vec<&(u8, String, String)> = set.iter().filter(|(_, t, _)| t == "issue").collect();
    let unknown_critical = set
        .iter()
        .any(|(f, t, _)| f & 0x80 != 0 && !matches!(t.as_str(), "issue" | "issuewild" | "iodef"));
    let permits = |value: &str| {
        let (i, a) = caa_issue(value);
        i == issuer && (a.is_none() || account.is_none() || a == account)
    };
    let issuer_listed = issues.iter().any(|(_, _, v)| caa_issue(v).0 == issuer);
    let forbidden =
        unknown_critical || (!issues.is_empty() && !issues.iter().any(|(_, _, v)| permits(v)));
    if !forbidden {
        return;
    }
    if let Some(i) = planned_idx {
        out.covered.insert(i);
    }
    let found = set
        .iter()
        .map(|(f, t, v)| format!("{owner}. CAA {f} {t} \"{v}\""))
        .collect::<Vec<_>>()
        .join("\n");
    let allowed: Vec<String> = issues
        .iter()
        .map(|(_, _, v)| {
            let (i, _) = caa_issue(v);
            if i.is_empty() {
                "nobody".to_string()
            } else {
                i
            }
        })
        .collect();
    let why = if unknown_critical {
        "contains a property marked critical that certificate authorities do not understand, so \
         they must refuse to issue"
            .to_string()
    } else if issuer_listed {
        format!("allows {issuer} only for another certificate account than your relay's")
    } else {
        format!("allows only {} to issue certificates", allowed.join(", "))
    };
    let inherited = if owner != d {
        format!(" The records are set on {owner} and apply to {d} because {d} has none of its own.")
    } else {
        String::new()
    };
    let wanted = planned_line
        .clone()
        .unwrap_or_else(|| format!("{d}. 3600 IN CAA 0 issue \"{issuer}\""));
    out.push(with(
        finding(
            "caa-forbids-ca",
            Severity::Error,
            WhoActs::YouAtDnsProvider,
            format!("{owner} CAA"),
            format!("Your CAA records do not allow {issuer} to issue your relay's certificate"),
            format!(
                "CAA records say which certificate authorities may issue certificates for a \
                 domain. The CAA records of {owner} {why}.{inherited} Your relay gets its \
                 certificate from {issuer}, so it cannot get one, and apps cannot connect \
                 securely."
            ),
            if owner == d {
                format!(
                    "At your DNS provider, replace the CAA records of {d} with:\n{wanted}\n(or \
                     add it, if other certificate authorities must stay allowed)."
                )
            } else {
                format!(
                    "At your DNS provider, add this CAA record for {d}; it takes precedence over \
                     the records of {owner}:\n{wanted}"
                )
            },
        ),
        Some(wanted),
        Some(found),
    ));
}

fn cloudflare(input: &Input<'_>, out: &mut Out) {
    let d = mail_domain(input);
    let mut hits: Vec<IpAddr> = Vec::new();
    for t in [RType::A, RType::Aaaa] {
        if let Some(a) = first_auth(input.obs, &d, t) {
            for r in a.chain(&d, t).records {
                let ip = match r.data {
                    Data::A(ip) => IpAddr::V4(ip),
                    Data::Aaaa(ip) => IpAddr::V6(ip),
                    _ => continue,
                };
                if is_cloudflare(ip) {
                    hits.push(ip);
                }
            }
        }
    }
    if hits.is_empty() {
        return;
    }
    cover(input, out, Purpose::Ipv4Address);
    cover(input, out, Purpose::Ipv6Address);
    let shown = hits
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let addresses = address_lines(input.plan);
    out.push(with(
        finding(
            "cloudflare-proxy",
            Severity::Error,
            WhoActs::YouAtDnsProvider,
            format!("{d} A/AAAA"),
            format!("{d} points to Cloudflare's proxy (\"orange cloud\") instead of your relay"),
            format!(
                "{d} resolves to {shown}, which belongs to Cloudflare's proxy. The proxy passes \
                 on only web traffic, so Delta Chat apps and other mail servers cannot reach your \
                 relay's mail ports (25, 465, 587, 993), and the relay cannot get its \
                 certificate."
            ),
            format!(
                "In Cloudflare's DNS settings, click the orange cloud next to the A and AAAA \
                 records of {d} (and of www and mta-sts, if present) so that it turns grey (\"DNS \
                 only\"). The records must then read:\n{}",
                if addresses.is_empty() {
                    "your relay's own public address".to_string()
                } else {
                    addresses.join("\n")
                }
            ),
        ),
        addresses.first().cloned(),
        Some(shown),
    ));
}

fn unplanned_addresses(input: &Input<'_>, out: &mut Out) {
    let d = mail_domain(input);
    let plan = input.plan;
    let pending_address = plan.records().iter().any(|r| {
        r.name == d
            && matches!(
                r.value,
                PlannedValue::Pending(chatmail_shared::dns_plan::Pending::PublicAddress)
            )
    });
    if pending_address {
        return;
    }
    for (t, purpose, family) in [
        (RType::A, Purpose::Ipv4Address, "IPv4"),
        (RType::Aaaa, Purpose::Ipv6Address, "IPv6"),
    ] {
        if plan.get(purpose).is_some() {
            continue;
        }
        let Some(a) = first_auth(input.obs, &d, t) else {
            continue;
        };
        let chain = a.chain(&d, t);
        if !chain.aliases.is_empty() {
            continue;
        }
        let ips: Vec<String> = chain
            .records
            .iter()
            .filter_map(|r| match r.data {
                Data::A(ip) if !is_cloudflare(IpAddr::V4(ip)) => Some(ip.to_string()),
                Data::Aaaa(ip) if !is_cloudflare(IpAddr::V6(ip)) => Some(ip.to_string()),
                _ => None,
            })
            .collect();
        if ips.is_empty() {
            continue;
        }
        out.push(with(
            finding(
                "unplanned-address",
                Severity::Error,
                WhoActs::YouAtDnsProvider,
                format!("{d} {t}"),
                format!("{d} has an {family} address that is not your relay's"),
                format!(
                    "{d} has the {family} address {} ({t} record), but your relay has no {family} \
                     address in its settings. Other mail servers and apps try this address too \
                     (mail servers often try IPv6 first), and fail or reach another machine.",
                    ips.join(", ")
                ),
                format!(
                    "At your DNS provider, delete the {t} record of {d}. If the relay does have \
                     this {family} address, add it to the relay's settings in this portal \
                     instead, so that it is planned and checked."
                ),
            ),
            None,
            Some(ips.join(", ")),
        ));
    }
}

fn dnssec(input: &Input<'_>, out: &mut Out) {
    let zone = zone(input);
    let mut bogus: BTreeSet<String> = BTreeSet::new();
    let mut servfail: BTreeSet<String> = BTreeSet::new();
    for (k, l) in &input.obs.lookups {
        for r in &l.recursive {
            let Outcome::Answer(a) = &r.outcome else {
                continue;
            };
            if a.rcode != Rcode::ServFail {
                continue;
            }
            let cd_ok = r
                .with_cd
                .as_ref()
                .and_then(|o| o.answer())
                .is_some_and(|c| matches!(c.rcode, Rcode::NoError | Rcode::NxDomain));
            if cd_ok {
                bogus.insert(k.to_string());
            } else {
                servfail.insert(k.to_string());
            }
        }
    }
    if !bogus.is_empty() {
        out.push(with(
            finding(
                "dnssec-broken",
                Severity::Error,
                WhoActs::YouAtRegistrar,
                zone.clone(),
                format!("DNSSEC is broken for {zone}"),
                "Resolvers that check DNSSEC signatures (most large ones do) fail to look up \
                     your relay: they answer \"server failure\", while the same questions succeed \
                     when signature checking is switched off. So the signatures of your zone do \
                     not match the DNSSEC key registered for your domain. For everyone behind such \
                     a resolver, your relay does not exist. This usually happens after moving a \
                     domain to another DNS provider while DNSSEC was on."
                    .into(),
                format!(
                    "At your registrar, delete the DS (DNSSEC) record of {zone}. Then, if your DNS \
                     provider offers DNSSEC, switch it on there and copy the new DS record it \
                     shows to your registrar. Resolvers forget the broken state within a few \
                     hours."
                ),
            ),
            None,
            Some(bogus.into_iter().collect::<Vec<_>>().join(", ")),
        ));
    }
    let all_servers_down = !input.obs.discovery.nameservers.is_empty()
        && input
            .obs
            .lookups
            .values()
            .all(|l| l.auth.iter().all(|s| s.outcome.answer().is_none()));
    if !servfail.is_empty() && !all_servers_down {
        out.push(with(
            finding(
                "resolver-servfail",
                Severity::Error,
                WhoActs::YouAtDnsProvider,
                zone.clone(),
                format!("Resolvers fail to look up records of {zone}"),
                "Public resolvers answer \"server failure\" for some of your relay's records, \
                 even with DNSSEC checks switched off, while your name servers answered this \
                 check. Often one of the name servers misbehaves towards some resolvers, or the \
                 records point into a zone that is broken."
                    .into(),
                "Look at the name server findings above. If there are none, tell your DNS \
                 provider's support which names fail."
                    .into(),
            ),
            None,
            Some(servfail.into_iter().collect::<Vec<_>>().join(", ")),
        ));
    }
}

fn ptr(input: &Input<'_>, out: &mut Out) {
    let d = mail_domain(input);
    let who = match input.ctx.connection {
        ConnectionKind::Home => WhoActs::Isp,
        _ => WhoActs::HostingProvider,
    };
    let where_set = match input.ctx.connection {
        ConnectionKind::Home => "Reverse DNS is set by your Internet provider, not at your DNS \
                                 provider: ask them to set it. Many providers do not offer this \
                                 for home connections; then the relay can still talk to other \
                                 chatmail relays, but large mail providers will refuse its mail."
            .to_string(),
        ConnectionKind::Hosted => "Reverse DNS is set by whoever owns the address, not at your \
                                   DNS provider: in your hosting provider's control panel (often \
                                   called \"reverse DNS\" or \"PTR\"), or through their support."
            .to_string(),
        ConnectionKind::Unknown => "Reverse DNS is set by whoever owns the address, not at your \
                                    DNS provider: your hosting provider (in its control panel, \
                                    often called \"reverse DNS\" or \"PTR\"), or, for a relay at \
                                    home, your Internet provider."
            .to_string(),
    };
    let why = "Large mail providers (such as Gmail and Outlook) check that the address a \
               message comes from has a reverse DNS name which points back to the same address, \
               and refuse mail from addresses without one. Mail between chatmail relays still \
               works.";
    for p in &input.obs.ptr {
        let family = if p.ip.is_ipv4() { "IPv4" } else { "IPv6" };
        let subject = format!("{family} {}", p.ip);
        let expected = Some(format!("{}. PTR {d}.", p.reverse_name));
        let Some(answer) = p.ptr.answer() else {
            continue; // The resolver failed; resolver-unreachable says so.
        };
        let names: Vec<String> = answer
            .chain(&p.reverse_name, RType::Ptr)
            .records
            .into_iter()
            .filter_map(|r| match r.data {
                Data::Ptr(n) => Some(n),
                _ => None,
            })
            .collect();
        let set_fix = match reverse_dns_hint(&names, &d) {
            Some(hint) => format!("Set the reverse DNS name of {} to {d}. {hint}", p.ip),
            None if names.is_empty() && input.ctx.connection != ConnectionKind::Home => format!(
                "Set the reverse DNS name of {} to {d}. {where_set} At DigitalOcean there is \
                 no such setting: name the Droplet exactly {d} and it sets the reverse name \
                 itself.",
                p.ip
            ),
            None => format!("Set the reverse DNS name of {} to {d}. {where_set}", p.ip),
        };
        if names.is_empty() {
            out.push(with(
                finding(
                    "ptr-missing",
                    Severity::Warning,
                    who,
                    subject,
                    format!(
                        "Your relay's {family} address {} has no reverse DNS name",
                        p.ip
                    ),
                    why.into(),
                    set_fix,
                ),
                expected,
                Some(format!("no PTR record ({})", answer.rcode)),
            ));
            continue;
        }
        if !names.contains(&d) {
            out.push(with(
                finding(
                    "ptr-mismatch",
                    Severity::Warning,
                    who,
                    subject,
                    format!(
                        "The reverse DNS name of {} is {}, not {d}",
                        p.ip,
                        names.join(", ")
                    ),
                    format!(
                        "{why} The name must be your relay's own name, {d}, because that is the \
                         name it introduces itself with."
                    ),
                    set_fix,
                ),
                expected,
                Some(
                    names
                        .iter()
                        .map(|n| format!("{}. PTR {n}.", p.reverse_name))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
            ));
            continue;
        }
        let confirmed = p.forward.iter().any(|(name, o)| {
            name == &d
                && o.answer().is_some_and(|a| {
                    let t = if p.ip.is_ipv4() {
                        RType::A
                    } else {
                        RType::Aaaa
                    };
                    a.chain(name, t).records.iter().any(|r| match r.data {
                        Data::A(ip) => IpAddr::V4(ip) == p.ip,
                        Data::Aaaa(ip) => IpAddr::V6(ip) == p.ip,
                        _ => false,
                    })
                })
        });
        if !confirmed {
            let t = if p.ip.is_ipv4() { "A" } else { "AAAA" };
            out.push(with(
                finding(
                    "ptr-not-forward-confirmed",
                    Severity::Warning,
                    WhoActs::YouAtDnsProvider,
                    subject,
                    format!("{d} does not point back to {}", p.ip),
                    format!(
                        "The reverse DNS name of {} is {d}, as it should be, but {d} itself does \
                         not have {} as its {t} record. {why}",
                        p.ip, p.ip
                    ),
                    format!(
                        "At your DNS provider, make the {t} record of {d} point to {} (see the \
                         address record above).",
                        p.ip
                    ),
                ),
                Some(format!("{d}. {t} {}", p.ip)),
                None,
            ));
        }
    }
}

/// Where a well-known hosting provider sets reverse DNS, recognised from the default name
/// it gives its addresses; for an address without any name, the one provider that sets
/// it from the server's name. Sources: Hetzner's default `static.….clients.your-server.de`
/// and per-IP reverse DNS (Hetzner Cloud API "Change reverse DNS records", Robot API
/// "reverse DNS"); Akamai's default `….ip.linodeusercontent.com` and its rule that the
/// name must already resolve to the address (Linode API "Update an IP address's RDNS");
/// DigitalOcean makes the PTR from a Droplet's name when that is a full domain name
/// (docs.digitalocean.com, glossary "PTR Record").
fn reverse_dns_hint(names: &[String], d: &str) -> Option<String> {
    let by = |suffixes: &[&str]| {
        names
            .iter()
            .any(|n| suffixes.iter().any(|s| n.ends_with(s)))
    };
    if by(&[".your-server.de"]) {
        return Some(format!(
            "The address is Hetzner's: in the Hetzner Cloud Console (or Robot, for a dedicated \
             server) edit the reverse DNS entry of this address and enter {d}."
        ));
    }
    if by(&[".ip.linodeusercontent.com", ".members.linode.com"]) {
        return Some(format!(
            "The address is Akamai's (Linode): in Cloud Manager open the Linode's Network tab \
             and edit this address's reverse DNS to {d}. Linode accepts it only once {d} \
             already points to the address, so publish the address record first."
        ));
    }
    None
}

fn ttl(input: &Input<'_>, out: &mut Out) {
    let limit = input.thresholds.high_ttl_secs;
    let mut high: Vec<(String, u32)> = Vec::new();
    for c in input.records {
        if let Some(t) = c.ttl.filter(|t| *t > limit) {
            high.push((format!("{} {}", c.name, c.rtype), t));
        }
    }
    if !high.is_empty() {
        let max = high.iter().map(|(_, t)| *t).max().unwrap_or_default();
        out.push(with(
            finding(
                "ttl-high",
                Severity::Warning,
                WhoActs::YouAtDnsProvider,
                None,
                format!(
                    "Some records are kept in caches for up to {}",
                    human_duration(max)
                ),
                format!(
                    "The TTL of a record tells resolvers how long they may keep it. These records \
                     have TTLs over {}: {}. If one of them ever has to change (a new address, a \
                     new key), the fix reaches everyone only after up to {}.",
                    human_duration(limit),
                    high.iter()
                        .map(|(n, t)| format!("{n} ({})", human_duration(*t)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    human_duration(max)
                ),
                format!(
                    "At your DNS provider, set the TTL of these records to {DEFAULT_TTL} seconds \
                     (1 hour). Some providers call it \"cache time\" or offer \"Auto\"; pick 1 \
                     hour or less."
                ),
            ),
            Some(format!("{DEFAULT_TTL}")),
            Some(
                high.iter()
                    .map(|(n, t)| format!("{n}: {t}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ));
    }
    // Negative caching: how long a "does not exist" is remembered.
    let zone = zone(input);
    let neg = first_auth(input.obs, &zone, RType::Soa)
        .and_then(|a| a.soa().cloned())
        .and_then(|r| match r.data {
            Data::Soa { minimum, .. } => Some(minimum.min(r.ttl)),
            _ => None,
        });
    if let Some(n) = neg.filter(|n| *n > limit) {
        out.push(with(
            finding(
                "negative-ttl-high",
                Severity::Info,
                WhoActs::Wait,
                zone.clone(),
                format!("New records may take up to {} to appear", human_duration(n)),
                format!(
                    "Your zone tells resolvers to remember that a name does not exist for {}. A \
                     resolver that looked up one of your relay's records before it was created \
                     keeps saying \"does not exist\" for that long.",
                    human_duration(n)
                ),
                "Usually nothing to do but wait. If your DNS provider lets you edit the SOA \
                 record, set its last number (minimum) to 3600 or less."
                    .into(),
            ),
            Some("3600".into()),
            Some(n.to_string()),
        ));
    }
}

fn wildcards(input: &Input<'_>, out: &mut Out) {
    for c in input.records {
        if !c.answered_by_wildcard {
            continue;
        }
        let parent = c.name.split_once('.').map(|(_, p)| p).unwrap_or_default();
        out.push(finding(
            "answered-by-wildcard",
            Severity::Info,
            WhoActs::YouAtDnsProvider,
            format!("{} {}", c.name, c.rtype),
            format!("{} may be answered by a wildcard record", c.name),
            format!(
                "The answer for {} is exactly what the wildcard record *.{parent} gives for any \
                 name. If {} has no record of its own, it works only through the wildcard: that \
                 counts as published, but changing or deleting the wildcard would silently \
                 change this record too. (Without DNSSEC, DNS cannot tell the two apart.)",
                c.name, c.name
            ),
            format!(
                "Optional: add the record for {} explicitly at your DNS provider{}.",
                c.name,
                c.expected
                    .as_ref()
                    .map(|e| format!(" ({}. {} {e})", c.name, c.rtype))
                    .unwrap_or_default()
            ),
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Generic per-record findings

fn generic(input: &Input<'_>, out: &mut Out) {
    let dnssec_explained = out
        .findings
        .iter()
        .any(|f| f.id == "dnssec-broken" || f.id == "resolver-servfail");
    for (i, (p, c)) in input.plan.records().iter().zip(input.records).enumerate() {
        if out.covered.contains(&i) {
            continue;
        }
        let severity = match p.requirement {
            Requirement::Required => Severity::Error,
            Requirement::Recommended => Severity::Warning,
        };
        let title = purpose_title(p.purpose);
        let line = zone_line(p);
        let subject = Some(format!("{} {}", c.name, c.rtype));
        match &c.status {
            RecordStatus::Ok | RecordStatus::Pending { .. } => {}
            RecordStatus::Unknown { reason } => {
                // Explained by the name-server findings, unless the servers work and fail
                // only for this record.
                let servers_work = input.obs.lookups.values().any(|l| {
                    l.auth.iter().any(|s| {
                        s.outcome
                            .answer()
                            .is_some_and(|a| a.rcode == Rcode::NoError)
                    })
                });
                let key = QKey::new(
                    &c.name,
                    RType::from_mnemonic(&c.rtype).unwrap_or(RType::Txt),
                );
                let answers: Vec<String> = input
                    .obs
                    .lookups
                    .get(&key)
                    .map(|l| {
                        l.auth
                            .iter()
                            .map(|s| {
                                format!(
                                    "{}: {}",
                                    s.server,
                                    match &s.outcome {
                                        Outcome::Answer(a) => format!("answered {}", a.rcode),
                                        o => o.failure().unwrap_or_default(),
                                    }
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if servers_work {
                    out.push(with(
                        finding(
                            "record-lookup-fails",
                            severity,
                            WhoActs::YouAtDnsProvider,
                            subject,
                            format!("{title} cannot be read from your name servers"),
                            format!(
                                "{} Your name servers answer other questions, but fail for this \
                                 one ({reason}). This happens when a provider stores a value it \
                                 cannot send, for example a text piece longer than 255 \
                                 characters.",
                                p.reason
                            ),
                            format!(
                                "At your DNS provider, delete this record and enter it again \
                                 exactly as:\n{}\nIf it still fails, tell the provider's support \
                                 that their servers answer SERVFAIL for {} {}.",
                                line.clone().unwrap_or_default(),
                                c.name,
                                c.rtype
                            ),
                        ),
                        line,
                        Some(answers.join("\n")),
                    ));
                }
            }
            RecordStatus::Missing => out.push(with(
                finding(
                    "record-missing",
                    severity,
                    WhoActs::YouAtDnsProvider,
                    subject,
                    format!("{title} is missing"),
                    format!(
                        "{} None of your domain's name servers publishes this record{}.",
                        p.reason,
                        if c.via_alias.is_empty() {
                            String::new()
                        } else {
                            format!(" (the name is an alias for {})", c.via_alias.join(" → "))
                        }
                    ),
                    format!(
                        "At your DNS provider, add this record:\n{}",
                        line.clone().unwrap_or_default()
                    ),
                ),
                line,
                None,
            )),
            RecordStatus::Wrong { found, .. } => out.push(with(
                finding(
                    "record-wrong",
                    severity,
                    WhoActs::YouAtDnsProvider,
                    subject,
                    format!("{title} has the wrong value"),
                    format!(
                        "{} Your name servers publish a different value{}.",
                        p.reason,
                        if c.via_alias.is_empty() {
                            String::new()
                        } else {
                            format!(", reached through the alias {}", c.via_alias.join(" → "))
                        }
                    ),
                    format!(
                        "At your DNS provider, change the {} record of {} to exactly the value \
                         below, and delete other {} records of the same kind at that name:\n{}",
                        c.rtype,
                        c.name,
                        c.rtype,
                        line.clone().unwrap_or_default()
                    ),
                ),
                line,
                Some(found.join("\n")),
            )),
            RecordStatus::NotYetPropagated {
                remaining_ttl_secs,
                stale_found,
            } => {
                let wait = remaining_ttl_secs
                    .map(human_duration)
                    .unwrap_or_else(|| "a while".into());
                out.push(with(
                    finding(
                        "record-not-propagated",
                        Severity::Info,
                        WhoActs::Wait,
                        subject,
                        format!("{title} is correct, but not everyone sees it yet"),
                        format!(
                            "Your name servers publish the right value, but a resolver still \
                             remembers an older answer ({}). It will ask again within {wait}.",
                            if stale_found.is_empty() {
                                "that the record does not exist".to_string()
                            } else {
                                stale_found.join(", ")
                            }
                        ),
                        format!("Nothing to do: wait {wait}, then check again."),
                    ),
                    line,
                    Some(stale_found.join("\n")),
                ));
            }
            RecordStatus::ServersDisagree { per_server } => {
                let found = per_server
                    .iter()
                    .map(|s| {
                        format!(
                            "{}: {}",
                            s.server,
                            match (&s.error, s.found.is_empty()) {
                                (Some(e), _) => e.clone(),
                                (None, true) => "nothing".into(),
                                (None, false) => s.found.join(", "),
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                if c.severity == Some(Severity::Info) {
                    out.push(with(
                        finding(
                            "servers-syncing",
                            Severity::Info,
                            WhoActs::Wait,
                            subject,
                            format!("{title}: your name servers are still being updated"),
                            "Your name servers give different answers for this record, and \
                             they report different versions (serial numbers) of your zone: the \
                             change has reached some of them but not all yet."
                                .into(),
                            "Nothing to do: this normally settles within minutes. If it still \
                             differs after an hour, tell your DNS provider's support."
                                .into(),
                        ),
                        line,
                        Some(found),
                    ));
                } else {
                    out.push(with(
                        finding(
                            "servers-disagree",
                            severity,
                            WhoActs::YouAtDnsProvider,
                            subject,
                            format!("{title}: your name servers give different answers"),
                            format!(
                                "{} Your domain's name servers do not agree about this record, \
                                 so what people see depends on which server their resolver \
                                 asks. Usually one of the servers belongs to an old provider or \
                                 has stopped receiving updates.",
                                p.reason
                            ),
                            "Check that the name server list at your registrar contains only \
                             your current DNS provider's servers. If it does, tell the \
                             provider's support which server is out of date."
                                .into(),
                        ),
                        line,
                        Some(found),
                    ));
                }
            }
            RecordStatus::ResolverFails { reason } => {
                if !dnssec_explained {
                    out.push(with(
                        finding(
                            "record-resolver-fails",
                            severity,
                            WhoActs::YouAtDnsProvider,
                            subject,
                            format!("{title} is published, but resolvers cannot fetch it"),
                            format!("{} {reason}.", p.reason),
                            "Tell your DNS provider's support that public resolvers fail to \
                             look up this record."
                                .into(),
                        ),
                        line,
                        None,
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(30), "30 seconds");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(86_400), "about 24 hours");
        assert_eq!(human_duration(604_800), "about 7 days");
    }

    #[test]
    fn provider_patterns() {
        assert!(ns_matches("ada.ns.cloudflare.com", "ns.cloudflare.com"));
        assert!(ns_matches("ns1.example.net", "NS1.example.net."));
        assert!(!ns_matches(
            "evilns.cloudflare.com.example",
            "ns.cloudflare.com"
        ));
    }

    #[test]
    fn reverse_dns_advice_per_hoster() {
        let hint = |name: &str| reverse_dns_hint(&[name.to_string()], "chat.example.org");
        assert!(hint("li1-2.members.linode.com")
            .unwrap()
            .contains("Network tab"));
        assert!(hint("203-0-113-5.ip.linodeusercontent.com")
            .unwrap()
            .contains("publish the address record first"));
        assert!(hint("static.5.113.0.203.clients.your-server.de")
            .unwrap()
            .contains("Hetzner"));
        // Only the real suffix counts, not a look-alike.
        assert!(hint("your-server.de.attacker.example").is_none());
        assert!(hint("vps-1234.hoster.example").is_none());
    }
}
