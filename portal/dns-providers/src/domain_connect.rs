//! Domain Connect: the portal as a *Service Provider* whose template (the relay's records)
//! a DNS provider applies, either after a signed browser redirect (synchronous flow) or
//! through an OAuth grant and an API call (asynchronous flow).
//!
//! Spec: Domain Connect 2.3 (`Domain Connect Spec Draft.adoc`, rev 67, and IETF
//! draft-ietf-dconn-domainconnect-02), as summarised in research/registrars.md §1:
//!
//! * **Discovery** (spec §“Discovery”): the zone's `_domainconnect` TXT record
//!   ([`crate::detect::Detection::domain_connect`]) names the provider's host;
//!   `GET https://{host}/v2/{domain}/settings` answers [`Settings`] (`providerId`,
//!   `urlSyncUX`, `urlAsyncUX`, `urlAPI`, …), or 404 if the provider does not host the
//!   zone. `GET {urlAPI}/v2/domainTemplates/providers/{ourProviderId}/services/{serviceId}`
//!   tells whether our template is onboarded there (200) or not (404).
//! * **Template** ([`TEMPLATE`], shipped as `domain-connect/<providerId>.<serviceId>.json`):
//!   every record of [`chatmail_shared::DnsPlan`], with variables for the addresses, the
//!   DKIM key, the MTA-STS id, the CAA issuer and ACME account URI and the TLS-report
//!   mailbox ([`TemplateVars::from_plan`]); SPF as `SPFM` (merged into an existing SPF, as
//!   the template repository's rules require); groups `ipv4`, `ipv6`, `mail`, `dkim`,
//!   `caa`, `srv`, `tlsrpt`, so records still pending are left out. `providerId`,
//!   `syncPubKeyDomain` and `syncRedirectDomain` are placeholders
//!   (`chatmail-portal.example`) to be replaced by the operator's domain before the
//!   template is submitted to the Domain-Connect/Templates repository.
//! * **Synchronous flow** (spec §“Synchronous Flow”): the browser is sent to
//!   `{urlSyncUX}/v2/domainTemplates/providers/{providerId}/services/{serviceId}/apply?
//!   domain=…&host=…&<vars>&groupId=…&redirect_uri=…&state=…`, signed
//!   ([`ServiceProvider::sync_apply_url`]): `sig` is base64(RSASSA-PKCS1-v1_5-SHA256)
//!   of the query string before `&key=…&sig=…` are appended, `key` the DNS label of the
//!   public key, published as TXT at `<key>.<syncPubKeyDomain>` in chunks
//!   `p=1,a=RS256,d=<base64 SPKI part>` ([`ServiceProvider::public_key_txt`]). `sig` goes
//!   last (Cloudflare requires it). The provider sends the browser back to `redirect_uri`
//!   with `state` (and `error` on failure); the portal must still check DNS, since the
//!   return can be forged.
//! * **Asynchronous flow** (spec §“Asynchronous Flow: OAuth”): the person consents at
//!   `{urlAsyncUX}/v2/domainTemplates/providers/{providerId}?client_id=…&scope={serviceId}
//!   &domain=…&host=…&redirect_uri=…&response_type=code&state=…`; the code is exchanged at
//!   `POST {urlAPI}/v2/oauth/access_token` (parameters in the query: `code` or
//!   `refresh_token`, `grant_type`, `client_id`, `client_secret`, `redirect_uri`); the
//!   template is applied with `POST {urlAPI}/v2/domainTemplates/providers/{providerId}/
//!   services/{serviceId}/apply?domain=…&host=…&<vars>&groupId=…&force=…` and `Authorization:
//!   Bearer` (2xx applied; 409 conflicting records; 401 token refused). `urlAPI` and the
//!   client credentials are pinned per DNS provider in the portal's configuration
//!   ([`AsyncProvider`]); a discovered `urlAPI` that differs is refused, so a forged
//!   `_domainconnect` record cannot collect the client secret. The spec has no PKCE here.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chatmail_shared::dns_plan::TxtStrings;
use chatmail_shared::{DnsPlan, DnsRecord, RecordData};
use oauth2::url::form_urlencoded;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::http::{http_client, relative, short, transport_error};
use crate::oauth::unix_now;
use crate::records::{normalize_name, parse_rdata};

