//! Linode's (Akamai Cloud's) API v4 DNS Manager, with an OAuth access token or a personal
//! access token (both `Authorization: Bearer`).
//!
//! API facts (research/registrars.md §2.2; <https://techdocs.akamai.com/linode-api/reference/get-domains>,
//! <https://techdocs.akamai.com/linode-api/reference/get-domain-records>,
//! <https://techdocs.akamai.com/linode-api/reference/post-domain-record>,
//! <https://techdocs.akamai.com/linode-api/reference/pagination>):
//!
//! * Lists are `{data, page, pages, results}`, paged with `page` and `page_size` (25–500).
//! * Domains are addressed by numeric id: `GET /domains` finds it by `domain`.
//! * A record is `{id, type, name, target, priority, weight, port, service, protocol,
//!   ttl_sec, tag}`; `name` is relative to the domain (`""` for the apex); host names in
//!   `target` are sent absolute without the trailing dot; TXT `target` is the raw text;
//!   CAA has `tag` and the value in `target` (flags are always 0).
//! * SRV: `name` is unused; `service` and `protocol` get their underscore prepended by
//!   Linode, and an SRV record always belongs to the domain's apex ("to enable an SRV on a
//!   subdomain, you must create a separate zone", DNS Manager guide). A relay on a
//!   sub-domain therefore gets a plain-language refusal for its SRV records, with the
//!   remedy (add the sub-domain as its own domain at Linode).
//! * `ttl_sec` must be one of 300, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600,
//!   604800, 1209600, 2419200 ("any other value will be rounded to the nearest valid
//!   value"); the portal rounds *up* to the next one ([`Linode::effective_ttl`]); 0 means
//!   the domain's default.
//! * One request per record; ids mapped by [`crate::record_ops`].
//! * Errors are `{errors:[{reason, field}]}`: 401 invalid token, 403 missing scope, 404,
//!   429 with Retry-After.

use async_trait::async_trait;
use chatmail_shared::RecordData;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::ProviderError;
use crate::http::{
    absolute, host_from_api, http_client, json, relative, short, status_error, transport_error,
    txt_from_api, Advice,
};
use crate::provider::{Change, DnsProvider};
use crate::record_ops::{self, ApiRecord, Content, RecordApi};
use crate::records::{normalize_name, parse_rdata, ZoneContents};

/// The API's address.
pub const BASE_URL: &str = "https://api.linode.com/v4";

/// The TTLs Linode accepts, in seconds.
pub const VALID_TTLS: [u32; 12] = [
    300, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600, 604800, 1209600, 2419200,
];

/// Linode through API v4.
pub struct Linode {
    base: String,
    token: Zeroizing<String>,
    client: reqwest::Client,
    advice: Advice,
}

impl std::fmt::Debug for Linode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linode")
            .field("base", &self.base)
            .field("token", &"<hidden>")
            .finish()
    }
}

/// Advice for a personal access token.
pub fn token_advice() -> Advice {
    Advice {
        wrong_key: "Linode did not accept the token. Copy the whole personal access token \
                    again, and check in Cloud Manager (your profile → API Tokens) that it \
                    has not expired or been revoked."
            .into(),
        no_permission: "The Linode token may not change DNS records: create a personal \
                        access token with Domains set to Read/Write."
            .into(),
    }
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    page: u32,
    #[serde(default)]
    pages: u32,
}

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<Reason>,
}

#[derive(Deserialize)]
struct Reason {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    field: Option<String>,
}

#[derive(Deserialize)]
struct Domain {
    id: u64,
    domain: String,
    #[serde(default)]
    ttl_sec: u32,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default)]
struct LinRecord {
    #[serde(default, skip_serializing)]
    id: u64,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(default)]
    ttl_sec: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
}

/// A Linode domain: its id, name and default TTL.
#[derive(Debug, Clone)]
pub struct DomainRef {
    id: u64,
    name: String,
    default_ttl: u32,
}

impl Linode {
    /// A client with a personal access token.
    pub fn with_token(token: &str) -> Result<Self, ProviderError> {
        Self::new(token, token_advice())
    }

    /// A client with an OAuth access token (see [`crate::oauth`]).
    pub fn with_oauth_token(access_token: &str) -> Result<Self, ProviderError> {
        Self::new(access_token, Advice::reconnect("Linode"))
    }

    fn new(token: &str, advice: Advice) -> Result<Self, ProviderError> {
        Ok(Linode {
            base: BASE_URL.to_string(),
            token: Zeroizing::new(token.trim().to_string()),
            client: http_client()?,
            advice,
        })
    }

    /// The same client talking to `base` (tests: a local server).
    pub fn with_base_url(mut self, base: &str) -> Self {
        self.base = base.trim_end_matches('/').to_string();
        self
    }

