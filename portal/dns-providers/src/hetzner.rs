//! Hetzner's DNS in the Hetzner Cloud API (zones and RRsets, 2025 and later), with a
//! project API token (`Authorization: Bearer`).
//!
//! The older DNS Console API (`https://dns.hetzner.com/api/v1`, `Auth-API-Token` header,
//! tokens made at dns.hetzner.com) is deprecated and not implemented: zones move to the
//! Cloud Console, where tokens are made per project (research/registrars.md §2.1, §2.2).
//!
//! API facts (<https://docs.hetzner.cloud/reference/cloud#zones>,
//! <https://docs.hetzner.cloud/reference/cloud#zone-rrsets>,
//! <https://docs.hetzner.cloud/reference/cloud#pagination>,
//! <https://docs.hetzner.cloud/reference/cloud#rate-limiting>):
//!
//! * Lists are paged with `page` and `per_page` (at most 100 here); `meta.pagination.
//!   next_page` is a number while more pages follow.
//! * `GET /zones/{id_or_name}/rrsets` returns `{id, name, type, ttl, records:[{value,
//!   comment}]}`; `name` is relative (`@` for the apex); `ttl` may be `null` (the zone's
//!   default). Values are in presentation form: TXT "must consist of one or many quoted
//!   strings of 255 characters", host names absolute with the trailing dot.
//! * Writes: `POST /zones/{zone}/rrsets` creates, `POST …/rrsets/{name}/{type}/actions/
//!   set_records` and `…/actions/change_ttl` change, `DELETE …/rrsets/{name}/{type}`
//!   deletes. They return an `action`; one that reports `error` is refused. Only zones in
//!   primary mode can be written (422 `incorrect_zone_mode`).
//! * One request (or two: records and TTL) per RRset; an RRset already right is not sent.
//! * TTL: at least 60 s ([`Hetzner::effective_ttl`]).
//! * Errors are `{error:{code,message}}`: 401 `unauthorized`, 403 `forbidden` (a
//!   read-only token), 404 `not_found`, 429 `rate_limit_exceeded` (3600 requests an hour;
//!   `RateLimit-Reset` is a Unix time).

use async_trait::async_trait;
use chatmail_shared::RecordData;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::error::ProviderError;
use crate::http::{
    absolute, http_client, json, relative, short, status_error, transport_error, Advice,
};
use crate::provider::{validate, Change, DnsProvider};
use crate::records::{normalize_name, ZoneContents};
use crate::rrsets::{self, RrSet, RrSetOp};

/// The API's address.
pub const BASE_URL: &str = "https://api.hetzner.cloud/v1";

/// Hetzner through the Cloud API.
pub struct Hetzner {
    base: String,
    token: Zeroizing<String>,
    client: reqwest::Client,
    advice: Advice,
}

impl std::fmt::Debug for Hetzner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hetzner")
            .field("base", &self.base)
            .field("token", &"<hidden>")
            .finish()
    }
}

/// Advice for a project API token.
pub fn token_advice() -> Advice {
    Advice {
        wrong_key: "Hetzner did not accept the API token. Copy the whole token again: it is \
                    made in the Hetzner Console, in the project that holds the zone, under \
                    Security → API tokens (a token from the old DNS Console at \
                    dns.hetzner.com does not work here)."
            .into(),
        no_permission: "The Hetzner token may only read: create a new API token in the \
                        project that holds the zone, with the permission Read & Write."
            .into(),
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Deserialize)]
struct ErrorInner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    next_page: Option<u32>,
}

#[derive(Deserialize)]
struct ZoneList {
    #[serde(default)]
    zones: Vec<Zone>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize)]
struct Zone {
    name: String,
    #[serde(default)]
    ttl: Option<u32>,
}

#[derive(Deserialize)]
struct ZoneOne {
    zone: Zone,
}

#[derive(Deserialize)]
struct RrSetList {
    #[serde(default)]
    rrsets: Vec<HzRrSet>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize)]
struct HzRrSet {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    ttl: Option<u32>,
    #[serde(default)]
    records: Vec<HzValue>,
}

#[derive(Deserialize)]
struct HzValue {
    value: String,
}

#[derive(Deserialize)]
struct ActionAnswer {
    #[serde(default)]
    action: Option<Action>,
}

#[derive(Deserialize)]
struct Action {
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<ErrorInner>,
}

fn next_page(meta: &Meta) -> Option<u32> {
    meta.pagination.as_ref().and_then(|p| p.next_page)
}

