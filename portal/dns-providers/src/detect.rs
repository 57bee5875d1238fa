//! Which DNS provider serves a domain, told from the host names of its name servers, and
//! whether that provider offers Domain Connect, so the wizard can offer the right button
//! first ("Your DNS is at Cloudflare: sign in with Cloudflare").
//!
//! [`recognise`] is a pure table lookup; [`detect`] asks recursive resolvers (the system's
//! or given ones) for the NS records of the domain and each parent until one has some (that
//! is the zone), then for the zone's `_domainconnect` TXT record (Domain Connect discovery,
//! research/registrars.md §1.2; providers may serve it through a CNAME, which the
//! resolver follows).
//!
//! The host-name patterns are the ones the providers' name servers answer with. Entries
//! marked *best-known* are patterns widely seen in the wild but not checked against the
//! provider's documentation in this project's research; the rest are confirmed by the
//! provider's docs or by the tools listed in research/registrars.md §4. The ways each
//! provider lets a third party write records come from research/registrars.md §2.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use chatmail_dns_check::observations::{Data, Outcome, RType, Rcode};
use chatmail_dns_check::resolve::{Flags, Querier};
use chatmail_dns_check::{CheckerConfig, QueryMode};
use serde::Serialize;

use crate::records::normalize_name;

/// How a person can let a third party write DNS records at a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectWay {
    /// Sign in with the provider (OAuth 2.0 authorization code).
    OAuth,
    /// Paste an API token or key made in the provider's control panel.
    ApiToken,
    /// The provider's Domain Connect flow (template-based, see research §1).
    DomainConnect,
}

/// A DNS provider recognised from its name servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KnownProvider {
    /// Stable id, e.g. `cloudflare`.
    pub id: &'static str,
    /// Name to show, e.g. `Cloudflare`.
    pub name: &'static str,
    /// What it offers for writing records from outside, best first; empty: nothing known,
    /// the person edits by hand.
    pub ways: &'static [ConnectWay],
    /// A caveat worth telling the person, if any.
    pub note: Option<&'static str>,
    #[serde(skip)]
    patterns: &'static [Pattern],
}

/// How a provider's name-server host names look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern {
    /// The host is this domain or below it (`ns.cloudflare.com` matches
    /// `ada.ns.cloudflare.com`).
    Below(&'static str),
    /// Route 53: `ns-<n>.awsdns-<nn>.<com|net|org|co.uk>`.
    AwsDns,
}

