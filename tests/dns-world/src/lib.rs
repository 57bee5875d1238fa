//! A small DNS world on loopback, for the DNS checker's tests and benchmark and for the
//! portal's end-to-end tests of its status page.
//!
//! Real hickory-server instances serve real zone files: a "resolver" (127.0.0.1) that
//! answers for the whole test Internet (the `org.` registry, a copy of the relay's zone
//! that may be older than the real one, reverse zones), the `org.` registry's own server
//! (127.0.0.2), and the zone's authoritative servers (127.0.0.11, .12, …). All listen on one
//! free port, which the checker gets as `nameserver_port`. Zones are loaded without
//! hickory's consistency checks, so deliberately broken data (an alias beside other
//! records) is served as a careless provider would serve it. Some servers misbehave on
//! purpose: delay every answer, refuse unless DNSSEC checking is disabled, never answer,
//! or answer only with the truncation bit.
//!
//! Besides these in-process servers, [`pdns`] and [`knot`] start real PowerDNS and Knot
//! servers (Debian packages `pdns-server`, `pdns-backend-sqlite3`, `sqlite3`, `knot`) for
//! the tests that write records through a DNS provider.
//!
//! For the cloud DNS APIs and the sign-in flows there are HTTP stand-ins on loopback:
//! [`cloud_mocks`] (Cloudflare, DigitalOcean, Linode, Hetzner, deSEC, Gandi, Porkbun,
//! Namecheap, OVHcloud), [`oauth_server`] (an OAuth 2.0 authorization server with PKCE,
//! refresh and revocation, and a consent page a browser can click) and
//! [`domain_connect_server`] (a Domain Connect DNS provider).

// The mock handlers answer with a ready HTTP response as their error, so their `Err` is
// large by design; their shared state is a plain map of maps.
#[allow(clippy::result_large_err, clippy::type_complexity)]
pub mod cloud_mocks;
mod daemon;
pub use daemon::free_port;
pub mod domain_connect_server;
pub mod knot;
#[allow(clippy::result_large_err, clippy::type_complexity)]
pub mod oauth_server;
pub mod pdns;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chatmail_shared::config::RelayConfig;
use chatmail_shared::{
    AcmeAccountUrl, DeviceFacts, DkimPublicKey, DnsPlan, EmailAddress, MailDomain,
};
use hickory_net::runtime::Time;
use hickory_proto::op::{Header, HeaderCounts, Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::txt::Parser;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

pub const RESOLVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
pub const REGISTRY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
pub const NS1_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
pub const NS2_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);
pub const NS3_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 13);

/// The relay's addresses in the tests (documentation ranges: never contacted).
pub const RELAY_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const RELAY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

pub const ACCOUNT_URL: &str = "https://acme-v02.api.letsencrypt.org/acme/acct/123456";

/// A plausible 2048-bit RSA SubjectPublicKeyInfo (header and filler), enough for the
/// shared crate's checks; 392 base64 characters, so the DKIM TXT needs two strings.
pub fn dkim_spki_base64() -> String {
    let mut der = vec![
        0x30, 0x82, 0x01, 0x22, 0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01,
        0x01, 0x01, 0x05, 0x00, 0x03, 0x82, 0x01, 0x0F, 0x00,
    ];
    der.extend((0..270).map(|i| (i * 7 % 251) as u8));
    STANDARD.encode(der)
}

/// A complete plan (nothing pending) for `domain`, with IPv4 and IPv6.
pub fn plan(domain: &str) -> DnsPlan {
    let mut config = RelayConfig::new(MailDomain::parse(domain).unwrap());
    config.addresses.ipv4 = Some(RELAY_V4);
    config.addresses.ipv6 = Some(RELAY_V6);
    config.privacy.contact_mail = Some(EmailAddress::parse("admin@provider.example").unwrap());
    let facts = DeviceFacts {
        dkim_public_key: Some(DkimPublicKey::rsa(&dkim_spki_base64()).unwrap()),
        acme_account_url: Some(AcmeAccountUrl::parse(ACCOUNT_URL).unwrap()),
    };
    DnsPlan::new(&config, &facts)
}

