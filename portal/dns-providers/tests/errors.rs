//! The failures people will hit, against real servers: a wrong API key or TSIG key, a zone
//! the provider does not have, a server that is down, a key without transfer permission,
//! and (with a small mock, as no real PowerDNS rate-limits) 429 with Retry-After. Each
//! gives its plain-language error and changes nothing.
//!
//! Needs the Debian packages pdns-server, pdns-backend-sqlite3, sqlite3 and knot.

mod support;

use std::time::Duration;

use chatmail_dns_providers::{
    Change, DnsProvider, PowerDns, ProviderError, Rfc2136, TsigAlgorithm, TsigKey,
};
use chatmail_dns_world::knot::{Knot, KnotOptions, KNOT_IP};
use chatmail_dns_world::pdns::{minimal_zone, PowerDns as PdnsServer};
use chatmail_shared::RecordData;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn one_change() -> Vec<Change> {
    vec![Change::Put {
        name: DOMAIN.into(),
        rtype: "A".into(),
        ttl: 300,
        values: vec![RecordData::A("192.0.2.1".parse().unwrap())],
    }]
}

const OTHER_SECRET: &str = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=";

fn tsig(server: std::net::SocketAddr, zone: &str, name: &str, secret: &str) -> Rfc2136 {
    Rfc2136::new(
        server,
        zone,
        TsigKey::new(name, TsigAlgorithm::HmacSha256, secret),
    )
    .unwrap()
    .with_timeout(Duration::from_secs(3))
}

async fn assert_unchanged(provider: &dyn DnsProvider) {
    let zone = provider.read(ZONE).await.unwrap();
    assert!(
        !zone.records.iter().any(|r| r.name == DOMAIN),
        "something was written: {zone:#?}"
    );
}