impl Hetzner {
    /// A client with a project API token.
    pub fn new(token: &str) -> Result<Self, ProviderError> {
        Ok(Hetzner {
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

    /// The TTL Hetzner stores for `ttl`: at least 60 s.
    pub fn effective_ttl(ttl: u32) -> u32 {
        ttl.max(60)
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
            .map(|e| format!("{} ({})", e.error.message, e.error.code))
            .unwrap_or_else(|_| short(&text));
        Err(status_error(status, &headers, &detail, zone, &self.advice))
    }

    /// Sends a write and checks the action it returns.
    async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        zone: &str,
    ) -> Result<(), ProviderError> {
        let resp = self.send(method, path, &[], body, Some(zone)).await?;
        let text = resp.text().await.map_err(transport_error)?;
        if let Ok(ActionAnswer {
            action: Some(action),
        }) = serde_json::from_str::<ActionAnswer>(&text)
        {
            if action.status == "error" {
                let e = action.error.map(|e| e.message).unwrap_or_default();
                return Err(ProviderError::Rejected(format!(
                    "Hetzner could not carry out the change: {e}"
                )));
            }
        }
        Ok(())
    }

    async fn rrsets(&self, zone: &str) -> Result<(String, Vec<RrSet>), ProviderError> {
        let zone = normalize_name(zone);
        let resp = self
            .send(
                Method::GET,
                &format!("/zones/{zone}"),
                &[],
                None,
                Some(&zone),
            )
            .await?;
        let z: ZoneOne = json(resp, "Hetzner").await?;
        let default_ttl = z.zone.ttl.unwrap_or(3600);
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let resp = self
                .send(
                    Method::GET,
                    &format!("/zones/{zone}/rrsets"),
                    &[("page", page.to_string()), ("per_page", "100".into())],
                    None,
                    Some(&zone),
                )
                .await?;
            let list: RrSetList = json(resp, "Hetzner").await?;
            out.extend(list.rrsets.into_iter().map(|s| RrSet {
                name: absolute(&s.name, &zone),
                rtype: s.rtype.to_ascii_uppercase(),
                ttl: s.ttl.unwrap_or(default_ttl),
                values: s.records.into_iter().map(|r| r.value).collect(),
            }));
            match next_page(&list.meta) {
                Some(n) if n > page && n < 10_000 => page = n,
                _ => break,
            }
        }
        Ok((zone, out))
    }

    fn rr_path(zone: &str, name: &str, rtype: &str) -> String {
        let rel = relative(name, zone);
        let rel = if rel.is_empty() { "@".to_string() } else { rel };
        format!("/zones/{zone}/rrsets/{rel}/{rtype}")
    }
}

fn render(v: &RecordData) -> String {
    v.presentation()
}

#[async_trait]
impl DnsProvider for Hetzner {
    fn name(&self) -> &str {
        "Hetzner"
    }

    fn effective_ttl(&self, ttl: u32) -> u32 {
        Hetzner::effective_ttl(ttl)
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let resp = self
                .send(
                    Method::GET,
                    "/zones",
                    &[("page", page.to_string()), ("per_page", "100".into())],
                    None,
                    None,
                )
                .await?;
            let list: ZoneList = json(resp, "Hetzner").await?;
            out.extend(list.zones.into_iter().map(|z| normalize_name(&z.name)));
            match next_page(&list.meta) {
                Some(n) if n > page && n < 10_000 => page = n,
                _ => break,
            }
        }
        Ok(out)
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
            let Some(op) = rrsets::plan(change, &current, &render, &Hetzner::effective_ttl) else {
                continue;
            };
            match op {
                RrSetOp::Delete { name, rtype } => {
                    match self
                        .write(
                            Method::DELETE,
                            &Self::rr_path(&zone, &name, &rtype),
                            None,
                            &zone,
                        )
                        .await
                    {
                        Ok(()) | Err(ProviderError::ZoneNotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                RrSetOp::Set {
                    name,
                    rtype,
                    ttl,
                    values,
                    before,
                } => {
                    let records: Vec<Value> =
                        values.iter().map(|v| json!({ "value": v })).collect();
                    let path = Self::rr_path(&zone, &name, &rtype);
                    match before {
                        None => {
                            let rel = relative(&name, &zone);
                            let body = json!({
                                "name": if rel.is_empty() { "@".to_string() } else { rel },
                                "type": rtype, "ttl": ttl, "records": records,
                            });
                            self.write(
                                Method::POST,
                                &format!("/zones/{zone}/rrsets"),
                                Some(&body),
                                &zone,
                            )
                            .await?;
                        }
                        Some(b) => {
                            if b.values != values {
                                self.write(
                                    Method::POST,
                                    &format!("{path}/actions/set_records"),
                                    Some(&json!({ "records": records })),
                                    &zone,
                                )
                                .await?;
                            }
                            if b.ttl != ttl {
                                self.write(
                                    Method::POST,
                                    &format!("{path}/actions/change_ttl"),
                                    Some(&json!({ "ttl": ttl })),
                                    &zone,
                                )
                                .await?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