/// A plan with only IPv4.
pub fn plan_v4_only(domain: &str) -> DnsPlan {
    let mut config = RelayConfig::new(MailDomain::parse(domain).unwrap());
    config.addresses.ipv4 = Some(RELAY_V4);
    let facts = DeviceFacts {
        dkim_public_key: Some(DkimPublicKey::rsa(&dkim_spki_base64()).unwrap()),
        acme_account_url: Some(AcmeAccountUrl::parse(ACCOUNT_URL).unwrap()),
    };
    DnsPlan::new(&config, &facts)
}

/// The head of the `example.org` zone: SOA, NS ns1/ns2 and their addresses.
pub fn zone_head(serial: u32) -> String {
    format!(
        "$ORIGIN example.org.\n$TTL 3600\n\
         @ 3600 IN SOA ns1.example.org. hostmaster.example.org. {serial} 7200 3600 1209600 3600\n\
         @ 3600 IN NS ns1.example.org.\n\
         @ 3600 IN NS ns2.example.org.\n\
         ns1 3600 IN A {NS1_IP}\n\
         ns2 3600 IN A {NS2_IP}\n"
    )
}

/// The correct zone for `plan`: the head plus the plan's own zone-file export.
pub fn correct_zone(plan: &DnsPlan) -> String {
    format!(
        "{}{}",
        zone_head(2026112901),
        chatmail_shared::zone_file::records_text(plan)
    )
}

/// The `org.` registry zone, delegating `example.org` to `ns_names` (with glue).
pub fn registry_zone(delegation: &[(&str, Ipv4Addr)]) -> String {
    let mut z = format!(
        "$ORIGIN org.\n$TTL 86400\n\
         @ IN SOA ns.registry.org. hostmaster.registry.org. 1 7200 3600 1209600 3600\n\
         @ IN NS ns.registry.org.\n\
         ns.registry.org. IN A {REGISTRY_IP}\n"
    );
    for (name, ip) in delegation {
        z.push_str(&format!("example.org. IN NS {name}.\n{name}. IN A {ip}\n"));
    }
    z
}

/// Reverse zones for the relay's addresses, with these PTR targets (empty: no PTR).
pub fn reverse_zones(v4_ptr: &[&str], v6_ptr: &[&str]) -> Vec<String> {
    let head = |origin: &str| {
        format!(
            "$ORIGIN {origin}\n$TTL 3600\n\
             @ IN SOA ns.isp.example. hostmaster.isp.example. 1 7200 3600 1209600 3600\n\
             @ IN NS ns.isp.example.\n"
        )
    };
    let mut v4 = head("2.0.192.in-addr.arpa.");
    for t in v4_ptr {
        v4.push_str(&format!("10 IN PTR {t}.\n"));
    }
    let mut v6 = head("8.b.d.0.1.0.0.2.ip6.arpa.");
    for t in v6_ptr {
        v6.push_str(&format!(
            "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 IN PTR {t}.\n"
        ));
    }
    vec![v4, v6]
}

/// How a server misbehaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// Serves its zones.
    #[default]
    Normal,
    /// Serves its zones after this delay.
    Delay(Duration),
    /// A validating resolver facing a broken DNSSEC chain: SERVFAIL unless the query
    /// has the CD bit, then the data.
    ServfailUnlessCd,
    /// SERVFAIL for every query of this type (with or without CD), data otherwise.
    ServfailFor(RecordType),
    /// Reads every UDP query and never answers; no TCP.
    Dead,
    /// Answers every UDP query with an empty, truncated response; no TCP.
    TruncatedNoTcp,
}

/// One server of the world.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub ip: Ipv4Addr,
    pub zones: Vec<String>,
    pub behaviour: Behaviour,
}

impl ServerSpec {
    pub fn new(ip: Ipv4Addr, zones: Vec<String>) -> Self {
        ServerSpec {
            ip,
            zones,
            behaviour: Behaviour::Normal,
        }
    }

    pub fn with(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = behaviour;
        self
    }
}

/// Running servers; dropped at the end of the test.
pub struct World {
    pub port: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    servers: Vec<Server<Handler>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for s in &mut self.servers {
            s.shutdown_token().cancel();
        }
    }
}

