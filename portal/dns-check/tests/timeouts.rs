//! Slow and dead servers: reported by name, and never hung on. Every check must finish
//! within three timeouts (generous slack for a loaded 2-core machine; the design bound is
//! one timeout per dependent step).

mod support;

use std::time::{Duration, Instant};

use chatmail_dns_check::{check, NameserverStatus, RecordStatus, Severity};
use support::*;

const TIMEOUT: Duration = Duration::from_millis(600);

async fn world_with(ns2: Behaviour, resolver: Behaviour) -> (World, chatmail_dns_check::DnsPlan) {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let world = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones).with(resolver),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![zone.clone()]),
        ServerSpec::new(NS2_IP, vec![zone]).with(ns2),
    ])
    .await;
    (world, plan)
}

fn ns2_status(report: &chatmail_dns_check::CheckReport) -> &NameserverStatus {
    &report
        .nameservers
        .iter()
        .find(|n| n.name == "ns2.example.org")
        .expect("ns2 in the report")
        .status
}

#[tokio::test]
async fn dead_nameserver_is_named_and_not_waited_for() {
    let (world, plan) = world_with(Behaviour::Dead, Behaviour::Normal).await;
    let start = Instant::now();
    let report = check(&plan, &world.config(TIMEOUT)).await;
    let elapsed = start.elapsed();
    assert!(elapsed < TIMEOUT * 3, "took {elapsed:?}");
    assert!(
        matches!(ns2_status(&report), NameserverStatus::Unreachable { .. }),
        "{}",
        show(&report)
    );
    let f: Vec<_> = report.findings_with_id("nameserver-unreachable").collect();
    assert_eq!(f.len(), 1, "{}", show(&report));
    assert_eq!(f[0].subject.as_deref(), Some("ns2.example.org"));
    // ns1 still answers, so this is a warning and the records are checked through ns1.
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(
        report.records.iter().all(|r| r.status == RecordStatus::Ok),
        "{}",
        show(&report)
    );
}

#[tokio::test]
async fn nameserver_slower_than_the_timeout_counts_as_unreachable() {
    let (world, plan) = world_with(Behaviour::Delay(TIMEOUT * 4), Behaviour::Normal).await;
    let start = Instant::now();
    let report = check(&plan, &world.config(TIMEOUT)).await;
    let elapsed = start.elapsed();
    assert!(elapsed < TIMEOUT * 3, "took {elapsed:?}");
    let NameserverStatus::Unreachable { reason } = ns2_status(&report) else {
        panic!("{}", show(&report));
    };
    assert!(reason.contains("0.6 seconds"), "{reason}");
}

#[tokio::test]
async fn slow_nameserver_within_the_timeout_is_reported_as_slow() {
    let (world, plan) = world_with(
        Behaviour::Delay(Duration::from_millis(250)),
        Behaviour::Normal,
    )
    .await;
    let mut config = world.config(Duration::from_secs(3));
    config.slow_threshold = Duration::from_millis(100);
    let report = check(&plan, &config).await;
    assert!(
        matches!(ns2_status(&report), NameserverStatus::Slow { .. }),
        "{}",
        show(&report)
    );
    let f: Vec<_> = report.findings_with_id("nameserver-slow").collect();
    assert_eq!(f.len(), 1);
    assert!(
        report.records.iter().all(|r| r.status == RecordStatus::Ok),
        "{}",
        show(&report)
    );
}

#[tokio::test]
async fn all_nameservers_dead_is_an_error_and_records_are_unknown() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let world = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![]).with(Behaviour::Dead),
        ServerSpec::new(NS2_IP, vec![]).with(Behaviour::Dead),
    ])
    .await;
    let start = Instant::now();
    let report = check(&plan, &world.config(TIMEOUT)).await;
    assert!(start.elapsed() < TIMEOUT * 3, "took {:?}", start.elapsed());
    let f: Vec<_> = report.findings_with_id("nameserver-unreachable").collect();
    assert_eq!(f.len(), 2, "{}", show(&report));
    assert!(f.iter().all(|f| f.severity == Severity::Error));
    assert!(report
        .records
        .iter()
        .all(|r| matches!(r.status, RecordStatus::Unknown { .. })));
    assert!(!report.is_all_green());
}

#[tokio::test]
async fn dead_resolver_is_reported_within_the_bound() {
    let (world, plan) = world_with(Behaviour::Normal, Behaviour::Dead).await;
    let start = Instant::now();
    let report = check(&plan, &world.config(TIMEOUT)).await;
    assert!(start.elapsed() < TIMEOUT * 3, "took {:?}", start.elapsed());
    let f: Vec<_> = report.findings_with_id("resolver-unreachable").collect();
    assert_eq!(f.len(), 1, "{}", show(&report));
    assert_eq!(f[0].who_acts, chatmail_dns_check::WhoActs::PortalAdmin);
    assert!(!report.is_all_green());
}
