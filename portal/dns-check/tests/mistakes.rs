//! One deliberately broken zone per common mistake, served by real hickory-server
//! instances on loopback, and one correct zone: each mistake must come out with its
//! finding id, severity and who acts; the correct zone must be all green.

mod support;

use std::time::Duration;

use chatmail_dns_check::{
    check, check_with, CheckContext, CheckReport, ConnectionKind, Finding, RecordStatus, Severity,
    WhoActs,
};
use hickory_proto::rr::RecordType;
use support::*;

const TIMEOUT: Duration = Duration::from_secs(2);

/// Removes the records of `name` (absolute, with dot) and type `rtype` from a zone text.
fn without(zone: &str, name: &str, rtype: &str) -> String {
    zone.lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            !(f.len() > 4 && f[0].eq_ignore_ascii_case(name) && f[3] == rtype)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn plus(zone: &str, lines: &[&str]) -> String {
    let mut z = zone.to_string();
    for l in lines {
        z.push_str(l);
        z.push('\n');
    }
    z
}

async fn run(
    auth_zone: &str,
    resolver_zone: &str,
    domain: &str,
    ctx: &CheckContext,
) -> CheckReport {
    let world = standard_world(auth_zone, resolver_zone, domain).await;
    let plan = plan(domain);
    check_with(&plan, ctx, &world.config(TIMEOUT)).await
}

fn only<'a>(report: &'a CheckReport, id: &str) -> &'a Finding {
    let found: Vec<&Finding> = report.findings_with_id(id).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {id} finding\n{}",
        show(report)
    );
    found[0]
}

fn assert_plain(f: &Finding) {
    assert!(
        !f.title.is_empty() && !f.explanation.is_empty() && !f.fix.is_empty(),
        "{f:?}"
    );
}

#[tokio::test]
async fn correct_zone_is_all_green() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let world = standard_world(&zone, &zone, "example.org").await;
    let report = check(&plan, &world.config(TIMEOUT)).await;
    assert!(report.is_all_green(), "{}", show(&report));
    assert!(report.findings.is_empty(), "{}", show(&report));
    assert_eq!(report.zone.as_deref(), Some("example.org"));
    assert_eq!(report.nameservers.len(), 2);
    assert!(report
        .nameservers
        .iter()
        .all(|n| n.in_parent_delegation == Some(true)));
    assert!(report.records.iter().all(|r| r.status == RecordStatus::Ok));
    assert!(report.records.iter().all(|r| r.resolvers.len() == 1));
    // The JSON the API serves reads back into the same report.
    let back: CheckReport = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(back, report);
}

#[tokio::test]
async fn correct_subdomain_relay_is_all_green() {
    let plan = plan("chat.example.org");
    let zone = correct_zone(&plan);
    let world = standard_world(&zone, &zone, "chat.example.org").await;
    let report = check(&plan, &world.config(TIMEOUT)).await;
    assert!(report.is_all_green(), "{}", show(&report));
    assert_eq!(report.zone.as_deref(), Some("example.org"));
}

#[tokio::test]
async fn mx_pointing_at_a_cname() {
    let zone = correct_zone(&plan("example.org"));
    let zone = plus(
        &without(&zone, "example.org.", "MX"),
        &[
            "example.org. 3600 IN MX 10 mail.example.org.",
            "mail.example.org. 3600 IN CNAME example.org.",
        ],
    );
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "mx-points-to-cname");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.who_acts, WhoActs::YouAtDnsProvider);
    assert!(f.fix.contains("MX 10 example.org."), "{}", f.fix);
    assert_plain(f);
    assert!(matches!(
        report.record("mx").unwrap().status,
        RecordStatus::Wrong { .. }
    ));
    assert_eq!(
        report.findings_with_id("record-wrong").count(),
        0,
        "told once: {}",
        show(&report)
    );
}

#[tokio::test]
async fn mx_pointing_elsewhere() {
    let zone = correct_zone(&plan("example.org"));
    let zone = plus(
        &without(&zone, "example.org.", "MX"),
        &["example.org. 3600 IN MX 10 mx.old-provider.example."],
    );
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "mx-points-elsewhere");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.explanation.contains("mx.old-provider.example"));
    assert!(!report.is_all_green());
}

