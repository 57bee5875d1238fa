//! A long-lived `Checker` keeps what discovery found: a repeated check asks the zone's
//! servers at once, says the same as a fresh check, and notices when the delegation moved.
//!
//! The worlds of `chatmail-dns-world` cannot change their zones once started, so these
//! tests put a switchboard in front of them: UDP and TCP relays on fixed 127.0.0.x
//! addresses and one fixed port, forwarding to whichever world is current, and logging
//! every UDP question (so discovery questions can be counted on the wire). "The
//! delegation moved" is then: start a second world with the new state, switch.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatmail_dns_check::{check, CheckReport, Checker, CheckerConfig, NameserverStatus};
use hickory_proto::op::Message;
use support::*;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_millis(600);
const NS4_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 14);
const IPS: [Ipv4Addr; 6] = [RESOLVER_IP, REGISTRY_IP, NS1_IP, NS2_IP, NS3_IP, NS4_IP];

/// One UDP question as the switchboard saw it.
#[derive(Debug, Clone)]
struct Seen {
    to: Ipv4Addr,
    name: String,
    rtype: String,
}

/// Fixed addresses in front of a replaceable world.
struct Switchboard {
    port: u16,
    target: Arc<AtomicU16>,
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Switchboard {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Switchboard {
    async fn start(world: &World) -> Switchboard {
        let (port, sockets) = bind_all().await;
        let target = Arc::new(AtomicU16::new(world.port));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let mut tasks = Vec::new();
        for (ip, udp, tcp) in sockets {
            let udp = Arc::new(udp);
            let (target_udp, seen) = (target.clone(), seen.clone());
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65535];
                while let Ok((n, client)) = udp.recv_from(&mut buf).await {
                    let query = buf[..n].to_vec();
                    if let Some(q) = Message::from_vec(&query)
                        .ok()
                        .and_then(|m| m.queries.first().cloned())
                    {
                        seen.lock().unwrap().push(Seen {
                            to: ip,
                            name: q
                                .name()
                                .to_ascii()
                                .trim_end_matches('.')
                                .to_ascii_lowercase(),
                            rtype: q.query_type().to_string(),
                        });
                    }
                    let port = target_udp.load(Ordering::SeqCst);
                    let udp = udp.clone();
                    tokio::spawn(async move {
                        let Ok(out) = UdpSocket::bind((ip, 0)).await else {
                            return;
                        };
                        if out.connect((ip, port)).await.is_err() || out.send(&query).await.is_err()
                        {
                            return;
                        }
                        let mut reply = vec![0u8; 65535];
                        let wait =
                            tokio::time::timeout(Duration::from_secs(5), out.recv(&mut reply));
                        if let Ok(Ok(n)) = wait.await {
                            let _ = udp.send_to(&reply[..n], client).await;
                        }
                    });
                }
            }));
            let target_tcp = target.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((mut inbound, _)) = tcp.accept().await {
                    let port = target_tcp.load(Ordering::SeqCst);
                    tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect((ip, port)).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }));
        }
        Switchboard {
            port,
            target,
            seen,
            tasks,
        }
    }

    /// From now on, questions go to `world`.
    fn switch_to(&self, world: &World) {
        self.target.store(world.port, Ordering::SeqCst);
    }

    fn config(&self) -> CheckerConfig {
        let mut c = CheckerConfig::with_resolvers(vec![SocketAddr::new(
            IpAddr::V4(RESOLVER_IP),
            self.port,
        )]);
        c.nameserver_port = self.port;
        c.timeout = TIMEOUT;
        c
    }

    /// The questions seen since the last call.
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

async fn bind_all() -> (u16, Vec<(Ipv4Addr, UdpSocket, TcpListener)>) {
    'retry: for _ in 0..200 {
        let probe = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let mut out = Vec::new();
        for ip in IPS {
            let Ok(udp) = UdpSocket::bind((ip, port)).await else {
                continue 'retry;
            };
            let Ok(tcp) = TcpListener::bind((ip, port)).await else {
                continue 'retry;
            };
            out.push((ip, udp, tcp));
        }
        return (port, out);
    }
    panic!("no port free on all switchboard addresses");
}