/// The relay's template, as shipped.
pub const TEMPLATE: &str = include_str!("../domain-connect/chatmail-portal.example.relay.json");

/// The template's `providerId` (a placeholder until the operator's domain replaces it).
pub const PROVIDER_ID: &str = "chatmail-portal.example";

/// The template's `serviceId`.
pub const SERVICE_ID: &str = "relay";

/// Why a Domain Connect step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcError {
    /// The provider does not offer Domain Connect for this domain.
    #[error("The DNS provider does not offer Domain Connect for {0}.")]
    NotOffered(String),
    /// Our template is not onboarded at this provider.
    #[error("{0} does not know the chatmail relay template yet; use another way to connect.")]
    TemplateUnknown(String),
    /// The configuration (signing key, pinned endpoints, client) is missing or wrong.
    #[error("Domain Connect is not set up correctly on this portal: {0}")]
    Config(String),
    /// The access token was refused: the person connects again.
    #[error(
        "The connection to {0} has expired or was withdrawn. Connect again through Domain Connect."
    )]
    Unauthorized(String),
    /// The records conflict with existing ones (409); `force` would overwrite them.
    #[error("The DNS provider found records in the way: {}", .0.iter().map(|r| format!("{} {} {}", r.host, r.rtype, r.data)).collect::<Vec<_>>().join(", "))]
    Conflict(Vec<ConflictRecord>),
    /// The provider refused the request.
    #[error("The DNS provider refused the change: {0}")]
    Rejected(String),
    /// The provider could not be reached (retryable).
    #[error("The DNS provider could not be reached ({0}). The portal will try again.")]
    Unreachable(String),
}

/// A record the provider reports as in the way (409).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRecord {
    /// Its type.
    #[serde(rename = "type", default)]
    pub rtype: String,
    /// Its host.
    #[serde(default)]
    pub host: String,
    /// Its data.
    #[serde(default)]
    pub data: String,
}

/// What `GET https://{host}/v2/{domain}/settings` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The DNS provider's id.
    pub provider_id: String,
    /// Its name.
    #[serde(default)]
    pub provider_name: Option<String>,
    /// Its name for display.
    #[serde(default)]
    pub provider_display_name: Option<String>,
    /// The synchronous flow's base URL, if offered.
    #[serde(default, rename = "urlSyncUX")]
    pub url_sync_ux: Option<String>,
    /// The asynchronous flow's base URL, if offered.
    #[serde(default, rename = "urlAsyncUX")]
    pub url_async_ux: Option<String>,
    /// The API's base URL.
    #[serde(rename = "urlAPI")]
    pub url_api: String,
    /// Popup width.
    #[serde(default)]
    pub width: Option<u32>,
    /// Popup height.
    #[serde(default)]
    pub height: Option<u32>,
    /// A deep link to edit the zone by hand (`%domain%` replaced).
    #[serde(default)]
    pub url_control_panel: Option<String>,
    /// The provider's name servers.
    #[serde(default)]
    pub name_servers: Vec<String>,
}

impl Settings {
    /// A name to show.
    pub fn display_name(&self) -> &str {
        self.provider_display_name
            .as_deref()
            .or(self.provider_name.as_deref())
            .unwrap_or(&self.provider_id)
    }
}

/// The base of a URL built from discovery: `https://{host}`, or the value itself if it
/// already has a scheme (HTTP only for loopback addresses: tests).
fn base_of(host: &str) -> Result<String, DcError> {
    let host = host.trim().trim_end_matches('/');
    if host.starts_with("https://") {
        return Ok(host.to_string());
    }
    if let Some(rest) = host.strip_prefix("http://") {
        let authority = rest.split('/').next().unwrap_or("");
        let h = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if h == "127.0.0.1" || h == "localhost" || h == "[::1]" {
            return Ok(host.to_string());
        }
        return Err(DcError::Config(format!("{host} must use https")));
    }
    Ok(format!("https://{host}"))
}

