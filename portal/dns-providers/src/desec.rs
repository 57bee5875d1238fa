//! deSEC (desec.io), with an API token (`Authorization: Token …`).
//!
//! API facts (research/registrars.md §2.2; <https://desec.readthedocs.io/en/latest/dns/domains.html>,
//! <https://desec.readthedocs.io/en/latest/dns/rrsets.html> (“Bulk operations”,
//! “Pagination”), <https://desec.readthedocs.io/en/latest/rate-limits.html>):
//!
//! * `GET /domains/` and `GET /domains/{name}/rrsets/` are paginated at 500 items with a
//!   cursor: omitting `cursor` makes the API answer 400 once a list is longer than one
//!   page, so the first request always sends `?cursor=` and then follows the `Link`
//!   header's `rel="next"` URL.
//! * An RRset is `{subname, type, ttl, records}`; `subname` is relative (`""` for the
//!   apex); records are in presentation form (TXT quoted, each string at most 255
//!   bytes; host names absolute with the trailing dot).
//! * `PATCH /domains/{name}/rrsets/` with a list changes many RRsets **atomically**; an
//!   RRset with `records: []` is deleted. One `apply` is one such request (deSEC's write
//!   limits per domain are tight: 2/s, 15/min, 100/h, 300/day).
//! * TTL: at least the domain's `minimum_ttl` (3600 s unless deSEC lowered it for the
//!   account), read from `GET /domains/{name}/` ([`Desec::effective_ttl`]).
//! * Errors are `{detail}`: 401 invalid token, 403 (a token policy forbids it), 404,
//!   429 "Request was throttled" with Retry-After, 400 with per-RRset field errors.

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use chatmail_shared::RecordData;
use reqwest::header::{HeaderMap, LINK};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::error::ProviderError;
use crate::http::{absolute, http_client, relative, short, status_error, transport_error, Advice};
use crate::provider::{validate, Change, DnsProvider};
use crate::records::{normalize_name, ZoneContents};
use crate::rrsets::{self, RrSet, RrSetOp};

/// The API's address.
pub const BASE_URL: &str = "https://desec.io/api/v1";

/// deSEC's default minimum TTL for a domain.
pub const DEFAULT_MINIMUM_TTL: u32 = 3600;

/// deSEC's maximum TTL (one week).
pub const MAXIMUM_TTL: u32 = 604_800;

/// deSEC through its REST API.
pub struct Desec {
    base: String,
    token: Zeroizing<String>,
    client: reqwest::Client,
    advice: Advice,
    minimum_ttl: AtomicU32,
}

impl std::fmt::Debug for Desec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desec")
            .field("base", &self.base)
            .field("token", &"<hidden>")
            .finish()
    }
}

/// Advice for a deSEC token.
pub fn token_advice() -> Advice {
    Advice {
        wrong_key: "deSEC did not accept the token. Copy the whole token again; tokens are \
                    made at desec.io under Token Management, and are shown only once."
            .into(),
        no_permission: "The deSEC token may not change this domain: under Token Management, \
                        give the token a policy that allows writing this domain's records \
                        (or create a token without restricting policies)."
            .into(),
    }
}

#[derive(Deserialize)]
struct DomainInfo {
    name: String,
    #[serde(default)]
    minimum_ttl: Option<u32>,
}

#[derive(Deserialize)]
struct DsRrSet {
    #[serde(default)]
    subname: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    records: Vec<String>,
}

/// The `rel="next"` URL of a `Link` header (RFC 8288).
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

impl Desec {
    /// A client with an API token.
    pub fn new(token: &str) -> Result<Self, ProviderError> {
        Ok(Desec {
            base: BASE_URL.to_string(),
            token: Zeroizing::new(token.trim().to_string()),
            client: http_client()?,
            advice: token_advice(),
            minimum_ttl: AtomicU32::new(DEFAULT_MINIMUM_TTL),
        })
    }

    /// The same client talking to `base` (tests: a local server).
    pub fn with_base_url(mut self, base: &str) -> Self {
        self.base = base.trim_end_matches('/').to_string();
        self
    }

