//! The whole apply flow against real servers: PowerDNS through its HTTP API, PowerDNS
//! through RFC 2136, and Knot through RFC 2136. Every outcome is confirmed by the DNS
//! checker asking the server, and by reading the zone back.
//!
//! Needs the Debian packages pdns-server, pdns-backend-sqlite3, sqlite3 and knot.

mod support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use chatmail_dns_providers::{ConflictKind, ProviderError};
use support::*;

fn none() -> BTreeSet<String> {
    BTreeSet::new()
}

/// A full plan to an empty zone: everything created, the checker sees every record, and
/// the next run has nothing to do.
async fn full_plan_to_empty_zone(kind: Kind) {
    let server = Server::start(kind, "").await;
    let provider = server.provider();
    let plan = plan();
    let desired = plan.ready_records();
    let (d, owned) = run_job(provider.as_ref(), &desired, &[], &none()).await;
    assert_eq!(d.creates.len(), desired.len(), "{d:#?}");
    assert!(d.conflicts.is_empty() && d.updates.is_empty() && d.deletes.is_empty());
    assert_checker_ok(&plan, server.dns_addr()).await;

    let again = next_diff(provider.as_ref(), &desired, &owned).await;
    assert!(again.is_empty(), "second run: {again:#?}");
    assert_eq!(again.unchanged.len(), desired.len());
    assert!(again.unchanged.iter().all(|i| i.ours));

    let zone = provider.read(ZONE).await.unwrap();
    let (all, dup) = keys(&zone);
    assert!(!dup, "duplicated records: {zone:#?}");
    assert!(desired_keys(&desired).is_subset(&all));
}

/// A zone with foreign records: conflicts are reported, the foreign records stay as they
/// are, the rest is written; a second run changes nothing; confirming the conflicts
/// replaces exactly those records.
async fn foreign_records_conflict_then_confirm(kind: Kind) {
    let server = Server::start(kind, FOREIGN).await;
    let provider = server.provider();
    let plan = plan();
    let desired = plan.ready_records();

    let (d, owned) = run_job(provider.as_ref(), &desired, &[], &none()).await;
    let kinds: BTreeSet<ConflictKind> = d.conflicts.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ConflictKind::ForeignMx,
            ConflictKind::ForeignAlias,
            ConflictKind::AnotherSpf
        ]
        .into_iter()
        .collect(),
        "{:#?}",
        d.conflicts
    );
    let zone = provider.read(ZONE).await.unwrap();
    let (all, dup) = keys(&zone);
    assert!(!dup);
    assert!(
        foreign_keys().is_subset(&all),
        "a foreign record was touched: {:?}",
        foreign_keys().difference(&all).collect::<Vec<_>>()
    );
    // The relay's CAA went in beside the other CA's; its SPF did not go beside the other.
    assert!(all
        .iter()
        .any(|(n, t, v)| n == DOMAIN && t == "CAA" && v.contains("accounturi")));
    assert!(!all.contains(&(DOMAIN.into(), "TXT".into(), "v=spf1 a ~all".into())));
    let report = check(&plan, server.dns_addr()).await;
    for (purpose, want_ok) in [
        ("mx", false),
        ("www-alias", false),
        ("spf", false),
        ("ipv4-address", true),
        ("dkim", true),
        ("caa", true),
    ] {
        let r = report
            .records
            .iter()
            .find(|r| r.purpose == purpose)
            .unwrap_or_else(|| panic!("no {purpose} in\n{}", show(&report)));
        assert_eq!(
            r.status == chatmail_dns_check::RecordStatus::Ok,
            want_ok,
            "{purpose}\n{}",
            show(&report)
        );
    }

    // Again: nothing to do, the same conflicts.
    let again = next_diff(provider.as_ref(), &desired, &owned).await;
    assert!(!again.has_changes(), "{again:#?}");
    assert_eq!(
        again.conflicts.iter().map(|c| &c.id).collect::<Vec<_>>(),
        d.conflicts.iter().map(|c| &c.id).collect::<Vec<_>>()
    );

    // Confirm all three.
    let confirmed: BTreeSet<String> = again.conflicts.iter().map(|c| c.id.clone()).collect();
    let (_, owned) = run_job(provider.as_ref(), &desired, &owned, &confirmed).await;
    assert_checker_ok(&plan, server.dns_addr()).await;
    let zone = provider.read(ZONE).await.unwrap();
    let (all, dup) = keys(&zone);
    assert!(!dup);
    for kept in [
        (DOMAIN, "TXT", "google-site-verification=abc123"),
        (DOMAIN, "CAA", "0 issue sectigo.com"),
        (ZONE, "A", "198.51.100.7"),
    ] {
        let k = (kept.0.to_string(), kept.1.to_string(), kept.2.to_string());
        assert!(all.contains(&k), "{k:?} was removed");
    }
    for replaced in [
        (DOMAIN, "MX", "10 mail.example.net"),
        ("www.chat.example.org", "CNAME", "example.org"),
        (DOMAIN, "TXT", "v=spf1 include:_spf.example.net ~all"),
    ] {
        let k = (
            replaced.0.to_string(),
            replaced.1.to_string(),
            replaced.2.to_string(),
        );
        assert!(!all.contains(&k), "{k:?} is still there");
    }
    let last = next_diff(provider.as_ref(), &desired, &owned).await;
    assert!(last.is_empty(), "{last:#?}");
}

