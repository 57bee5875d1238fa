//! The result of a DNS check (made by the `chatmail-dns-check` crate), as the portal
//! shows it and serves it as JSON.
//!
//! Everything here is plain data with `serde` derives, so the portal can store a report,
//! send it to the browser (this crate builds for wasm32) and read it back without knowing
//! anything about DNS. Texts are
//! already written for people who are not DNS experts; machine ids (`Finding::id`,
//! `RecordCheck::purpose`) stay stable so the UI and tests can rely on them.

use serde::{Deserialize, Serialize};

/// Everything one check found out about one relay's DNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// When the check finished, in seconds since the Unix epoch.
    pub checked_at_unix_secs: u64,
    /// How long the check took, in milliseconds.
    pub duration_ms: u64,
    /// The relay's mail domain (ASCII form).
    pub mail_domain: String,
    /// The DNS zone that holds the mail domain (e.g. `example.org` for `chat.example.org`),
    /// if it could be found.
    pub zone: Option<String>,
    /// The zone's authoritative name servers and how each behaved.
    pub nameservers: Vec<NameserverReport>,
    /// The recursive resolvers whose view was compared (addresses).
    pub resolvers: Vec<String>,
    /// One entry per planned record, in the plan's order.
    pub records: Vec<RecordCheck>,
    /// Problems and hints, most severe first.
    pub findings: Vec<Finding>,
    /// Counts for a headline.
    pub summary: Summary,
}

impl CheckReport {
    /// The report as pretty JSON, as the portal's API route serves it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report is always serializable")
    }

    /// Whether nothing needs attention: no error or warning finding, every ready record
    /// is [`RecordStatus::Ok`].
    pub fn is_all_green(&self) -> bool {
        self.summary.all_green
    }

    /// The findings with the given id.
    pub fn findings_with_id<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a Finding> + 'a {
        let id = id.to_string();
        self.findings.iter().filter(move |f| f.id == id)
    }

    /// The check of the first planned record with this purpose id (e.g. `mx`, `dkim`).
    pub fn record(&self, purpose: &str) -> Option<&RecordCheck> {
        self.records.iter().find(|r| r.purpose == purpose)
    }
}

/// Headline counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Findings of severity error.
    pub errors: usize,
    /// Findings of severity warning.
    pub warnings: usize,
    /// Findings of severity info.
    pub infos: usize,
    /// Planned records that are published correctly everywhere.
    pub records_ok: usize,
    /// Planned records still waiting for a fact from the device.
    pub records_pending: usize,
    /// All planned records.
    pub records_total: usize,
    /// No errors, no warnings, every ready record ok.
    pub all_green: bool,
}

/// One authoritative name server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameserverReport {
    /// Host name, e.g. `ns1.example-dns.net`.
    pub name: String,
    /// Addresses that were asked (`ip:port`).
    pub addresses: Vec<String>,
    /// Listed by the parent zone (the registry) for the zone, if that could be checked.
    pub in_parent_delegation: Option<bool>,
    /// Listed in the zone's own NS records.
    pub in_zone_ns: bool,
    /// How it answered.
    pub status: NameserverStatus,
    /// The zone's SOA serial as this server reported it.
    pub soa_serial: Option<u32>,
    /// Slowest answer it gave, in milliseconds.
    pub slowest_answer_ms: Option<u64>,
}

/// How an authoritative server behaved during the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NameserverStatus {
    /// Answered authoritatively.
    Ok,
    /// Answered, but slower than the configured threshold.
    Slow {
        /// Slowest answer, in milliseconds.
        slowest_ms: u64,
    },
    /// Never answered within the timeout, or could not be reached at all.
    Unreachable {
        /// What happened, in plain words.
        reason: String,
    },
    /// Answered, but does not serve the zone (refused, or not authoritative).
    Lame {
        /// What it answered.
        reason: String,
    },
    /// Its host name has no address.
    NoAddress {
        /// What the lookup said.
        reason: String,
    },
}

