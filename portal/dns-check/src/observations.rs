//! What the checker saw on the wire, as plain data.
//!
//! The query layer ([`crate::resolve`], [`crate::collect`]) fills these structs; the policy
//! layer ([`crate::compare`], [`crate::diagnose`]) only reads them. Keeping them free of
//! sockets and of hickory types means every policy rule is tested with hand-made answers.
//! Names are ASCII, lowercase, without the trailing dot; comparisons are therefore
//! case-insensitive by construction.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Record types the checker asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
    /// Alias.
    Cname,
    /// Service location.
    Srv,
    /// Certification Authority Authorization.
    Caa,
    /// Name server.
    Ns,
    /// Start of authority.
    Soa,
    /// Reverse pointer.
    Ptr,
}

impl RType {
    /// The mnemonic, e.g. `AAAA`.
    pub fn as_str(self) -> &'static str {
        match self {
            RType::A => "A",
            RType::Aaaa => "AAAA",
            RType::Mx => "MX",
            RType::Txt => "TXT",
            RType::Cname => "CNAME",
            RType::Srv => "SRV",
            RType::Caa => "CAA",
            RType::Ns => "NS",
            RType::Soa => "SOA",
            RType::Ptr => "PTR",
        }
    }

    /// Parses a mnemonic as [`chatmail_shared::RecordData::rtype`] gives it.
    pub fn from_mnemonic(s: &str) -> Option<Self> {
        Some(match s {
            "A" => RType::A,
            "AAAA" => RType::Aaaa,
            "MX" => RType::Mx,
            "TXT" => RType::Txt,
            "CNAME" => RType::Cname,
            "SRV" => RType::Srv,
            "CAA" => RType::Caa,
            "NS" => RType::Ns,
            "SOA" => RType::Soa,
            "PTR" => RType::Ptr,
            _ => return None,
        })
    }
}

impl fmt::Display for RType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Record data as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Data {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Mail exchanger.
    Mx {
        /// Preference.
        preference: u16,
        /// Exchange host (`""` for the null MX `.`).
        exchange: String,
    },
    /// Character-strings, each decoded lossily as UTF-8.
    Txt(Vec<String>),
    /// Alias target.
    Cname(String),
    /// Service location.
    Srv {
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host.
        target: String,
    },
    /// CAA property.
    Caa {
        /// Flags byte.
        flags: u8,
        /// Tag, lowercased.
        tag: String,
        /// Raw value.
        value: String,
    },
    /// Name server host.
    Ns(String),
    /// Start of authority.
    Soa {
        /// Primary server.
        mname: String,
        /// Serial.
        serial: u32,
        /// Negative-caching TTL field.
        minimum: u32,
    },
    /// Reverse pointer target.
    Ptr(String),
    /// A type the checker does not interpret.
    Other(String),
}

impl Data {
    /// The type, if it is one the checker knows.
    pub fn rtype(&self) -> Option<RType> {
        Some(match self {
            Data::A(_) => RType::A,
            Data::Aaaa(_) => RType::Aaaa,
            Data::Mx { .. } => RType::Mx,
            Data::Txt(_) => RType::Txt,
            Data::Cname(_) => RType::Cname,
            Data::Srv { .. } => RType::Srv,
            Data::Caa { .. } => RType::Caa,
            Data::Ns(_) => RType::Ns,
            Data::Soa { .. } => RType::Soa,
            Data::Ptr(_) => RType::Ptr,
            Data::Other(_) => return None,
        })
    }

    /// Zone-file form of the data, with absolute names.
    pub fn presentation(&self) -> String {
        fn abs(n: &str) -> String {
            format!("{n}.")
        }
        match self {
            Data::A(a) => a.to_string(),
            Data::Aaaa(a) => a.to_string(),
            Data::Mx {
                preference,
                exchange,
            } => format!("{preference} {}", abs(exchange)),
            Data::Txt(strings) => strings
                .iter()
                .map(|s| quote(s))
                .collect::<Vec<_>>()
                .join(" "),
            Data::Cname(t) | Data::Ns(t) | Data::Ptr(t) => abs(t),
            Data::Srv {
                priority,
                weight,
                port,
                target,
            } => format!("{priority} {weight} {port} {}", abs(target)),
            Data::Caa { flags, tag, value } => format!("{flags} {tag} {}", quote(value)),
            Data::Soa {
                mname,
                serial,
                minimum,
            } => format!("{} serial {serial} minimum {minimum}", abs(mname)),
            Data::Other(s) => s.clone(),
        }
    }