impl Pattern {
    fn matches(self, host: &str) -> bool {
        match self {
            Pattern::Below(domain) => {
                host == domain
                    || (host.len() > domain.len()
                        && host.ends_with(domain)
                        && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
            }
            Pattern::AwsDns => {
                let mut labels = host.splitn(3, '.');
                let (Some(first), Some(second), Some(rest)) =
                    (labels.next(), labels.next(), labels.next())
                else {
                    return false;
                };
                let numbered = |label: &str, prefix: &str| {
                    label
                        .strip_prefix(prefix)
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                };
                numbered(first, "ns-")
                    && numbered(second, "awsdns-")
                    && ["com", "net", "org", "co.uk"].contains(&rest)
            }
        }
    }
}

use ConnectWay::{ApiToken, DomainConnect, OAuth};
use Pattern::{AwsDns, Below};

const fn p(
    id: &'static str,
    name: &'static str,
    patterns: &'static [Pattern],
    ways: &'static [ConnectWay],
    note: Option<&'static str>,
) -> KnownProvider {
    KnownProvider {
        id,
        name,
        ways,
        note,
        patterns,
    }
}

/// The table. Ways from research/registrars.md §2.1 (empty where the research has none).
pub const PROVIDERS: &[KnownProvider] = &[
    p("cloudflare", "Cloudflare", &[Below("ns.cloudflare.com")], &[OAuth, ApiToken, DomainConnect], None),
    p("digitalocean", "DigitalOcean", &[Below("digitalocean.com")], &[OAuth, ApiToken], None),
    p("linode", "Linode (Akamai)", &[Below("linode.com")], &[OAuth, ApiToken], None),
    p("gandi", "Gandi", &[Below("gandi.net")], &[ApiToken], None),
    // hydrogen/oxygen.ns.hetzner.com, helium.ns.hetzner.de; the older Robot name servers
    // (ns1.your-server.de, ns.second-ns.com, ns3.second-ns.de) are best-known.
    p(
        "hetzner",
        "Hetzner",
        &[
            Below("ns.hetzner.com"),
            Below("ns.hetzner.de"),
            Below("your-server.de"),
            Below("second-ns.com"),
            Below("second-ns.de"),
        ],
        &[ApiToken],
        None,
    ),
    p("porkbun", "Porkbun", &[Below("porkbun.com")], &[ApiToken], Some("Older accounts must switch on API access for the domain first.")),
    p("desec", "deSEC", &[Below("desec.io"), Below("desec.org")], &[ApiToken], None),
    p(
        "godaddy",
        "GoDaddy",
        &[Below("domaincontrol.com")],
        &[DomainConnect],
        Some("GoDaddy's API is only open to accounts with many domains; Domain Connect works for everyone."),
    ),
    p("ionos", "IONOS", &[Below("ui-dns.com"), Below("ui-dns.de"), Below("ui-dns.org"), Below("ui-dns.biz")], &[DomainConnect, ApiToken], None),
    p(
        "ovh",
        "OVHcloud",
        &[Below("ovh.net"), Below("ovh.ca"), Below("anycast.me")],
        &[ApiToken],
        Some("OVHcloud asks you to approve the portal's access on its own site."),
    ),
    p(
        "namecheap",
        "Namecheap",
        &[Below("registrar-servers.com")],
        &[ApiToken],
        Some("Namecheap's API must be enabled in the account and only answers requests from listed IP addresses."),
    ),
    p("route53", "Amazon Route 53", &[AwsDns], &[ApiToken], None),
    p("google", "Google Cloud DNS", &[Below("googledomains.com")], &[OAuth], None),
    p(
        "azure",
        "Azure DNS",
        &[Below("azure-dns.com"), Below("azure-dns.net"), Below("azure-dns.org"), Below("azure-dns.info")],
        &[OAuth],
        None,
    ),
    p("vultr", "Vultr", &[Below("vultr.com")], &[OAuth, ApiToken], None),
    // root-dns / second-dns / third-dns.netcup.net.
    p("netcup", "netcup", &[Below("netcup.net")], &[ApiToken], None),
    // ns.inwx.de, ns2.inwx.de, ns3.inwx.eu, …
    p("inwx", "INWX", &[Below("inwx.de"), Below("inwx.eu"), Below("inwx.net")], &[ApiToken], None),
    // Best-known: 1-you.njalla.no, 2-can.njalla.in, 3-get.njalla.fo.
    p("njalla", "Njalla", &[Below("njalla.no"), Below("njalla.in"), Below("njalla.fo")], &[ApiToken], None),
    p("dnsimple", "DNSimple", &[Below("dnsimple.com"), Below("dnsimple-edge.net"), Below("dnsimple-edge.org")], &[OAuth, ApiToken], None),
    // Best-known patterns below; ways not researched, so none are claimed.
    p("namecom", "Name.com", &[Below("name.com")], &[], None),
    p("hostinger", "Hostinger", &[Below("dns-parking.com")], &[], None),
    p("he", "Hurricane Electric", &[Below("he.net")], &[], None),
    p("ns1", "NS1 (IBM)", &[Below("nsone.net")], &[], None),
    p("strato", "STRATO", &[Below("rzone.de")], &[], None),
    p("allinkl", "ALL-INKL.COM", &[Below("kasserver.com")], &[], None),
    p("infomaniak", "Infomaniak", &[Below("infomaniak.ch")], &[], None),
    p("bunny", "Bunny DNS", &[Below("bunny.net")], &[], None),
    p("scaleway", "Scaleway", &[Below("scw.cloud")], &[], None),
    p("cloudns", "ClouDNS", &[Below("cloudns.net")], &[], None),
    p("dnsmadeeasy", "DNS Made Easy", &[Below("dnsmadeeasy.com")], &[], None),
    p("ultradns", "UltraDNS", &[Below("ultradns.net"), Below("ultradns.com"), Below("ultradns.org"), Below("ultradns.biz")], &[], None),
    p("akamai", "Akamai Edge DNS", &[Below("akam.net")], &[], None),
    p("transip", "TransIP", &[Below("transip.net"), Below("transip.nl"), Below("transip.eu")], &[], None),
    p("mythicbeasts", "Mythic Beasts", &[Below("mythic-beasts.com")], &[], None),
    p("joker", "Joker.com", &[Below("ns.joker.com")], &[], None),
    p("dynadot", "Dynadot", &[Below("dyna-ns.net")], &[], None),
    p("namesilo", "NameSilo", &[Below("dnsowl.com")], &[], None),
    p("hover", "Hover", &[Below("hover.com")], &[], None),
    p("vercel", "Vercel", &[Below("vercel-dns.com")], &[], None),
    p("wix", "Wix", &[Below("wixdns.net")], &[], None),
    p("onecom", "one.com", &[Below("one.com")], &[], None),
    p("loopia", "Loopia", &[Below("loopia.se")], &[], None),
    p("dreamhost", "DreamHost", &[Below("dreamhost.com")], &[], None),
    p("bluehost", "Bluehost", &[Below("bluehost.com")], &[], None),
    p("afraid", "FreeDNS (afraid.org)", &[Below("afraid.org")], &[], None),
    p("alibaba", "Alibaba Cloud DNS", &[Below("hichina.com"), Below("alidns.com")], &[], None),
    p("dnspod", "DNSPod (Tencent Cloud)", &[Below("dnspod.net")], &[], None),
    p("contabo", "Contabo", &[Below("contabo.net")], &[], None),
    // Self-hosted, so its name servers have any names: told by what they say they run
    // (see [`software_provider`]); its HTTP API takes a key from pdns.conf.
    p("powerdns", "PowerDNS", &[], &[ApiToken], None),
];

/// The provider most of `nameservers` belong to (host names, any case, with or without
/// the trailing dot), or `None`. Ties go to the first name server's provider.
pub fn recognise(nameservers: &[String]) -> Option<KnownProvider> {
    let mut votes: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (order, ns) in nameservers.iter().enumerate() {
        let host = normalize_name(ns);
        if let Some(index) = PROVIDERS
            .iter()
            .position(|p| p.patterns.iter().any(|pat| pat.matches(&host)))
        {
            let entry = votes.entry(index).or_insert((0, order));
            entry.0 += 1;
        }
    }
    votes
        .into_iter()
        .max_by(|(_, (a, ao)), (_, (b, bo))| a.cmp(b).then(bo.cmp(ao)))
        .map(|(index, _)| PROVIDERS[index])
}

/// The provider a name server's CHAOS `version.bind` (or `id.server`) text names, for
/// software people run themselves: PowerDNS says "PowerDNS Authoritative Server 4.7.3 …".
pub fn software_provider(version_text: &str) -> Option<KnownProvider> {
    let id = if version_text.trim_start().starts_with("PowerDNS") {
        "powerdns"
    } else {
        return None;
    };
    PROVIDERS.iter().find(|p| p.id == id).copied()
}

/// Where detection asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolvers {
    /// The host's resolvers (`/etc/resolv.conf`).
    System,
    /// These recursive resolvers (tests, or a portal told to use particular ones).
    Servers(Vec<SocketAddr>),
}