    fn clamp(&self, ttl: u32) -> u32 {
        ttl.clamp(self.minimum_ttl.load(Ordering::Relaxed), MAXIMUM_TTL)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        zone: Option<&str>,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut req = self
            .client
            .request(method, url)
            .header("Authorization", format!("Token {}", self.token.as_str()));
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
        let detail = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(o)) => o
                .get("detail")
                .and_then(|d| d.as_str().map(str::to_string))
                .unwrap_or_else(|| short(&text)),
            _ => short(&text),
        };
        Err(status_error(status, &headers, &detail, zone, &self.advice))
    }

    /// Every item of a cursor-paginated list.
    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        first: String,
        zone: Option<&str>,
    ) -> Result<Vec<T>, ProviderError> {
        let mut out = Vec::new();
        let mut url = Some(first);
        let mut pages = 0;
        while let Some(u) = url.take() {
            let resp = self.send(Method::GET, &u, None, zone).await?;
            url = next_link(resp.headers());
            let text = resp.text().await.map_err(transport_error)?;
            let items: Vec<T> = serde_json::from_str(&text)
                .map_err(|e| ProviderError::Other(format!("unreadable answer from deSEC: {e}")))?;
            out.extend(items);
            pages += 1;
            if pages >= 10_000 {
                break;
            }
        }
        Ok(out)
    }

    async fn rrsets(&self, zone: &str) -> Result<(String, Vec<RrSet>), ProviderError> {
        let zone = normalize_name(zone);
        let resp = self
            .send(
                Method::GET,
                &format!("{}/domains/{zone}/", self.base),
                None,
                Some(&zone),
            )
            .await?;
        let text = resp.text().await.map_err(transport_error)?;
        if let Ok(info) = serde_json::from_str::<DomainInfo>(&text) {
            if let Some(min) = info.minimum_ttl {
                self.minimum_ttl.store(min, Ordering::Relaxed);
            }
        }
        let sets: Vec<DsRrSet> = self
            .all(
                format!("{}/domains/{zone}/rrsets/?cursor=", self.base),
                Some(&zone),
            )
            .await?;
        let out = sets
            .into_iter()
            .map(|s| RrSet {
                name: absolute(&s.subname, &zone),
                rtype: s.rtype.to_ascii_uppercase(),
                ttl: s.ttl,
                values: s.records,
            })
            .collect();
        Ok((zone, out))
    }
}

fn render(v: &RecordData) -> String {
    v.presentation()
}

#[async_trait]
impl DnsProvider for Desec {
    fn name(&self) -> &str {
        "deSEC"
    }

    fn effective_ttl(&self, ttl: u32) -> u32 {
        self.clamp(ttl)
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        let domains: Vec<DomainInfo> = self
            .all(format!("{}/domains/?cursor=", self.base), None)
            .await?;
        Ok(domains
            .into_iter()
            .map(|d| normalize_name(&d.name))
            .collect())
    }

    async fn read(&self, zone: &str) -> Result<ZoneContents, ProviderError> {
        Ok(rrsets::contents(&self.rrsets(zone).await?.1))
    }

    async fn apply(&self, zone: &str, changes: &[Change]) -> Result<(), ProviderError> {
        validate(zone, changes)?;
        if changes.is_empty() {
            return Ok(());
        }
        let (zone, current) = self.rrsets(zone).await?;
        let mut bulk = Vec::new();
        for change in changes {
            let clamp = |t: u32| self.clamp(t);
            match rrsets::plan(change, &current, &render, &clamp) {
                None => {}
                Some(RrSetOp::Delete { name, rtype }) => bulk.push(json!({
                    "subname": relative(&name, &zone), "type": rtype, "records": [],
                })),
                Some(RrSetOp::Set {
                    name,
                    rtype,
                    ttl,
                    values,
                    ..
                }) => bulk.push(json!({
                    // deSEC refuses every RRset of a PATCH below the domain's minimum,
                    // also one that keeps an older, lower TTL of someone else's values.
                    "subname": relative(&name, &zone), "type": rtype, "ttl": self.clamp(ttl),
                    "records": values,
                })),
            }
        }
        if bulk.is_empty() {
            return Ok(());
        }
        self.send(
            Method::PATCH,
            &format!("{}/domains/{zone}/rrsets/", self.base),
            Some(&Value::Array(bulk)),
            Some(&zone),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn link_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(next_link(&h), None);
        h.insert(
            LINK,
            HeaderValue::from_static(
                "<https://desec.io/api/v1/domains/x/rrsets/?cursor=>; rel=\"first\", \
                 <https://desec.io/api/v1/domains/x/rrsets/?cursor=abc>; rel=\"next\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://desec.io/api/v1/domains/x/rrsets/?cursor=abc")
        );
    }
}