/// Discovery: the provider's settings for `domain` (the zone), from the host in the
/// zone's `_domainconnect` TXT record.
pub async fn discover(domain_connect_host: &str, domain: &str) -> Result<Settings, DcError> {
    let domain = normalize_name(domain);
    let url = format!("{}/v2/{domain}/settings", base_of(domain_connect_host)?);
    let client = http_client().map_err(|e| DcError::Config(e.to_string()))?;
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| DcError::Unreachable(transport_error(e).to_string()))?;
    let status = resp.status();
    if status.as_u16() == 404 {
        return Err(DcError::NotOffered(domain));
    }
    if status.is_server_error() {
        return Err(DcError::Unreachable(format!("HTTP {}", status.as_u16())));
    }
    let text = resp
        .text()
        .await
        .map_err(|e| DcError::Unreachable(e.to_string()))?;
    if !status.is_success() {
        // A stale `_domainconnect` record pointing at a provider that no longer hosts us.
        return Err(DcError::NotOffered(domain));
    }
    serde_json::from_str(&text)
        .map_err(|e| DcError::Rejected(format!("unreadable settings ({e}): {}", short(&text))))
}

/// Whether the provider knows our template (`GET {urlAPI}/v2/domainTemplates/providers/
/// {providerId}/services/{serviceId}`: 200 yes, 404 no).
pub async fn template_supported(
    settings: &Settings,
    provider_id: &str,
    service_id: &str,
) -> Result<bool, DcError> {
    let url = format!(
        "{}/v2/domainTemplates/providers/{provider_id}/services/{service_id}",
        base_of(&settings.url_api)?
    );
    let client = http_client().map_err(|e| DcError::Config(e.to_string()))?;
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| DcError::Unreachable(transport_error(e).to_string()))?;
    match resp.status().as_u16() {
        200..=299 => Ok(true),
        404 => Ok(false),
        500..=599 => Err(DcError::Unreachable(format!(
            "HTTP {}",
            resp.status().as_u16()
        ))),
        other => Err(DcError::Rejected(format!("HTTP {other}"))),
    }
}

/// The template's variables and groups for one relay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVars {
    /// Variable name → value.
    pub vars: BTreeMap<String, String>,
    /// The groups whose records are ready.
    pub groups: Vec<String>,
}

impl TemplateVars {
    /// The variables for `plan`'s ready records, and the `host` (the mail domain relative
    /// to `zone`, empty at the apex). Groups whose records are pending are left out.
    pub fn from_plan(plan: &DnsPlan, zone: &str) -> Result<(String, TemplateVars), DcError> {
        let domain = plan.domain().as_str().to_string();
        let zone = normalize_name(zone);
        if !(domain == zone || domain.ends_with(&format!(".{zone}"))) {
            return Err(DcError::Config(format!("{domain} is not inside {zone}")));
        }
        let host = relative(&domain, &zone);
        let mut v = TemplateVars::default();
        let group = |g: &str, v: &mut TemplateVars| {
            if !v.groups.iter().any(|x| x == g) {
                v.groups.push(g.to_string());
            }
        };
        for r in plan.ready_records() {
            let at = |prefix: &str| r.name == format!("{prefix}.{domain}");
            match &r.data {
                RecordData::A(a) => {
                    v.vars.insert("ip4".into(), a.to_string());
                    group("ipv4", &mut v);
                }
                RecordData::Aaaa(a) => {
                    v.vars.insert("ip6".into(), a.to_string());
                    group("ipv6", &mut v);
                }
                RecordData::Txt(t) => {
                    let text = t.joined();
                    if at("_mta-sts") {
                        if let Some(id) = text.split("id=").nth(1) {
                            v.vars.insert("stsid".into(), id.trim().to_string());
                        }
                    } else if r.name.ends_with(&format!("._domainkey.{domain}"))
                        && text.starts_with("v=DKIM1")
                    {
                        for part in text.split(';') {
                            if let Some(k) = part.trim().strip_prefix("k=") {
                                v.vars.insert("dkimalg".into(), k.to_string());
                            }
                            if let Some(p) = part.trim().strip_prefix("p=") {
                                v.vars.insert("dkimkey".into(), p.to_string());
                            }
                        }
                        group("dkim", &mut v);
                    } else if at("_smtp._tls") {
                        if let Some(rua) = text.split("mailto:").nth(1) {
                            v.vars.insert("tlsrptrua".into(), rua.trim().to_string());
                            group("tlsrpt", &mut v);
                        }
                    }
                }
                RecordData::Caa { value, .. } => {
                    let (issuer, account) = value
                        .split_once(";accounturi=")
                        .map(|(i, a)| (i.to_string(), a.to_string()))
                        .unwrap_or((value.clone(), String::new()));
                    v.vars.insert("caaissuer".into(), issuer);
                    v.vars.insert("acmeaccount".into(), account);
                    group("caa", &mut v);
                }
                RecordData::Srv { .. } => group("srv", &mut v),
                RecordData::Mx { .. } | RecordData::Cname(_) => group("mail", &mut v),
            }
        }
        Ok((host, v))
    }

