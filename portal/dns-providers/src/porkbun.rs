//! Porkbun's API v3, with an API key (`pk1_…`) and secret key (`sk1_…`) sent in every
//! JSON body.
//!
//! API facts (research/registrars.md §2.2; <https://porkbun.com/api/json/v3/documentation>):
//!
//! * Every call is a `POST` with `{"apikey", "secretapikey", …}`; answers are
//!   `{"status":"SUCCESS"|"ERROR", "message", …}`.
//! * `/domain/listAll` lists the account's domains, 1000 at a time from `start`.
//! * `/dns/retrieve/{domain}` returns every record (`{id, name, type, content, ttl, prio}`,
//!   `name` absolute, numbers as strings); there is no pagination for records.
//! * `/dns/create/{domain}` (`{name, type, content, ttl, prio}`, `name` relative, empty for
//!   the apex), `/dns/edit/{domain}/{id}` and `/dns/delete/{domain}/{id}` change one record
//!   each; ids are mapped per record by [`crate::record_ops`].
//! * Content: raw text for TXT (Porkbun quotes and splits it), the host name for MX and
//!   CNAME, `weight port target` for SRV with the priority in `prio`, and
//!   `flags tag "value"` for CAA.
//! * TTL: at least 600 s ("the minimum and the default is 600 seconds";
//!   [`Porkbun::effective_ttl`]).
//! * Domains bought before the API existed must have "API ACCESS" switched on one by one;
//!   otherwise Porkbun answers that the domain is not opted in. Keys can also be limited
//!   to IP addresses and domains.

use async_trait::async_trait;
use chatmail_shared::RecordData;
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::error::ProviderError;
use crate::http::{
    absolute, host_from_api, http_client, rate_limit_wait, relative, short, status_error,
    transport_error, txt_from_api, Advice,
};
use crate::provider::{Change, DnsProvider};
use crate::record_ops::{self, ApiRecord, Content, RecordApi};
use crate::records::{normalize_name, parse_rdata, ZoneContents};

/// The API's address.
pub const BASE_URL: &str = "https://api.porkbun.com/api/json/v3";

/// Porkbun through API v3.
pub struct Porkbun {
    base: String,
    api_key: Zeroizing<String>,
    secret_key: Zeroizing<String>,
    client: reqwest::Client,
    advice: Advice,
}

impl std::fmt::Debug for Porkbun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Porkbun")
            .field("base", &self.base)
            .field("api_key", &"<hidden>")
            .field("secret_key", &"<hidden>")
            .finish()
    }
}

