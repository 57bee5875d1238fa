//! What the portal tells a person for each way of connecting a provider: where to click
//! at the provider, the least permission to grant, what the portal will do with it, and
//! the fields of the form. Also which ways to offer at all: signing in only where the
//! portal has OAuth client credentials configured (else the token form, or nothing —
//! never a button that cannot work).
//!
//! The texts follow each provider's control panel as its documentation describes it
//! (links in the provider modules); menu names change now and then, so each guide also
//! links the provider's own page.

use serde::Serialize;

use crate::detect::ConnectWay;
use crate::oauth::OAuthProvider;

/// One field of a token form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Field {
    /// The name in the form and in [`crate::Credentials`].
    pub name: &'static str,
    /// The label.
    pub label: &'static str,
    /// Whether it is a secret (a password input, never shown again).
    pub secret: bool,
    /// A hint under the field.
    pub help: &'static str,
}

/// A guided form for one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guide {
    /// The provider id (as in [`crate::detect`]).
    pub provider: &'static str,
    /// The provider's name.
    pub name: &'static str,
    /// The steps at the provider, in order.
    pub steps: Vec<&'static str>,
    /// The least permission to grant, in the provider's words.
    pub permission: &'static str,
    /// What the portal does with it.
    pub portal_does: &'static str,
    /// The provider's own help page.
    pub help_url: &'static str,
    /// The form's fields (empty for signing in).
    pub fields: Vec<Field>,
}

const PORTAL_DOES: &str = "The portal keeps the key encrypted, uses it only to read this \
    domain's records and to add, change or remove the relay's own records (addresses, mail \
    server, DKIM, SPF, DMARC, MTA-STS, TLS reporting, CAA, service records). It never touches \
    records it did not make unless you confirm each one. You can withdraw the key at the \
    provider at any time; removing the connection in the portal forgets it.";

const fn field(name: &'static str, label: &'static str, secret: bool, help: &'static str) -> Field {
    Field {
        name,
        label,
        secret,
        help,
    }
}

/// The token or key form for `provider`, or `None` if it has none.
pub fn token_guide(provider: &str) -> Option<Guide> {
    let g = |name, steps: &[&'static str], permission, help_url, fields: &[Field]| Guide {
        provider: match provider {
            "cloudflare" => "cloudflare",
            "digitalocean" => "digitalocean",
            "linode" => "linode",
            "hetzner" => "hetzner",
            "porkbun" => "porkbun",
            "desec" => "desec",
            "gandi" => "gandi",
            "namecheap" => "namecheap",
            _ => "ovh",
        },
        name,
        steps: steps.to_vec(),
        permission,
        portal_does: PORTAL_DOES,
        help_url,
        fields: fields.to_vec(),
    };
    Some(match provider {
        "cloudflare" => g(
            "Cloudflare",
            &[
                "Log in at dash.cloudflare.com and open My Profile → API Tokens.",
                "Choose Create Token, then the template “Edit zone DNS”.",
                "Under Zone Resources choose Include → Specific zone → your domain.",
                "Continue to summary, create the token and copy it (it is shown once).",
            ],
            "Zone → DNS → Edit (and Zone → Zone → Read), for this zone only.",
            "https://developers.cloudflare.com/fundamentals/api/get-started/create-token/",
            &[field(
                "api_token",
                "API token",
                true,
                "Not the Global API Key.",
            )],
        ),
        "digitalocean" => g(
            "DigitalOcean",
            &[
                "Log in at cloud.digitalocean.com and open API → Tokens.",
                "Choose Generate New Token, pick an expiry, and choose Custom Scopes.",
                "Tick domain: read, create, update and delete; generate and copy the token.",
            ],
            "Custom scopes domain:read, domain:create, domain:update, domain:delete.",
            "https://docs.digitalocean.com/reference/api/create-personal-access-token/",
            &[field(
                "token",
                "Personal access token",
                true,
                "It starts with dop_v1_.",
            )],
        ),
        "linode" => g(
            "Linode (Akamai)",
            &[
                "Log in at cloud.linode.com, open your profile (top right) → API Tokens.",
                "Choose Create a Personal Access Token, set Domains to Read/Write and \
                 everything else to No Access.",
                "Create the token and copy it (it is shown once).",
            ],
            "Domains: Read/Write.",
            "https://techdocs.akamai.com/cloud-computing/docs/manage-personal-access-tokens",
            &[field("token", "Personal access token", true, "")],
        ),
        "hetzner" => g(
            "Hetzner",
            &[
                "Log in to the Hetzner Console (console.hetzner.com) and open the project \
                 that holds your DNS zone.",
                "Open Security → API tokens and choose Generate API token.",
                "Choose the permission Read & Write, generate and copy the token.",
            ],
            "Read & Write, in the project that holds the zone.",
            "https://docs.hetzner.com/cloud/api/getting-started/generating-api-token/",
            &[field(
                "api_token",
                "API token",
                true,
                "Tokens from the old DNS Console (dns.hetzner.com) do not work.",
            )],
        ),
        "porkbun" => g(
            "Porkbun",
            &[
                "Log in at porkbun.com and open Account → API Access; create an API key.",
                "Copy the API key (pk1_…) and the secret key (sk1_…).",
                "Under Domain Management, open your domain's Details and switch on API ACCESS.",
            ],
            "API access switched on for this domain.",
            "https://kb.porkbun.com/article/190-getting-started-with-the-porkbun-api",
            &[
                field("api_key", "API key", true, "It starts with pk1_."),
                field("secret_api_key", "Secret key", true, "It starts with sk1_."),
            ],
        ),
        "desec" => g(
            "deSEC",
            &[
                "Log in at desec.io and open Token Management.",
                "Create a new token (optionally limited to this domain with a policy) and \
                 copy it (it is shown once).",
            ],
            "Writing this domain's records (a policy may limit the token to it).",
            "https://desec.readthedocs.io/en/latest/auth/tokens.html",
            &[field("token", "Token", true, "")],
        ),
        "gandi" => g(
            "Gandi",
            &[
                "Log in at admin.gandi.net and open your account → Personal Access Token \
                 (PAT).",
                "Create a token for the organization that owns the domain, with an expiry, \
                 limited to this domain, with the permission to manage domain technical \
                 configurations.",
                "Copy the token. It expires: the portal tells you when to make a new one.",
            ],
            "Manage domain name technical configurations, for this domain only.",
            "https://api.gandi.net/docs/authentication/",
            &[field("token", "Personal access token", true, "")],
        ),
        "namecheap" => g(
            "Namecheap",
            &[
                "Log in at namecheap.com and open Profile → Tools → Namecheap API Access \
                 (Namecheap opens it only to accounts that meet its conditions).",
                "Switch API access on and copy the API key.",
                "Under Whitelisted IPs, add the portal's address shown below.",
                "Your domain must use Namecheap's DNS (BasicDNS or PremiumDNS).",
            ],
            "API access, with the portal's address on the allow-list.",
            "https://www.namecheap.com/support/api/intro/",
            &[
                field("api_user", "API user (your Namecheap user name)", false, ""),
                field("api_key", "API key", true, ""),
            ],
        ),
        "ovh" => g(
            "OVHcloud",
            &[
                "Choose Connect: the portal opens OVHcloud's page.",
                "Log in to OVHcloud and approve the access the portal asks for (read and \
                 change the records of your DNS zone).",
                "OVHcloud sends you back to the portal, which checks the access works.",
            ],
            "GET, POST, PUT and DELETE on /domain/zone/<your zone>/* and listing zones.",
            "https://help.ovhcloud.com/csm/en-api-getting-started-ovhcloud-api",
            &[],
        ),
        _ => return None,
    })
}