    /// The `name=value` pairs for an apply URL: the variables, then `groupId`.
    fn pairs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !self.groups.is_empty() {
            out.push(("groupId".into(), self.groups.join(",")));
        }
        out
    }
}

/// A record of a template (the fields the relay's template uses; spec §“Template
/// Records”).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRecord {
    /// `A`, `AAAA`, `CNAME`, `MX`, `TXT`, `SRV`, `CAA`, `SPFM`, …
    #[serde(rename = "type")]
    pub rtype: String,
    /// Relative host (`@`: the applied `[host.]domain`).
    #[serde(default)]
    pub host: Option<String>,
    /// SRV: the name part.
    #[serde(default)]
    pub name: Option<String>,
    /// Target host or address.
    #[serde(default)]
    pub points_to: Option<String>,
    /// TXT/CAA data.
    #[serde(default)]
    pub data: Option<String>,
    /// TTL.
    #[serde(default)]
    pub ttl: Option<u32>,
    /// MX/SRV priority.
    #[serde(default)]
    pub priority: Option<u16>,
    /// SRV weight.
    #[serde(default)]
    pub weight: Option<u16>,
    /// SRV port.
    #[serde(default)]
    pub port: Option<u16>,
    /// SRV service (`_imaps`).
    #[serde(default)]
    pub service: Option<String>,
    /// SRV protocol (`_tcp`).
    #[serde(default)]
    pub protocol: Option<String>,
    /// SRV target.
    #[serde(default)]
    pub target: Option<String>,
    /// SPFM rules.
    #[serde(default)]
    pub spf_rules: Option<String>,
    /// The record's group.
    #[serde(default)]
    pub group_id: Option<String>,
}

/// A template (the fields the portal reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// The Service Provider's id.
    pub provider_id: String,
    /// The service's id.
    pub service_id: String,
    /// Where the signing key is published.
    #[serde(default)]
    pub sync_pub_key_domain: Option<String>,
    /// The records.
    pub records: Vec<TemplateRecord>,
}

impl Template {
    /// The shipped template.
    pub fn relay() -> Template {
        serde_json::from_str(TEMPLATE).expect("the shipped template is valid JSON")
    }

