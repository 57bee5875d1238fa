//! Every cloud DNS provider against a local server implementing the provider's published
//! API for the calls the portal makes (`chatmail_dns_world::cloud_mocks`; each mock module
//! cites the documentation sections it follows, repeated per provider below), run through
//! the scenarios of "DNS providers I": an empty zone, foreign records in conflict,
//! re-applying (idempotent), an IP change and removal; plus pagination, a provider that
//! goes away half-way, and 401/403/404/429 answers turned into plain-language errors.
//!
//! What the zone holds is read from the mock's own store (presentation form), not through
//! the provider's parsing, so a provider cannot agree with itself.
//!
//! Documentation followed by the mocks (and so by these tests):
//! * Cloudflare: <https://developers.cloudflare.com/api/resources/dns/subresources/records/>
//!   (list, batch), <https://developers.cloudflare.com/api/resources/zones/methods/list/>,
//!   <https://developers.cloudflare.com/fundamentals/api/reference/limits/> (429, code 971);
//! * DigitalOcean: <https://docs.digitalocean.com/reference/api/digitalocean/#tag/Domain-Records>,
//!   "Links & Pagination", "Rate Limit";
//! * Linode: <https://techdocs.akamai.com/linode-api/reference/get-domain-records>,
//!   <https://techdocs.akamai.com/linode-api/reference/pagination>, ".../errors";
//! * Hetzner: <https://docs.hetzner.cloud/reference/cloud#zone-rrsets>, "Pagination",
//!   "Rate Limiting";
//! * deSEC: <https://desec.readthedocs.io/en/latest/dns/rrsets.html> ("Pagination", "Bulk
//!   Modification of RRsets"), <https://desec.readthedocs.io/en/latest/rate-limits.html>;
//! * Gandi: <https://api.gandi.net/docs/livedns/>, <https://api.gandi.net/docs/reference/>
//!   (pagination with `Total-Count`);
//! * Porkbun: <https://porkbun.com/api/json/v3/documentation> (DNS: Retrieve, Create, Edit,
//!   Delete; Domain: List All);
//! * Namecheap: <https://www.namecheap.com/support/api/methods/domains-dns/get-hosts/>,
//!   <https://www.namecheap.com/support/api/methods/domains-dns/set-hosts/>,
//!   <https://www.namecheap.com/support/api/intro/> (allow-listed client IP);
//! * OVHcloud: <https://help.ovhcloud.com/csm/en-api-getting-started-ovhcloud-api>
//!   (signature, consumer keys), API console `/domain/zone`.

mod support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use chatmail_dns_providers::ovh::Endpoint;
use chatmail_dns_providers::{
    diff, with_effective_ttls, Cloudflare, ConflictKind, Desec, DigitalOcean, DnsProvider, Gandi,
    Hetzner, Linode, Namecheap, Ovh, OwnedValue, Porkbun, ProviderError,
};
use chatmail_dns_world::cloud_mocks::{self, Access, Data, Fault, MockServer};
use chatmail_shared::DnsRecord;
use support::{names, plan, plan_with, DOMAIN, FOREIGN, ZONE};

/// The page size every mock cuts its lists to, so every client must follow pages.
const PAGE: usize = 3;
/// Namecheap's allow-listed address for the test account.
const CLIENT_IP: &str = "203.0.113.5";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    Cloudflare,
    DigitalOcean,
    Linode,
    Hetzner,
    Desec,
    Gandi,
    Porkbun,
    Namecheap,
    Ovh,
}

/// Which credential a provider is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    Good,
    Wrong,
    ReadOnly,
}

/// A mock with [`ZONE`] (plus a few other zones before it, so zone lists span pages).
struct World {
    cloud: Cloud,
    mock: MockServer,
}

