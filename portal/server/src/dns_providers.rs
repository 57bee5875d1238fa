//! Which cloud DNS providers this portal offers, and how it reaches them.
//!
//! Signing in with a provider (OAuth) needs a client id (and secret) the portal's operator
//! registered at that provider; a provider without one is offered through its token form
//! instead, or not at all — never as a button that cannot work. Namecheap needs the
//! portal's outgoing address for its allow-list. Test set-ups point providers' APIs and
//! sign-in pages at local servers with `--dns-endpoint`.

use std::collections::HashMap;

use chatmail_dns_providers::{
    credentials::Credentials,
    detect::ConnectWay,
    domain_connect::{self, AsyncProvider, ServiceProvider},
    guides,
    oauth::{OAuthClient, OAuthClientConfig, OAuthEndpoints, OAuthProvider},
    ovh::Endpoint as OvhEndpoint,
    DnsProvider, ProviderError,
};

/// The provider settings on the command line (flattened into [`crate::config::Config`]).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ProviderFlags {
    /// OAuth client id registered at Cloudflare (its redirect URL is
    /// <base URL>/dns/oauth/callback). Without it, Cloudflare is offered by API token.
    #[arg(long, env = "PORTAL_OAUTH_CLOUDFLARE_CLIENT_ID")]
    pub oauth_cloudflare_client_id: Option<String>,
    /// Cloudflare OAuth client secret.
    #[arg(
        long,
        env = "PORTAL_OAUTH_CLOUDFLARE_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub oauth_cloudflare_client_secret: Option<String>,
    /// OAuth client id registered at DigitalOcean. Without it, DigitalOcean is offered by
    /// personal access token.
    #[arg(long, env = "PORTAL_OAUTH_DIGITALOCEAN_CLIENT_ID")]
    pub oauth_digitalocean_client_id: Option<String>,
    /// DigitalOcean OAuth client secret.
    #[arg(
        long,
        env = "PORTAL_OAUTH_DIGITALOCEAN_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub oauth_digitalocean_client_secret: Option<String>,
    /// OAuth client id registered at Linode (Akamai). Without it, Linode is offered by
    /// personal access token.
    #[arg(long, env = "PORTAL_OAUTH_LINODE_CLIENT_ID")]
    pub oauth_linode_client_id: Option<String>,
    /// Linode OAuth client secret.
    #[arg(
        long,
        env = "PORTAL_OAUTH_LINODE_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub oauth_linode_client_secret: Option<String>,
    /// The portal's outgoing IPv4 address, for Namecheap's API allow-list. Without it,
    /// Namecheap is not offered.
    #[arg(long, env = "PORTAL_NAMECHEAP_CLIENT_IP")]
    pub namecheap_client_ip: Option<std::net::Ipv4Addr>,
    /// Application key of the portal's OVHcloud application (made at the region's
    /// createApp page). With it (and the secret), OVHcloud is offered: the person approves
    /// the portal's access on OVHcloud's own page. Without it, OVHcloud is not offered.
    #[arg(long, env = "PORTAL_OVH_APPLICATION_KEY")]
    pub ovh_application_key: Option<String>,
    /// Application secret of the portal's OVHcloud application.
    #[arg(long, env = "PORTAL_OVH_APPLICATION_SECRET", hide_env_values = true)]
    pub ovh_application_secret: Option<String>,
    /// OVHcloud's API region for the application: ovh-eu (the default), ovh-ca or ovh-us.
    #[arg(long, env = "PORTAL_OVH_ENDPOINT", value_parser = parse_ovh_endpoint)]
    pub ovh_endpoint: Option<OvhEndpoint>,
    /// RSA private key (PEM, 2048 bits or more) that signs Domain Connect links. Its
    /// public key must be published as TXT at <key label>.<the template's
    /// syncPubKeyDomain>. Without it, Domain Connect is not offered.
    #[arg(long, env = "PORTAL_DOMAIN_CONNECT_KEY")]
    pub domain_connect_key: Option<std::path::PathBuf>,
    /// The `providerId` under which the relay's template is onboarded at DNS providers.
    #[arg(long, env = "PORTAL_DOMAIN_CONNECT_PROVIDER_ID", default_value = domain_connect::PROVIDER_ID)]
    pub domain_connect_provider_id: String,
    /// The DNS label of the signing key (the `key` parameter of signed links).
    #[arg(long, env = "PORTAL_DOMAIN_CONNECT_KEY_LABEL", default_value = "_dck1")]
    pub domain_connect_key_label: String,
    /// A DNS provider's Domain Connect OAuth client, pinned:
    /// "PROVIDER_ID|URL_ASYNC_UX|URL_API|CLIENT_ID|CLIENT_SECRET" (the provider issues the
    /// client; its redirect URL is <base URL>/dns/domain-connect/callback). Repeatable.
    /// Where the zone's provider has one, the person grants access once and the portal
    /// applies the records itself, also when the device's facts change.
    #[arg(
        long = "domain-connect-async",
        env = "PORTAL_DOMAIN_CONNECT_ASYNC",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub domain_connect_async: Vec<String>,
    /// Other addresses for providers, "KEY=URL,…" (test set-ups only): `<provider>.api`
    /// for a DNS API (cloudflare, digitalocean, linode, hetzner, porkbun, desec, gandi,
    /// namecheap, ovh) and `<provider>.authorize`, `.token`, `.revoke` for sign-in
    /// (cloudflare, digitalocean, linode).
    #[arg(long = "dns-endpoint", env = "PORTAL_DNS_ENDPOINTS", value_delimiter = ',', value_parser = parse_endpoint)]
    pub dns_endpoints: Vec<Endpoint>,
}