/// A new IPv4 address: only the A record changes.
async fn ip_change_only_touches_addresses(kind: Kind) {
    let server = Server::start(kind, FOREIGN).await;
    let provider = server.provider();
    let desired = plan().ready_records();
    let (_, owned) = run_job(provider.as_ref(), &desired, &[], &none()).await;
    let before = keys(&provider.read(ZONE).await.unwrap()).0;

    let new_ip = Ipv4Addr::new(192, 0, 2, 99);
    let moved = plan_with(new_ip);
    let desired2 = moved.ready_records();
    let (d, owned2) = run_job(provider.as_ref(), &desired2, &owned, &none()).await;
    assert!(d.creates.is_empty() && d.deletes.is_empty(), "{d:#?}");
    assert_eq!(d.updates.len(), 1, "{d:#?}");
    assert_eq!(
        (d.updates[0].name.as_str(), d.updates[0].rtype.as_str()),
        (DOMAIN, "A")
    );

    let after = keys(&provider.read(ZONE).await.unwrap()).0;
    let removed: Vec<_> = before.difference(&after).collect();
    let added: Vec<_> = after.difference(&before).collect();
    assert_eq!(
        removed,
        [&(
            DOMAIN.to_string(),
            "A".to_string(),
            "192.0.2.10".to_string()
        )]
    );
    assert_eq!(
        added,
        [&(
            DOMAIN.to_string(),
            "A".to_string(),
            "192.0.2.99".to_string()
        )]
    );
    let report = check(&moved, server.dns_addr()).await;
    let a = report
        .records
        .iter()
        .find(|r| r.purpose == "ipv4-address")
        .unwrap();
    assert_eq!(
        a.status,
        chatmail_dns_check::RecordStatus::Ok,
        "{}",
        show(&report)
    );
    assert!(next_diff(provider.as_ref(), &desired2, &owned2)
        .await
        .changes(&none())
        .is_empty());
}

/// The relay is removed: only the portal's records go; the zone is as it was before.
async fn removing_the_relay_removes_only_ours(kind: Kind) {
    let server = Server::start(kind, FOREIGN).await;
    let provider = server.provider();
    let original = keys(&provider.read(ZONE).await.unwrap()).0;
    let desired = plan().ready_records();
    let (_, owned) = run_job(provider.as_ref(), &desired, &[], &none()).await;
    assert!(owned.len() > 10, "{owned:#?}");

    let (d, owned_after) = run_job(provider.as_ref(), &[], &owned, &none()).await;
    assert!(d.creates.is_empty() && d.updates.is_empty() && d.conflicts.is_empty());
    assert!(d.deletes.iter().all(|i| i.ours));
    assert!(owned_after.is_empty());
    let now = keys(&provider.read(ZONE).await.unwrap()).0;
    assert_eq!(now, original);
    let report = check(&plan(), server.dns_addr()).await;
    let dkim = report.records.iter().find(|r| r.purpose == "dkim").unwrap();
    assert_eq!(dkim.status, chatmail_dns_check::RecordStatus::Missing);
}

