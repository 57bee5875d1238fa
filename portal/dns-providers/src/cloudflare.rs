//! Cloudflare's API v4, with a scoped API token or an OAuth access token (both are sent
//! as `Authorization: Bearer`).
//!
//! API facts (research/registrars.md §2.2; <https://developers.cloudflare.com/api/resources/dns/subresources/records/>,
//! <https://developers.cloudflare.com/api/resources/zones/methods/list/>,
//! <https://developers.cloudflare.com/dns/manage-dns-records/how-to/batch-record-changes/>):
//!
//! * Every answer is an envelope `{success, errors:[{code,message}], result, result_info:
//!   {page, per_page, total_pages}}`; lists are paged with `page` and `per_page` (zones at
//!   most 50 a page, records 100 here), and every page is read.
//! * Zones: `GET /zones?name=` finds a zone's id; records: `GET /zones/{id}/dns_records`.
//!   Records carry `id`, `name` (absolute), `type`, `content`, `ttl`, `priority` (MX) and,
//!   for SRV and CAA, a structured `data` object (`{priority,weight,port,target}`,
//!   `{flags,tag,value}`), which is what we send for them.
//! * TXT `content` "must consist of quoted character strings (RFC 1035), each with a
//!   length of up to 255 bytes" (API schema, 2024); older records may hold the raw text,
//!   so reading accepts both and writing sends the quoted, split form.
//! * TTL: `1` means "automatic" (read as 300 s), otherwise 60–86 400 s (30 s on
//!   Enterprise plans): the portal's TTL is clamped into 60–86 400 ([`Cloudflare::effective_ttl`]).
//! * `proxied` is always `false` for A, AAAA and CNAME: Cloudflare's proxy only carries
//!   HTTP, and a proxied mail host breaks SMTP and IMAP (research §6.8).
//! * One `apply` is one `POST /zones/{id}/dns_records/batch` with `deletes`, `puts` and
//!   `posts`, which Cloudflare runs in one transaction in that order (deletes, patches,
//!   puts, posts), so an alias replaces what was in its way. Record ids are mapped per
//!   record by [`crate::record_ops`], computed from the records present at the start,
//!   so a repeated `apply` converges without duplicates.
//! * Errors: 401, or codes 1000/6003/6111/9106/9109 (invalid or malformed token) → the
//!   token is wrong; 403 / code 10000 → the token lacks a permission; 429 (code 971) →
//!   rate limited (1200 requests per 5 minutes per user), with Retry-After.

use async_trait::async_trait;
use chatmail_shared::RecordData;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::error::ProviderError;
use crate::http::{
    self, clamp_ttl, http_client, status_error, transport_error, txt_from_api, Advice,
};
use crate::provider::{validate, Change, DnsProvider};
use crate::record_ops::{self, ApiRecord, Content, Op, RecordApi};
use crate::records::{normalize_name, parse_rdata, ZoneContents};

/// The API's address.
pub const BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// How the token was obtained, which decides what a refusal tells the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An API token made under My Profile → API Tokens.
    ApiToken,
    /// An OAuth access token from signing in with Cloudflare.
    OAuth,
}

/// Cloudflare through API v4.
pub struct Cloudflare {
    base: String,
    token: Zeroizing<String>,
    client: reqwest::Client,
    advice: Advice,
}

impl std::fmt::Debug for Cloudflare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloudflare")
            .field("base", &self.base)
            .field("token", &"<hidden>")
            .finish()
    }
}

/// Advice for an API token.
pub fn token_advice() -> Advice {
    Advice {
        wrong_key: "Cloudflare did not accept the API token. Copy the whole token again (an \
                    API token, not the Global API Key) and check under My Profile → API \
                    Tokens that it is still active."
            .into(),
        no_permission: "The Cloudflare token may not edit the DNS of this zone: edit the \
                        token under My Profile → API Tokens and give it the permission Zone \
                        → DNS → Edit, with this domain under Zone Resources."
            .into(),
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<CfError>,
    result: Option<T>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize, Default)]
struct CfError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    total_pages: Option<u32>,
}