    /// For TXT: the strings concatenated, as a verifier sees them.
    pub fn txt_joined(&self) -> Option<String> {
        match self {
            Data::Txt(s) => Some(s.concat()),
            _ => None,
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\{:03}", c as u32 & 0xff)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One resource record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rr {
    /// Owner name (lowercase, no trailing dot).
    pub name: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Data.
    pub data: Data,
}

impl Rr {
    /// Convenience constructor.
    pub fn new(name: &str, ttl: u32, data: Data) -> Self {
        Rr {
            name: normalize_name(name),
            ttl,
            data,
        }
    }
}

/// Lowercases and strips one trailing dot.
pub fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The response code, as far as the checker distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rcode {
    /// NOERROR.
    NoError,
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// SERVFAIL.
    ServFail,
    /// REFUSED.
    Refused,
    /// NOTIMP.
    NotImp,
    /// FORMERR.
    FormErr,
    /// Anything else.
    Other(u16),
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rcode::NoError => f.write_str("NOERROR"),
            Rcode::NxDomain => f.write_str("NXDOMAIN"),
            Rcode::ServFail => f.write_str("SERVFAIL"),
            Rcode::Refused => f.write_str("REFUSED"),
            Rcode::NotImp => f.write_str("NOTIMP"),
            Rcode::FormErr => f.write_str("FORMERR"),
            Rcode::Other(c) => write!(f, "RCODE {c}"),
        }
    }
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Response code.
    pub rcode: Rcode,
    /// AA flag.
    pub authoritative: bool,
    /// The answer was fetched over TCP after a truncated UDP answer.
    pub via_tcp: bool,
    /// Answer section.
    pub answers: Vec<Rr>,
    /// Authority section.
    pub authority: Vec<Rr>,
    /// Additional section (EDNS OPT excluded).
    pub additional: Vec<Rr>,
    /// Time from sending to the final answer, in milliseconds.
    pub elapsed_ms: u64,
}

/// Where following CNAMEs inside one answer led.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    /// Alias targets followed, in order.
    pub aliases: Vec<String>,
    /// Records of the asked type at the end of the chain.
    pub records: Vec<Rr>,
    /// The chain came back to a name it had already visited.
    pub looped: bool,
}

/// Longest alias chain followed inside one answer.
pub const MAX_CHAIN: usize = 16;

impl Answer {
    /// An empty NOERROR answer (tests build on it).
    pub fn empty(rcode: Rcode) -> Self {
        Answer {
            rcode,
            authoritative: true,
            via_tcp: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            elapsed_ms: 0,
        }
    }

    /// Records of type `rtype` owned by `name`, following CNAMEs from `name` within the
    /// answer section. Asking for CNAME itself returns the CNAME records at `name`.
    pub fn chain(&self, name: &str, rtype: RType) -> Chain {
        let mut chain = Chain::default();
        let mut current = normalize_name(name);
        let mut seen = vec![current.clone()];
        loop {
            let here: Vec<&Rr> = self.answers.iter().filter(|r| r.name == current).collect();
            let wanted: Vec<Rr> = here
                .iter()
                .filter(|r| r.data.rtype() == Some(rtype))
                .map(|r| (*r).clone())
                .collect();
            if !wanted.is_empty() || rtype == RType::Cname {
                chain.records = wanted;
                return chain;
            }
            let next = here.iter().find_map(|r| match &r.data {
                Data::Cname(t) => Some(t.clone()),
                _ => None,
            });
            match next {
                Some(t) => {
                    if seen.contains(&t) {
                        chain.looped = true;
                        chain.aliases.push(t);
                        return chain;
                    }
                    if chain.aliases.len() >= MAX_CHAIN {
                        return chain;
                    }
                    seen.push(t.clone());
                    chain.aliases.push(t.clone());
                    current = t;
                }
                None => return chain,
            }
        }
    }