/// Questions that only discovery asks: NS records, and the addresses of name servers
/// (the test's NS hosts are all called `ns…`), all at the resolver.
fn discovery(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| {
            s.to == RESOLVER_IP
                && (s.rtype == "NS"
                    || (s.name.starts_with("ns") && (s.rtype == "A" || s.rtype == "AAAA")))
        })
        .collect()
}

fn asked(seen: &[Seen], to: Ipv4Addr, name: &str, rtype: &str) -> usize {
    seen.iter()
        .filter(|s| s.to == to && s.name == name && s.rtype == rtype)
        .count()
}

/// A report without what changes from one check to the next (clock, durations).
fn essence(r: &CheckReport) -> CheckReport {
    let mut r = r.clone();
    r.checked_at_unix_secs = 0;
    r.duration_ms = 0;
    for ns in &mut r.nameservers {
        ns.slowest_answer_ms = None;
    }
    r
}

fn names(r: &CheckReport) -> Vec<&str> {
    r.nameservers.iter().map(|n| n.name.as_str()).collect()
}

/// `example.org` served by these name servers (SOA, NS, glue) with the plan's records.
fn zone_at(
    plan: &chatmail_dns_check::DnsPlan,
    serial: u32,
    servers: &[(&str, Ipv4Addr)],
) -> String {
    let mut z = format!(
        "$ORIGIN example.org.\n$TTL 3600\n\
         @ 3600 IN SOA {}.example.org. hostmaster.example.org. {serial} 7200 3600 1209600 3600\n",
        servers[0].0
    );
    for (name, _) in servers {
        z.push_str(&format!("@ 3600 IN NS {name}.example.org.\n"));
    }
    for (name, ip) in servers {
        z.push_str(&format!("{name} 3600 IN A {ip}\n"));
    }
    z + &chatmail_shared::zone_file::records_text(plan)
}

/// What became of the old provider's servers after the move.
#[derive(Debug, Clone, Copy)]
enum OldServers {
    /// Switched off: nothing answers.
    Gone,
    /// Still running, but the zone was deleted there: REFUSED.
    Refusing,
    /// Still serving the old copy of the zone, authoritatively.
    Stale,
}

/// The zone moved to ns3/ns4: the registry delegates there, the resolver knows it.
async fn moved_world(plan: &chatmail_dns_check::DnsPlan, old: OldServers) -> World {
    let zone = zone_at(plan, 2026120101, &[("ns3", NS3_IP), ("ns4", NS4_IP)]);
    let registry = registry_zone(&[("ns3.example.org", NS3_IP), ("ns4.example.org", NS4_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let mut specs = vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS3_IP, vec![zone.clone()]),
        ServerSpec::new(NS4_IP, vec![zone]),
    ];
    match old {
        OldServers::Gone => {}
        OldServers::Refusing => {
            specs.push(ServerSpec::new(NS1_IP, vec![]));
            specs.push(ServerSpec::new(NS2_IP, vec![]));
        }
        OldServers::Stale => {
            specs.push(ServerSpec::new(NS1_IP, vec![correct_zone(plan)]));
            specs.push(ServerSpec::new(NS2_IP, vec![correct_zone(plan)]));
        }
    }
    World::start(specs).await
}

#[tokio::test]
async fn second_check_asks_the_servers_at_once_and_says_the_same() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let world = standard_world(&zone, &zone, "example.org").await;
    let board = Switchboard::start(&world).await;
    let checker = Checker::new(board.config());

    let first = checker.check(&plan).await;
    assert!(first.is_all_green(), "{}", show(&first));
    let cold = board.take();
    // NS of example.org and org, then the addresses of the NS hosts the answers carry
    // no glue for.
    let found = discovery(&cold).len() as u64;
    assert_eq!(asked(&cold, RESOLVER_IP, "example.org", "NS"), 1);
    assert_eq!(asked(&cold, RESOLVER_IP, "org", "NS"), 1);
    assert!(found > 2, "{:#?}", discovery(&cold));
    let s = checker.cache_stats();
    assert_eq!(
        (s.checks, s.misses, s.hits, s.stored, s.entries),
        (1, 1, 0, 1, 1),
        "{s:?}"
    );
    assert_eq!(s.discovery_queries, found);
    // Every TTL in the test zones is an hour or more: the 5-minute cap rules.
    let left = checker.cache_expires_in("Example.ORG.").unwrap();
    assert!(
        left <= Duration::from_secs(300) && left > Duration::from_secs(280),
        "{left:?}"
    );

    let second = checker.check(&plan).await;
    let warm = board.take();
    assert_eq!(essence(&second), essence(&first), "{}", show(&second));
    assert!(discovery(&warm).is_empty(), "{:#?}", discovery(&warm));
    // Still asked: every server, and the registry for the delegation.
    assert!(asked(&warm, NS1_IP, "example.org", "SOA") == 1);
    assert!(asked(&warm, NS2_IP, "example.org", "SOA") == 1);
    assert!(asked(&warm, REGISTRY_IP, "example.org", "NS") == 1);
    let s = checker.cache_stats();
    assert_eq!(
        (s.checks, s.hits, s.rediscovered, s.stored),
        (2, 1, 0, 1),
        "{s:?}"
    );
    assert_eq!(s.discovery_queries, found, "a kept discovery asks nothing");
    // The kept entry was not extended by its use.
    assert!(checker.cache_expires_in("example.org").unwrap() <= left);

    // A fresh check says the same.
    assert_eq!(
        essence(&check(&plan, &board.config()).await),
        essence(&second)
    );
}