#[tokio::test]
async fn cname_at_the_apex() {
    let zone = correct_zone(&plan("example.org"));
    let zone = without(&without(&zone, "example.org.", "A"), "example.org.", "AAAA");
    let zone = plus(&zone, &["example.org. 3600 IN CNAME relay.hoster.example."]);
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "cname-at-apex");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.fix.contains("IN A 192.0.2.10"), "{}", f.fix);
    assert_eq!(
        report.findings_with_id("record-missing").count(),
        0,
        "{}",
        show(&report)
    );
}

#[tokio::test]
async fn cname_beside_other_data() {
    let plan = plan("chat.example.org");
    let zone = correct_zone(&plan);
    let zone = without(
        &without(&zone, "chat.example.org.", "A"),
        "chat.example.org.",
        "AAAA",
    );
    let zone = plus(
        &zone,
        &["chat.example.org. 3600 IN CNAME relay.hoster.example."],
    );
    let world = standard_world(&zone, &zone, "chat.example.org").await;
    let report = check(&plan, &world.config(TIMEOUT)).await;
    let f = only(&report, "cname-beside-other-data");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.explanation.contains("MX"), "{}", f.explanation);
}

#[tokio::test]
async fn several_spf_records() {
    let zone = plus(
        &correct_zone(&plan("example.org")),
        &["example.org. 3600 IN TXT \"v=spf1 mx -all\""],
    );
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "spf-multiple");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.fix.contains("v=spf1 a ~all"));
}

fn dkim_zone(value: &str) -> String {
    let zone = correct_zone(&plan("example.org"));
    plus(
        &without(&zone, "opendkim._domainkey.example.org.", "TXT"),
        &[&format!(
            "opendkim._domainkey.example.org. 3600 IN TXT {value}"
        )],
    )
}

#[tokio::test]
async fn dkim_truncated_at_255() {
    let full = format!("v=DKIM1;k=rsa;p={};s=email;t=s", dkim_spki_base64());
    let zone = dkim_zone(&format!("\"{}\"", &full[..255]));
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "dkim-truncated");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.who_acts, WhoActs::YouAtDnsProvider);
    assert!(matches!(
        report.record("dkim").unwrap().status,
        RecordStatus::Wrong { .. }
    ));
}

#[tokio::test]
async fn dkim_pasted_with_quotes() {
    let full = format!("v=DKIM1;k=rsa;p={};s=email;t=s", dkim_spki_base64());
    // What a panel stores when the split zone-file form is pasted into a plain field.
    let stored = format!("{}\" \"{}", &full[..200], &full[200..]);
    let pieces: Vec<String> = stored
        .as_bytes()
        .chunks(255)
        .map(|c| {
            format!(
                "\"{}\"",
                std::str::from_utf8(c).unwrap().replace('"', "\\\"")
            )
        })
        .collect();
    let zone = dkim_zone(&pieces.join(" "));
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "dkim-badly-split");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.fix.contains("without any quotes"));
}

#[tokio::test]
async fn dkim_not_split_into_255_byte_strings() {
    // One 430-byte string: the server accepts it but cannot encode it, and fails.
    let full = format!("v=DKIM1;k=rsa;p={};s=email;t=s", dkim_spki_base64());
    let zone = dkim_zone(&format!("\"{full}\""));
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "dkim-not-split");
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.fix.contains("\" \""),
        "the fix shows the split form: {}",
        f.fix
    );
    assert_eq!(report.findings_with_id("record-lookup-fails").count(), 0);
}

#[tokio::test]
async fn caa_forbidding_lets_encrypt() {
    let zone = correct_zone(&plan("example.org"));
    let zone = plus(
        &without(&zone, "example.org.", "CAA"),
        &["example.org. 3600 IN CAA 0 issue \"sectigo.com\""],
    );
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "caa-forbids-ca");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.explanation.contains("sectigo.com"), "{}", f.explanation);
    assert!(f.fix.contains("letsencrypt.org;accounturi="), "{}", f.fix);
}

#[tokio::test]
async fn caa_lookup_failing() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let broken = Behaviour::ServfailFor(RecordType::CAA);
    let world = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones).with(broken),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![zone.clone()]).with(broken),
        ServerSpec::new(NS2_IP, vec![zone]).with(broken),
    ])
    .await;
    let report = check(&plan, &world.config(TIMEOUT)).await;
    let f = only(&report, "caa-lookup-fails");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.explanation.contains("SERVFAIL"), "{}", f.explanation);
    // A CAA failure is not mistaken for broken DNSSEC.
    assert_eq!(report.findings_with_id("dnssec-broken").count(), 0);
}