/// One `KEY=URL` of `--dns-endpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub key: String,
    pub url: String,
}

/// Every provider with a token or key form (OVHcloud's has no fields: the person approves
/// the access on OVHcloud's page), in the order the wizard lists them.
pub const TOKEN_PROVIDERS: &[&str] = &[
    "cloudflare",
    "digitalocean",
    "linode",
    "hetzner",
    "porkbun",
    "desec",
    "gandi",
    "namecheap",
    "ovh",
];

fn parse_ovh_endpoint(text: &str) -> Result<OvhEndpoint, String> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_string()))
        .map_err(|_| format!("\"{text}\" is not an OVHcloud region (ovh-eu, ovh-ca or ovh-us)"))
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let (key, url) = text
        .trim()
        .split_once('=')
        .ok_or_else(|| format!("\"{text}\" is not KEY=URL"))?;
    let (provider, what) = key
        .split_once('.')
        .ok_or_else(|| format!("\"{key}\" is not PROVIDER.api|authorize|token|revoke"))?;
    let known = match what {
        "api" => TOKEN_PROVIDERS.contains(&provider),
        "authorize" | "token" | "revoke" => OAuthProvider::from_id(provider).is_some(),
        _ => false,
    };
    if !known {
        return Err(format!("unknown provider address \"{key}\""));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("\"{url}\" is not an http(s) URL"));
    }
    Ok(Endpoint {
        key: key.to_string(),
        url: url.trim_end_matches('/').to_string(),
    })
}

/// The providers as this portal is configured.
#[derive(Debug, Default)]
pub struct Providers {
    oauth: Vec<OAuthClient>,
    api: HashMap<String, String>,
    namecheap_client_ip: Option<String>,
    ovh: Option<OvhApp>,
    domain_connect: Option<ServiceProvider>,
    domain_connect_provider_id: String,
    domain_connect_async: Vec<AsyncProvider>,
}

/// The portal's OVHcloud application.
#[derive(Clone)]
pub struct OvhApp {
    pub endpoint: OvhEndpoint,
    pub application_key: String,
    pub application_secret: String,
    /// Where the API is reached (the region's address, or a test server).
    pub api_base: String,
    /// Where OVHcloud sends the person back after approving.
    pub return_url: String,
}

