//! Where the checker sends its queries, how long it waits, and what the caller knows
//! about the relay's DNS set-up.
//!
//! [`CheckerConfig`] is about the network: which recursive resolvers give the "public
//! view", how the authoritative servers are reached, timeouts, parallel or sequential.
//! Tests and the benchmark point it at servers on 127.0.0.x through the same fields that
//! production uses; there is no test-only code path. [`CheckContext`] is about the relay:
//! which DNS provider the portal wrote to, and whether the device runs at home.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How queries that do not depend on each other are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryMode {
    /// All at once (the normal mode).
    #[default]
    Parallel,
    /// One after another (for the benchmark's comparison).
    Sequential,
}

/// The network side of a check.
///
/// Discovery works as in real DNS: the recursive resolvers give the zone's NS names and
/// their addresses, and each address is then asked directly on [`nameserver_port`]
/// (53 in production). [`nameserver_addresses`] overrides the address of chosen NS host
/// names, like an `/etc/hosts` for name servers (useful for hidden or split-horizon
/// set-ups, and for tests that run a server on a random port).
///
/// [`nameserver_port`]: CheckerConfig::nameserver_port
/// [`nameserver_addresses`]: CheckerConfig::nameserver_addresses
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerConfig {
    /// Recursive resolvers whose view is compared with the authoritative one, and which
    /// are used to find the zone and its servers. Each is asked every question; the
    /// first that answers is used for discovery.
    pub recursive_resolvers: Vec<SocketAddr>,
    /// Port on which authoritative servers found through DNS are asked.
    pub nameserver_port: u16,
    /// Fixed addresses for NS host names (lowercase, without trailing dot).
    pub nameserver_addresses: BTreeMap<String, Vec<SocketAddr>>,
    /// Also ask the IPv6 addresses of name servers. Off by default because many hosts
    /// have no IPv6 route, which would look like a dead server; a server with only IPv6
    /// addresses is always asked over IPv6.
    pub query_nameservers_over_ipv6: bool,
    /// Longest wait for one answer (UDP with its retries; TCP gets the same again).
    pub timeout: Duration,
    /// An authoritative server slower than this is reported as slow.
    pub slow_threshold: Duration,
    /// Records with a TTL above this many seconds get a warning, because fixing them
    /// later takes that long to reach everyone.
    pub high_ttl_secs: u32,
    /// EDNS UDP payload size offered (1232 as recommended by DNS Flag Day 2020).
    pub edns_payload: u16,
    /// Ask random names next to the planned ones to detect wildcard records.
    pub probe_wildcards: bool,
    /// Parallel (normal) or sequential (benchmark baseline).
    pub mode: QueryMode,
    /// Longest time a [`crate::Checker`] keeps what discovery found (zone, name servers,
    /// their addresses, the parent's servers) for the next check of the same mail domain;
    /// shorter when the answers' TTLs are. Zero keeps nothing. The free functions
    /// [`crate::check`] and [`crate::check_with`] never keep anything.
    pub discovery_cache_max_age: Duration,
}

/// Default per-query timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// Default longest life of a kept discovery: five minutes.
pub const DEFAULT_DISCOVERY_CACHE_MAX_AGE: Duration = Duration::from_secs(300);

/// Default TTL warning threshold: four hours.
pub const DEFAULT_HIGH_TTL_SECS: u32 = 4 * 3600;

impl CheckerConfig {
    /// A config asking these recursive resolvers, with default settings otherwise.
    pub fn with_resolvers(resolvers: Vec<SocketAddr>) -> Self {
        CheckerConfig {
            recursive_resolvers: resolvers,
            nameserver_port: 53,
            nameserver_addresses: BTreeMap::new(),
            query_nameservers_over_ipv6: false,
            timeout: DEFAULT_TIMEOUT,
            slow_threshold: Duration::from_secs(1),
            high_ttl_secs: DEFAULT_HIGH_TTL_SECS,
            edns_payload: 1232,
            probe_wildcards: true,
            mode: QueryMode::Parallel,
            discovery_cache_max_age: DEFAULT_DISCOVERY_CACHE_MAX_AGE,
        }
    }

    /// The resolvers the host itself uses (`/etc/resolv.conf` on Unix), read through
    /// hickory-resolver's system configuration reader.
    pub fn from_system() -> Result<Self, String> {
        let (conf, _opts) =
            hickory_resolver::system_conf::read_system_conf().map_err(|e| e.to_string())?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for ns in conf.name_servers() {
            let addr = SocketAddr::new(ns.ip, 53);
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        if addrs.is_empty() {
            return Err("the system configuration lists no DNS resolver".into());
        }
        Ok(Self::with_resolvers(addrs))
    }

    /// Two large public resolvers (Quad9 and Cloudflare, IPv4), as hickory-resolver
    /// lists them: a portal on a network whose own resolver filters or rewrites answers
    /// can use these to see what the rest of the world sees.
    pub fn public_resolvers() -> Self {
        use hickory_resolver::config::{CLOUDFLARE, QUAD9};
        let pick = |ips: &[IpAddr]| ips.iter().copied().find(IpAddr::is_ipv4);
        let addrs = [pick(QUAD9.ips), pick(CLOUDFLARE.ips)]
            .into_iter()
            .flatten()
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
        Self::with_resolvers(addrs)
    }
}

/// Whether the relay runs on rented hosting or on a home connection; decides whom the
/// reverse-DNS findings send the user to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionKind {
    /// Not known: findings name the hosting provider and mention the ISP.
    #[default]
    Unknown,
    /// A VPS, cloud or hosting provider owns the address.
    Hosted,
    /// A home Internet connection; the ISP owns the address.
    Home,
}

/// What the caller knows about the relay's DNS set-up. All optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckContext {
    /// Name servers of the DNS provider where the portal (or the user) edited the records:
    /// full host names (`ns1.provider.net`) or domain suffixes (`ns.cloudflare.com`).
    /// When set, a delegation to other servers is reported as "edited at a provider that
    /// is not in charge". Empty: unknown, not checked.
    pub provider_nameservers: Vec<String>,
    /// The provider's name for messages, e.g. `Cloudflare`.
    pub provider_name: Option<String>,
    /// The CA's CAA domain to check for while the planned CAA record is still pending
    /// (the plan's own value is used when ready). Default `letsencrypt.org`.
    pub ca_issuer: Option<String>,
    /// Hosting or home.
    pub connection: ConnectionKind,
}