    /// Negative-caching time from the SOA in the authority section (RFC 2308 §5:
    /// the smaller of the SOA's TTL and its minimum field).
    pub fn negative_ttl(&self) -> Option<u32> {
        self.authority.iter().find_map(|r| match r.data {
            Data::Soa { minimum, .. } => Some(r.ttl.min(minimum)),
            _ => None,
        })
    }

    /// The SOA in the answer or authority section.
    pub fn soa(&self) -> Option<&Rr> {
        self.answers
            .iter()
            .chain(&self.authority)
            .find(|r| matches!(r.data, Data::Soa { .. }))
    }
}

/// What came back from one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A response.
    Answer(Answer),
    /// Nothing within the timeout.
    Timeout,
    /// Could not send or connect.
    Unreachable(String),
    /// UDP answer was truncated and the TCP retry failed.
    Truncated(String),
    /// The response could not be parsed.
    Malformed(String),
}

impl Outcome {
    /// The answer, if there was one.
    pub fn answer(&self) -> Option<&Answer> {
        match self {
            Outcome::Answer(a) => Some(a),
            _ => None,
        }
    }

    /// Plain-words description of a failure (`None` for answers).
    pub fn failure(&self) -> Option<String> {
        match self {
            Outcome::Answer(_) => None,
            Outcome::Timeout => Some("did not answer in time".into()),
            Outcome::Unreachable(e) => Some(format!("could not be reached ({e})")),
            Outcome::Truncated(e) => Some(format!(
                "sent a truncated answer and could not be asked over TCP ({e})"
            )),
            Outcome::Malformed(e) => Some(format!("sent an unreadable answer ({e})")),
        }
    }
}

/// An authoritative server address, with the host name it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId {
    /// NS host name.
    pub name: String,
    /// Address asked.
    pub addr: SocketAddr,
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.addr)
    }
}

/// One query's result from one authoritative server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOutcome {
    /// Which server.
    pub server: ServerId,
    /// What it did.
    pub outcome: Outcome,
}

/// One query's result from one recursive resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverOutcome {
    /// Which resolver.
    pub resolver: SocketAddr,
    /// What it did, with checking enabled.
    pub outcome: Outcome,
    /// The retry with DNSSEC checking disabled (CD bit), made after a SERVFAIL.
    pub with_cd: Option<Outcome>,
}

/// A (name, type) pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QKey {
    /// Owner name.
    pub name: String,
    /// Type.
    pub rtype: RType,
}

impl QKey {
    /// Builds a key with a normalized name.
    pub fn new(name: &str, rtype: RType) -> Self {
        QKey {
            name: normalize_name(name),
            rtype,
        }
    }
}

impl fmt::Display for QKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.rtype)
    }
}

/// Both views of one (name, type).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lookup {
    /// Each authoritative server's answer.
    pub auth: Vec<ServerOutcome>,
    /// Each recursive resolver's answer.
    pub recursive: Vec<ResolverOutcome>,
}

/// One name server host of the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nameserver {
    /// Host name.
    pub name: String,
    /// Addresses to ask.
    pub addrs: Vec<SocketAddr>,
    /// Why there are no addresses, if so.
    pub resolve_error: Option<String>,
}

/// How the zone and its servers were found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovery {
    /// The zone apex holding the mail domain.
    pub zone: Option<String>,
    /// Why the zone was not found.
    pub error: Option<String>,
    /// The zone's NS set as the recursive view gives it, with addresses.
    pub nameservers: Vec<Nameserver>,
    /// The zone directly above the zone cut, if found.
    pub parent_zone: Option<String>,
    /// The NS names the parent zone's servers delegate to (`None`: not checked or failed).
    pub parent_delegation: Option<Vec<String>>,
    /// Every recursive answer used while walking up from the mail domain (name → outcome).
    /// When [`from_cache`](Discovery::from_cache) is set, these are the answers of the
    /// earlier check that found the servers.
    pub walk: Vec<(String, Outcome)>,
    /// The zone and its servers were known from an earlier check of a long-lived
    /// [`crate::Checker`] (not asked again), and this check's answers confirmed them.
    pub from_cache: bool,
}