impl std::fmt::Debug for OvhApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OvhApp")
            .field("endpoint", &self.endpoint)
            .field("application_key", &self.application_key)
            .field("application_secret", &"<hidden>")
            .finish()
    }
}

/// The sign-in callback's path (the redirect URL to register is the base URL plus this).
pub const CALLBACK_PATH: &str = "/dns/oauth/callback";

/// Where OVHcloud sends the person back after approving the portal's access.
pub const OVH_RETURN_PATH: &str = "/dns/ovh/return";

/// Where a DNS provider sends the person back after a Domain Connect grant.
pub const DOMAIN_CONNECT_CALLBACK_PATH: &str = "/dns/domain-connect/callback";

/// One `--domain-connect-async` value.
fn parse_async_provider(text: &str, redirect_url: &str) -> Result<AsyncProvider, String> {
    let parts: Vec<&str> = text.trim().split('|').map(str::trim).collect();
    let [id, ux, api, client_id, client_secret] = parts.as_slice() else {
        return Err(
            "--domain-connect-async wants PROVIDER_ID|URL_ASYNC_UX|URL_API|CLIENT_ID|CLIENT_SECRET"
                .into(),
        );
    };
    if [id, ux, api, client_id, client_secret]
        .iter()
        .any(|p| p.is_empty())
    {
        return Err("--domain-connect-async has an empty part".into());
    }
    for url in [ux, api] {
        if !(url.starts_with("https://") || url.starts_with("http://127.0.0.1")) {
            return Err(format!("Domain Connect address {url} must use https"));
        }
    }
    Ok(AsyncProvider {
        dns_provider_id: id.to_string(),
        url_async_ux: ux.to_string(),
        url_api: api.to_string(),
        client_id: client_id.to_string(),
        client_secret: client_secret.to_string(),
        redirect_url: redirect_url.to_string(),
    })
}