    /// The TTL Linode stores for `ttl`: the next valid value up (at most four weeks).
    pub fn effective_ttl(ttl: u32) -> u32 {
        VALID_TTLS
            .iter()
            .copied()
            .find(|v| *v >= ttl)
            .unwrap_or(VALID_TTLS[VALID_TTLS.len() - 1])
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&LinRecord>,
        zone: Option<&str>,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.as_str())
            .query(query);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(transport_error)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<Errors>(&text)
            .map(|e| {
                e.errors
                    .iter()
                    .map(|r| match &r.field {
                        Some(f) => format!("{f}: {}", r.reason),
                        None => r.reason.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|_| short(&text));
        Err(status_error(status, &headers, &detail, zone, &self.advice))
    }

    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        zone: Option<&str>,
    ) -> Result<Vec<T>, ProviderError> {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let resp = self
                .send(
                    Method::GET,
                    path,
                    &[("page", page.to_string()), ("page_size", "500".into())],
                    None,
                    zone,
                )
                .await?;
            let p: Page<T> = json(resp, "Linode").await?;
            let n = p.data.len();
            out.extend(p.data);
            if p.page >= p.pages || n == 0 || page >= 10_000 {
                break;
            }
            page = p.page + 1;
        }
        Ok(out)
    }

    async fn domains(&self) -> Result<Vec<Domain>, ProviderError> {
        self.pages("/domains", None).await
    }

    fn body(
        zone: &str,
        name: &str,
        ttl: u32,
        value: &RecordData,
    ) -> Result<LinRecord, ProviderError> {
        let host = |h: &str| normalize_name(h);
        let mut r = LinRecord {
            rtype: value.rtype().to_string(),
            name: relative(name, zone),
            ttl_sec: ttl,
            ..Default::default()
        };
        match value {
            RecordData::A(a) => r.target = a.to_string(),
            RecordData::Aaaa(a) => r.target = a.to_string(),
            RecordData::Cname(t) => r.target = host(t),
            RecordData::Mx {
                preference,
                exchange,
            } => {
                r.target = host(exchange);
                r.priority = Some(*preference);
            }
            RecordData::Txt(t) => r.target = t.joined(),
            RecordData::Caa { flags, tag, value } => {
                if *flags != 0 {
                    return Err(ProviderError::Rejected(
                        "Linode cannot store CAA records with flags other than 0".into(),
                    ));
                }
                r.target = value.clone();
                r.tag = Some(tag.clone());
            }
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                let rel = relative(name, zone);
                let mut labels = rel.splitn(3, '.');
                let (Some(service), Some(protocol)) = (labels.next(), labels.next()) else {
                    return Err(srv_refusal(name, zone));
                };
                if labels.next().is_some()
                    || !service.starts_with('_')
                    || !protocol.starts_with('_')
                {
                    return Err(srv_refusal(name, zone));
                }
                r.name = String::new();
                r.service = Some(service.trim_start_matches('_').to_string());
                r.protocol = Some(protocol.trim_start_matches('_').to_string());
                r.target = host(target);
                r.priority = Some(*priority);
                r.weight = Some(*weight);
                r.port = Some(*port);
            }
        }
        Ok(r)
    }
}

fn srv_refusal(name: &str, zone: &str) -> ProviderError {
    ProviderError::Rejected(format!(
        "Linode keeps service (SRV) records only at the top of a domain, so {name} cannot be \
         written in {zone}. Add the relay's domain as its own domain in Linode's DNS Manager \
         (and delegate it there), or leave these optional records out."
    ))
}

fn to_api(r: LinRecord, zone: &DomainRef) -> ApiRecord {
    let rtype = r.rtype.to_ascii_uppercase();
    let z = zone.name.as_str();
    let parsed = match rtype.as_str() {
        "A" | "AAAA" => parse_rdata(&rtype, &r.target).ok(),
        "CNAME" => Some(RecordData::Cname(host_from_api(&r.target, z))),
        "MX" => Some(RecordData::Mx {
            preference: r.priority.unwrap_or(0),
            exchange: host_from_api(&r.target, z),
        }),
        "TXT" => Some(RecordData::Txt(txt_from_api(&r.target))),
        "SRV" => Some(RecordData::Srv {
            priority: r.priority.unwrap_or(0),
            weight: r.weight.unwrap_or(0),
            port: r.port.unwrap_or(0),
            target: host_from_api(&r.target, z),
        }),
        "CAA" => Some(RecordData::Caa {
            flags: 0,
            tag: r.tag.clone().unwrap_or_default(),
            value: r.target.clone(),
        }),
        _ => None,
    };
    let name = if rtype == "SRV" {
        let svc = r.service.clone().unwrap_or_default();
        let proto = r.protocol.clone().unwrap_or_default();
        format!(
            "_{}._{}.{z}",
            svc.trim_start_matches('_'),
            proto.trim_start_matches('_')
        )
    } else {
        absolute(&r.name, z)
    };
    ApiRecord {
        id: r.id.to_string(),
        name,
        rtype,
        ttl: if r.ttl_sec == 0 {
            zone.default_ttl
        } else {
            r.ttl_sec
        },
        content: match parsed {
            Some(d) => Content::Data(d),
            None => Content::Other(r.target),
        },
    }
}