/// Advice for an API key pair.
pub fn key_advice() -> Advice {
    Advice {
        wrong_key: "Porkbun did not accept the API keys. Copy both the API key (pk1_…) and \
                    the secret key (sk1_…) again from porkbun.com → Account → API Access; \
                    if you lost the secret key, create a new pair."
            .into(),
        no_permission: "Porkbun refused access to this domain: switch on “API ACCESS” for \
                        this domain in Porkbun's Domain Management (the domain's Details), \
                        and check that the key is not limited to other domains or IP \
                        addresses."
            .into(),
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    records: Vec<PbRecord>,
    #[serde(default)]
    domains: Vec<PbDomain>,
}

#[derive(Deserialize)]
struct PbDomain {
    domain: String,
}

#[derive(Deserialize)]
struct PbRecord {
    id: Value,
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    ttl: Value,
    #[serde(default)]
    prio: Value,
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Porkbun {
    /// A client with an API key and its secret key.
    pub fn new(api_key: &str, secret_key: &str) -> Result<Self, ProviderError> {
        Ok(Porkbun {
            base: BASE_URL.to_string(),
            api_key: Zeroizing::new(api_key.trim().to_string()),
            secret_key: Zeroizing::new(secret_key.trim().to_string()),
            client: http_client()?,
            advice: key_advice(),
        })
    }

    /// The same client talking to `base` (tests: a local server).
    pub fn with_base_url(mut self, base: &str) -> Self {
        self.base = base.trim_end_matches('/').to_string();
        self
    }

    /// The TTL Porkbun stores for `ttl`: at least 600 s.
    pub fn effective_ttl(ttl: u32) -> u32 {
        ttl.max(600)
    }

    async fn call(
        &self,
        path: &str,
        mut body: Value,
        zone: Option<&str>,
    ) -> Result<Answer, ProviderError> {
        body["apikey"] = json!(self.api_key.as_str());
        body["secretapikey"] = json!(self.secret_key.as_str());
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(transport_error)?;
        let answer = serde_json::from_str::<Answer>(&text).ok();
        if status.is_success() {
            if let Some(a) = answer {
                if a.status.eq_ignore_ascii_case("SUCCESS") {
                    return Ok(a);
                }
                return Err(self.refusal(status, &headers, &a.message, zone));
            }
            return Err(ProviderError::Other(format!(
                "unreadable answer from Porkbun: {}",
                short(&text)
            )));
        }
        let message = answer.map(|a| a.message).unwrap_or_else(|| short(&text));
        Err(self.refusal(status, &headers, &message, zone))
    }

    fn refusal(
        &self,
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        message: &str,
        zone: Option<&str>,
    ) -> ProviderError {
        let m = message.to_ascii_lowercase();
        if status.as_u16() == 429 || (status.as_u16() == 503 && m.contains("too many")) {
            return ProviderError::RateLimited {
                retry_after: rate_limit_wait(headers),
            };
        }
        if m.contains("invalid api key") || (m.contains("api key") && m.contains("invalid")) {
            return self.advice.wrong_key();
        }
        if m.contains("not opted in") || m.contains("api access") || m.contains("permission") {
            return self.advice.no_permission();
        }
        if let Some(zone) = zone {
            if m.contains("invalid domain") || m.contains("domain not found") {
                return ProviderError::ZoneNotFound {
                    domain: normalize_name(zone),
                };
            }
        }
        if status.is_success() {
            return ProviderError::Rejected(message.to_string());
        }
        status_error(status, headers, message, zone, &self.advice)
    }

    fn body(zone: &str, name: &str, ttl: u32, value: &RecordData) -> Value {
        let host = |h: &str| normalize_name(h);
        let (content, prio) = match value {
            RecordData::A(a) => (a.to_string(), None),
            RecordData::Aaaa(a) => (a.to_string(), None),
            RecordData::Cname(t) => (host(t), None),
            RecordData::Mx {
                preference,
                exchange,
            } => (host(exchange), Some(*preference)),
            RecordData::Txt(t) => (t.joined(), None),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => (format!("{weight} {port} {}", host(target)), Some(*priority)),
            RecordData::Caa { .. } => (value.presentation(), None),
        };
        let mut b = json!({
            "name": relative(name, zone),
            "type": value.rtype(),
            "content": content,
            "ttl": ttl.to_string(),
        });
        if let Some(p) = prio {
            b["prio"] = json!(p.to_string());
        }
        b
    }
}

fn to_api(r: PbRecord, zone: &str) -> ApiRecord {
    let rtype = r.rtype.to_ascii_uppercase();
    let prio = number(&r.prio)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    let parsed = match rtype.as_str() {
        "A" | "AAAA" | "CAA" => parse_rdata(&rtype, &r.content).ok(),
        "CNAME" => Some(RecordData::Cname(host_from_api(&r.content, zone))),
        "MX" => Some(RecordData::Mx {
            preference: prio,
            exchange: host_from_api(&r.content, zone),
        }),
        "TXT" => Some(RecordData::Txt(txt_from_api(&r.content))),
        "SRV" => {
            let parts: Vec<&str> = r.content.split_whitespace().collect();
            match parts.len() {
                3 => parse_rdata("SRV", &format!("{prio} {}", r.content)).ok(),
                4 => parse_rdata("SRV", &r.content).ok(),
                _ => None,
            }
        }
        _ => None,
    };
    let id = match &r.id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    ApiRecord {
        id,
        name: absolute(&format!("{}.", r.name.trim_end_matches('.')), zone),
        rtype,
        ttl: number(&r.ttl)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(600),
        content: match parsed {
            Some(d) => Content::Data(d),
            None => Content::Other(r.content),
        },
    }
}

#[async_trait]
impl RecordApi for Porkbun {
    type Zone = String;

    async fn zone(&self, zone: &str) -> Result<String, ProviderError> {
        Ok(normalize_name(zone))
    }

    async fn records(&self, zone: &String) -> Result<Vec<ApiRecord>, ProviderError> {
        let a = self
            .call(&format!("/dns/retrieve/{zone}"), json!({}), Some(zone))
            .await?;
        Ok(a.records.into_iter().map(|r| to_api(r, zone)).collect())
    }

    async fn create(
        &self,
        zone: &String,
        name: &str,
        ttl: u32,
        value: &RecordData,
    ) -> Result<(), ProviderError> {
        self.call(
            &format!("/dns/create/{zone}"),
            Self::body(zone, name, ttl, value),
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
        self.call(
            &format!("/dns/edit/{zone}/{id}"),
            Self::body(zone, name, ttl, value),
            Some(zone),
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, zone: &String, id: &str) -> Result<(), ProviderError> {
        match self
            .call(&format!("/dns/delete/{zone}/{id}"), json!({}), None)
            .await
        {
            Err(ProviderError::Rejected(m)) | Err(ProviderError::Other(m))
                if m.to_ascii_lowercase().contains("invalid record")
                    || m.to_ascii_lowercase().contains("not found") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    fn clamp_ttl(&self, ttl: u32) -> u32 {
        Self::effective_ttl(ttl)
    }
}

#[async_trait]
impl DnsProvider for Porkbun {
    fn name(&self) -> &str {
        "Porkbun"
    }

    fn effective_ttl(&self, ttl: u32) -> u32 {
        Porkbun::effective_ttl(ttl)
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        let mut out = Vec::new();
        let mut start = 0usize;
        loop {
            let a = self
                .call(
                    "/domain/listAll",
                    json!({ "start": start.to_string() }),
                    None,
                )
                .await?;
            let n = a.domains.len();
            out.extend(a.domains.into_iter().map(|d| normalize_name(&d.domain)));
            if n < 1000 || start > 1_000_000 {
                break;
            }
            start += n;
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
    fn srv_and_names() {
        let b = Porkbun::body(
            "example.org",
            "_imaps._tcp.chat.example.org",
            600,
            &RecordData::Srv {
                priority: 0,
                weight: 1,
                port: 993,
                target: "chat.example.org".into(),
            },
        );
        assert_eq!(b["content"], "1 993 chat.example.org");
        assert_eq!(b["prio"], "0");
        assert_eq!(b["name"], "_imaps._tcp.chat");
        let r = to_api(
            PbRecord {
                id: json!("12"),
                name: "_imaps._tcp.chat.example.org".into(),
                rtype: "SRV".into(),
                content: "1 993 chat.example.org".into(),
                ttl: json!("600"),
                prio: json!("0"),
            },
            "example.org",
        );
        assert_eq!(r.key(), "0 1 993 chat.example.org");
        assert_eq!(r.name, "_imaps._tcp.chat.example.org");
    }
}