impl World {
    async fn start(cloud: Cloud, extra: &str) -> World {
        let api: Box<dyn cloud_mocks::Api> = match cloud {
            Cloud::Cloudflare => Box::new(cloud_mocks::cloudflare::Cloudflare),
            Cloud::DigitalOcean => Box::new(cloud_mocks::digitalocean::DigitalOcean),
            Cloud::Linode => Box::new(cloud_mocks::linode::Linode),
            Cloud::Hetzner => Box::new(cloud_mocks::hetzner::Hetzner),
            Cloud::Desec => Box::new(cloud_mocks::desec::Desec),
            Cloud::Gandi => Box::new(cloud_mocks::gandi::Gandi),
            Cloud::Porkbun => Box::new(cloud_mocks::porkbun::Porkbun),
            Cloud::Namecheap => Box::new(cloud_mocks::namecheap::Namecheap),
            Cloud::Ovh => Box::new(cloud_mocks::ovh::Ovh),
        };
        let mock = MockServer::start(api, PAGE).await;
        for i in 0..7 {
            mock.add_zone(&format!("a{i}.example"));
        }
        mock.add_zone(ZONE);
        mock.seed(ZONE, "@", 3600, "NS", "ns1.example.org.");
        mock.seed_zone_text(ZONE, extra);
        match cloud {
            Cloud::Porkbun => {
                mock.add_token("pk1_good:sk1_good", Access::ReadWrite);
            }
            Cloud::Namecheap => {
                mock.add_token("group:goodkey", Access::ReadWrite);
                mock.set("client_ip", CLIENT_IP);
            }
            Cloud::Ovh => {
                mock.set("app_key", "appkey");
                mock.set("app_secret", "appsecret");
                cloud_mocks::ovh::add_consumer_key(&mock, "ck-good", None);
                // A consumer key approved for reading only.
                let rules = serde_json::json!([
                    {"method": "GET", "path": "/domain/zone"},
                    {"method": "GET", "path": "/domain/zone/*"},
                ]);
                mock.set(
                    "ck:ck-readonly",
                    &serde_json::json!({"validated": true, "rules": rules}).to_string(),
                );
            }
            _ => {
                mock.add_token("good-token", Access::ReadWrite);
                mock.add_token("readonly-token", Access::ReadOnly);
            }
        }
        World { cloud, mock }
    }

    fn provider(&self) -> Box<dyn DnsProvider> {
        self.provider_with(Cred::Good)
    }

    fn provider_with(&self, cred: Cred) -> Box<dyn DnsProvider> {
        let url = self.mock.url();
        let token = match cred {
            Cred::Good => "good-token",
            Cred::Wrong => "wrong-token",
            Cred::ReadOnly => "readonly-token",
        };
        match self.cloud {
            Cloud::Cloudflare => Box::new(
                Cloudflare::with_api_token(token)
                    .unwrap()
                    .with_base_url(&url),
            ),
            Cloud::DigitalOcean => Box::new(
                DigitalOcean::with_token(token)
                    .unwrap()
                    .with_base_url(&format!("{url}/v2")),
            ),
            Cloud::Linode => Box::new(
                Linode::with_token(token)
                    .unwrap()
                    .with_base_url(&format!("{url}/v4")),
            ),
            Cloud::Hetzner => Box::new(
                Hetzner::new(token)
                    .unwrap()
                    .with_base_url(&format!("{url}/v1")),
            ),
            Cloud::Desec => Box::new(
                Desec::new(token)
                    .unwrap()
                    .with_base_url(&format!("{url}/api/v1")),
            ),
            Cloud::Gandi => Box::new(
                Gandi::new(token)
                    .unwrap()
                    .with_base_url(&format!("{url}/v5/livedns")),
            ),
            Cloud::Porkbun => {
                let secret = match cred {
                    Cred::Good | Cred::ReadOnly => "sk1_good",
                    Cred::Wrong => "sk1_wrong",
                };
                Box::new(
                    Porkbun::new("pk1_good", secret)
                        .unwrap()
                        .with_base_url(&format!("{url}/api/json/v3")),
                )
            }
            Cloud::Namecheap => {
                let key = match cred {
                    Cred::Good | Cred::ReadOnly => "goodkey",
                    Cred::Wrong => "wrongkey",
                };
                Box::new(
                    Namecheap::new("group", key, "group", CLIENT_IP)
                        .unwrap()
                        .with_base_url(&format!("{url}/xml.response")),
                )
            }
            Cloud::Ovh => {
                let ck = match cred {
                    Cred::Good => "ck-good",
                    Cred::Wrong => "ck-unknown",
                    Cred::ReadOnly => "ck-readonly",
                };
                Box::new(
                    Ovh::new(Endpoint::Eu, "appkey", "appsecret", ck)
                        .unwrap()
                        .with_base_url(&format!("{url}/1.0")),
                )
            }
        }
    }