impl Providers {
    /// The providers from the flags; `base_url` is the portal's public address.
    pub fn new(flags: &ProviderFlags, base_url: &str) -> Result<Self, String> {
        let endpoint = |key: String| {
            flags
                .dns_endpoints
                .iter()
                .rev()
                .find(|e| e.key == key)
                .map(|e| e.url.clone())
        };
        let mut oauth = Vec::new();
        for provider in OAuthProvider::ALL {
            let (id, secret) = match provider {
                OAuthProvider::Cloudflare => (
                    &flags.oauth_cloudflare_client_id,
                    &flags.oauth_cloudflare_client_secret,
                ),
                OAuthProvider::DigitalOcean => (
                    &flags.oauth_digitalocean_client_id,
                    &flags.oauth_digitalocean_client_secret,
                ),
                OAuthProvider::Linode => (
                    &flags.oauth_linode_client_id,
                    &flags.oauth_linode_client_secret,
                ),
            };
            let Some(id) = id.as_deref().map(str::trim).filter(|id| !id.is_empty()) else {
                continue;
            };
            let config = OAuthClientConfig {
                client_id: id.to_string(),
                client_secret: secret.clone().filter(|s| !s.trim().is_empty()),
                redirect_url: format!("{}{CALLBACK_PATH}", base_url.trim_end_matches('/')),
                scopes: None,
            };
            let mut client = OAuthClient::new(provider, config).map_err(|e| e.to_string())?;
            let real = provider.endpoints();
            let p = provider.id();
            let endpoints = OAuthEndpoints {
                authorize: endpoint(format!("{p}.authorize")).unwrap_or(real.authorize),
                token: endpoint(format!("{p}.token")).unwrap_or(real.token),
                revoke: endpoint(format!("{p}.revoke")).or(real.revoke),
            };
            client = client
                .with_endpoints(endpoints)
                .map_err(|e| e.to_string())?;
            oauth.push(client);
        }
        let api = flags
            .dns_endpoints
            .iter()
            .filter_map(|e| {
                e.key
                    .strip_suffix(".api")
                    .map(|p| (p.to_string(), e.url.clone()))
            })
            .collect();
        let nonempty = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let region = flags.ovh_endpoint.unwrap_or(OvhEndpoint::Eu);
        let ovh = match (
            nonempty(&flags.ovh_application_key),
            nonempty(&flags.ovh_application_secret),
        ) {
            (Some(application_key), Some(application_secret)) => Some(OvhApp {
                endpoint: region,
                application_key,
                application_secret,
                api_base: endpoint("ovh.api".into())
                    .unwrap_or_else(|| region.base_url().to_string()),
                return_url: format!("{}{OVH_RETURN_PATH}", base_url.trim_end_matches('/')),
            }),
            (None, None) => None,
            _ => {
                return Err(
                    "OVHcloud needs both --ovh-application-key and --ovh-application-secret".into(),
                )
            }
        };
        let domain_connect = match &flags.domain_connect_key {
            None => None,
            Some(path) => {
                let pem = std::fs::read_to_string(path).map_err(|err| {
                    format!(
                        "cannot read the Domain Connect key {}: {err}",
                        path.display()
                    )
                })?;
                let provider_id = flags.domain_connect_provider_id.trim();
                if provider_id.is_empty() || flags.domain_connect_key_label.trim().is_empty() {
                    return Err("Domain Connect needs a provider id and a key label".into());
                }
                let signer = ServiceProvider::from_pem(
                    provider_id,
                    domain_connect::SERVICE_ID,
                    flags.domain_connect_key_label.trim(),
                    &pem,
                )
                .map_err(|err| err.to_string())?;
                // What the operator publishes so that providers can check the signatures.
                for value in signer.public_key_txt() {
                    tracing::info!(
                        "Domain Connect: publish TXT \"{value}\" at {}.<the template's syncPubKeyDomain>",
                        flags.domain_connect_key_label.trim()
                    );
                }
                Some(signer)
            }
        };
        let callback = format!(
            "{}{DOMAIN_CONNECT_CALLBACK_PATH}",
            base_url.trim_end_matches('/')
        );
        let domain_connect_async = flags
            .domain_connect_async
            .iter()
            .filter(|v| !v.trim().is_empty())
            .map(|v| parse_async_provider(v, &callback))
            .collect::<Result<Vec<_>, _>>()?;
        let domain_connect_provider_id = match flags.domain_connect_provider_id.trim() {
            "" => domain_connect::PROVIDER_ID.to_string(),
            id => id.to_string(),
        };
        Ok(Providers {
            oauth,
            api,
            namecheap_client_ip: flags.namecheap_client_ip.map(|ip| ip.to_string()),
            ovh,
            domain_connect,
            domain_connect_provider_id,
            domain_connect_async,
        })
    }

    /// The signer of Domain Connect links, if configured.
    pub fn domain_connect(&self) -> Option<&ServiceProvider> {
        self.domain_connect.as_ref()
    }

    /// The `providerId` of the relay's Domain Connect template.
    pub fn domain_connect_provider_id(&self) -> &str {
        &self.domain_connect_provider_id
    }

    /// Whether any Domain Connect flow is configured.
    pub fn domain_connect_configured(&self) -> bool {
        self.domain_connect.is_some() || !self.domain_connect_async.is_empty()
    }

    /// The pinned Domain Connect client for the DNS provider with this id.
    pub fn domain_connect_client(&self, dns_provider_id: &str) -> Option<&AsyncProvider> {
        self.domain_connect_async
            .iter()
            .find(|c| c.dns_provider_id == dns_provider_id)
    }

    /// The portal's OVHcloud application, if configured.
    pub fn ovh(&self) -> Option<&OvhApp> {
        self.ovh.as_ref()
    }

    /// The sign-in client for `provider`, if configured.
    pub fn oauth(&self, provider: OAuthProvider) -> Option<&OAuthClient> {
        self.oauth.iter().find(|c| c.provider() == provider)
    }