#[tokio::test]
async fn powerdns_api_errors() {
    let mut server = PdnsServer::start().await;
    server.create_zone(ZONE);
    let good = PowerDns::new(&server.api_url(), server.api_key(), "localhost").unwrap();

    let wrong = PowerDns::new(&server.api_url(), "not-the-key", "localhost").unwrap();
    assert_eq!(
        wrong.list_zones().await,
        Err(ProviderError::wrong_credentials())
    );
    assert_eq!(
        wrong.read(ZONE).await,
        Err(ProviderError::wrong_credentials())
    );
    assert_eq!(
        wrong.apply(ZONE, &one_change()).await,
        Err(ProviderError::wrong_credentials())
    );
    assert!(!ProviderError::wrong_credentials().is_retryable());

    assert_eq!(good.list_zones().await.unwrap(), [ZONE]);
    assert_eq!(good.find_zone("mx.chat.example.org").await.unwrap(), ZONE);
    let missing = ProviderError::ZoneNotFound {
        domain: "nope.example".into(),
    };
    assert_eq!(
        good.find_zone("chat.nope.example").await.unwrap_err(),
        ProviderError::ZoneNotFound {
            domain: "chat.nope.example".into()
        }
    );
    assert_eq!(good.read("nope.example").await.unwrap_err(), missing);
    assert_eq!(
        good.apply(
            "nope.example",
            &[Change::Remove {
                name: "nope.example".into(),
                rtype: "A".into()
            }]
        )
        .await
        .unwrap_err(),
        missing
    );
    let bad_server_id = PowerDns::new(&server.api_url(), server.api_key(), "nope").unwrap();
    assert!(matches!(
        bad_server_id.list_zones().await,
        Err(ProviderError::Other(_)) | Err(ProviderError::ZoneNotFound { .. })
    ));

    // Data the server refuses: an alias beside other data, in one PATCH that also holds a
    // valid change. Nothing of it is applied.
    let refused = vec![
        one_change().remove(0),
        Change::Put {
            name: DOMAIN.into(),
            rtype: "CNAME".into(),
            ttl: 300,
            values: vec![RecordData::Cname("example.net".into())],
        },
    ];
    let err = good.apply(ZONE, &refused).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");
    assert!(!err.to_string().is_empty());
    assert_unchanged(&good).await;

    server.stop();
    let err = good.read(ZONE).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unreachable(_)), "{err:?}");
    assert!(err.is_retryable());
    let err = good.apply(ZONE, &one_change()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

async fn rfc2136_errors(server: std::net::SocketAddr, secret: &str) {
    let good = tsig(server, ZONE, "portal", secret);
    let wrong_secret = tsig(server, ZONE, "portal", OTHER_SECRET);
    assert_eq!(
        wrong_secret.apply(ZONE, &one_change()).await,
        Err(ProviderError::wrong_credentials())
    );
    assert_eq!(
        wrong_secret.read(ZONE).await,
        Err(ProviderError::wrong_credentials())
    );
    let wrong_name = tsig(server, ZONE, "someone-else", secret);
    assert_eq!(
        wrong_name.apply(ZONE, &one_change()).await,
        Err(ProviderError::wrong_credentials())
    );
    assert_unchanged(&good).await;

    // A zone this server does not serve.
    let elsewhere = tsig(server, "example.net", "portal", secret);
    let change = vec![Change::Remove {
        name: "example.net".into(),
        rtype: "A".into(),
    }];
    assert_eq!(
        elsewhere.apply("example.net", &change).await,
        Err(ProviderError::ZoneNotFound {
            domain: "example.net".into()
        })
    );
    // A zone the provider is not configured for.
    assert_eq!(
        good.read("example.net").await,
        Err(ProviderError::ZoneNotFound {
            domain: "example.net".into()
        })
    );
    assert_eq!(good.list_zones().await.unwrap(), [ZONE]);
    assert!(matches!(
        good.find_zone("x.example.net").await,
        Err(ProviderError::ZoneNotFound { .. })
    ));
    good.apply(ZONE, &one_change()).await.unwrap();
}

#[tokio::test]
async fn rfc2136_errors_powerdns() {
    let mut server = PdnsServer::start().await;
    server.create_zone(ZONE);
    rfc2136_errors(server.dns_addr(), server.tsig_secret()).await;
    // A valid key that the zone does not allow to update.
    server.pdnsutil(&["import-tsig-key", "intruder", "hmac-sha256", OTHER_SECRET]);
    let intruder = tsig(server.dns_addr(), ZONE, "intruder", OTHER_SECRET);
    assert_eq!(
        intruder.apply(ZONE, &one_change()).await,
        Err(ProviderError::permission_denied())
    );
    let provider = tsig(server.dns_addr(), ZONE, "portal", server.tsig_secret());
    server.stop();
    let err = provider.apply(ZONE, &one_change()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unreachable(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn rfc2136_errors_knot() {
    let zone = minimal_zone(ZONE, KNOT_IP);
    let mut knot = Knot::start(&[(ZONE, &zone)]).await;
    rfc2136_errors(knot.dns_addr(), knot.tsig_secret()).await;
    let provider = tsig(knot.dns_addr(), ZONE, "portal", knot.tsig_secret());
    knot.stop();
    let err = provider.read(ZONE).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unreachable(_)), "{err:?}");
    assert!(err.is_retryable());
}

/// Without transfer permission the whole zone cannot be read, but the records at the
/// relay's names can, one question at a time, and the apply flow still works.
#[tokio::test]
async fn rfc2136_without_transfer_permission() {
    let zone = format!("{}{FOREIGN}", minimal_zone(ZONE, KNOT_IP));
    let knot = Knot::start_with(&[(ZONE, &zone)], KnotOptions { transfer: false }).await;
    let provider = tsig(knot.dns_addr(), ZONE, "portal", knot.tsig_secret());
    assert_eq!(
        provider.read(ZONE).await,
        Err(ProviderError::permission_denied())
    );
    let desired = plan().ready_records();
    let current = provider
        .read_names(ZONE, &names(&desired, &[]))
        .await
        .unwrap();
    let (seen, _) = keys(&current);
    for k in foreign_keys() {
        if k.0 != ZONE {
            assert!(seen.contains(&k), "{k:?} not read");
        }
    }
    let (d, owned) = run_job(&provider, &desired, &[], &Default::default()).await;
    assert_eq!(d.conflicts.len(), 3);
    let again = next_diff(&provider, &desired, &owned).await;
    assert!(!again.has_changes(), "{again:#?}");
}

/// A stand-in for a PowerDNS API behind a rate-limiting proxy: it answers every request
/// with 429 and `Retry-After: 7`, in the API's JSON error shape
/// (https://doc.powerdns.com/authoritative/http-api/index.html: errors are JSON objects
/// with an `error` field; RFC 6585 §4 defines 429 and its Retry-After).
async fn rate_limiting_mock() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..10 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = r#"{"error": "Too many requests"}"#;
            let reply = format!(
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn rate_limits_are_respected() {
    let url = rate_limiting_mock().await;
    let provider = PowerDns::new(&url, "key", "localhost").unwrap();
    let err = provider.apply(ZONE, &one_change()).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(err.retry_delay(3), Some(Duration::from_secs(7)));
    assert!(err.to_string().contains("in 7 seconds"), "{err}");
    let err = provider.list_zones().await.unwrap_err();
    assert!(matches!(err, ProviderError::RateLimited { .. }));
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let api = PowerDns::new(&format!("http://{addr}"), "k", "localhost").unwrap();
    let err = api.list_zones().await.unwrap_err();
    assert!(matches!(err, ProviderError::Unreachable(_)), "{err:?}");
    let dns = tsig(addr, ZONE, "portal", OTHER_SECRET);
    let err = dns.apply(ZONE, &one_change()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("could not be reached"), "{err}");
}