    /// The zone as the mock holds it: (name, type, TTL, value), TXT joined.
    fn zone(&self) -> Vec<(String, String, u32, String)> {
        self.mock.with(|c| {
            c.zone(ZONE)
                .unwrap()
                .records
                .iter()
                .map(|r| (r.name.clone(), r.rtype.clone(), r.ttl, mock_value(&r.data)))
                .collect()
        })
    }

    /// The zone's (name, type, value) set, asserting nothing is duplicated and no TXT
    /// character-string is longer than 255 bytes.
    fn keys(&self) -> BTreeSet<(String, String, String)> {
        let list = self.zone();
        let set: BTreeSet<_> = list
            .iter()
            .map(|(n, t, _, v)| (n.clone(), t.clone(), v.clone()))
            .collect();
        assert_eq!(set.len(), list.len(), "duplicated records: {list:#?}");
        self.mock.with(|c| {
            for r in &c.zone(ZONE).unwrap().records {
                if let Data::Txt(s) = &r.data {
                    assert!(s.iter().all(|s| s.len() <= 255), "TXT not split: {r:?}");
                }
            }
        });
        set
    }

    fn writes(&self) -> usize {
        self.mock
            .log()
            .iter()
            .filter(|l| {
                let write = !l.starts_with("GET ");
                match self.cloud {
                    // Every Porkbun call is a POST; writes are create/edit/delete.
                    Cloud::Porkbun => {
                        l.contains("/dns/create")
                            || l.contains("/dns/edit")
                            || l.contains("/dns/delete")
                    }
                    // Namecheap reads are GETs; setHosts is the only write.
                    _ => write,
                }
            })
            .count()
    }
}

fn mock_value(d: &Data) -> String {
    match d {
        Data::Txt(s) => s.concat(),
        other => other.presentation().to_ascii_lowercase(),
    }
}

fn desired_value(r: &DnsRecord) -> (String, String, String) {
    (
        r.name.clone(),
        r.data.rtype().to_string(),
        mock_value(&Data::from_record(&r.data)),
    )
}

/// The records the portal plans for this provider: TTLs as the provider stores them,
/// without the ones it cannot hold (the portal shows those as "add by hand").
fn desired_for(p: &dyn DnsProvider, records: Vec<DnsRecord>) -> Vec<DnsRecord> {
    with_effective_ttls(p, &records)
        .into_iter()
        .filter(|r| p.unsupported(ZONE, r).is_none())
        .collect()
}

fn none() -> BTreeSet<String> {
    BTreeSet::new()
}

async fn run_job(
    p: &dyn DnsProvider,
    desired: &[DnsRecord],
    owned: &[OwnedValue],
    confirmed: &BTreeSet<String>,
) -> (chatmail_dns_providers::Diff, Vec<OwnedValue>) {
    let current = p
        .read_names(ZONE, &names(desired, owned))
        .await
        .unwrap_or_else(|e| panic!("{}: read failed: {e:?}", p.name()));
    let d = diff(desired, &current, owned);
    p.apply(ZONE, &d.changes(confirmed))
        .await
        .unwrap_or_else(|e| panic!("{}: apply failed: {e:?}\n{d:#?}", p.name()));
    let after = d.ownership_after(confirmed);
    (d, after)
}

async fn next_diff(
    p: &dyn DnsProvider,
    desired: &[DnsRecord],
    owned: &[OwnedValue],
) -> chatmail_dns_providers::Diff {
    let current = p.read_names(ZONE, &names(desired, owned)).await.unwrap();
    diff(desired, &current, owned)
}

fn desired_set(desired: &[DnsRecord]) -> BTreeSet<(String, String, String)> {
    desired.iter().map(desired_value).collect()
}

