//! What the provider tests share: the relay's plan, the zones they start from, the real
//! servers (PowerDNS through its API or RFC 2136, Knot through RFC 2136) behind one
//! interface, a minimal "job" (read, diff, apply, keep ownership), and the DNS checker
//! pointed at the server under test.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use chatmail_dns_check::{CheckReport, CheckerConfig, RecordStatus};
use chatmail_dns_providers::records::value_key;
use chatmail_dns_providers::{
    diff, Diff, DnsProvider, OwnedValue, PowerDns, Rfc2136, TsigAlgorithm, TsigKey, ZoneContents,
};
use chatmail_dns_world::knot::{Knot, KNOT_IP};
use chatmail_dns_world::pdns::{minimal_zone, PowerDns as PdnsServer, PDNS_IP};
use chatmail_dns_world::{dkim_spki_base64, ACCOUNT_URL, RELAY_V4, RELAY_V6};
use chatmail_shared::config::RelayConfig;
use chatmail_shared::{
    AcmeAccountUrl, DeviceFacts, DkimPublicKey, DnsPlan, DnsRecord, EmailAddress, MailDomain,
};

/// The zone the tests write to.
pub const ZONE: &str = "example.org";
/// The relay's mail domain inside it.
pub const DOMAIN: &str = "chat.example.org";

/// The relay's complete plan with this IPv4 address (IPv6, DKIM and CAA as in dns-world).
pub fn plan_with(v4: Ipv4Addr) -> DnsPlan {
    let mut config = RelayConfig::new(MailDomain::parse(DOMAIN).unwrap());
    config.addresses.ipv4 = Some(v4);
    config.addresses.ipv6 = Some(RELAY_V6);
    config.privacy.contact_mail = Some(EmailAddress::parse("admin@provider.example").unwrap());
    let facts = DeviceFacts {
        dkim_public_key: Some(DkimPublicKey::rsa(&dkim_spki_base64()).unwrap()),
        acme_account_url: Some(AcmeAccountUrl::parse(ACCOUNT_URL).unwrap()),
    };
    DnsPlan::new(&config, &facts)
}

/// The plan with the standard test address.
pub fn plan() -> DnsPlan {
    plan_with(RELAY_V4)
}

/// Records someone else put into the zone before the relay came: a mail server, an alias
/// where the relay wants its own, a site-verification TXT, another SPF, another CA's CAA,
/// and an unrelated address at the apex.
pub const FOREIGN: &str = "\
chat 3600 IN MX 10 mail.example.net.\n\
www.chat 3600 IN CNAME example.org.\n\
chat 300 IN TXT \"google-site-verification=abc123\"\n\
chat 300 IN TXT \"v=spf1 include:_spf.example.net ~all\"\n\
chat 3600 IN CAA 0 issue \"sectigo.com\"\n\
@ 3600 IN A 198.51.100.7\n";

/// Aliases in the way: someone made the relay's name an alias, and put an address and a
/// TXT record where the relay's `www` alias goes.
pub const ALIASES: &str = "\
chat 3600 IN CNAME elsewhere.example.net.\n\
www.chat 3600 IN A 198.51.100.8\n\
www.chat 3600 IN TXT \"hello\"\n";

/// The foreign records as (name, type, value key), to check they stay untouched.
pub fn foreign_keys() -> BTreeSet<(String, String, String)> {
    [
        (DOMAIN, "MX", "10 mail.example.net"),
        ("www.chat.example.org", "CNAME", "example.org"),
        (DOMAIN, "TXT", "google-site-verification=abc123"),
        (DOMAIN, "TXT", "v=spf1 include:_spf.example.net ~all"),
        (DOMAIN, "CAA", "0 issue sectigo.com"),
        (ZONE, "A", "198.51.100.7"),
    ]
    .into_iter()
    .map(|(n, t, v)| (n.to_string(), t.to_string(), v.to_string()))
    .collect()
}

/// Which server and protocol a test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PowerDNS through its HTTP API.
    PowerDnsApi,
    /// PowerDNS through RFC 2136 with TSIG.
    PowerDnsRfc2136,
    /// Knot through RFC 2136 with TSIG.
    KnotRfc2136,
}

/// A running server of either kind.
pub enum Server {
    Pdns(PdnsServer, Kind),
    Knot(Knot),
}

impl Server {
    /// Starts a server of `kind` serving [`ZONE`] with its SOA/NS plus `extra` records.
    pub async fn start(kind: Kind, extra: &str) -> Server {
        match kind {
            Kind::PowerDnsApi | Kind::PowerDnsRfc2136 => {
                let mut s = PdnsServer::start().await;
                s.load_zone(ZONE, &format!("{}{extra}", minimal_zone(ZONE, PDNS_IP)));
                Server::Pdns(s, kind)
            }
            Kind::KnotRfc2136 => {
                let text = format!("{}{extra}", minimal_zone(ZONE, KNOT_IP));
                Server::Knot(Knot::start(&[(ZONE, &text)]).await)
            }
        }
    }

    /// Where it answers DNS.
    pub fn dns_addr(&self) -> SocketAddr {
        match self {
            Server::Pdns(s, _) => s.dns_addr(),
            Server::Knot(k) => k.dns_addr(),
        }
    }