/// The server dies after the first change of a job that applies changes one by one; the
/// next change fails as retryable; after a restart the job resumes (fresh read and diff)
/// and the zone ends up exactly as planned, nothing duplicated, also when the whole old
/// change list is applied again.
async fn server_killed_mid_apply(kind: Kind) {
    let mut server = Server::start(kind, "").await;
    let provider = server.provider();
    let plan = plan();
    let desired = plan.ready_records();
    let current = provider
        .read_names(ZONE, &names(&desired, &[]))
        .await
        .unwrap();
    let d = chatmail_dns_providers::diff(&desired, &current, &[]);
    let changes = d.changes(&none());
    assert!(changes.len() > 3);
    // The job records its intended ownership before writing.
    let owned = d.ownership_after(&none());

    provider.apply(ZONE, &changes[..1]).await.unwrap();
    server.kill();
    let err = provider.apply(ZONE, &changes[1..2]).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unreachable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.retry_delay(1).is_some());
    let err = provider
        .read_names(ZONE, &names(&desired, &owned))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");

    server.restart().await;
    let resumed = next_diff(provider.as_ref(), &desired, &owned).await;
    assert_eq!(
        resumed.creates.len(),
        desired.len() - 1,
        "the first change survived the crash: {resumed:#?}"
    );
    provider
        .apply(ZONE, &resumed.changes(&none()))
        .await
        .unwrap();
    // A job that lost track applies the old list again: still nothing duplicated.
    provider.apply(ZONE, &changes).await.unwrap();

    let zone = provider.read(ZONE).await.unwrap();
    let (all, dup) = keys(&zone);
    assert!(!dup, "duplicated: {zone:#?}");
    let ours: BTreeSet<_> = all
        .iter()
        .filter(|(n, _, _)| n.ends_with(DOMAIN))
        .cloned()
        .collect();
    assert_eq!(ours, desired_keys(&desired), "the zone equals the plan");
    assert_checker_ok(&plan, server.dns_addr()).await;
    assert!(next_diff(provider.as_ref(), &desired, &owned)
        .await
        .is_empty());
}

/// Aliases in the way: the relay's name is someone's alias, and records sit where the
/// relay's `www` alias goes. Both are conflicts and stay until confirmed; confirmed, the
/// removals and the new records go in one step, in an order the server accepts.
async fn alias_conflicts(kind: Kind) {
    let server = Server::start(kind, ALIASES).await;
    let provider = server.provider();
    let plan = plan();
    let desired = plan.ready_records();
    let (d, owned) = run_job(provider.as_ref(), &desired, &[], &none()).await;
    let kinds: Vec<(ConflictKind, &str)> = d
        .conflicts
        .iter()
        .map(|c| (c.kind, c.name.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ConflictKind::AliasInTheWay, DOMAIN),
            (ConflictKind::DataAtAlias, "www.chat.example.org")
        ],
        "{:#?}",
        d.conflicts
    );
    let zone = provider.read(ZONE).await.unwrap();
    let (all, _) = keys(&zone);
    for k in [
        (DOMAIN, "CNAME", "elsewhere.example.net"),
        ("www.chat.example.org", "A", "198.51.100.8"),
        ("www.chat.example.org", "TXT", "hello"),
    ] {
        assert!(
            all.contains(&(k.0.into(), k.1.into(), k.2.into())),
            "{k:?} touched"
        );
    }
    assert!(
        all.iter()
            .any(|(n, t, _)| n == "_dmarc.chat.example.org" && t == "TXT"),
        "names without conflicts are written"
    );
    assert!(!all.iter().any(|(n, t, _)| n == DOMAIN && t != "CNAME"));

    let confirmed: BTreeSet<String> = d.conflicts.iter().map(|c| c.id.clone()).collect();
    let (_, owned) = run_job(provider.as_ref(), &desired, &owned, &confirmed).await;
    assert_checker_ok(&plan, server.dns_addr()).await;
    let zone = provider.read(ZONE).await.unwrap();
    let (all, dup) = keys(&zone);
    assert!(!dup);
    assert!(!all.iter().any(|(n, t, _)| n == DOMAIN && t == "CNAME"));
    assert!(!all
        .iter()
        .any(|(n, t, _)| n == "www.chat.example.org" && t != "CNAME"));
    assert!(next_diff(provider.as_ref(), &desired, &owned)
        .await
        .is_empty());
}

macro_rules! scenarios {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn full_plan_to_empty_zone() {
                super::full_plan_to_empty_zone($kind).await;
            }

            #[tokio::test]
            async fn foreign_records_conflict_then_confirm() {
                super::foreign_records_conflict_then_confirm($kind).await;
            }

            #[tokio::test]
            async fn ip_change_only_touches_addresses() {
                super::ip_change_only_touches_addresses($kind).await;
            }

            #[tokio::test]
            async fn removing_the_relay_removes_only_ours() {
                super::removing_the_relay_removes_only_ours($kind).await;
            }

            #[tokio::test]
            async fn alias_conflicts() {
                super::alias_conflicts($kind).await;
            }

            #[tokio::test]
            async fn server_killed_mid_apply() {
                super::server_killed_mid_apply($kind).await;
            }
        }
    };
}

scenarios!(powerdns_api, Kind::PowerDnsApi);
scenarios!(powerdns_rfc2136, Kind::PowerDnsRfc2136);
scenarios!(knot_rfc2136, Kind::KnotRfc2136);