/// An empty zone gets the whole plan, with the provider's TTLs; applying again changes
/// nothing and sends no write.
async fn empty_zone_then_reapply(cloud: Cloud) {
    let w = World::start(cloud, "").await;
    let p = w.provider();
    let desired = desired_for(p.as_ref(), plan().ready_records());
    assert!(desired.len() >= 10, "{cloud:?}: {desired:#?}");
    let before = w.keys();
    let (d, owned) = run_job(p.as_ref(), &desired, &[], &none()).await;
    assert_eq!(d.creates.len(), desired.len(), "{cloud:?} {d:#?}");
    let after = w.keys();
    let added: BTreeSet<_> = after.difference(&before).cloned().collect();
    assert_eq!(added, desired_set(&desired), "{cloud:?}");
    for r in &desired {
        let (n, t, v) = desired_value(r);
        let ttl = w
            .zone()
            .into_iter()
            .find(|(n2, t2, _, v2)| *n2 == n && *t2 == t && *v2 == v)
            .unwrap()
            .2;
        assert_eq!(ttl, r.ttl, "{cloud:?}: TTL of {n} {t}");
    }

    // Re-apply: nothing to do, and the same change list applied again (a job that lost
    // track) leaves the zone as it is.
    let again = next_diff(p.as_ref(), &desired, &owned).await;
    assert!(again.is_empty(), "{cloud:?}: second run {again:#?}");
    assert!(again.unchanged.iter().all(|i| i.ours));
    let writes = w.writes();
    p.apply(ZONE, &again.changes(&none())).await.unwrap();
    assert_eq!(w.writes(), writes, "{cloud:?}: an empty apply wrote");
    p.apply(ZONE, &d.changes(&none())).await.unwrap();
    assert_eq!(w.keys(), after, "{cloud:?}: re-applying changed the zone");
}

/// Foreign records: conflicts are reported and left alone; confirmed, exactly those go.
async fn conflicts_then_confirm(cloud: Cloud) {
    let w = World::start(cloud, FOREIGN).await;
    let p = w.provider();
    let desired = desired_for(p.as_ref(), plan().ready_records());
    let foreign = w.keys();
    let (d, owned) = run_job(p.as_ref(), &desired, &[], &none()).await;
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
        "{cloud:?} {:#?}",
        d.conflicts
    );
    let now = w.keys();
    assert!(
        foreign.is_subset(&now),
        "{cloud:?}: a foreign record was touched: {:?}",
        foreign.difference(&now).collect::<Vec<_>>()
    );
    // The relay's CAA went in beside the other CA's.
    assert!(now
        .iter()
        .any(|(n, t, v)| n == DOMAIN && t == "CAA" && v.contains("accounturi")));
    assert!(now.contains(&(
        DOMAIN.into(),
        "CAA".into(),
        "0 issue \"sectigo.com\"".into()
    )));

    let again = next_diff(p.as_ref(), &desired, &owned).await;
    assert!(!again.has_changes(), "{cloud:?} {again:#?}");
    let confirmed: BTreeSet<String> = again.conflicts.iter().map(|c| c.id.clone()).collect();
    let (_, owned) = run_job(p.as_ref(), &desired, &owned, &confirmed).await;
    let now = w.keys();
    for kept in [
        (DOMAIN, "TXT", "google-site-verification=abc123"),
        (DOMAIN, "CAA", "0 issue \"sectigo.com\""),
        (ZONE, "A", "198.51.100.7"),
    ] {
        let k = (kept.0.to_string(), kept.1.to_string(), kept.2.to_string());
        assert!(now.contains(&k), "{cloud:?}: {k:?} was removed");
    }
    for gone in [
        (DOMAIN, "MX", "10 mail.example.net."),
        ("www.chat.example.org", "CNAME", "example.org."),
        (DOMAIN, "TXT", "v=spf1 include:_spf.example.net ~all"),
    ] {
        let k = (gone.0.to_string(), gone.1.to_string(), gone.2.to_string());
        assert!(!now.contains(&k), "{cloud:?}: {k:?} is still there");
    }
    assert!(desired_set(&desired).is_subset(&now), "{cloud:?}");
    assert!(next_diff(p.as_ref(), &desired, &owned).await.is_empty());
}