#[tokio::test]
async fn addresses_in_cloudflare_proxy() {
    let zone = correct_zone(&plan("example.org"));
    let zone = without(&without(&zone, "example.org.", "A"), "example.org.", "AAAA");
    let zone = plus(
        &zone,
        &[
            "example.org. 300 IN A 104.21.3.4",
            "example.org. 300 IN AAAA 2606:4700:3030::6815:304",
        ],
    );
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "cloudflare-proxy");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.fix.contains("grey"), "{}", f.fix);
    assert!(f.found.as_deref().unwrap().contains("104.21.3.4"));
    assert_eq!(
        report.findings_with_id("record-wrong").count(),
        0,
        "{}",
        show(&report)
    );
}

#[tokio::test]
async fn broken_dnssec() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let world = World::start(vec![
        // Works for discovery only with CD... the resolver fails every normal query.
        ServerSpec::new(RESOLVER_IP, resolver_zones).with(Behaviour::ServfailUnlessCd),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![zone.clone()]),
        ServerSpec::new(NS2_IP, vec![zone]),
    ])
    .await;
    let report = check(&plan, &world.config(TIMEOUT)).await;
    let f = only(&report, "dnssec-broken");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.who_acts, WhoActs::YouAtRegistrar);
    assert!(f.fix.contains("DS"), "{}", f.fix);
}

#[tokio::test]
async fn records_entered_at_a_provider_that_is_not_in_charge() {
    // The delegated servers still serve an old, nearly empty zone; the portal wrote the
    // records at "Provider A", whose servers the domain is not delegated to.
    let plan = plan("example.org");
    let old = plus(
        &zone_head(2020010101),
        &["example.org. 3600 IN A 192.0.2.10"],
    );
    let ctx = CheckContext {
        provider_nameservers: vec!["ns.provider-a.example".into()],
        provider_name: Some("Provider A".into()),
        ..CheckContext::default()
    };
    let world = standard_world(&old, &old, "example.org").await;
    let report = check_with(&plan, &ctx, &world.config(TIMEOUT)).await;
    let f = only(&report, "ns-not-at-provider");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.who_acts, WhoActs::YouAtRegistrar);
    assert!(
        f.explanation.contains("ns1.example.org"),
        "{}",
        f.explanation
    );
    assert!(f.fix.contains("ns.provider-a.example"), "{}", f.fix);
    assert_eq!(report.record("mx").unwrap().status, RecordStatus::Missing);
}

#[tokio::test]
async fn parent_and_zone_list_different_nameservers() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan).replace(
        "@ 3600 IN NS ns2.example.org.",
        "@ 3600 IN NS ns3.example.org.\nns3 3600 IN A 127.0.0.13",
    );
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let world = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![zone.clone()]),
        ServerSpec::new(NS2_IP, vec![zone.clone()]),
        ServerSpec::new(NS3_IP, vec![zone]),
    ])
    .await;
    let report = check(&plan, &world.config(TIMEOUT)).await;
    let f = only(&report, "ns-delegation-mismatch");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.who_acts, WhoActs::YouAtRegistrar);
}

#[tokio::test]
async fn missing_and_wrong_ptr() {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    // IPv4: no PTR at all. IPv6: Hetzner's default name.
    resolver_zones.extend(reverse_zones(
        &[],
        &["static.1.0.0.0.clients.your-server.de"],
    ));
    let world = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones),
        ServerSpec::new(REGISTRY_IP, vec![registry]),
        ServerSpec::new(NS1_IP, vec![zone.clone()]),
        ServerSpec::new(NS2_IP, vec![zone]),
    ])
    .await;
    let ctx = CheckContext {
        connection: ConnectionKind::Hosted,
        ..CheckContext::default()
    };
    let report = check_with(&plan, &ctx, &world.config(TIMEOUT)).await;
    let missing = only(&report, "ptr-missing");
    assert_eq!(missing.severity, Severity::Warning);
    assert_eq!(missing.who_acts, WhoActs::HostingProvider);
    assert!(missing.subject.as_deref().unwrap().contains("192.0.2.10"));
    let wrong = only(&report, "ptr-mismatch");
    assert_eq!(wrong.who_acts, WhoActs::HostingProvider);
    assert!(wrong
        .title
        .contains("static.1.0.0.0.clients.your-server.de"));
    // The hoster is recognised from its default name, and the advice says where to act.
    assert!(wrong.fix.contains("Hetzner Cloud Console"), "{}", wrong.fix);
    assert!(
        missing.fix.contains("name the Droplet exactly example.org"),
        "{}",
        missing.fix
    );
    // The same for a relay at home: the ISP acts.
    let home = CheckContext {
        connection: ConnectionKind::Home,
        ..CheckContext::default()
    };
    let report = check_with(&plan, &home, &world.config(TIMEOUT)).await;
    let missing = only(&report, "ptr-missing");
    assert_eq!(missing.who_acts, WhoActs::Isp);
    assert!(!missing.fix.contains("Droplet"), "{}", missing.fix);
}