#[derive(Deserialize)]
struct Zone {
    id: String,
    name: String,
}

#[derive(Deserialize, Serialize, Debug, Clone)]
struct CfRecord {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    id: String,
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    content: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proxied: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

impl Cloudflare {
    /// A client with an API token (My Profile → API Tokens).
    pub fn with_api_token(token: &str) -> Result<Self, ProviderError> {
        Self::new(token, TokenKind::ApiToken)
    }

    /// A client with an OAuth access token (see [`crate::oauth`]).
    pub fn with_oauth_token(access_token: &str) -> Result<Self, ProviderError> {
        Self::new(access_token, TokenKind::OAuth)
    }

    fn new(token: &str, kind: TokenKind) -> Result<Self, ProviderError> {
        Ok(Cloudflare {
            base: BASE_URL.to_string(),
            token: Zeroizing::new(token.trim().to_string()),
            client: http_client()?,
            advice: match kind {
                TokenKind::ApiToken => token_advice(),
                TokenKind::OAuth => Advice::reconnect("Cloudflare"),
            },
        })
    }

    /// The same client talking to `base` (tests: a local server).
    pub fn with_base_url(mut self, base: &str) -> Self {
        self.base = base.trim_end_matches('/').to_string();
        self
    }

    /// The TTL Cloudflare stores for `ttl`: raised to 60 s, lowered to one day.
    pub fn effective_ttl(ttl: u32) -> u32 {
        clamp_ttl(ttl, 60, 86_400)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        zone: Option<&str>,
    ) -> Result<Envelope<T>, ProviderError> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.as_str())
            .query(query);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(transport_error)?;
        let parsed: Option<Envelope<T>> = serde_json::from_str(&text).ok();
        if status.is_success() {
            if let Some(env) = parsed {
                if env.success {
                    return Ok(env);
                }
                return Err(self.envelope_error(status, &headers, &env.errors, zone));
            }
            return Err(ProviderError::Other(format!(
                "unreadable answer from Cloudflare: {}",
                http::short(&text)
            )));
        }
        let errors = serde_json::from_str::<Envelope<Value>>(&text)
            .map(|e| e.errors)
            .unwrap_or_default();
        Err(self.envelope_error(status, &headers, &errors, zone))
    }

    fn envelope_error(
        &self,
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        errors: &[CfError],
        zone: Option<&str>,
    ) -> ProviderError {
        if errors
            .iter()
            .any(|e| matches!(e.code, 1000 | 6003 | 6111 | 9106 | 9109))
        {
            return self.advice.wrong_key();
        }
        if errors.iter().any(|e| e.code == 10000) && status.as_u16() != 401 {
            return self.advice.no_permission();
        }
        let detail = errors
            .iter()
            .map(|e| format!("{} (code {})", e.message, e.code))
            .collect::<Vec<_>>()
            .join("; ");
        if status.is_success() {
            return ProviderError::Rejected(detail);
        }
        status_error(status, headers, &detail, zone, &self.advice)
    }

    async fn all_pages<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        extra: &[(&str, String)],
        per_page: u32,
        zone: Option<&str>,
    ) -> Result<Vec<T>, ProviderError> {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let mut query = extra.to_vec();
            query.push(("page", page.to_string()));
            query.push(("per_page", per_page.to_string()));
            let env: Envelope<Vec<T>> = self.call(Method::GET, path, &query, None, zone).await?;
            let got = env.result.unwrap_or_default();
            let n = got.len();
            out.extend(got);
            let total = env.result_info.and_then(|i| i.total_pages).unwrap_or(page);
            if page >= total || n == 0 || page >= 10_000 {
                break;
            }
            page += 1;
        }
        Ok(out)
    }

    fn record_body(name: &str, ttl: u32, value: &RecordData) -> CfRecord {
        let rtype = value.rtype().to_string();
        let mut r = CfRecord {
            id: String::new(),
            name: normalize_name(name),
            rtype,
            content: String::new(),
            ttl,
            priority: None,
            proxied: None,
            data: None,
        };
        match value {
            RecordData::A(a) => {
                r.content = a.to_string();
                r.proxied = Some(false);
            }
            RecordData::Aaaa(a) => {
                r.content = a.to_string();
                r.proxied = Some(false);
            }
            RecordData::Cname(t) => {
                r.content = normalize_name(t);
                r.proxied = Some(false);
            }
            RecordData::Mx {
                preference,
                exchange,
            } => {
                r.content = normalize_name(exchange);
                r.priority = Some(*preference);
            }
            RecordData::Txt(_) => r.content = value.presentation(),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                r.data = Some(json!({
                    "priority": priority, "weight": weight, "port": port,
                    "target": normalize_name(target),
                }));
            }
            RecordData::Caa { flags, tag, value } => {
                r.data = Some(json!({"flags": flags, "tag": tag, "value": value}));
            }
        }
        r
    }
}