/// The state of one planned record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCheck {
    /// Stable id of what the record is for, e.g. `mx`, `dkim`.
    pub purpose: String,
    /// Owner name, ASCII, without the trailing dot.
    pub name: String,
    /// Record type, e.g. `MX`.
    pub rtype: String,
    /// `required` or `recommended`.
    pub requirement: String,
    /// Why the relay needs it, in one sentence.
    pub reason: String,
    /// The planned value in zone-file form, unless pending.
    pub expected: Option<String>,
    /// What the authoritative servers serve (zone-file form), when they agree.
    pub found: Vec<String>,
    /// TTL the authoritative servers give it, in seconds.
    pub ttl: Option<u32>,
    /// The verdict.
    pub status: RecordStatus,
    /// How bad a non-ok status is (`None` when ok or pending).
    pub severity: Option<Severity>,
    /// What each recursive resolver currently returns.
    pub resolvers: Vec<ResolverView>,
    /// The answer came only from a wildcard (`*.`) record.
    pub answered_by_wildcard: bool,
    /// The answer was reached through this alias (CNAME) chain.
    pub via_alias: Vec<String>,
}

/// The verdict for one planned record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordStatus {
    /// Published as planned, and resolvers see it.
    Ok,
    /// No authoritative server publishes it.
    Missing,
    /// Published with another value.
    Wrong {
        /// The planned value.
        expected: Vec<String>,
        /// What is published instead.
        found: Vec<String>,
    },
    /// Published correctly, but a resolver still holds an old answer.
    NotYetPropagated {
        /// The longest time, in seconds, until every resolver asked has forgotten the old
        /// answer; `None` if no resolver said.
        remaining_ttl_secs: Option<u32>,
        /// What the stale resolvers return now.
        stale_found: Vec<String>,
    },
    /// The authoritative servers give different answers.
    ServersDisagree {
        /// What each server returned.
        per_server: Vec<ServerView>,
    },
    /// Published correctly, but resolvers fail to look it up (e.g. broken DNSSEC).
    ResolverFails {
        /// What the resolvers answered.
        reason: String,
    },
    /// No authoritative server could be asked.
    Unknown {
        /// Why not.
        reason: String,
    },
    /// The plan cannot give a value yet.
    Pending {
        /// What it waits for.
        waits_for: String,
    },
}

/// What one authoritative server returned for a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    /// `name (ip:port)`.
    pub server: String,
    /// Values in zone-file form; empty when the server has none.
    pub found: Vec<String>,
    /// Set when the server did not answer.
    pub error: Option<String>,
}

/// What one recursive resolver returned for a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolverView {
    /// Its address.
    pub resolver: String,
    /// Values in zone-file form; empty when none.
    pub found: Vec<String>,
    /// Remaining cache time of this answer, in seconds.
    pub ttl: Option<u32>,
    /// Set when it failed to answer.
    pub error: Option<String>,
}

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Good to know; nothing is broken.
    Info,
    /// Something works worse than it should, or will break later.
    Warning,
    /// Something is broken now.
    Error,
}

/// Who has to do something about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhoActs {
    /// You, in the DNS settings at your DNS provider (where the records are edited).
    YouAtDnsProvider,
    /// You, at the registrar (the company where you registered the domain): name
    /// servers and DNSSEC (DS) settings live there.
    YouAtRegistrar,
    /// The company that gave the relay its IP address (hosting or VPS provider).
    HostingProvider,
    /// Your Internet provider, for a relay running at home.
    Isp,
    /// You, in your home router's settings (port forwarding to the device).
    YouAtRouter,
    /// You, at the device itself (power, cable, the image on its disk).
    YouAtDevice,
    /// Whoever runs this portal (its own network or resolver is at fault).
    PortalAdmin,
    /// Nobody: it fixes itself; wait.
    Wait,
    /// Nothing needs doing; information only.
    Nobody,
}

/// One problem or hint, explained for a non-expert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable machine id, e.g. `mx-points-to-cname`.
    pub id: String,
    /// How urgent.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// What is wrong and why it matters.
    pub explanation: String,
    /// What should be there, if that can be said.
    pub expected: Option<String>,
    /// What is there.
    pub found: Option<String>,
    /// Exactly what to do.
    pub fix: String,
    /// Who does it.
    pub who_acts: WhoActs,
    /// What it is about: a record (`name TYPE`), a server or an address.
    pub subject: Option<String>,
}