/// The sign-in guide for an OAuth provider.
pub fn oauth_guide(provider: OAuthProvider) -> Guide {
    Guide {
        provider: provider.id(),
        name: provider.display_name(),
        steps: vec![
            "Choose Sign in: the portal opens the provider's page.",
            "Log in there and allow the portal to manage DNS.",
            "The provider sends you back to the portal, which checks the access works.",
        ],
        permission: match provider {
            OAuthProvider::Cloudflare => "Read zones, read and edit DNS records.",
            OAuthProvider::DigitalOcean => "Read and write (DNS domains and records).",
            OAuthProvider::Linode => "Domains: read/write.",
        },
        portal_does: PORTAL_DOES,
        help_url: match provider {
            OAuthProvider::Cloudflare => "https://developers.cloudflare.com/fundamentals/oauth/",
            OAuthProvider::DigitalOcean => "https://docs.digitalocean.com/reference/api/oauth/",
            OAuthProvider::Linode => {
                "https://techdocs.akamai.com/linode-api/reference/get-started#oauth"
            }
        },
        fields: vec![],
    }
}

/// The ways to offer for a provider with these `ways` (from [`crate::detect`]), given
/// whether the portal has OAuth client credentials for it, whether Domain Connect signing
/// is configured, and whether OVHcloud's application is configured. Signing in without
/// credentials is replaced by the token form where the provider has one, and otherwise
/// dropped.
pub fn offered_ways(
    provider: &str,
    ways: &[ConnectWay],
    oauth_configured: bool,
    domain_connect_configured: bool,
    ovh_app_configured: bool,
) -> Vec<ConnectWay> {
    let mut out = Vec::new();
    for w in ways {
        let ok = match w {
            ConnectWay::OAuth => oauth_configured && OAuthProvider::from_id(provider).is_some(),
            ConnectWay::DomainConnect => domain_connect_configured,
            ConnectWay::ApiToken => {
                token_guide(provider).is_some() && (provider != "ovh" || ovh_app_configured)
            }
        };
        if ok && !out.contains(w) {
            out.push(*w);
        }
    }
    // DigitalOcean and Linode are listed with OAuth first; without a client the personal
    // access token form stands in (detect lists ApiToken for them too).
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_provider_has_a_guide() {
        for p in [
            "cloudflare",
            "digitalocean",
            "linode",
            "hetzner",
            "porkbun",
            "desec",
            "gandi",
            "namecheap",
            "ovh",
        ] {
            let g = token_guide(p).unwrap();
            assert_eq!(g.provider, p);
            assert!(!g.steps.is_empty() && !g.permission.is_empty());
        }
        assert!(token_guide("route53").is_none());
    }

    #[test]
    fn no_broken_buttons() {
        use ConnectWay::*;
        let cf = [OAuth, ApiToken, DomainConnect];
        assert_eq!(offered_ways("cloudflare", &cf, true, true, false), cf);
        assert_eq!(
            offered_ways("cloudflare", &cf, false, false, false),
            [ApiToken]
        );
        assert_eq!(offered_ways("ovh", &[ApiToken], false, false, false), []);
        assert_eq!(
            offered_ways("ovh", &[ApiToken], false, false, true),
            [ApiToken]
        );
        assert_eq!(offered_ways("google", &[OAuth], true, false, false), []);
    }
}