    /// The provider the portal would use, with the right credentials.
    pub fn provider(&self) -> Box<dyn DnsProvider> {
        match self {
            Server::Pdns(s, Kind::PowerDnsApi) => {
                Box::new(PowerDns::new(&s.api_url(), s.api_key(), "localhost").unwrap())
            }
            Server::Pdns(s, _) => Box::new(
                Rfc2136::new(
                    s.dns_addr(),
                    ZONE,
                    TsigKey::new("portal", TsigAlgorithm::HmacSha256, s.tsig_secret()),
                )
                .unwrap()
                .with_timeout(Duration::from_secs(5)),
            ),
            Server::Knot(k) => Box::new(
                Rfc2136::new(
                    k.dns_addr(),
                    ZONE,
                    TsigKey::new("portal", TsigAlgorithm::HmacSha256, k.tsig_secret()),
                )
                .unwrap()
                .with_timeout(Duration::from_secs(5)),
            ),
        }
    }

    /// Kills it (as a crash).
    pub fn kill(&mut self) {
        match self {
            Server::Pdns(s, _) => s.stop(),
            Server::Knot(k) => k.stop(),
        }
    }

    /// Starts it again on the same data.
    pub async fn restart(&mut self) {
        match self {
            Server::Pdns(s, _) => s.restart().await,
            Server::Knot(k) => k.restart().await,
        }
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        match self {
            Server::Pdns(s, _) => s.log(),
            Server::Knot(k) => k.log(),
        }
    }
}

/// The names a job reads: every desired name and every owned name.
pub fn names(desired: &[DnsRecord], owned: &[OwnedValue]) -> Vec<String> {
    let mut n: Vec<String> = desired
        .iter()
        .map(|r| r.name.clone())
        .chain(owned.iter().map(|o| o.name.clone()))
        .collect();
    n.sort();
    n.dedup();
    n
}

/// One run of the apply job: read, diff, apply the changes (with these confirmations),
/// return the diff and the ownership afterwards.
pub async fn run_job(
    provider: &dyn DnsProvider,
    desired: &[DnsRecord],
    owned: &[OwnedValue],
    confirmed: &BTreeSet<String>,
) -> (Diff, Vec<OwnedValue>) {
    let current = provider
        .read_names(ZONE, &names(desired, owned))
        .await
        .expect("read the zone");
    let d = diff(desired, &current, owned);
    provider
        .apply(ZONE, &d.changes(confirmed))
        .await
        .unwrap_or_else(|e| panic!("apply failed: {e:?}\n{d:#?}"));
    let after = d.ownership_after(confirmed);
    (d, after)
}

/// The diff the next run would compute.
pub async fn next_diff(
    provider: &dyn DnsProvider,
    desired: &[DnsRecord],
    owned: &[OwnedValue],
) -> Diff {
    let current = provider
        .read_names(ZONE, &names(desired, owned))
        .await
        .expect("read the zone");
    diff(desired, &current, owned)
}

/// Every record of the zone as (name, type, value key), plus whether any repeats.
pub fn keys(zone: &ZoneContents) -> (BTreeSet<(String, String, String)>, bool) {
    let list: Vec<(String, String, String)> = zone
        .records
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.data.rtype().to_string(),
                value_key(&r.data),
            )
        })
        .chain(
            zone.other
                .iter()
                .map(|r| (r.name.clone(), r.rtype.clone(), r.value.clone())),
        )
        .collect();
    let set: BTreeSet<_> = list.iter().cloned().collect();
    let dup = set.len() != list.len();
    (set, dup)
}

/// The desired records as (name, type, value key).
pub fn desired_keys(desired: &[DnsRecord]) -> BTreeSet<(String, String, String)> {
    desired
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.data.rtype().to_string(),
                value_key(&r.data),
            )
        })
        .collect()
}

/// The checker asking only the server under test: it is "the resolver" and, through a
/// pinned address, the zone's name server `ns1.example.org`.
pub fn checker_config(server: SocketAddr) -> CheckerConfig {
    let mut c = CheckerConfig::with_resolvers(vec![server]);
    c.nameserver_port = server.port();
    c.nameserver_addresses
        .insert(format!("ns1.{ZONE}"), vec![server]);
    c.timeout = Duration::from_secs(2);
    c
}

/// Checks `plan` against the server.
pub async fn check(plan: &DnsPlan, server: SocketAddr) -> CheckReport {
    chatmail_dns_check::check(plan, &checker_config(server)).await
}

/// A readable list of the report's record verdicts.
pub fn show(report: &CheckReport) -> String {
    report
        .records
        .iter()
        .map(|r| {
            format!(
                "{} {} {}: {:?} found {:?}\n",
                r.purpose, r.name, r.rtype, r.status, r.found
            )
        })
        .collect()
}

/// Asserts that the checker sees every ready record of `plan` as published correctly.
pub async fn assert_checker_ok(plan: &DnsPlan, server: SocketAddr) {
    let report = check(plan, server).await;
    assert!(
        report.records.iter().all(|r| r.status == RecordStatus::Ok),
        "the checker disagrees:\n{}",
        show(&report)
    );
    assert_eq!(report.records.len(), plan.ready_records().len());
}