    /// The records a DNS provider creates when applying this template to `domain` with
    /// `host` and `vars` (groups as listed; all if empty), per the spec's variable rules
    /// (`%var%`, built-ins `%domain%`, `%host%`, `%fqdn%`; `@` is `[host.]domain`). SPFM
    /// becomes `v=spf1 <rules> ~all` (merging into an existing SPF is the provider's
    /// job). Used to check that the template matches the plan, and by test servers.
    pub fn expand(
        &self,
        domain: &str,
        host: &str,
        vars: &TemplateVars,
    ) -> Result<Vec<DnsRecord>, DcError> {
        let domain = normalize_name(domain);
        let host = normalize_name(host);
        let fqdn = if host.is_empty() {
            domain.clone()
        } else {
            format!("{host}.{domain}")
        };
        let subst = |s: &str| -> Result<String, DcError> {
            let mut out = String::new();
            let mut rest = s;
            while let Some(start) = rest.find('%') {
                out.push_str(&rest[..start]);
                let after = &rest[start + 1..];
                let end = after
                    .find('%')
                    .ok_or_else(|| DcError::Config(format!("unclosed variable in `{s}`")))?;
                let name = after[..end].to_ascii_lowercase();
                let value = match name.as_str() {
                    "domain" => domain.clone(),
                    "host" => host.clone(),
                    "fqdn" => fqdn.clone(),
                    other => vars
                        .vars
                        .get(other)
                        .cloned()
                        .ok_or_else(|| DcError::Config(format!("no value for %{other}%")))?,
                };
                out.push_str(&value);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Ok(out)
        };
        let name_of = |h: Option<&String>| -> Result<String, DcError> {
            let h = subst(h.map(String::as_str).unwrap_or("@"))?;
            Ok(if h.is_empty() || h == "@" {
                fqdn.clone()
            } else if h.ends_with('.') {
                normalize_name(&h)
            } else {
                format!("{}.{fqdn}", h.to_ascii_lowercase())
            })
        };
        let target_of = |t: Option<&String>| -> Result<String, DcError> {
            let t = subst(t.map(String::as_str).unwrap_or("@"))?;
            Ok(if t.is_empty() || t == "@" {
                fqdn.clone()
            } else {
                normalize_name(&t)
            })
        };
        let mut out = Vec::new();
        for r in &self.records {
            if !vars.groups.is_empty() {
                match &r.group_id {
                    Some(g) if !vars.groups.contains(g) => continue,
                    _ => {}
                }
            }
            let ttl = r.ttl.unwrap_or(3600);
            let bad = |e: String| DcError::Config(format!("template record {}: {e}", r.rtype));
            let (name, data) = match r.rtype.to_ascii_uppercase().as_str() {
                "A" | "AAAA" => {
                    let v = subst(r.points_to.as_deref().unwrap_or(""))?;
                    (
                        name_of(r.host.as_ref())?,
                        parse_rdata(&r.rtype, &v).map_err(bad)?,
                    )
                }
                "CNAME" => (
                    name_of(r.host.as_ref())?,
                    RecordData::Cname(target_of(r.points_to.as_ref())?),
                ),
                "MX" => (
                    name_of(r.host.as_ref())?,
                    RecordData::Mx {
                        preference: r.priority.unwrap_or(0),
                        exchange: target_of(r.points_to.as_ref())?,
                    },
                ),
                "TXT" => (
                    name_of(r.host.as_ref())?,
                    RecordData::Txt(TxtStrings::split(&subst(r.data.as_deref().unwrap_or(""))?)),
                ),
                "SPFM" => (
                    name_of(r.host.as_ref())?,
                    RecordData::Txt(TxtStrings::split(&format!(
                        "v=spf1 {} ~all",
                        subst(r.spf_rules.as_deref().unwrap_or(""))?
                    ))),
                ),
                "CAA" => (
                    name_of(r.host.as_ref())?,
                    parse_rdata("CAA", &subst(r.data.as_deref().unwrap_or(""))?).map_err(bad)?,
                ),
                "SRV" => {
                    let base = name_of(r.name.as_ref())?;
                    let service = subst(r.service.as_deref().unwrap_or(""))?;
                    let protocol = subst(r.protocol.as_deref().unwrap_or(""))?;
                    (
                        format!("{service}.{protocol}.{base}").to_ascii_lowercase(),
                        RecordData::Srv {
                            priority: r.priority.unwrap_or(0),
                            weight: r.weight.unwrap_or(0),
                            port: r.port.unwrap_or(0),
                            target: target_of(r.target.as_ref())?,
                        },
                    )
                }
                other => {
                    return Err(DcError::Config(format!(
                        "template record type {other} is not one the portal knows"
                    )))
                }
            };
            out.push(DnsRecord { name, ttl, data });
        }
        Ok(out)
    }
}

/// The portal as a Domain Connect Service Provider: its ids and its signing key.
pub struct ServiceProvider {
    provider_id: String,
    service_id: String,
    key_label: String,
    key: rsa::PrivateKey,
}

impl std::fmt::Debug for ServiceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProvider")
            .field("provider_id", &self.provider_id)
            .field("service_id", &self.service_id)
            .field("key_label", &self.key_label)
            .field("key", &"<hidden>")
            .finish()
    }
}