    /// Namecheap's allow-listed address, if configured.
    pub fn namecheap_client_ip(&self) -> Option<&str> {
        self.namecheap_client_ip.as_deref()
    }

    /// The provider for these credentials, at its configured address.
    pub fn provider(
        &self,
        credentials: &Credentials,
    ) -> Result<Box<dyn DnsProvider>, ProviderError> {
        match self.api.get(credentials.provider_id()) {
            Some(base) => credentials.provider_at(base),
            None => credentials.provider(),
        }
    }

    /// The ways this portal offers for `provider` out of `ways`.
    pub fn offered(&self, provider: &str, ways: &[ConnectWay]) -> Vec<ConnectWay> {
        let oauth = OAuthProvider::from_id(provider).is_some_and(|p| self.oauth(p).is_some());
        guides::offered_ways(provider, ways, oauth, false, self.ovh.is_some())
            .into_iter()
            .filter(|w| {
                !(provider == "namecheap"
                    && *w == ConnectWay::ApiToken
                    && self.namecheap_client_ip.is_none())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("hetzner.api=http://127.0.0.1:9/v1/").unwrap(),
            Endpoint {
                key: "hetzner.api".into(),
                url: "http://127.0.0.1:9/v1".into()
            }
        );
        for bad in [
            "hetzner",
            "hetzner.api",
            "route53.api=http://x",
            "hetzner.token=http://x",
            "cloudflare.api=ftp://x",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_broken_buttons() {
        let none = Providers::new(&ProviderFlags::default(), "https://portal.example").unwrap();
        let ways = [ConnectWay::OAuth, ConnectWay::ApiToken];
        assert_eq!(none.offered("cloudflare", &ways), [ConnectWay::ApiToken]);
        assert!(none
            .offered("namecheap", &[ConnectWay::ApiToken])
            .is_empty());
        assert!(none.offered("ovh", &[ConnectWay::ApiToken]).is_empty());
        let flags = ProviderFlags {
            oauth_cloudflare_client_id: Some("id".into()),
            namecheap_client_ip: Some("203.0.113.5".parse().unwrap()),
            ..Default::default()
        };
        let some = Providers::new(
            &ProviderFlags {
                ovh_application_key: Some("ak".into()),
                ovh_application_secret: Some("as".into()),
                ..flags
            },
            "https://portal.example",
        )
        .unwrap();
        assert_eq!(
            some.offered("ovh", &[ConnectWay::ApiToken]),
            [ConnectWay::ApiToken]
        );
        assert_eq!(
            some.ovh().unwrap().return_url,
            "https://portal.example/dns/ovh/return"
        );
        let half = ProviderFlags {
            ovh_application_key: Some("ak".into()),
            ..Default::default()
        };
        assert!(Providers::new(&half, "https://portal.example").is_err());
        let pinned = ProviderFlags {
            domain_connect_async: vec![
                "godaddy.com|https://dcc.godaddy.com/manage|https://domainconnect.api.godaddy.com|id|secret".into(),
            ],
            ..Default::default()
        };
        let with = Providers::new(&pinned, "https://portal.example").unwrap();
        let client = with.domain_connect_client("godaddy.com").unwrap();
        assert_eq!(
            client.redirect_url,
            "https://portal.example/dns/domain-connect/callback"
        );
        assert!(with.domain_connect_configured());
        for bad in [
            "godaddy.com|https://a|https://b|id",
            "godaddy.com|http://a.example|https://b|id|secret",
            "godaddy.com|https://a||id|secret",
        ] {
            let flags = ProviderFlags {
                domain_connect_async: vec![bad.into()],
                ..Default::default()
            };
            assert!(
                Providers::new(&flags, "https://portal.example").is_err(),
                "{bad}"
            );
        }
        assert_eq!(some.offered("cloudflare", &ways), ways);
        assert_eq!(
            some.offered("namecheap", &[ConnectWay::ApiToken]),
            [ConnectWay::ApiToken]
        );
    }
}