/// A query for a random name next to a planned one, to see whether a wildcard answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WildcardProbe {
    /// The parent under which the random label was asked.
    pub parent: String,
    /// The type asked.
    pub rtype: RType,
    /// The full random name asked.
    pub probe_name: String,
    /// Each server's answer.
    pub auth: Vec<ServerOutcome>,
}

impl WildcardProbe {
    /// The data a wildcard synthesizes, from the first server that gave some.
    pub fn synthesized(&self) -> Vec<Data> {
        for s in &self.auth {
            if let Outcome::Answer(a) = &s.outcome {
                let c = a.chain(&self.probe_name, self.rtype);
                if !c.records.is_empty() {
                    return c.records.into_iter().map(|r| r.data).collect();
                }
                if let Some(first) = a.answers.iter().find(|r| r.name == self.probe_name) {
                    return vec![first.data.clone()];
                }
            }
        }
        Vec::new()
    }
}

/// Forward-confirmed reverse DNS for one of the relay's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrCheck {
    /// The relay's address.
    pub ip: IpAddr,
    /// The `in-addr.arpa` / `ip6.arpa` name asked.
    pub reverse_name: String,
    /// The PTR lookup (first resolver that answered).
    pub ptr: Outcome,
    /// For each PTR target: the forward lookup (A for IPv4, AAAA for IPv6).
    pub forward: Vec<(String, Outcome)>,
}

/// Everything collected in one check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observations {
    /// The mail domain.
    pub mail_domain: String,
    /// Zone and servers.
    pub discovery: Discovery,
    /// Authoritative and recursive answers per (name, type).
    pub lookups: BTreeMap<QKey, Lookup>,
    /// Wildcard probes.
    pub probes: Vec<WildcardProbe>,
    /// Reverse DNS per planned address.
    pub ptr: Vec<PtrCheck>,
    /// Recursive lookups of MX targets that are not the mail domain (CNAME and A).
    pub mx_targets: BTreeMap<QKey, Vec<ResolverOutcome>>,
    /// The recursive resolvers used.
    pub resolvers: Vec<SocketAddr>,
}

impl Observations {
    /// The lookup for `(name, rtype)`, if it was made.
    pub fn lookup(&self, name: &str, rtype: RType) -> Option<&Lookup> {
        self.lookups.get(&QKey::new(name, rtype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_follows_aliases_and_detects_loops() {
        let mut a = Answer::empty(Rcode::NoError);
        a.answers = vec![
            Rr::new("WWW.Example.org.", 60, Data::Cname("a.example.org".into())),
            Rr::new("a.example.org", 60, Data::Cname("www.example.org".into())),
        ];
        let c = a.chain("www.example.org", RType::A);
        assert!(c.looped);
        assert!(c.records.is_empty());
        a.answers[1] = Rr::new("a.example.org", 60, Data::A(Ipv4Addr::LOCALHOST));
        let c = a.chain("www.EXAMPLE.org.", RType::A);
        assert!(!c.looped);
        assert_eq!(c.aliases, ["a.example.org"]);
        assert_eq!(c.records.len(), 1);
        let c = a.chain("www.example.org", RType::Cname);
        assert_eq!(c.records.len(), 1);
    }

    #[test]
    fn negative_ttl_is_min_of_ttl_and_minimum() {
        let mut a = Answer::empty(Rcode::NxDomain);
        a.authority = vec![Rr::new(
            "example.org",
            300,
            Data::Soa {
                mname: "ns".into(),
                serial: 1,
                minimum: 900,
            },
        )];
        assert_eq!(a.negative_ttl(), Some(300));
    }
}