impl ServiceProvider {
    /// From the portal's configuration: the template's ids, the DNS label under which
    /// the public key is published (`key` in URLs, e.g. `_dck1`), and the RSA private key
    /// in PEM (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`; 2048 bits or
    /// more).
    pub fn from_pem(
        provider_id: &str,
        service_id: &str,
        key_label: &str,
        private_key_pem: &str,
    ) -> Result<Self, DcError> {
        let pem = Zeroizing::new(private_key_pem.trim().to_string());
        let key = rsa::PrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| rsa::PrivateKey::from_pkcs1_pem(&pem))
            .map_err(|_| {
                DcError::Config(
                    "the Domain Connect signing key is not an RSA private key in PEM".into(),
                )
            })?;
        if key.size() < 256 {
            return Err(DcError::Config(
                "the Domain Connect signing key must have at least 2048 bits".into(),
            ));
        }
        Ok(ServiceProvider {
            provider_id: provider_id.to_string(),
            service_id: service_id.to_string(),
            key_label: key_label.to_string(),
            key,
        })
    }

    /// The template's provider id.
    pub fn provider_id(&self) -> &str {
        &self.provider_id
    }

    /// The template's service id.
    pub fn service_id(&self) -> &str {
        &self.service_id
    }

    /// The TXT record values to publish at `<key label>.<syncPubKeyDomain>`:
    /// `p=1,a=RS256,d=<part>`, `p=2,…` over the base64 DER SubjectPublicKeyInfo.
    pub fn public_key_txt(&self) -> Vec<String> {
        let der = self
            .key
            .to_public_key()
            .to_public_key_der()
            .expect("an RSA public key encodes");
        let b64 = STANDARD.encode(der.as_bytes());
        b64.as_bytes()
            .chunks(200)
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "p={},a=RS256,d={}",
                    i + 1,
                    std::str::from_utf8(c).expect("base64 is ASCII")
                )
            })
            .collect()
    }

    /// Signs `query` (the exact query string) as the spec says: base64 of
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    pub fn sign(&self, query: &str) -> String {
        let sig = self
            .key
            .pkcs1v15_sign::<rsa::sha2::Sha256>(query.as_bytes())
            .expect("a 2048-bit key signs SHA-256");
        STANDARD.encode(sig)
    }

    /// The signed synchronous apply URL for `domain` (the zone) and `host` (the relay's
    /// name in it, empty at the apex). `redirect_uri` and `state` are optional (a popup
    /// is simply closed).
    pub fn sync_apply_url(
        &self,
        settings: &Settings,
        domain: &str,
        host: &str,
        vars: &TemplateVars,
        redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<String, DcError> {
        let base = settings.url_sync_ux.as_deref().ok_or_else(|| {
            DcError::NotOffered(format!("{} (no synchronous flow)", normalize_name(domain)))
        })?;
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("domain", &normalize_name(domain));
        q.append_pair("host", &normalize_name(host));
        for (k, v) in vars.pairs() {
            q.append_pair(&k, &v);
        }
        if let Some(r) = redirect_uri {
            q.append_pair("redirect_uri", r);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        let query = q.finish();
        let sig = self.sign(&query);
        let sig: String = form_urlencoded::byte_serialize(sig.as_bytes()).collect();
        let key: String = form_urlencoded::byte_serialize(self.key_label.as_bytes()).collect();
        Ok(format!(
            "{}/v2/domainTemplates/providers/{}/services/{}/apply?{query}&key={key}&sig={sig}",
            base_of(base)?,
            self.provider_id,
            self.service_id
        ))
    }
}

/// A DNS provider's asynchronous flow, pinned in the portal's configuration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncProvider {
    /// The DNS provider's id (as its settings say, e.g. `godaddy.com`).
    pub dns_provider_id: String,
    /// The consent base URL (`urlAsyncUX`).
    pub url_async_ux: String,
    /// The API base URL (`urlAPI`), never taken from discovery.
    pub url_api: String,
    /// The client id the DNS provider issued to the portal.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// The portal's callback URL.
    pub redirect_url: String,
}

