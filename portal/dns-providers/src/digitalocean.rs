//! DigitalOcean's API v2 (domains and domain records), with an OAuth access token or a
//! personal access token (both `Authorization: Bearer`).
//!
//! API facts (research/registrars.md §2.2; <https://docs.digitalocean.com/reference/api/digitalocean/#tag/Domain-Records>,
//! <https://docs.digitalocean.com/reference/api/digitalocean/#section/Introduction/Links-and-Pagination>,
//! <https://docs.digitalocean.com/reference/api/digitalocean/#section/Introduction/Rate-Limit>):
//!
//! * `GET /domains` and `GET /domains/{domain}/records` are paged with `page` and
//!   `per_page` (at most 200); `links.pages.next` is present while more pages follow.
//! * A record is `{id, type, name, data, priority, port, weight, ttl, flags, tag}`; `name`
//!   is relative to the domain (`@` for the apex); host names in `data` are sent
//!   absolute with the trailing dot (a name without one would be taken as relative).
//!   CAA has `flags`, `tag` and the value in `data`; SRV has `priority`, `weight`,
//!   `port` and the target in `data`. TXT `data` is the raw text (DigitalOcean quotes and
//!   splits it itself).
//! * TTL: at least 30 s ([`DigitalOcean::effective_ttl`]).
//! * Records are created, updated (`PUT …/records/{id}`) and deleted one by one; the ids
//!   are mapped per record by [`crate::record_ops`] from the records present at the start
//!   of each `apply`, so a repeated `apply` converges without duplicates.
//! * Errors are `{id, message}`; 401 `unauthorized`, 403 `forbidden` (a token without
//!   write scope), 404 `not_found`, 429 `too_many_requests` (5000 requests an hour, 250 a
//!   minute) with `Retry-After` or `ratelimit-reset` (a Unix time).

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
pub const BASE_URL: &str = "https://api.digitalocean.com/v2";

/// DigitalOcean through API v2.
pub struct DigitalOcean {
    base: String,
    token: Zeroizing<String>,
    client: reqwest::Client,
    advice: Advice,
}

impl std::fmt::Debug for DigitalOcean {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigitalOcean")
            .field("base", &self.base)
            .field("token", &"<hidden>")
            .finish()
    }
}

/// Advice for a personal access token.
pub fn token_advice() -> Advice {
    Advice {
        wrong_key: "DigitalOcean did not accept the token. Copy the whole personal access \
                    token (it starts with dop_v1_) again, and check under API → Tokens that \
                    it has not expired or been deleted."
            .into(),
        no_permission: "The DigitalOcean token may not change DNS records: create a token \
                        under API → Tokens with Write access, or with the custom scopes \
                        domain:read, domain:create, domain:update and domain:delete."
            .into(),
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize, Default)]
struct Links {
    #[serde(default)]
    pages: Option<Pages>,
}

#[derive(Deserialize, Default)]
struct Pages {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct DomainList {
    #[serde(default)]
    domains: Vec<Domain>,
    #[serde(default)]
    links: Option<Links>,
}

#[derive(Deserialize)]
struct Domain {
    name: String,
}

#[derive(Deserialize)]
struct RecordList {
    #[serde(default)]
    domain_records: Vec<DoRecord>,
    #[serde(default)]
    links: Option<Links>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default)]
struct DoRecord {
    #[serde(default, skip_serializing)]
    id: u64,
    #[serde(rename = "type")]
    rtype: String,
    name: String,
    #[serde(default)]
    data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<u16>,
    #[serde(default)]
    ttl: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flags: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
}

fn has_next(links: &Option<Links>) -> bool {
    links
        .as_ref()
        .and_then(|l| l.pages.as_ref())
        .and_then(|p| p.next.as_ref())
        .is_some()
}

impl DigitalOcean {
    /// A client with a personal access token.
    pub fn with_token(token: &str) -> Result<Self, ProviderError> {
        Self::new(token, token_advice())
    }

    /// A client with an OAuth access token (see [`crate::oauth`]).
    pub fn with_oauth_token(access_token: &str) -> Result<Self, ProviderError> {
        Self::new(access_token, Advice::reconnect("DigitalOcean"))
    }

