//! Gandi LiveDNS (API v5), with a personal access token (`Authorization: Bearer`).
//!
//! API facts (research/registrars.md §2.2; <https://api.gandi.net/docs/livedns/>,
//! <https://api.gandi.net/docs/reference/> (“Pagination”: `page`, `per_page` and the
//! `Total-Count` header), <https://api.gandi.net/docs/authentication/>):
//!
//! * `GET /domains` lists the LiveDNS domains (`fqdn`); `GET /domains/{fqdn}/records`
//!   lists RRsets `{rrset_name, rrset_type, rrset_ttl, rrset_values}`; both are paged with
//!   `page` and `per_page`, and read until `Total-Count` items (or a short page) came.
//! * `PUT /domains/{fqdn}/records/{name}/{type}` with `{rrset_ttl, rrset_values}` creates
//!   or replaces one RRset; `DELETE` deletes it (404 if absent: nothing to do). `name` is
//!   relative, `@` for the apex. Values are in presentation form (TXT quoted, split into
//!   strings of at most 255 bytes; host names absolute with the trailing dot).
//! * One request per RRset; an RRset already right is not sent.
//! * TTL: 300 s to 30 days ([`Gandi::effective_ttl`]).
//! * Personal access tokens expire (the person chooses when, at most a year), so a
//!   refused token most often means an expired one; the advice says so.
//! * Errors are `{code, message, object, cause}`: 401, 403 (the token lacks the
//!   permission to manage the domain's technical configuration), 404, 429.

use async_trait::async_trait;
use chatmail_shared::RecordData;
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
pub const BASE_URL: &str = "https://api.gandi.net/v5/livedns";

/// Gandi LiveDNS.
pub struct Gandi {
    base: String,
    token: Zeroizing<String>,
    client: reqwest::Client,
    advice: Advice,
}

impl std::fmt::Debug for Gandi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gandi")
            .field("base", &self.base)
            .field("token", &"<hidden>")
            .finish()
    }
}

/// Advice for a personal access token.
pub fn token_advice() -> Advice {
    Advice {
        wrong_key: "Gandi did not accept the personal access token. Tokens expire: make a \
                    new one in Gandi's admin (your account → Personal Access Token), copy \
                    it whole, and enter it here."
            .into(),
        no_permission: "The Gandi token may not change this domain's DNS: make a personal \
                        access token for the organization that owns the domain, with the \
                        permission to manage domain technical configurations (LiveDNS)."
            .into(),
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    cause: String,
    #[serde(default)]
    errors: Vec<Value>,
}

#[derive(Deserialize)]
struct Domain {
    fqdn: String,
}

#[derive(Deserialize)]
struct GRrSet {
    rrset_name: String,
    rrset_type: String,
    #[serde(default)]
    rrset_ttl: u32,
    #[serde(default)]
    rrset_values: Vec<String>,
}

impl Gandi {
    /// A client with a personal access token.
    pub fn new(token: &str) -> Result<Self, ProviderError> {
        Ok(Gandi {
            base: BASE_URL.to_string(),
            token: Zeroizing::new(token.trim().to_string()),
            client: http_client()?,
            advice: token_advice(),
        })
    }

    /// The same client talking to `base` (tests: a local server).
    pub fn with_base_url(mut self, base: &str) -> Self {
        self.base = base.trim_end_matches('/').to_string();
        self
    }

    /// The TTL Gandi stores for `ttl`: 300 s to 30 days.
    pub fn effective_ttl(ttl: u32) -> u32 {
        ttl.clamp(300, 2_592_000)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
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
            .map(|e| {
                let mut d = if e.message.is_empty() {
                    e.cause
                } else {
                    e.message
                };
                for err in e.errors {
                    if let Some(m) = err.get("description").and_then(|v| v.as_str()) {
                        d.push_str(&format!("; {m}"));
                    }
                }
                d
            })
            .unwrap_or_else(|_| short(&text));
        Err(status_error(status, &headers, &detail, zone, &self.advice))
    }

    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        zone: Option<&str>,
    ) -> Result<Vec<T>, ProviderError> {
        let per_page = 100usize;
        let mut out: Vec<T> = Vec::new();
        for page in 1..=10_000u32 {
            let resp = self
                .send(
                    Method::GET,
                    path,
                    &[
                        ("page", page.to_string()),
                        ("per_page", per_page.to_string()),
                    ],
                    None,
                    zone,
                )
                .await?;
            let total = resp
                .headers()
                .get("total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let text = resp.text().await.map_err(transport_error)?;
            let items: Vec<T> = serde_json::from_str(&text)
                .map_err(|e| ProviderError::Other(format!("unreadable answer from Gandi: {e}")))?;
            let n = items.len();
            out.extend(items);
            let done = match total {
                Some(t) => out.len() >= t,
                None => n < per_page,
            };
            if done || n == 0 {
                break;
            }
        }
        Ok(out)
    }

    async fn rrsets(&self, zone: &str) -> Result<(String, Vec<RrSet>), ProviderError> {
        let zone = normalize_name(zone);
        let sets: Vec<GRrSet> = self
            .pages(&format!("/domains/{zone}/records"), Some(&zone))
            .await?;
        let out = sets
            .into_iter()
            .map(|s| RrSet {
                name: absolute(&s.rrset_name, &zone),
                rtype: s.rrset_type.to_ascii_uppercase(),
                ttl: s.rrset_ttl,
                values: s.rrset_values,
            })
            .collect();
        Ok((zone, out))
    }

    fn path(zone: &str, name: &str, rtype: &str) -> String {
        let rel = relative(name, zone);
        let rel = if rel.is_empty() { "@".to_string() } else { rel };
        format!("/domains/{zone}/records/{rel}/{rtype}")
    }
}

fn render(v: &RecordData) -> String {
    v.presentation()
}

#[async_trait]
impl DnsProvider for Gandi {
    fn name(&self) -> &str {
        "Gandi"
    }

    fn effective_ttl(&self, ttl: u32) -> u32 {
        Gandi::effective_ttl(ttl)
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        let domains: Vec<Domain> = self.pages("/domains", None).await?;
        Ok(domains
            .into_iter()
            .map(|d| normalize_name(&d.fqdn))
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
        for change in changes {
            match rrsets::plan(change, &current, &render, &Gandi::effective_ttl) {
                None => {}
                Some(RrSetOp::Delete { name, rtype }) => {
                    match self
                        .send(
                            Method::DELETE,
                            &Self::path(&zone, &name, &rtype),
                            &[],
                            None,
                            Some(&zone),
                        )
                        .await
                    {
                        Ok(_) | Err(ProviderError::ZoneNotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(RrSetOp::Set {
                    name,
                    rtype,
                    ttl,
                    values,
                    ..
                }) => {
                    self.send(
                        Method::PUT,
                        &Self::path(&zone, &name, &rtype),
                        &[],
                        Some(&json!({ "rrset_ttl": ttl, "rrset_values": values })),
                        Some(&zone),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