#[tokio::test]
async fn ptr_not_forward_confirmed() {
    // The PTR names the relay, but the relay's name has another IPv6 address.
    let plan = plan("example.org");
    let zone = without(&correct_zone(&plan), "example.org.", "AAAA");
    let zone = plus(&zone, &["example.org. 3600 IN AAAA 2001:db8::99"]);
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "ptr-not-forward-confirmed");
    assert!(f.subject.as_deref().unwrap().contains("2001:db8::10"));
    assert_eq!(f.who_acts, WhoActs::YouAtDnsProvider);
    assert!(matches!(
        report.record("ipv6-address").unwrap().status,
        RecordStatus::Wrong { .. }
    ));
}

#[tokio::test]
async fn ttls_so_high_that_fixes_take_hours() {
    let zone = correct_zone(&plan("example.org")).replace("3600   IN  MX", "86400  IN  MX");
    let report = run(&zone, &zone, "example.org", &CheckContext::default()).await;
    let f = only(&report, "ttl-high");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.title.contains("24 hours"), "{}", f.title);
    assert!(f.fix.contains("3600"));
}

#[tokio::test]
async fn not_yet_propagated_with_remaining_ttl() {
    // The authoritative servers have the new MX; the resolver still caches the old one
    // for another 1234 seconds.
    let zone = correct_zone(&plan("example.org"));
    let stale = plus(
        &without(&zone, "example.org.", "MX"),
        &["example.org. 1234 IN MX 10 mx.old-provider.example."],
    );
    let report = run(&zone, &stale, "example.org", &CheckContext::default()).await;
    assert_eq!(
        report.record("mx").unwrap().status,
        RecordStatus::NotYetPropagated {
            remaining_ttl_secs: Some(1234),
            stale_found: vec!["10 mx.old-provider.example.".into()],
        },
        "{}",
        show(&report)
    );
    let f = only(&report, "record-not-propagated");
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.who_acts, WhoActs::Wait);
    assert!(f.fix.contains("21 minutes"), "{}", f.fix);
    assert_eq!(
        report.summary.errors + report.summary.warnings,
        0,
        "{}",
        show(&report)
    );
}

#[tokio::test]
async fn authoritative_servers_disagree() {
    let plan = plan("example.org");
    let good = correct_zone(&plan);
    let bad = plus(
        &without(&good, "example.org.", "MX"),
        &["example.org. 3600 IN MX 10 mx.old-provider.example."],
    );
    for (serial, id, severity) in [
        (2026112901, "servers-disagree", Severity::Error),
        (2026112800, "servers-syncing", Severity::Info),
    ] {
        let bad = bad.replace("2026112901", &serial.to_string());
        let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
        let mut resolver_zones = vec![registry.clone(), good.clone()];
        resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
        let world = World::start(vec![
            ServerSpec::new(RESOLVER_IP, resolver_zones),
            ServerSpec::new(REGISTRY_IP, vec![registry]),
            ServerSpec::new(NS1_IP, vec![good.clone()]),
            ServerSpec::new(NS2_IP, vec![bad]),
        ])
        .await;
        let report = check(&plan, &world.config(TIMEOUT)).await;
        let RecordStatus::ServersDisagree { per_server } = &report.record("mx").unwrap().status
        else {
            panic!("{}", show(&report));
        };
        assert_eq!(per_server.len(), 2);
        let f = only(&report, id);
        assert_eq!(f.severity, severity);
    }
}

#[tokio::test]
async fn stray_ipv6_address_not_in_the_plan() {
    let plan = plan_v4_only("example.org");
    let zone = plus(
        &correct_zone(&plan),
        &["example.org. 3600 IN AAAA 2001:db8::77"],
    );
    let world = standard_world(&zone, &zone, "example.org").await;
    let report = check(&plan, &world.config(TIMEOUT)).await;
    let f = only(&report, "unplanned-address");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.explanation.contains("2001:db8::77"));
}