#[tokio::test]
async fn ptr_naming_the_mail_domain_reuses_the_address_lookup() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let world = standard_world(&zone, &zone, "example.org").await;
    let board = Switchboard::start(&world).await;
    let report = check(&plan, &board.config()).await;
    assert!(report.is_all_green(), "{}", show(&report));
    let seen = board.take();
    // Both PTRs name example.org: one A and one AAAA question serve the recursive view
    // and the forward confirmation.
    assert_eq!(
        asked(&seen, RESOLVER_IP, "example.org", "A"),
        1,
        "{seen:#?}"
    );
    assert_eq!(
        asked(&seen, RESOLVER_IP, "example.org", "AAAA"),
        1,
        "{seen:#?}"
    );
    assert_eq!(
        asked(&seen, RESOLVER_IP, "10.2.0.192.in-addr.arpa", "PTR"),
        1
    );
}

async fn delegation_moved(old: OldServers) {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let before = standard_world(&zone, &zone, "example.org").await;
    let board = Switchboard::start(&before).await;
    let checker = Checker::new(board.config());
    let first = checker.check(&plan).await;
    assert!(first.is_all_green(), "{}", show(&first));
    assert_eq!(names(&first), ["ns1.example.org", "ns2.example.org"]);

    let after = moved_world(&plan, old).await;
    board.switch_to(&after);
    drop(before);
    board.take();

    let report = checker.check(&plan).await;
    let s = checker.cache_stats();
    assert_eq!(
        (s.hits, s.rediscovered, s.stored),
        (0, 1, 2),
        "{old:?}: {s:?}"
    );
    assert!(
        !discovery(&board.take()).is_empty(),
        "{old:?}: rediscovered"
    );
    assert_eq!(
        names(&report),
        ["ns3.example.org", "ns4.example.org"],
        "{old:?}: {}",
        show(&report)
    );
    assert!(report
        .nameservers
        .iter()
        .all(|n| n.status == NameserverStatus::Ok && n.in_parent_delegation == Some(true)));
    assert!(report.is_all_green(), "{old:?}: {}", show(&report));
    // Nothing about the old servers or the cache.
    let text = format!("{:?}", report.findings);
    assert!(
        !text.contains("ns1.") && !text.contains("ns2."),
        "{old:?}: {text}"
    );
    // What a fresh check says.
    assert_eq!(
        essence(&report),
        essence(&check(&plan, &board.config()).await),
        "{old:?}"
    );

    // The new servers are kept.
    board.take();
    let again = checker.check(&plan).await;
    assert_eq!(essence(&again), essence(&report), "{old:?}");
    assert!(discovery(&board.take()).is_empty(), "{old:?}");
    assert_eq!(checker.cache_stats().hits, 1, "{old:?}");
}