/// A record as Cloudflare returns it, as the portal sees it.
fn to_api(r: CfRecord) -> ApiRecord {
    let rtype = r.rtype.to_ascii_uppercase();
    let ttl = if r.ttl == 1 { 300 } else { r.ttl };
    let data = |k: &str| r.data.as_ref().and_then(|d| d.get(k)).cloned();
    let num = |k: &str| {
        data(k)
            .and_then(|v| v.as_u64())
            .and_then(|n| u16::try_from(n).ok())
    };
    let text = |k: &str| data(k).and_then(|v| v.as_str().map(str::to_string));
    let parsed: Option<RecordData> = match rtype.as_str() {
        "MX" => Some(RecordData::Mx {
            preference: r.priority.unwrap_or(0),
            exchange: normalize_name(&r.content),
        }),
        "TXT" => Some(RecordData::Txt(txt_from_api(&r.content))),
        "SRV" => match (num("priority"), num("weight"), num("port"), text("target")) {
            (Some(priority), Some(weight), Some(port), Some(target)) => Some(RecordData::Srv {
                priority,
                weight,
                port,
                target: normalize_name(&target),
            }),
            _ => parse_rdata("SRV", &r.content).ok().or_else(|| {
                parse_rdata("SRV", &format!("{} {}", r.priority.unwrap_or(0), r.content)).ok()
            }),
        },
        "CAA" => match (num("flags"), text("tag"), text("value")) {
            (Some(flags), Some(tag), Some(value)) => Some(RecordData::Caa {
                flags: flags as u8,
                tag,
                value,
            }),
            _ => parse_rdata("CAA", &r.content).ok(),
        },
        "A" | "AAAA" | "CNAME" => parse_rdata(&rtype, &r.content).ok(),
        _ => None,
    };
    ApiRecord {
        id: r.id,
        name: normalize_name(&r.name),
        rtype,
        ttl,
        content: match parsed {
            Some(d) => Content::Data(d),
            None => Content::Other(r.content),
        },
    }
}

#[async_trait]
impl RecordApi for Cloudflare {
    type Zone = String;

    async fn zone(&self, zone: &str) -> Result<String, ProviderError> {
        let name = normalize_name(zone);
        let zones: Vec<Zone> = self
            .all_pages("/zones", &[("name", name.clone())], 50, None)
            .await?;
        zones
            .into_iter()
            .find(|z| normalize_name(&z.name) == name)
            .map(|z| z.id)
            .ok_or(ProviderError::ZoneNotFound { domain: name })
    }

    async fn records(&self, zone: &String) -> Result<Vec<ApiRecord>, ProviderError> {
        let recs: Vec<CfRecord> = self
            .all_pages(&format!("/zones/{zone}/dns_records"), &[], 100, Some(zone))
            .await?;
        Ok(recs.into_iter().map(to_api).collect())
    }