    fn new(token: &str, advice: Advice) -> Result<Self, ProviderError> {
        Ok(DigitalOcean {
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

    /// The TTL DigitalOcean stores for `ttl`: at least 30 s.
    pub fn effective_ttl(ttl: u32) -> u32 {
        ttl.max(30)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&DoRecord>,
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
        let detail = serde_json::from_str::<ErrorBody>(&text)
            .map(|e| format!("{} ({})", e.message, e.id))
            .unwrap_or_else(|_| short(&text));
        Err(status_error(status, &headers, &detail, zone, &self.advice))
    }

    fn body(zone: &str, name: &str, ttl: u32, value: &RecordData) -> DoRecord {
        let host = |h: &str| format!("{}.", normalize_name(h));
        let rel = relative(name, zone);
        let mut r = DoRecord {
            rtype: value.rtype().to_string(),
            name: if rel.is_empty() { "@".into() } else { rel },
            ttl,
            ..Default::default()
        };
        match value {
            RecordData::A(a) => r.data = a.to_string(),
            RecordData::Aaaa(a) => r.data = a.to_string(),
            RecordData::Cname(t) => r.data = host(t),
            RecordData::Mx {
                preference,
                exchange,
            } => {
                r.data = host(exchange);
                r.priority = Some(*preference);
            }
            RecordData::Txt(t) => r.data = t.joined(),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                r.data = host(target);
                r.priority = Some(*priority);
                r.weight = Some(*weight);
                r.port = Some(*port);
            }
            RecordData::Caa { flags, tag, value } => {
                r.data = value.clone();
                r.flags = Some(*flags);
                r.tag = Some(tag.clone());
            }
        }
        r
    }
}

fn to_api(r: DoRecord, zone: &str) -> ApiRecord {
    let rtype = r.rtype.to_ascii_uppercase();
    let parsed = match rtype.as_str() {
        "A" | "AAAA" => parse_rdata(&rtype, &r.data).ok(),
        "CNAME" => Some(RecordData::Cname(host_from_api(&r.data, zone))),
        "MX" => Some(RecordData::Mx {
            preference: r.priority.unwrap_or(0),
            exchange: host_from_api(&r.data, zone),
        }),
        "TXT" => Some(RecordData::Txt(txt_from_api(&r.data))),
        "SRV" => Some(RecordData::Srv {
            priority: r.priority.unwrap_or(0),
            weight: r.weight.unwrap_or(0),
            port: r.port.unwrap_or(0),
            target: host_from_api(&r.data, zone),
        }),
        "CAA" => Some(RecordData::Caa {
            flags: r.flags.unwrap_or(0),
            tag: r.tag.clone().unwrap_or_default(),
            value: r.data.clone(),
        }),
        _ => None,
    };
    ApiRecord {
        id: r.id.to_string(),
        name: absolute(&r.name, zone),
        rtype,
        ttl: r.ttl,
        content: match parsed {
            Some(d) => Content::Data(d),
            None => Content::Other(r.data),
        },
    }
}

#[async_trait]
impl RecordApi for DigitalOcean {
    type Zone = String;

    async fn zone(&self, zone: &str) -> Result<String, ProviderError> {
        let name = normalize_name(zone);
        self.send(
            Method::GET,
            &format!("/domains/{name}"),
            &[],
            None,
            Some(&name),
        )
        .await?;
        Ok(name)
    }

    async fn records(&self, zone: &String) -> Result<Vec<ApiRecord>, ProviderError> {
        let mut out = Vec::new();
        for page in 1..=10_000u32 {
            let resp = self
                .send(
                    Method::GET,
                    &format!("/domains/{zone}/records"),
                    &[("page", page.to_string()), ("per_page", "200".into())],
                    None,
                    Some(zone),
                )
                .await?;
            let list: RecordList = json(resp, "DigitalOcean").await?;
            let n = list.domain_records.len();
            out.extend(list.domain_records.into_iter().map(|r| to_api(r, zone)));
            if !has_next(&list.links) || n == 0 {
                break;
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        zone: &String,
        name: &str,
        ttl: u32,
        value: &RecordData,
    ) -> Result<(), ProviderError> {
        let body = Self::body(zone, name, ttl, value);
        self.send(
            Method::POST,
            &format!("/domains/{zone}/records"),
            &[],
            Some(&body),
            Some(zone),
        )
        .await
        .map(|_| ())
    }

    async fn update(
        &self,
        zone: &String,
        id: &str,
        name: &str,
        ttl: u32,
        value: &RecordData,
    ) -> Result<(), ProviderError> {
        let body = Self::body(zone, name, ttl, value);
        self.send(
            Method::PUT,
            &format!("/domains/{zone}/records/{id}"),
            &[],
            Some(&body),
            Some(zone),
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, zone: &String, id: &str) -> Result<(), ProviderError> {
        match self
            .send(
                Method::DELETE,
                &format!("/domains/{zone}/records/{id}"),
                &[],
                None,
                Some(zone),
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
impl DnsProvider for DigitalOcean {
    fn name(&self) -> &str {
        "DigitalOcean"
    }

    fn effective_ttl(&self, ttl: u32) -> u32 {
        DigitalOcean::effective_ttl(ttl)
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        let mut out = Vec::new();
        for page in 1..=10_000u32 {
            let resp = self
                .send(
                    Method::GET,
                    "/domains",
                    &[("page", page.to_string()), ("per_page", "200".into())],
                    None,
                    None,
                )
                .await?;
            let list: DomainList = json(resp, "DigitalOcean").await?;
            let n = list.domains.len();
            out.extend(list.domains.into_iter().map(|d| normalize_name(&d.name)));
            if !has_next(&list.links) || n == 0 {
                break;
            }
        }
        Ok(out)
    }

    async fn read(&self, zone: &str) -> Result<ZoneContents, ProviderError> {
        record_ops::read(self, zone).await
    }

    async fn apply(&self, zone: &str, changes: &[Change]) -> Result<(), ProviderError> {
        record_ops::apply(self, zone, changes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_reading() {
        let b = DigitalOcean::body(
            "example.org",
            "example.org",
            3600,
            &RecordData::Mx {
                preference: 10,
                exchange: "chat.example.org".into(),
            },
        );
        assert_eq!(
            (b.name.as_str(), b.data.as_str()),
            ("@", "chat.example.org.")
        );
        let r = to_api(
            DoRecord {
                id: 7,
                rtype: "CNAME".into(),
                name: "www".into(),
                data: "@".into(),
                ttl: 1800,
                ..Default::default()
            },
            "example.org",
        );
        assert_eq!(r.name, "www.example.org");
        assert_eq!(r.key(), "example.org");
        assert_eq!(r.id, "7");
    }
}