#[tokio::test]
async fn moved_delegation_with_old_servers_switched_off_is_rediscovered() {
    delegation_moved(OldServers::Gone).await;
}

#[tokio::test]
async fn moved_delegation_with_old_servers_refusing_is_rediscovered() {
    delegation_moved(OldServers::Refusing).await;
}

#[tokio::test]
async fn moved_delegation_with_old_servers_still_answering_is_rediscovered() {
    // The old servers answer as before; only the registry's delegation tells.
    delegation_moved(OldServers::Stale).await;
}

#[tokio::test]
async fn zone_deleted_at_the_provider_is_reported_as_a_fresh_check_would() {
    // Same delegation, but the provider's servers no longer serve the zone: the kept
    // discovery is not trusted, discovery finds the same servers, and the report says
    // what is wrong with them; nothing is kept while no server serves the zone.
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let before = standard_world(&zone, &zone, "example.org").await;
    let board = Switchboard::start(&before).await;
    let checker = Checker::new(board.config());
    assert!(checker.check(&plan).await.is_all_green());

    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let after = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![]),
        ServerSpec::new(NS2_IP, vec![]),
    ])
    .await;
    board.switch_to(&after);
    let report = checker.check(&plan).await;
    let s = checker.cache_stats();
    assert_eq!((s.rediscovered, s.stored, s.entries), (1, 1, 0), "{s:?}");
    assert!(
        report
            .nameservers
            .iter()
            .all(|n| matches!(n.status, NameserverStatus::Lame { .. })),
        "{}",
        show(&report)
    );
    assert_eq!(
        essence(&report),
        essence(&check(&plan, &board.config()).await)
    );
}

#[tokio::test]
async fn expired_discovery_is_done_again() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let world = standard_world(&zone, &zone, "example.org").await;
    let board = Switchboard::start(&world).await;
    let mut config = board.config();
    config.discovery_cache_max_age = Duration::from_millis(300);
    let checker = Checker::new(config);
    let first = checker.check(&plan).await;
    assert!(checker.cache_expires_in("example.org").is_some());
    let cold = discovery(&board.take()).len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(checker.cache_expires_in("example.org"), None);
    let second = checker.check(&plan).await;
    assert_eq!(discovery(&board.take()).len(), cold);
    let s = checker.cache_stats();
    assert_eq!(
        (s.misses, s.expired, s.hits, s.stored),
        (2, 1, 0, 2),
        "{s:?}"
    );
    assert_eq!(essence(&second), essence(&first));
}

#[tokio::test]
async fn lifetime_follows_the_shortest_ttl_seen() {
    let plan = plan("example.org");
    let auth = correct_zone(&plan);
    // The resolver's view: NS records for a minute, ns2's address for 30 seconds.
    let view = auth
        .replace("@ 3600 IN NS", "@ 60 IN NS")
        .replace("ns2 3600 IN A", "ns2 30 IN A");
    assert_ne!(view, auth);
    let world = standard_world(&auth, &view, "example.org").await;
    let checker = Checker::new(world.config(TIMEOUT));
    let report = checker.check(&plan).await;
    assert!(report.is_all_green(), "{}", show(&report));
    let left = checker.cache_expires_in("example.org").unwrap();
    assert!(
        left <= Duration::from_secs(30) && left > Duration::from_secs(20),
        "{left:?}"
    );
}