/// What detection found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    /// The zone that holds the domain (the domain or a parent), without trailing dot.
    pub zone: String,
    /// Its name servers, lowercase, sorted.
    pub nameservers: Vec<String>,
    /// The provider, if recognised.
    pub provider: Option<KnownProvider>,
    /// The zone's `_domainconnect` TXT value (the provider's Domain Connect host and
    /// optional path), if published.
    pub domain_connect: Option<String>,
}

/// Why detection found nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    /// No resolver is configured.
    #[error("The portal cannot look up DNS right now ({0}).")]
    NoResolver(String),
    /// The resolvers did not answer.
    #[error("DNS did not answer in time. Try again in a minute.")]
    NoAnswer,
    /// No name servers for the domain or any parent below the top-level domain.
    #[error(
        "No name servers were found for {0}. Check that the domain is registered and not expired."
    )]
    NotFound(String),
}

/// How long to wait for each answer.
pub const DETECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long to wait for a name server to say what software it runs.
const SOFTWARE_TIMEOUT: Duration = Duration::from_secs(1);

/// Finds the zone holding `domain`, its name servers, the provider and Domain Connect.
/// Name servers whose names say nothing are asked what they run, on `nameserver_port`
/// (53 but in tests).
pub async fn detect(
    domain: &str,
    resolvers: &Resolvers,
    nameserver_port: u16,
) -> Result<Detection, DetectError> {
    let servers = match resolvers {
        Resolvers::Servers(s) if !s.is_empty() => s.clone(),
        Resolvers::Servers(_) => return Err(DetectError::NoResolver("none given".into())),
        Resolvers::System => {
            CheckerConfig::from_system()
                .map_err(DetectError::NoResolver)?
                .recursive_resolvers
        }
    };
    let querier = Querier::new(DETECT_TIMEOUT, 1232, QueryMode::Sequential);
    let domain = normalize_name(domain);
    let labels: Vec<&str> = domain.split('.').collect();
    let mut answered = false;
    for start in 0..labels.len().saturating_sub(1) {
        let name = labels[start..].join(".");
        let Some(answer) = ask(&querier, &servers, &name, RType::Ns).await else {
            continue;
        };
        answered = true;
        let mut nameservers: Vec<String> = answer
            .answers
            .iter()
            .filter(|r| r.name == name)
            .filter_map(|r| match &r.data {
                Data::Ns(host) => Some(normalize_name(host)),
                _ => None,
            })
            .collect();
        if nameservers.is_empty() {
            continue;
        }
        nameservers.sort();
        nameservers.dedup();
        let domain_connect = ask(
            &querier,
            &servers,
            &format!("_domainconnect.{name}"),
            RType::Txt,
        )
        .await
        .and_then(|a| {
            a.chain(&format!("_domainconnect.{name}"), RType::Txt)
                .records
                .iter()
                .find_map(|r| r.data.txt_joined())
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
        let provider = match recognise(&nameservers) {
            Some(provider) => Some(provider),
            None => software_of(&querier, &servers, &nameservers, nameserver_port).await,
        };
        return Ok(Detection {
            provider,
            zone: name,
            nameservers,
            domain_connect,
        });
    }
    if answered {
        Err(DetectError::NotFound(domain))
    } else {
        Err(DetectError::NoAnswer)
    }
}

/// The provider named by the software of the zone's first name servers (CHAOS TXT
/// `version.bind`, then `id.server`), if one says.
async fn software_of(
    querier: &Querier,
    servers: &[SocketAddr],
    nameservers: &[String],
    port: u16,
) -> Option<KnownProvider> {
    let probe = Querier::new(SOFTWARE_TIMEOUT, 1232, QueryMode::Sequential);
    for ns in nameservers.iter().take(2) {
        let Some(answer) = ask(querier, servers, ns, RType::A).await else {
            continue;
        };
        let Some(address) = answer.answers.iter().find_map(|r| match r.data {
            Data::A(ip) => Some(ip),
            _ => None,
        }) else {
            continue;
        };
        for question in ["version.bind", "id.server"] {
            let server = SocketAddr::new(address.into(), port);
            if let Outcome::Answer(a) = probe.query_chaos(server, question).await {
                let named = a
                    .answers
                    .iter()
                    .filter_map(|r| r.data.txt_joined())
                    .find_map(|text| software_provider(&text));
                if named.is_some() {
                    return named;
                }
            }
        }
    }
    None
}

/// The first usable answer (NOERROR or NXDOMAIN) from the resolvers, in order.
async fn ask(
    querier: &Querier,
    servers: &[SocketAddr],
    name: &str,
    rtype: RType,
) -> Option<chatmail_dns_check::observations::Answer> {
    for server in servers {
        if let Outcome::Answer(a) = querier.query(*server, name, rtype, Flags::RECURSIVE).await {
            if matches!(a.rcode, Rcode::NoError | Rcode::NxDomain) {
                return Some(a);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn id(list: &[&str]) -> Option<&'static str> {
        recognise(&names(list)).map(|p| p.id)
    }

    #[test]
    fn recognises_the_big_providers() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["ada.ns.cloudflare.com.", "bob.ns.cloudflare.com."],
                "cloudflare",
            ),
            (
                &["ns1.digitalocean.com", "ns2.digitalocean.com"],
                "digitalocean",
            ),
            (&["ns1.linode.com"], "linode"),
            (&["ns-123-a.gandi.net"], "gandi"),
            (
                &["hydrogen.ns.hetzner.com", "helium.ns.hetzner.de"],
                "hetzner",
            ),
            (&["ns1.your-server.de"], "hetzner"),
            (&["curitiba.ns.porkbun.com"], "porkbun"),
            (&["ns1.desec.io", "ns2.desec.org"], "desec"),
            (&["NS01.DOMAINCONTROL.COM."], "godaddy"),
            (&["ns1045.ui-dns.com", "ns1045.ui-dns.de"], "ionos"),
            (&["dns10.ovh.net", "ns10.ovh.net"], "ovh"),
            (&["dns200.anycast.me"], "ovh"),
            (&["dns1.registrar-servers.com"], "namecheap"),
            (
                &["ns-1234.awsdns-12.org", "ns-99.awsdns-01.co.uk"],
                "route53",
            ),
            (&["ns-cloud-a1.googledomains.com"], "google"),
            (&["ns1-01.azure-dns.com", "ns4-01.azure-dns.info"], "azure"),
            (&["ns1.vultr.com"], "vultr"),
            (&["root-dns.netcup.net"], "netcup"),
            (&["ns.inwx.de", "ns3.inwx.eu"], "inwx"),
            (&["1-you.njalla.no"], "njalla"),
            (&["ns1.dnsimple.com", "ns2.dnsimple-edge.net"], "dnsimple"),
            (&["ns1.he.net"], "he"),
        ];
        for (servers, want) in cases {
            assert_eq!(id(servers), Some(*want), "{servers:?}");
        }
    }

    #[test]
    fn does_not_match_lookalikes() {
        for servers in [
            &["ns1.example.org"][..],
            &["evilns.cloudflare.com.attacker.example"],
            &["notgandi.net"],
            &["ns-1.awsdns-x.com"],
            &["ns-1.awsdns-12.evil"],
            &["awsdns-12.org"],
            &[],
        ] {
            assert_eq!(id(servers), None, "{servers:?}");
        }
    }

    #[test]
    fn majority_wins() {
        assert_eq!(
            id(&["ns1.desec.io", "a.ns.cloudflare.com", "b.ns.cloudflare.com"]),
            Some("cloudflare")
        );
        assert_eq!(id(&["ns1.desec.io", "a.ns.cloudflare.com"]), Some("desec"));
    }

    #[test]
    fn software_names_powerdns() {
        for text in [
            "PowerDNS Authoritative Server 4.7.3 (built Jan 18 2023)",
            " PowerDNS Recursor 5.0",
        ] {
            assert_eq!(
                software_provider(text).map(|p| p.id),
                Some("powerdns"),
                "{text}"
            );
        }
        for text in [
            "9.18.19-1~deb12u1-Debian",
            "Knot DNS 3.2.6",
            "",
            "powerdns-ish",
            "MyPowerDNS",
        ] {
            assert_eq!(software_provider(text), None, "{text}");
        }
    }

    #[test]
    fn ways_are_listed() {
        let cf = recognise(&names(&["a.ns.cloudflare.com"])).unwrap();
        assert_eq!(cf.ways, &[OAuth, ApiToken, DomainConnect]);
        let gd = recognise(&names(&["ns1.domaincontrol.com"])).unwrap();
        assert_eq!(gd.ways, &[DomainConnect]);
        assert!(gd.note.is_some());
        let ids: Vec<&str> = PROVIDERS.iter().map(|p| p.id).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "ids are unique");
    }
}