/// A new IPv4 address: exactly the A record changes.
async fn ip_change(cloud: Cloud) {
    let w = World::start(cloud, FOREIGN).await;
    let p = w.provider();
    let desired = desired_for(p.as_ref(), plan().ready_records());
    let (_, owned) = run_job(p.as_ref(), &desired, &[], &none()).await;
    let before = w.keys();
    let desired2 = desired_for(
        p.as_ref(),
        plan_with(Ipv4Addr::new(192, 0, 2, 99)).ready_records(),
    );
    let (d, owned2) = run_job(p.as_ref(), &desired2, &owned, &none()).await;
    assert!(
        d.creates.is_empty() && d.deletes.is_empty(),
        "{cloud:?} {d:#?}"
    );
    assert_eq!(d.updates.len(), 1, "{cloud:?} {d:#?}");
    let after = w.keys();
    let a = |ip: &str| (DOMAIN.to_string(), "A".to_string(), ip.to_string());
    assert_eq!(
        before.difference(&after).cloned().collect::<Vec<_>>(),
        [a("192.0.2.10")],
        "{cloud:?}"
    );
    assert_eq!(
        after.difference(&before).cloned().collect::<Vec<_>>(),
        [a("192.0.2.99")],
        "{cloud:?}"
    );
    // The foreign records stay in conflict; nothing else is left to do.
    let last = next_diff(p.as_ref(), &desired2, &owned2).await;
    assert!(!last.has_changes(), "{cloud:?} {last:#?}");
}

/// Removing the relay removes only the portal's records.
async fn removal(cloud: Cloud) {
    let w = World::start(cloud, FOREIGN).await;
    let p = w.provider();
    let original = w.keys();
    let desired = desired_for(p.as_ref(), plan().ready_records());
    let (_, owned) = run_job(p.as_ref(), &desired, &[], &none()).await;
    assert!(owned.len() > 8, "{cloud:?} {owned:#?}");
    let (d, after) = run_job(p.as_ref(), &[], &owned, &none()).await;
    assert!(d.deletes.iter().all(|i| i.ours), "{cloud:?} {d:#?}");
    assert!(after.is_empty());
    assert_eq!(w.keys(), original, "{cloud:?}");
}

/// Lists longer than a page (zones and, where the API pages them, records) are read
/// completely.
async fn pagination(cloud: Cloud) {
    let mut extra = String::new();
    for i in 0..(4 * PAGE) {
        extra.push_str(&format!("host{i} 3600 IN A 198.51.100.{}\n", i + 1));
    }
    let w = World::start(cloud, &extra).await;
    let p = w.provider();
    let zones = p.list_zones().await.unwrap();
    assert_eq!(zones.len(), 8, "{cloud:?}: {zones:?}");
    assert!(zones.iter().any(|z| z == ZONE));
    let read = p.read(ZONE).await.unwrap();
    let hosts = read
        .records
        .iter()
        .filter(|r| r.name.starts_with("host"))
        .count();
    assert_eq!(hosts, 4 * PAGE, "{cloud:?}: {read:#?}");
    // A paged API was asked for more than one page.
    let log = w.mock.log();
    let paged = log.iter().any(|l| {
        l.contains("page=2")
            || l.contains("cursor=") && !l.ends_with("cursor=")
            || l.contains("Page=2")
    });
    let pages_records = !matches!(cloud, Cloud::Porkbun | Cloud::Namecheap | Cloud::Ovh);
    if pages_records {
        assert!(paged, "{cloud:?}: no second page in {log:#?}");
    }
}

/// A provider that goes away half-way: the failure is retryable; once it is back, the
/// next run finishes and nothing is duplicated.
async fn provider_goes_away_half_way(cloud: Cloud) {
    let w = World::start(cloud, "").await;
    let p = w.provider();
    let desired = desired_for(p.as_ref(), plan().ready_records());
    let current = p.read_names(ZONE, &names(&desired, &[])).await.unwrap();
    let d = diff(&desired, &current, &[]);
    let owned = d.ownership_after(&none());
    w.mock.fail_writes_after(1);
    let first = p.apply(ZONE, &d.changes(&none())).await;
    if let Err(e) = &first {
        assert!(e.is_retryable(), "{cloud:?}: {e:?}");
        assert!(e.to_string().contains("try again"), "{cloud:?}: {e}");
    }
    w.mock.heal();
    let (_, _) = run_job(p.as_ref(), &desired, &owned, &none()).await;
    let now = w.keys();
    assert!(desired_set(&desired).is_subset(&now), "{cloud:?}");
    assert!(next_diff(p.as_ref(), &desired, &owned).await.is_empty());
}