impl World {
    /// Starts the servers on one free port shared by all their addresses. Sockets are
    /// bound before this returns, so the servers are ready.
    pub async fn start(specs: Vec<ServerSpec>) -> World {
        let (port, sockets) = bind_all(&specs).await;
        let mut tasks = Vec::new();
        let mut servers = Vec::new();
        for (spec, (udp, tcp)) in specs.into_iter().zip(sockets) {
            match spec.behaviour {
                Behaviour::Dead => {
                    drop(tcp);
                    tasks.push(tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        while udp.recv_from(&mut buf).await.is_ok() {}
                    }));
                }
                Behaviour::TruncatedNoTcp => {
                    drop(tcp);
                    tasks.push(tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                            let Ok(query) = Message::from_vec(&buf[..n]) else {
                                continue;
                            };
                            let mut reply =
                                Message::response(query.metadata.id, query.metadata.op_code);
                            reply.metadata.truncation = true;
                            reply.metadata.authoritative = true;
                            reply.queries = query.queries.clone();
                            if let Ok(bytes) = reply.to_vec() {
                                let _ = udp.send_to(&bytes, from).await;
                            }
                        }
                    }));
                }
                b => {
                    let handler = Handler {
                        catalog: catalog(&spec.zones),
                        behaviour: b,
                    };
                    let mut server = Server::new(handler);
                    server.register_socket(udp);
                    server.register_listener(tcp, Duration::from_secs(5), 64);
                    servers.push(server);
                }
            }
        }
        World {
            port,
            tasks,
            servers,
        }
    }

    /// The address of this world's recursive resolver (the checker's "Internet").
    pub fn resolver(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(RESOLVER_IP), self.port)
    }

    pub fn addr(&self, ip: Ipv4Addr) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(ip), self.port)
    }
}

async fn bind_all(specs: &[ServerSpec]) -> (u16, Vec<(UdpSocket, TcpListener)>) {
    'retry: for _ in 0..200 {
        let probe = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let mut out = Vec::new();
        for s in specs {
            let Ok(udp) = UdpSocket::bind((s.ip, port)).await else {
                continue 'retry;
            };
            let Ok(tcp) = TcpListener::bind((s.ip, port)).await else {
                continue 'retry;
            };
            out.push((udp, tcp));
        }
        return (port, out);
    }
    panic!("no port free on all test addresses");
}

fn catalog(zones: &[String]) -> Catalog {
    let mut catalog = Catalog::new();
    for text in zones {
        let (origin, records) = Parser::new(text.as_str(), None, None)
            .parse()
            .unwrap_or_else(|e| panic!("test zone does not parse: {e}\n{text}"));
        let mut handler: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        // Straight into the map: no CNAME-exclusivity check, as a careless provider.
        for (key, set) in records {
            handler.records_get_mut().insert(key, Arc::new(set));
        }
        catalog.upsert(origin.into(), vec![Arc::new(handler)]);
    }
    catalog
}

pub struct Handler {
    catalog: Catalog,
    behaviour: Behaviour,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        if let Behaviour::Delay(d) = self.behaviour {
            tokio::time::sleep(d).await;
        }
        let qtype = request.request_info().ok().map(|i| i.query.query_type());
        let fail = match self.behaviour {
            Behaviour::ServfailUnlessCd => !request.metadata.checking_disabled,
            Behaviour::ServfailFor(t) => qtype == Some(t),
            _ => false,
        };
        if fail {
            let response = MessageResponseBuilder::new(&request.queries, None)
                .error_msg(&request.metadata, ResponseCode::ServFail);
            return match response_handle.send_response(response).await {
                Ok(info) => info,
                Err(_) => ResponseInfo::from(Header {
                    metadata: request.metadata,
                    counts: HeaderCounts::default(),
                }),
            };
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// Name helper for zone texts.
pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// The standard world: resolver (with `resolver_zone` as its copy of example.org),
/// registry, ns1 and ns2 serving `auth_zone`, reverse zones with correct PTRs for
/// `mail_domain`.
pub async fn standard_world(auth_zone: &str, resolver_zone: &str, mail_domain: &str) -> World {
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), resolver_zone.to_string()];
    resolver_zones.extend(reverse_zones(&[mail_domain], &[mail_domain]));
    World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![auth_zone.to_string()]),
        ServerSpec::new(NS2_IP, vec![auth_zone.to_string()]),
    ])
    .await
}
