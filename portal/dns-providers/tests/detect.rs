//! Detection against a loopback DNS world (hickory-server from `chatmail-dns-world`) that
//! plays the recursive resolver: the zone is found by walking up from the mail domain, the
//! provider is recognised from the NS names, and `_domainconnect` is read (directly and
//! through an alias).

use chatmail_dns_providers::detect::{detect, DetectError, Resolvers};
use chatmail_dns_world::{ServerSpec, World, RESOLVER_IP};

const ORG: &str = "$ORIGIN org.\n$TTL 86400\n\
    @ IN SOA ns.registry.org. hostmaster.registry.org. 1 7200 3600 1209600 3600\n\
    @ IN NS ns.registry.org.\n\
    ns.registry.org. IN A 127.0.0.2\n\
    example.org. IN NS ada.ns.cloudflare.com.\n\
    example.org. IN NS bob.ns.cloudflare.com.\n\
    selfhosted.org. IN NS ns1.selfhosted.org.\n\
    ns1.selfhosted.org. IN A 127.0.0.11\n";

const EXAMPLE: &str = "$ORIGIN example.org.\n$TTL 3600\n\
    @ IN SOA ada.ns.cloudflare.com. dns.cloudflare.com. 1 7200 3600 1209600 3600\n\
    @ IN NS ada.ns.cloudflare.com.\n\
    @ IN NS bob.ns.cloudflare.com.\n\
    chat IN A 192.0.2.10\n\
    _domainconnect IN TXT \"api.cloudflare.com/client/v4/dns/domainconnect\"\n";

const SELFHOSTED: &str = "$ORIGIN selfhosted.org.\n$TTL 3600\n\
    @ IN SOA ns1 hostmaster 1 7200 3600 1209600 3600\n\
    @ IN NS ns1\n\
    ns1 IN A 127.0.0.11\n\
    _domainconnect IN CNAME dc\n\
    dc IN TXT \"domainconnect.selfhosted.example\"\n";

async fn world() -> World {
    World::start(vec![ServerSpec::new(
        RESOLVER_IP,
        vec![ORG.to_string(), EXAMPLE.to_string(), SELFHOSTED.to_string()],
    )])
    .await
}

#[tokio::test]
async fn finds_zone_provider_and_domain_connect() {
    let w = world().await;
    let resolvers = Resolvers::Servers(vec![w.resolver()]);
    let d = detect("chat.example.org", &resolvers, 53).await.unwrap();
    assert_eq!(d.zone, "example.org");
    assert_eq!(
        d.nameservers,
        ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]
    );
    assert_eq!(d.provider.map(|p| p.id), Some("cloudflare"));
    assert_eq!(
        d.domain_connect.as_deref(),
        Some("api.cloudflare.com/client/v4/dns/domainconnect")
    );

    // A name that does not exist yet, two levels below the zone.
    let d = detect("new.chat.example.org.", &resolvers, 53)
        .await
        .unwrap();
    assert_eq!(d.zone, "example.org");
}

#[tokio::test]
async fn unknown_provider_and_aliased_domain_connect() {
    let w = world().await;
    let resolvers = Resolvers::Servers(vec![w.resolver()]);
    let d = detect("selfhosted.org", &resolvers, 53).await.unwrap();
    assert_eq!(d.zone, "selfhosted.org");
    assert_eq!(d.nameservers, ["ns1.selfhosted.org"]);
    assert_eq!(d.provider, None);
    assert_eq!(
        d.domain_connect.as_deref(),
        Some("domainconnect.selfhosted.example")
    );
}

#[tokio::test]
async fn unregistered_and_unreachable() {
    let w = world().await;
    let resolvers = Resolvers::Servers(vec![w.resolver()]);
    assert_eq!(
        detect("chat.unregistered.org", &resolvers, 53).await,
        Err(DetectError::NotFound("chat.unregistered.org".into()))
    );
    // A resolver that does not answer.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let silent = Resolvers::Servers(vec![format!("127.0.0.1:{port}").parse().unwrap()]);
    let started = std::time::Instant::now();
    assert_eq!(
        detect("chat.example.org", &silent, 53).await,
        Err(DetectError::NoAnswer)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(matches!(
        detect("x.example.org", &Resolvers::Servers(vec![]), 53).await,
        Err(DetectError::NoResolver(_))
    ));
}

/// A self-hosted PowerDNS (the real server, from `chatmail-dns-world`): its name server's
/// name says nothing, its CHAOS `version.bind` answer names it.
#[tokio::test]
async fn powerdns_is_told_by_its_version_answer() {
    let mut pdns = chatmail_dns_world::pdns::PowerDns::start().await;
    pdns.create_zone("example.org");
    let resolvers = Resolvers::Servers(vec![pdns.dns_addr()]);
    let d = detect("chat.example.org", &resolvers, pdns.dns_addr().port())
        .await
        .unwrap();
    assert_eq!(d.zone, "example.org");
    assert_eq!(d.nameservers, ["ns1.example.org"]);
    assert_eq!(d.provider.map(|p| p.id), Some("powerdns"));
}