#[tokio::test]
async fn another_mail_domain_is_not_served_from_the_cache() {
    let apex = plan("example.org");
    let sub = plan("chat.example.org");
    // One zone holding both relays' records.
    let zone = correct_zone(&apex) + &chatmail_shared::zone_file::records_text(&sub);
    let world = standard_world(&zone, &zone, "example.org").await;
    let checker = Checker::new(world.config(TIMEOUT));
    checker.check(&apex).await;
    let report = checker.check(&sub).await;
    assert_eq!(report.mail_domain, "chat.example.org");
    assert_eq!(report.zone.as_deref(), Some("example.org"));
    let s = checker.cache_stats();
    assert_eq!((s.misses, s.hits, s.entries), (2, 0, 2), "{s:?}");
    assert_eq!(
        essence(&report),
        essence(&check(&sub, &world.config(TIMEOUT)).await)
    );
    checker.check(&apex).await;
    assert_eq!(checker.cache_stats().hits, 1);
    checker.forget("example.org");
    assert_eq!(checker.cache_expires_in("example.org"), None);
    assert!(checker.cache_expires_in("chat.example.org").is_some());
}

#[tokio::test]
async fn server_dead_from_the_start_does_not_force_rediscovery() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let world = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![zone.clone()]),
        ServerSpec::new(NS2_IP, vec![zone]).with(Behaviour::Dead),
    ])
    .await;
    let checker = Checker::new(world.config(TIMEOUT));
    let first = checker.check(&plan).await;
    assert_eq!(first.findings_with_id("nameserver-unreachable").count(), 1);
    let second = checker.check(&plan).await;
    let s = checker.cache_stats();
    assert_eq!((s.hits, s.rediscovered), (1, 0), "{s:?}");
    assert_eq!(essence(&second), essence(&first), "{}", show(&second));
}

#[tokio::test]
async fn broken_discoveries_are_not_kept() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);

    // Every server dead: nothing confirmed the servers.
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let world = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![zone.clone()]).with(Behaviour::Dead),
        ServerSpec::new(NS2_IP, vec![zone]).with(Behaviour::Dead),
    ])
    .await;
    let checker = Checker::new(world.config(TIMEOUT));
    checker.check(&plan).await;
    checker.check(&plan).await;
    let s = checker.cache_stats();
    assert_eq!(
        (s.misses, s.hits, s.stored, s.entries),
        (2, 0, 0, 0),
        "{s:?}"
    );
}

#[tokio::test]
async fn domain_delegated_after_a_check_is_rediscovered() {
    // Before: the registry has no example.org, so the closest zone with name servers is
    // org itself, whose servers answer NXDOMAIN for everything: kept (that is what DNS
    // says), for at most the NXDOMAIN's negative TTL.
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let registry = registry_zone(&[]);
    let mut resolver_zones = vec![registry.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let before = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
    ])
    .await;
    let board = Switchboard::start(&before).await;
    let checker = Checker::new(board.config());
    let first = checker.check(&plan).await;
    assert_eq!(first.zone.as_deref(), Some("org"), "{}", show(&first));
    assert!(!first.is_all_green());

    // After: delegated and served. The registry's servers now send referrals, which do
    // not confirm the kept discovery.
    let after = standard_world(&zone, &zone, "example.org").await;
    board.switch_to(&after);
    let report = checker.check(&plan).await;
    assert_eq!(report.zone.as_deref(), Some("example.org"));
    assert!(report.is_all_green(), "{}", show(&report));
    let s = checker.cache_stats();
    assert_eq!((s.rediscovered, s.stored), (1, 2), "{s:?}");
    assert_eq!(
        essence(&report),
        essence(&check(&plan, &board.config()).await)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_checker_serves_concurrent_checks() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let world = standard_world(&zone, &zone, "example.org").await;
    let checker = Arc::new(Checker::new(world.config(Duration::from_secs(2))));
    checker.check(&plan).await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (checker, plan) = (checker.clone(), plan.clone());
            tokio::spawn(async move { checker.check(&plan).await })
        })
        .collect();
    for t in tasks {
        let report = t.await.unwrap();
        assert!(report.is_all_green(), "{}", show(&report));
    }
    let s = checker.cache_stats();
    assert_eq!((s.checks, s.hits, s.misses), (5, 4, 1), "{s:?}");
}
