//! Which DNS provider serves a domain, recognised from its name servers, so the wizard can
//! say "your DNS is at Hetzner" and offer the right way to connect.

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use chatmail_shared::MailDomain;
use hickory_resolver::{
    config::{ConnectionConfig, NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
    TokioResolver,
};

/// A DNS provider, known by the host names of its name servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    pub name: &'static str,
    /// Suffixes of its name servers' host names.
    ns_suffixes: &'static [&'static str],
    /// How a person can let the portal write records there.
    pub methods: &'static [&'static str],
}

/// Name-server host names of widely used DNS providers (as they answer NS queries).
const PROVIDERS: &[Provider] = &[
    Provider {
        name: "Cloudflare",
        ns_suffixes: &["ns.cloudflare.com"],
        methods: &["Sign in with Cloudflare", "API token"],
    },
    Provider {
        name: "DigitalOcean",
        ns_suffixes: &["digitalocean.com"],
        methods: &["Sign in with DigitalOcean"],
    },
    Provider {
        name: "Linode / Akamai",
        ns_suffixes: &["linode.com"],
        methods: &["Sign in with Linode"],
    },
    Provider {
        name: "Hetzner",
        ns_suffixes: &["ns.hetzner.com", "ns.hetzner.de", "your-server.de"],
        methods: &["API token"],
    },
    Provider {
        name: "Porkbun",
        ns_suffixes: &["porkbun.com"],
        methods: &["API key"],
    },
    Provider {
        name: "deSEC",
        ns_suffixes: &["desec.io", "desec.org"],
        methods: &["API token"],
    },
    Provider {
        name: "Gandi",
        ns_suffixes: &["gandi.net"],
        methods: &["Personal access token"],
    },
    Provider {
        name: "Namecheap",
        ns_suffixes: &["registrar-servers.com"],
        methods: &["API key"],
    },
    Provider {
        name: "OVHcloud",
        ns_suffixes: &["ovh.net", "ovh.ca", "anycast.me"],
        methods: &["API keys"],
    },
    Provider {
        name: "GoDaddy",
        ns_suffixes: &["domaincontrol.com"],
        methods: &["Domain Connect"],
    },
    Provider {
        name: "IONOS",
        ns_suffixes: &["ui-dns.com", "ui-dns.de", "ui-dns.org", "ui-dns.biz"],
        methods: &["Domain Connect"],
    },
    Provider {
        name: "Amazon Route 53",
        ns_suffixes: &["awsdns-"],
        methods: &[],
    },
    Provider {
        name: "Google Cloud DNS",
        ns_suffixes: &["googledomains.com"],
        methods: &[],
    },
    Provider {
        name: "Azure DNS",
        ns_suffixes: &[
            "azure-dns.com",
            "azure-dns.net",
            "azure-dns.org",
            "azure-dns.info",
        ],
        methods: &[],
    },
];

/// Recognises the provider from name-server host names (any one matching is enough).
pub fn recognise(nameservers: &[String]) -> Option<Provider> {
    nameservers.iter().find_map(|ns| {
        let ns = ns.trim_end_matches('.').to_ascii_lowercase();
        PROVIDERS.iter().copied().find(|provider| {
            provider.ns_suffixes.iter().any(|suffix| {
                if suffix.ends_with('-') {
                    ns.contains(suffix)
                } else {
                    ns == *suffix || ns.ends_with(&format!(".{suffix}"))
                }
            })
        })
    })
}

/// What the lookup found.
#[derive(Debug, Default)]
pub struct Detection {
    pub nameservers: Vec<String>,
    pub provider: Option<Provider>,
    /// Why no name servers could be found, for the person.
    pub problem: Option<String>,
}

/// Where name-server lookups go: the system's resolver, or (for tests and special set-ups)
/// the one given to the portal with `--dns-resolver`.
static RESOLVER: OnceLock<Option<SocketAddr>> = OnceLock::new();

pub fn use_resolver(address: Option<SocketAddr>) {
    let _ = RESOLVER.set(address);
}

fn resolver() -> Result<TokioResolver, String> {
    let mut builder = match RESOLVER.get().copied().flatten() {
        Some(address) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = address.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = address.port();
            let server = NameServerConfig::new(address.ip(), true, vec![udp, tcp]);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], vec![server]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|err| err.to_string())?,
    };
    builder.options_mut().timeout = Duration::from_secs(3);
    builder.options_mut().attempts = 1;
    builder.build().map_err(|err| err.to_string())
}

/// Finds the name servers of the zone that holds `domain` (walking up to the parent zones)
/// and recognises the provider.
pub async fn detect(domain: &MailDomain) -> Detection {
    let resolver = match resolver() {
        Ok(resolver) => resolver,
        Err(err) => {
            return Detection {
                problem: Some(format!("The portal cannot look up DNS right now ({err}).")),
                ..Detection::default()
            }
        }
    };
    let labels: Vec<&str> = domain.as_str().split('.').collect();
    for start in 0..labels.len().saturating_sub(1) {
        let name = format!("{}.", labels[start..].join("."));
        let lookup =
            tokio::time::timeout(Duration::from_secs(8), resolver.ns_lookup(name.as_str())).await;
        match lookup {
            Ok(Ok(answer)) => {
                let mut nameservers: Vec<String> = answer
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        hickory_resolver::proto::rr::RData::NS(ns) => {
                            Some(ns.0.to_ascii().trim_end_matches('.').to_string())
                        }
                        _ => None,
                    })
                    .collect();
                if nameservers.is_empty() {
                    continue;
                }
                nameservers.sort();
                nameservers.dedup();
                let provider = recognise(&nameservers);
                return Detection {
                    nameservers,
                    provider,
                    problem: None,
                };
            }
            Ok(Err(_)) => continue,
            Err(_) => {
                return Detection {
                    problem: Some("DNS did not answer in time. Try again in a minute.".into()),
                    ..Detection::default()
                }
            }
        }
    }
    Detection {
        problem: Some(format!(
            "No name servers were found for {}. Check that the domain is registered and not expired.",
            domain.to_unicode()
        )),
        ..Detection::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recognises_providers_by_name_server() {
        let cases = [
            (
                &["ada.ns.cloudflare.com.", "bob.ns.cloudflare.com."][..],
                Some("Cloudflare"),
            ),
            (&["hydrogen.ns.hetzner.com"][..], Some("Hetzner")),
            (&["ns1.desec.io", "ns2.desec.org"][..], Some("deSEC")),
            (&["dns1.registrar-servers.com"][..], Some("Namecheap")),
            (&["ns-1234.awsdns-12.org"][..], Some("Amazon Route 53")),
            (&["NS01.DOMAINCONTROL.COM."][..], Some("GoDaddy")),
            (&["ns1.example.org"][..], None),
            (&["evilns.cloudflare.com.attacker.example"][..], None),
            (&["notgandi.net"][..], None),
        ];
        for (servers, expected) in cases {
            assert_eq!(
                recognise(&names(servers)).map(|p| p.name),
                expected,
                "{servers:?}"
            );
        }
    }
}
