//! Hostile or odd answers: oversized TXT sets (TCP fallback), alias loops, truncated
//! answers with no TCP service, names in mixed case, and wildcard records.

mod support;

use std::time::{Duration, Instant};

use chatmail_dns_check::{check, RecordStatus, Severity};
use support::*;

const TIMEOUT: Duration = Duration::from_millis(800);

#[tokio::test]
async fn oversized_txt_set_is_fetched_over_tcp() {
    let plan = plan("example.org");
    let mut zone = correct_zone(&plan);
    // 60 verification strings of 250 bytes: about 15 KB, far beyond one UDP answer.
    for i in 0..60 {
        zone.push_str(&format!(
            "example.org. 3600 IN TXT \"site-verification-{i:02}={}\"\n",
            "x".repeat(228)
        ));
    }
    let world = standard_world(&zone, &zone, "example.org").await;
    let report = check(&plan, &world.config(TIMEOUT)).await;
    assert_eq!(
        report.record("spf").unwrap().status,
        RecordStatus::Ok,
        "{}",
        show(&report)
    );
    assert!(report.is_all_green(), "{}", show(&report));
}

#[tokio::test]
async fn alias_loop_is_reported_not_followed_forever() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let zone: String = zone
        .lines()
        .filter(|l| !l.starts_with("www.example.org."))
        .map(|l| format!("{l}\n"))
        .collect();
    let zone = format!(
        "{zone}www.example.org. 3600 IN CNAME loop.example.org.\nloop.example.org. 3600 IN CNAME www.example.org.\n"
    );
    let world = standard_world(&zone, &zone, "example.org").await;
    let start = Instant::now();
    let report = check(&plan, &world.config(TIMEOUT)).await;
    assert!(start.elapsed() < TIMEOUT * 3);
    let f: Vec<_> = report.findings_with_id("cname-loop").collect();
    assert_eq!(f.len(), 1, "{}", show(&report));
    assert_eq!(f[0].severity, Severity::Error);
    assert!(f[0].found.as_deref().unwrap().contains("loop.example.org"));
    assert!(matches!(
        report.record("www-alias").unwrap().status,
        RecordStatus::Wrong { .. }
    ));
}

#[tokio::test]
async fn truncated_answer_without_tcp_is_reported_not_hung_on() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let world = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![zone]),
        ServerSpec::new(NS2_IP, vec![]).with(Behaviour::TruncatedNoTcp),
    ])
    .await;
    let start = Instant::now();
    let report = check(&plan, &world.config(TIMEOUT)).await;
    assert!(start.elapsed() < TIMEOUT * 3, "took {:?}", start.elapsed());
    let f: Vec<_> = report.findings_with_id("nameserver-tcp-failed").collect();
    assert_eq!(f.len(), 1, "{}", show(&report));
    assert_eq!(f[0].subject.as_deref(), Some("ns2.example.org"));
    // Everything is still checked through ns1.
    assert!(
        report.records.iter().all(|r| r.status == RecordStatus::Ok),
        "{}",
        show(&report)
    );
}

#[tokio::test]
async fn mixed_case_names_still_match() {
    let plan = plan("example.org");
    let zone: String = correct_zone(&plan)
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() > 4 && !l.starts_with(';') {
                let owner = fields[0].to_ascii_uppercase();
                let rest = &l[fields[0].len()..];
                // Names in the data too, except case-sensitive TXT/CAA contents.
                let rest = if matches!(fields[3], "MX" | "CNAME" | "SRV") {
                    rest.to_ascii_uppercase().replace("EXAMPLE", "ExAmPlE")
                } else {
                    rest.to_string()
                };
                format!("{owner}{rest}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(zone.contains("EXAMPLE.ORG."), "{zone}");
    let world = standard_world(&zone, &zone, "example.org").await;
    let report = check(&plan, &world.config(TIMEOUT)).await;
    assert!(report.is_all_green(), "{}", show(&report));
}

#[tokio::test]
async fn wildcard_counts_as_served_with_an_info() {
    let plan = plan("example.org");
    let zone: String = correct_zone(&plan)
        .lines()
        .filter(|l| !l.starts_with("www.example.org."))
        .map(|l| format!("{l}\n"))
        .collect();
    let zone = format!("{zone}*.example.org. 3600 IN CNAME example.org.\n");
    let world = standard_world(&zone, &zone, "example.org").await;
    let report = check(&plan, &world.config(TIMEOUT)).await;
    let www = report.record("www-alias").unwrap();
    assert_eq!(www.status, RecordStatus::Ok, "{}", show(&report));
    assert!(www.answered_by_wildcard);
    let f: Vec<_> = report.findings_with_id("answered-by-wildcard").collect();
    assert!(
        f.iter()
            .any(|f| f.subject.as_deref() == Some("www.example.org CNAME")),
        "{}",
        show(&report)
    );
    assert!(f.iter().all(|f| f.severity == Severity::Info));
    // Only records whose data equals the wildcard's are attributed to it: www, and
    // mta-sts (explicit, but identical to the wildcard; DNS cannot tell them apart).
    for r in report.records.iter().filter(|r| r.answered_by_wildcard) {
        assert!(
            ["www-alias", "mta-sts-host"].contains(&r.purpose.as_str()),
            "{}",
            r.purpose
        );
    }
    assert_eq!(
        report.summary.errors + report.summary.warnings,
        0,
        "{}",
        show(&report)
    );
}