fn assert_plain(cloud: Cloud, e: &ProviderError) {
    let text = e.to_string();
    for jargon in ["HTTP", "401", "403", "{", "status", "code"] {
        assert!(
            !text.contains(jargon),
            "{cloud:?}: {jargon:?} in a message for people: {text}"
        );
    }
    assert!(text.len() > 40, "{cloud:?}: too short to help: {text}");
}

/// Wrong credentials, missing permissions, an unknown zone and rate limits come back as
/// errors a person can act on.
async fn errors(cloud: Cloud) {
    let w = World::start(cloud, "").await;
    let desired = plan().ready_records();
    let good = w.provider();

    // A wrong key (401, or the provider's equivalent).
    let e = w
        .provider_with(Cred::Wrong)
        .read_names(ZONE, &names(&desired, &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::WrongCredentials { .. }),
        "{cloud:?}: {e:?}"
    );
    assert!(e.needs_person() && !e.is_retryable());
    assert_plain(cloud, &e);

    // A key that may read but not write (403).
    if !matches!(cloud, Cloud::Porkbun | Cloud::Namecheap) {
        let ro = w.provider_with(Cred::ReadOnly);
        let desired = desired_for(ro.as_ref(), desired.clone());
        let current = ro.read_names(ZONE, &names(&desired, &[])).await.unwrap();
        let d = diff(&desired, &current, &[]);
        let e = ro.apply(ZONE, &d.changes(&none())).await.unwrap_err();
        assert!(
            matches!(e, ProviderError::PermissionDenied { .. }),
            "{cloud:?}: {e:?}"
        );
        assert!(e.needs_person());
        assert_plain(cloud, &e);
    }

    // A zone the account does not have (404).
    let e = good
        .read_names("not-here.example", &["chat.not-here.example".to_string()])
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::ZoneNotFound { .. }),
        "{cloud:?}: {e:?}"
    );
    assert!(e.to_string().contains("not-here.example"), "{e}");

    // Rate limited (429 with Retry-After): retryable after the time asked.
    w.mock.fail_next(&[Fault::RateLimited(42)]);
    let e = good
        .read_names(ZONE, &names(&desired, &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::RateLimited { .. }),
        "{cloud:?}: {e:?}"
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(42)), "{cloud:?}");
    assert_eq!(e.retry_delay(1), Some(Duration::from_secs(42)));
    assert!(e.to_string().contains("42 seconds"), "{e}");

    // A server error is retryable.
    w.mock.fail_next(&[Fault::ServerError]);
    let e = good
        .read_names(ZONE, &names(&desired, &[]))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{cloud:?}: {e:?}");
}

macro_rules! clouds {
    ($module:ident, $cloud:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn empty_zone_then_reapply() {
                super::empty_zone_then_reapply($cloud).await;
            }

            #[tokio::test]
            async fn conflicts_then_confirm() {
                super::conflicts_then_confirm($cloud).await;
            }

            #[tokio::test]
            async fn ip_change() {
                super::ip_change($cloud).await;
            }

            #[tokio::test]
            async fn removal() {
                super::removal($cloud).await;
            }

            #[tokio::test]
            async fn pagination() {
                super::pagination($cloud).await;
            }

            #[tokio::test]
            async fn provider_goes_away_half_way() {
                super::provider_goes_away_half_way($cloud).await;
            }

            #[tokio::test]
            async fn errors() {
                super::errors($cloud).await;
            }
        }
    };
}

clouds!(cloudflare, Cloud::Cloudflare);
clouds!(digitalocean, Cloud::DigitalOcean);
clouds!(linode, Cloud::Linode);
clouds!(hetzner, Cloud::Hetzner);
clouds!(desec, Cloud::Desec);
clouds!(gandi, Cloud::Gandi);
clouds!(porkbun, Cloud::Porkbun);
clouds!(namecheap, Cloud::Namecheap);
clouds!(ovh, Cloud::Ovh);