    async fn create(
        &self,
        zone: &String,
        name: &str,
        ttl: u32,
        value: &RecordData,
    ) -> Result<(), ProviderError> {
        let body = serde_json::to_value(Self::record_body(name, ttl, value))
            .map_err(|e| ProviderError::Other(e.to_string()))?;
        self.call::<Value>(
            Method::POST,
            &format!("/zones/{zone}/dns_records"),
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
        let body = serde_json::to_value(Self::record_body(name, ttl, value))
            .map_err(|e| ProviderError::Other(e.to_string()))?;
        self.call::<Value>(
            Method::PUT,
            &format!("/zones/{zone}/dns_records/{id}"),
            &[],
            Some(&body),
            Some(zone),
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, zone: &String, id: &str) -> Result<(), ProviderError> {
        match self
            .call::<Value>(
                Method::DELETE,
                &format!("/zones/{zone}/dns_records/{id}"),
                &[],
                None,
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(ProviderError::Other(m)) if m.contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn clamp_ttl(&self, ttl: u32) -> u32 {
        Self::effective_ttl(ttl)
    }
}

#[async_trait]
impl DnsProvider for Cloudflare {
    fn name(&self) -> &str {
        "Cloudflare"
    }

    fn effective_ttl(&self, ttl: u32) -> u32 {
        Cloudflare::effective_ttl(ttl)
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        let zones: Vec<Zone> = self.all_pages("/zones", &[], 50, None).await?;
        Ok(zones.into_iter().map(|z| normalize_name(&z.name)).collect())
    }

    async fn read(&self, zone: &str) -> Result<ZoneContents, ProviderError> {
        record_ops::read(self, zone).await
    }

    async fn apply(&self, zone: &str, changes: &[Change]) -> Result<(), ProviderError> {
        validate(zone, changes)?;
        if changes.is_empty() {
            return Ok(());
        }
        let id = self.zone(zone).await?;
        let current = self.records(&id).await?;
        let ops = record_ops::plan_all(changes, &current, &Cloudflare::effective_ttl);
        if ops.is_empty() {
            return Ok(());
        }
        let mut deletes = Vec::new();
        let mut puts = Vec::new();
        let mut posts = Vec::new();
        for op in ops {
            match op {
                Op::Delete { id } => deletes.push(json!({ "id": id })),
                Op::Update {
                    id,
                    name,
                    ttl,
                    value,
                } => {
                    let mut body = Self::record_body(&name, ttl, &value);
                    body.id = id;
                    puts.push(body);
                }
                Op::Create { name, ttl, value } => {
                    posts.push(Self::record_body(&name, ttl, &value))
                }
            }
        }
        let body = json!({ "deletes": deletes, "puts": puts, "posts": posts });
        self.call::<Value>(
            Method::POST,
            &format!("/zones/{id}/dns_records/batch"),
            &[],
            Some(&body),
            Some(zone),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let b = Cloudflare::record_body(
            "_imaps._tcp.chat.example.org",
            3600,
            &RecordData::Srv {
                priority: 0,
                weight: 1,
                port: 993,
                target: "chat.example.org".into(),
            },
        );
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["data"]["port"], 993);
        assert!(v.get("content").is_none());
        let txt = Cloudflare::record_body(
            "x.org",
            3600,
            &RecordData::Txt(chatmail_shared::dns_plan::TxtStrings::split(
                &"k".repeat(300),
            )),
        );
        assert!(txt.content.starts_with('"') && txt.content.contains("\" \""));
        let a = Cloudflare::record_body("x.org", 3600, &RecordData::A([192, 0, 2, 1].into()));
        assert_eq!(a.proxied, Some(false));
    }

    #[test]
    fn reading_both_txt_forms_and_auto_ttl() {
        let raw = to_api(CfRecord {
            id: "1".into(),
            name: "X.org".into(),
            rtype: "TXT".into(),
            content: "v=spf1 a ~all".into(),
            ttl: 1,
            priority: None,
            proxied: None,
            data: None,
        });
        assert_eq!(raw.key(), "v=spf1 a ~all");
        assert_eq!(raw.ttl, 300);
        let srv = to_api(CfRecord {
            id: "2".into(),
            name: "_imaps._tcp.x.org".into(),
            rtype: "SRV".into(),
            content: "1 993 x.org".into(),
            ttl: 3600,
            priority: Some(0),
            proxied: None,
            data: None,
        });
        assert_eq!(srv.key(), "0 1 993 x.org");
        assert_eq!(Cloudflare::effective_ttl(1), 60);
    }
}