#[async_trait]
impl RecordApi for Linode {
    type Zone = DomainRef;

    async fn zone(&self, zone: &str) -> Result<DomainRef, ProviderError> {
        let name = normalize_name(zone);
        self.domains()
            .await?
            .into_iter()
            .find(|d| normalize_name(&d.domain) == name)
            .map(|d| DomainRef {
                id: d.id,
                name: name.clone(),
                default_ttl: if d.ttl_sec == 0 { 86400 } else { d.ttl_sec },
            })
            .ok_or(ProviderError::ZoneNotFound { domain: name })
    }

    async fn records(&self, zone: &DomainRef) -> Result<Vec<ApiRecord>, ProviderError> {
        let recs: Vec<LinRecord> = self
            .pages(&format!("/domains/{}/records", zone.id), Some(&zone.name))
            .await?;
        Ok(recs.into_iter().map(|r| to_api(r, zone)).collect())
    }

    async fn create(
        &self,
        zone: &DomainRef,
        name: &str,
        ttl: u32,
        value: &RecordData,
    ) -> Result<(), ProviderError> {
        let body = Self::body(&zone.name, name, ttl, value)?;
        self.send(
            Method::POST,
            &format!("/domains/{}/records", zone.id),
            &[],
            Some(&body),
            Some(&zone.name),
        )
        .await
        .map(|_| ())
    }

    async fn update(
        &self,
        zone: &DomainRef,
        id: &str,
        name: &str,
        ttl: u32,
        value: &RecordData,
    ) -> Result<(), ProviderError> {
        let body = Self::body(&zone.name, name, ttl, value)?;
        self.send(
            Method::PUT,
            &format!("/domains/{}/records/{id}", zone.id),
            &[],
            Some(&body),
            Some(&zone.name),
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, zone: &DomainRef, id: &str) -> Result<(), ProviderError> {
        match self
            .send(
                Method::DELETE,
                &format!("/domains/{}/records/{id}", zone.id),
                &[],
                None,
                Some(&zone.name),
            )
            .await
        {
            Ok(_) | Err(ProviderError::ZoneNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn clamp_ttl(&self, ttl: u32) -> u32 {
        Self::effective_ttl(ttl)
    }
}

#[async_trait]
impl DnsProvider for Linode {
    fn name(&self) -> &str {
        "Linode"
    }

    fn effective_ttl(&self, ttl: u32) -> u32 {
        Linode::effective_ttl(ttl)
    }

    fn unsupported(&self, zone: &str, record: &chatmail_shared::DnsRecord) -> Option<String> {
        Self::body(zone, &record.name, 3600, &record.data)
            .err()
            .map(|e| match e {
                ProviderError::Rejected(m) => m,
                other => other.to_string(),
            })
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        Ok(self
            .domains()
            .await?
            .into_iter()
            .map(|d| normalize_name(&d.domain))
            .collect())
    }

    async fn read(&self, zone: &str) -> Result<ZoneContents, ProviderError> {
        record_ops::read(self, zone).await
    }

    async fn apply(&self, zone: &str, changes: &[Change]) -> Result<(), ProviderError> {
        // Refuse what Linode cannot hold before anything is sent.
        for c in changes {
            if let Change::Put { values, name, .. }
            | Change::Merge {
                add: values, name, ..
            } = c
            {
                for v in values {
                    Self::body(zone, name, 3600, v)?;
                }
            }
        }
        record_ops::apply(self, zone, changes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up() {
        assert_eq!(Linode::effective_ttl(60), 300);
        assert_eq!(Linode::effective_ttl(3600), 3600);
        assert_eq!(Linode::effective_ttl(3601), 7200);
        assert_eq!(Linode::effective_ttl(u32::MAX), 2419200);
    }

    #[test]
    fn srv_only_at_the_apex() {
        let srv = RecordData::Srv {
            priority: 0,
            weight: 1,
            port: 993,
            target: "example.org".into(),
        };
        let ok = Linode::body("example.org", "_imaps._tcp.example.org", 3600, &srv).unwrap();
        assert_eq!(ok.service.as_deref(), Some("imaps"));
        assert_eq!(ok.protocol.as_deref(), Some("tcp"));
        let e =
            Linode::body("example.org", "_imaps._tcp.chat.example.org", 3600, &srv).unwrap_err();
        assert!(e.to_string().contains("own domain"), "{e}");
        let back = to_api(
            LinRecord {
                id: 3,
                rtype: "SRV".into(),
                service: Some("_imaps".into()),
                protocol: Some("tcp".into()),
                target: "example.org".into(),
                port: Some(993),
                weight: Some(1),
                priority: Some(0),
                ..Default::default()
            },
            &DomainRef {
                id: 1,
                name: "example.org".into(),
                default_ttl: 86400,
            },
        );
        assert_eq!(back.name, "_imaps._tcp.example.org");
        assert_eq!(back.ttl, 86400);
    }
}