impl std::fmt::Debug for AsyncProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncProvider")
            .field("dns_provider_id", &self.dns_provider_id)
            .field("url_async_ux", &self.url_async_ux)
            .field("url_api", &self.url_api)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<hidden>")
            .field("redirect_url", &self.redirect_url)
            .finish()
    }
}

/// Tokens from a Domain Connect asynchronous grant (seal them with
/// [`crate::Keyring::seal_value`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcTokens {
    /// The DNS provider's id.
    pub dns_provider_id: String,
    /// The zone the grant is for.
    pub domain: String,
    /// The host the grant is for.
    pub host: String,
    /// The access token.
    pub access_token: String,
    /// The refresh token, if any.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the access token expires (Unix seconds), if said.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for DcTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DcTokens")
            .field("dns_provider_id", &self.dns_provider_id)
            .field("domain", &self.domain)
            .field("host", &self.host)
            .field("access_token", &"<hidden>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Drop for DcTokens {
    fn drop(&mut self) {
        self.access_token.zeroize();
        if let Some(r) = self.refresh_token.as_mut() {
            r.zeroize();
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ConflictAnswer {
    #[serde(default)]
    records: Vec<ConflictRecord>,
}

impl AsyncProvider {
    /// Refuses discovered settings whose API is not the pinned one.
    pub fn check(&self, settings: &Settings) -> Result<(), DcError> {
        let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
        if settings.provider_id != self.dns_provider_id
            || norm(&settings.url_api) != norm(&self.url_api)
        {
            return Err(DcError::Config(format!(
                "the domain's Domain Connect settings (provider {}, API {}) do not match the \
                 configured provider {}",
                settings.provider_id, settings.url_api, self.dns_provider_id
            )));
        }
        Ok(())
    }

    /// The consent page for `service_id` of `sp_provider_id` on `domain`/`host`.
    pub fn consent_url(
        &self,
        sp_provider_id: &str,
        service_id: &str,
        domain: &str,
        host: &str,
        state: &str,
    ) -> Result<String, DcError> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", &self.client_id);
        q.append_pair("scope", service_id);
        q.append_pair("domain", &normalize_name(domain));
        q.append_pair("host", &normalize_name(host));
        q.append_pair("redirect_uri", &self.redirect_url);
        q.append_pair("response_type", "code");
        q.append_pair("state", state);
        Ok(format!(
            "{}/v2/domainTemplates/providers/{sp_provider_id}?{}",
            base_of(&self.url_async_ux)?,
            q.finish()
        ))
    }

    async fn token_call(&self, params: &[(&str, &str)]) -> Result<TokenAnswer, DcError> {
        let client = http_client().map_err(|e| DcError::Config(e.to_string()))?;
        let resp = client
            .post(format!("{}/v2/oauth/access_token", base_of(&self.url_api)?))
            .query(params)
            .send()
            .await
            .map_err(|e| DcError::Unreachable(transport_error(e).to_string()))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        match status.as_u16() {
            200..=299 => serde_json::from_str(&text)
                .map_err(|e| DcError::Rejected(format!("unreadable token answer ({e})"))),
            400 | 401 | 403 if text.contains("invalid_client") => Err(DcError::Config(
                "the DNS provider refused the portal's Domain Connect client".into(),
            )),
            400 | 401 | 403 => Err(DcError::Unauthorized(self.dns_provider_id.clone())),
            429 | 500..=599 => Err(DcError::Unreachable(format!("HTTP {}", status.as_u16()))),
            other => Err(DcError::Rejected(format!("HTTP {other}: {}", short(&text)))),
        }
    }

    /// Exchanges the consent's `code` for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        domain: &str,
        host: &str,
    ) -> Result<DcTokens, DcError> {
        let a = self
            .token_call(&[
                ("code", code),
                ("grant_type", "authorization_code"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("redirect_uri", &self.redirect_url),
            ])
            .await?;
        Ok(DcTokens {
            dns_provider_id: self.dns_provider_id.clone(),
            domain: normalize_name(domain),
            host: normalize_name(host),
            access_token: a.access_token,
            refresh_token: a.refresh_token,
            expires_at: a.expires_in.map(|s| unix_now() + s),
        })
    }

    /// New tokens from the refresh token.
    pub async fn refresh(&self, tokens: &DcTokens) -> Result<DcTokens, DcError> {
        let Some(refresh) = tokens.refresh_token.as_deref() else {
            return Err(DcError::Unauthorized(self.dns_provider_id.clone()));
        };
        let a = self
            .token_call(&[
                ("refresh_token", refresh),
                ("grant_type", "refresh_token"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("redirect_uri", &self.redirect_url),
            ])
            .await?;
        Ok(DcTokens {
            dns_provider_id: tokens.dns_provider_id.clone(),
            domain: tokens.domain.clone(),
            host: tokens.host.clone(),
            access_token: a.access_token,
            refresh_token: a.refresh_token.or_else(|| tokens.refresh_token.clone()),
            expires_at: a.expires_in.map(|s| unix_now() + s),
        })
    }

    /// Applies the template with `vars` to the granted domain and host. `force`
    /// overwrites conflicting records (only after the person confirmed them).
    pub async fn apply(
        &self,
        tokens: &DcTokens,
        sp_provider_id: &str,
        service_id: &str,
        vars: &TemplateVars,
        force: bool,
    ) -> Result<(), DcError> {
        // Built in a block: the serializer is not Send and must not live across an await.
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("domain", &tokens.domain);
            q.append_pair("host", &tokens.host);
            for (k, v) in vars.pairs() {
                q.append_pair(&k, &v);
            }
            q.append_pair("force", if force { "1" } else { "0" });
            q.finish()
        };
        let url = format!(
            "{}/v2/domainTemplates/providers/{sp_provider_id}/services/{service_id}/apply?{query}",
            base_of(&self.url_api)?,
        );
        let client = http_client().map_err(|e| DcError::Config(e.to_string()))?;
        let resp = client
            .post(url)
            .bearer_auth(&tokens.access_token)
            .send()
            .await
            .map_err(|e| DcError::Unreachable(transport_error(e).to_string()))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        match status.as_u16() {
            200..=299 => Ok(()),
            401 | 403 => Err(DcError::Unauthorized(self.dns_provider_id.clone())),
            404 => Err(DcError::TemplateUnknown(self.dns_provider_id.clone())),
            409 => Err(DcError::Conflict(
                serde_json::from_str::<ConflictAnswer>(&text)
                    .map(|c| c.records)
                    .unwrap_or_default(),
            )),
            429 | 500..=599 => Err(DcError::Unreachable(format!("HTTP {}", status.as_u16()))),
            other => Err(DcError::Rejected(format!("HTTP {other}: {}", short(&text)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_template_parses() {
        let t = Template::relay();
        assert_eq!(t.provider_id, PROVIDER_ID);
        assert_eq!(t.service_id, SERVICE_ID);
        assert!(t.records.iter().any(|r| r.rtype == "SPFM"));
        assert!(!t
            .records
            .iter()
            .any(|r| r.rtype == "TXT" && r.data.as_deref().unwrap_or("").starts_with("v=spf1")));
    }

    #[test]
    fn bases() {
        assert_eq!(base_of("dc.example").unwrap(), "https://dc.example");
        assert_eq!(base_of("dc.example/x/").unwrap(), "https://dc.example/x");
        assert_eq!(
            base_of("http://127.0.0.1:8/a").unwrap(),
            "http://127.0.0.1:8/a"
        );
        assert!(base_of("http://dc.example").is_err());
    }
}
