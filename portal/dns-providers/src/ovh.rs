//! OVHcloud's API (`/1.0`), with an application key and secret (the portal's registered
//! application, or the person's own) and a consumer key the person approved in the
//! browser; every request is signed.
//!
//! API facts (research/registrars.md §2.2; <https://help.ovhcloud.com/csm/en-api-getting-started-ovhcloud-api>
//! (“Advanced usage: pair OVHcloud APIs with an application”: `POST /auth/credential`,
//! `validationUrl`, the `X-Ovh-*` headers and the signature), the API console
//! <https://eu.api.ovh.com/console/?section=%2Fdomain> for `/domain/zone`):
//!
//! * Endpoints: `https://eu.api.ovh.com/1.0`, `https://ca.api.ovh.com/1.0`,
//!   `https://api.us.ovhcloud.com/1.0` ([`Endpoint`]).
//! * Consumer key: [`request_consumer_key`] posts the access rules the portal needs and
//!   a return address; OVHcloud answers `{validationUrl, consumerKey, state:
//!   "pendingValidation"}`; the person opens `validationUrl`, logs in and approves, and
//!   the consumer key works from then on.
//! * Signature: `X-Ovh-Signature: "$1$" + hex(SHA-1(AS + "+" + CK + "+" + METHOD + "+" +
//!   URL + "+" + BODY + "+" + TIMESTAMP))`, with `X-Ovh-Application`, `X-Ovh-Consumer`
//!   and `X-Ovh-Timestamp`; the timestamp is OVHcloud's (`GET /auth/time`), so the
//!   difference to the local clock is measured once.
//! * DNS: `GET /domain/zone` (names, no pagination); `GET /domain/zone/{z}/record`
//!   (`?subDomain=` filters; returns ids); `GET …/record/{id}` (`{id, subDomain,
//!   fieldType, target, ttl}`); `POST …/record`, `PUT …/record/{id}`, `DELETE
//!   …/record/{id}`; then `POST /domain/zone/{z}/refresh` publishes the zone. Ids are
//!   mapped per record by [`crate::record_ops`]; only the names a change touches are read.
//! * Targets are in presentation form (TXT quoted, MX `10 host.`, SRV `0 1 993 host.`,
//!   CAA `0 issue "ca"`); OVHcloud's own `SPF`, `DKIM` and `DMARC` field types are TXT
//!   records and are read as TXT. TTL 0 means the zone's default; others are at least
//!   60 s here ([`Ovh::effective_ttl`]).
//! * Errors are `{errorCode, message}`: `INVALID_CREDENTIAL` / `NOT_CREDENTIAL` (the
//!   consumer key is unknown, expired or not yet approved), `NOT_GRANTED_CALL` (the
//!   approved rules do not cover the call), `INVALID_KEY` / `INVALID_SIGNATURE` (the
//!   application key or secret is wrong), 404 "This service does not exist", 429.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chatmail_shared::RecordData;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::error::ProviderError;
use crate::http::{
    absolute, http_client, json, rate_limit_wait, relative, short, status_error, transport_error,
    txt_from_api, Advice,
};
use crate::provider::{validate, Change, DnsProvider};
use crate::record_ops::{self, ApiRecord, Content, Op, RecordApi};
use crate::records::{normalize_name, parse_rdata, ZoneContents};

/// OVHcloud's API regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// OVHcloud Europe.
    #[serde(rename = "ovh-eu")]
    Eu,
    /// OVHcloud Canada.
    #[serde(rename = "ovh-ca")]
    Ca,
    /// OVHcloud US.
    #[serde(rename = "ovh-us")]
    Us,
}

impl Endpoint {
    /// The API's address in this region.
    pub fn base_url(self) -> &'static str {
        match self {
            Endpoint::Eu => "https://eu.api.ovh.com/1.0",
            Endpoint::Ca => "https://ca.api.ovh.com/1.0",
            Endpoint::Us => "https://api.us.ovhcloud.com/1.0",
        }
    }

    /// Where an application is registered in this region (for the guided form).
    pub fn create_app_url(self) -> &'static str {
        match self {
            Endpoint::Eu => "https://eu.api.ovh.com/createApp/",
            Endpoint::Ca => "https://ca.api.ovh.com/createApp/",
            Endpoint::Us => "https://api.us.ovhcloud.com/createApp/",
        }
    }
}

/// OVHcloud, signed with AK/AS/CK.
pub struct Ovh {
    base: String,
    application_key: String,
    application_secret: Zeroizing<String>,
    consumer_key: Zeroizing<String>,
    client: reqwest::Client,
    advice: Advice,
    /// OVHcloud's clock minus ours, in seconds, once measured.
    delta: Mutex<Option<i64>>,
}

impl std::fmt::Debug for Ovh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ovh")
            .field("base", &self.base)
            .field("application_key", &self.application_key)
            .field("application_secret", &"<hidden>")
            .field("consumer_key", &"<hidden>")
            .finish()
    }
}

/// Advice for an approved consumer key.
pub fn advice() -> Advice {
    Advice {
        wrong_key: "OVHcloud no longer accepts the portal's access (it was withdrawn, has \
                    expired, or was never approved). Connect OVHcloud again: the portal opens \
                    OVHcloud's page, where you log in and approve access to your DNS zones."
            .into(),
        no_permission: "The access you approved at OVHcloud does not cover this domain's DNS \
                        zone. Connect OVHcloud again and approve access for this zone."
            .into(),
    }
}

/// The answer to a consumer-key request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerKeyRequest {
    /// The page the person opens to log in and approve.
    pub validation_url: String,
    /// The consumer key, valid once approved (store it sealed, as a credential).
    pub consumer_key: String,
    /// `pendingValidation` until approved.
    #[serde(default)]
    pub state: String,
}

/// The access rules the portal asks for: list the zones, and read and change records of
/// each of `zones` (or of every zone, when empty).
pub fn access_rules(zones: &[&str]) -> Value {
    let scopes: Vec<String> = if zones.is_empty() {
        vec!["/domain/zone/*".to_string()]
    } else {
        zones
            .iter()
            .map(|z| format!("/domain/zone/{}/*", normalize_name(z)))
            .collect()
    };
    let mut rules = vec![json!({"method": "GET", "path": "/domain/zone"})];
    for scope in &scopes {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            rules.push(json!({"method": method, "path": scope}));
        }
    }
    Value::Array(rules)
}

/// Starts the consumer-key request (`POST /auth/credential`, signed by nothing but the
/// application key) and returns where the person approves it. After approval OVHcloud
/// sends the browser to `redirect_url`. `base` is an [`Endpoint::base_url`] (or a test
/// server).
pub async fn request_consumer_key(
    base: &str,
    application_key: &str,
    redirect_url: &str,
    zones: &[&str],
) -> Result<ConsumerKeyRequest, ProviderError> {
    let client = http_client()?;
    let resp = client
        .post(format!("{}/auth/credential", base.trim_end_matches('/')))
        .header("X-Ovh-Application", application_key.trim())
        .json(&json!({ "accessRules": access_rules(zones), "redirection": redirect_url }))
        .send()
        .await
        .map_err(transport_error)?;
    if !resp.status().is_success() {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        return Err(classify(status, &headers, &text, None, &advice()));
    }
    json(resp, "OVHcloud").await
}

#[derive(Deserialize)]
struct OvhError {
    #[serde(default, rename = "errorCode")]
    error_code: String,
    #[serde(default)]
    message: String,
}

fn classify(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    zone: Option<&str>,
    advice: &Advice,
) -> ProviderError {
    let e = serde_json::from_str::<OvhError>(body).unwrap_or(OvhError {
        error_code: String::new(),
        message: short(body),
    });
    let code = e.error_code.to_ascii_uppercase();
    let msg = e.message.to_ascii_lowercase();
    if code == "INVALID_KEY"
        || code == "INVALID_SIGNATURE"
        || msg.contains("invalid application key")
        || msg.contains("invalid signature")
    {
        return ProviderError::WrongCredentials {
            advice: Some(
                "OVHcloud did not accept the application key or secret. If you entered your \
                 own application, copy both again from OVHcloud's createApp page; if the \
                 portal provides it, its operator must check the portal's configuration."
                    .into(),
            ),
        };
    }
    if code == "INVALID_CREDENTIAL"
        || code == "NOT_CREDENTIAL"
        || msg.contains("credential is not valid")
        || msg.contains("must login")
    {
        return advice.wrong_key();
    }
    if code == "NOT_GRANTED_CALL" || msg.contains("not been granted") {
        return advice.no_permission();
    }
    if status.as_u16() == 429 {
        return ProviderError::RateLimited {
            retry_after: rate_limit_wait(headers),
        };
    }
    status_error(status, headers, &e.message, zone, advice)
}

#[derive(Deserialize)]
struct OvhRecord {
    id: u64,
    #[serde(default, rename = "subDomain")]
    sub_domain: String,
    #[serde(rename = "fieldType")]
    field_type: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    ttl: u32,
}

fn sha1_hex(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `X-Ovh-Signature` value.
pub fn signature(
    application_secret: &str,
    consumer_key: &str,
    method: &str,
    url: &str,
    body: &str,
    timestamp: i64,
) -> String {
    format!(
        "$1${}",
        sha1_hex(&format!(
            "{application_secret}+{consumer_key}+{method}+{url}+{body}+{timestamp}"
        ))
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Ovh {
    /// A client for `endpoint` with the application key and secret and the approved
    /// consumer key.
    pub fn new(
        endpoint: Endpoint,
        application_key: &str,
        application_secret: &str,
        consumer_key: &str,
    ) -> Result<Self, ProviderError> {
        Ok(Ovh {
            base: endpoint.base_url().to_string(),
            application_key: application_key.trim().to_string(),
            application_secret: Zeroizing::new(application_secret.trim().to_string()),
            consumer_key: Zeroizing::new(consumer_key.trim().to_string()),
            client: http_client()?,
            advice: advice(),
            delta: Mutex::new(None),
        })
    }

    /// The same client talking to `base` (tests: a local server).
    pub fn with_base_url(mut self, base: &str) -> Self {
        self.base = base.trim_end_matches('/').to_string();
        self
    }

    /// The TTL OVHcloud stores for `ttl` here: at least 60 s.
    pub fn effective_ttl(ttl: u32) -> u32 {
        ttl.max(60)
    }

    async fn timestamp(&self) -> Result<i64, ProviderError> {
        if let Some(d) = *self.delta.lock().expect("lock") {
            return Ok(now() + d);
        }
        let resp = self
            .client
            .get(format!("{}/auth/time", self.base))
            .send()
            .await
            .map_err(transport_error)?;
        if !resp.status().is_success() {
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            return Err(classify(status, &headers, &text, None, &self.advice));
        }
        let server: i64 = json(resp, "OVHcloud").await?;
        let d = server - now();
        *self.delta.lock().expect("lock") = Some(d);
        Ok(now() + d)
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        zone: Option<&str>,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = format!("{}{path_and_query}", self.base);
        let body_text = body.map(|b| b.to_string()).unwrap_or_default();
        let ts = self.timestamp().await?;
        let sig = signature(
            &self.application_secret,
            &self.consumer_key,
            method.as_str(),
            &url,
            &body_text,
            ts,
        );
        let mut req = self
            .client
            .request(method, &url)
            .header("X-Ovh-Application", &self.application_key)
            .header("X-Ovh-Consumer", self.consumer_key.as_str())
            .header("X-Ovh-Timestamp", ts.to_string())
            .header("X-Ovh-Signature", sig);
        if body.is_some() {
            req = req
                .header("Content-Type", "application/json")
                .body(body_text);
        }
        let resp = req.send().await.map_err(transport_error)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Err(classify(status, &headers, &text, zone, &self.advice))
    }

    async fn ids(&self, zone: &str, sub: Option<&str>) -> Result<Vec<u64>, ProviderError> {
        let path = match sub {
            Some(s) => format!("/domain/zone/{zone}/record?subDomain={}", url_escape(s)),
            None => format!("/domain/zone/{zone}/record"),
        };
        json(
            self.send(Method::GET, &path, None, Some(zone)).await?,
            "OVHcloud",
        )
        .await
    }

    async fn record(&self, zone: &str, id: u64) -> Result<Option<ApiRecord>, ProviderError> {
        match self
            .send(
                Method::GET,
                &format!("/domain/zone/{zone}/record/{id}"),
                None,
                Some(zone),
            )
            .await
        {
            Ok(resp) => {
                let r: OvhRecord = json(resp, "OVHcloud").await?;
                Ok(Some(to_api(r, zone)))
            }
            // Deleted between listing and reading.
            Err(ProviderError::ZoneNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn records_at(
        &self,
        zone: &str,
        names: Option<&[String]>,
    ) -> Result<Vec<ApiRecord>, ProviderError> {
        let mut ids = Vec::new();
        match names {
            None => ids = self.ids(zone, None).await?,
            Some(names) => {
                let mut subs: Vec<String> = names.iter().map(|n| relative(n, zone)).collect();
                subs.sort();
                subs.dedup();
                for s in subs {
                    ids.extend(self.ids(zone, Some(&s)).await?);
                }
            }
        }
        let mut out = Vec::new();
        for id in ids {
            if let Some(r) = self.record(zone, id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn body(zone: &str, name: &str, ttl: u32, value: &RecordData, create: bool) -> Value {
        let mut b = json!({
            "subDomain": relative(name, zone),
            "target": value.presentation(),
            "ttl": ttl,
        });
        if create {
            b["fieldType"] = json!(value.rtype());
        }
        b
    }
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn to_api(r: OvhRecord, zone: &str) -> ApiRecord {
    let mut rtype = r.field_type.to_ascii_uppercase();
    if matches!(rtype.as_str(), "SPF" | "DKIM" | "DMARC") {
        rtype = "TXT".into();
    }
    let parsed = match rtype.as_str() {
        "TXT" => Some(RecordData::Txt(txt_from_api(&r.target))),
        "A" | "AAAA" | "MX" | "CNAME" | "SRV" | "CAA" => {
            // Host names without the trailing dot are relative to the zone.
            parse_rdata(&rtype, &r.target).ok().map(|d| match d {
                RecordData::Cname(t) if !r.target.trim_end().ends_with('.') => {
                    RecordData::Cname(absolute(&t, zone))
                }
                RecordData::Mx {
                    preference,
                    exchange,
                } if !r.target.trim_end().ends_with('.') => RecordData::Mx {
                    preference,
                    exchange: absolute(&exchange, zone),
                },
                RecordData::Srv {
                    priority,
                    weight,
                    port,
                    target,
                } if !r.target.trim_end().ends_with('.') => RecordData::Srv {
                    priority,
                    weight,
                    port,
                    target: absolute(&target, zone),
                },
                other => other,
            })
        }
        _ => None,
    };
    ApiRecord {
        id: r.id.to_string(),
        name: absolute(&r.sub_domain, zone),
        rtype,
        ttl: if r.ttl == 0 { 3600 } else { r.ttl },
        content: match parsed {
            Some(d) => Content::Data(d),
            None => Content::Other(r.target),
        },
    }
}

#[async_trait]
impl RecordApi for Ovh {
    type Zone = String;

    async fn zone(&self, zone: &str) -> Result<String, ProviderError> {
        Ok(normalize_name(zone))
    }

    async fn records(&self, zone: &String) -> Result<Vec<ApiRecord>, ProviderError> {
        self.records_at(zone, None).await
    }

    async fn create(
        &self,
        zone: &String,
        name: &str,
        ttl: u32,
        value: &RecordData,
    ) -> Result<(), ProviderError> {
        self.send(
            Method::POST,
            &format!("/domain/zone/{zone}/record"),
            Some(&Self::body(zone, name, ttl, value, true)),
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
        self.send(
            Method::PUT,
            &format!("/domain/zone/{zone}/record/{id}"),
            Some(&Self::body(zone, name, ttl, value, false)),
            Some(zone),
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, zone: &String, id: &str) -> Result<(), ProviderError> {
        match self
            .send(
                Method::DELETE,
                &format!("/domain/zone/{zone}/record/{id}"),
                None,
                Some(zone),
            )
            .await
        {
            Ok(_) | Err(ProviderError::ZoneNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn finish(&self, zone: &String) -> Result<(), ProviderError> {
        self.send(
            Method::POST,
            &format!("/domain/zone/{zone}/refresh"),
            None,
            Some(zone),
        )
        .await
        .map(|_| ())
    }

    fn clamp_ttl(&self, ttl: u32) -> u32 {
        Self::effective_ttl(ttl)
    }
}

#[async_trait]
impl DnsProvider for Ovh {
    fn name(&self) -> &str {
        "OVHcloud"
    }

    fn effective_ttl(&self, ttl: u32) -> u32 {
        Ovh::effective_ttl(ttl)
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        let zones: Vec<String> = json(
            self.send(Method::GET, "/domain/zone", None, None).await?,
            "OVHcloud",
        )
        .await?;
        Ok(zones.iter().map(|z| normalize_name(z)).collect())
    }

    async fn read(&self, zone: &str) -> Result<ZoneContents, ProviderError> {
        record_ops::read(self, zone).await
    }

    async fn read_names(
        &self,
        zone: &str,
        names: &[String],
    ) -> Result<ZoneContents, ProviderError> {
        let zone = normalize_name(zone);
        Ok(record_ops::contents(
            &self.records_at(&zone, Some(names)).await?,
        ))
    }

    async fn apply(&self, zone: &str, changes: &[Change]) -> Result<(), ProviderError> {
        validate(zone, changes)?;
        if changes.is_empty() {
            return Ok(());
        }
        let zone = normalize_name(zone);
        let names: Vec<String> = changes.iter().map(|c| c.name().to_string()).collect();
        let current = self.records_at(&zone, Some(&names)).await?;
        let ops = record_ops::plan_all(changes, &current, &Ovh::effective_ttl);
        for op in &ops {
            match op {
                Op::Create { name, ttl, value } => self.create(&zone, name, *ttl, value).await?,
                Op::Update {
                    id,
                    name,
                    ttl,
                    value,
                } => self.update(&zone, id, name, *ttl, value).await?,
                Op::Delete { id } => RecordApi::delete(self, &zone, id).await?,
            }
        }
        if !ops.is_empty() {
            self.finish(&zone).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        // The documented recipe, computed independently: SHA-1 of the joined fields.
        let s = signature(
            "AS",
            "CK",
            "GET",
            "https://eu.api.ovh.com/1.0/domain/zone",
            "",
            1,
        );
        assert_eq!(
            s,
            format!(
                "$1${}",
                sha1_hex("AS+CK+GET+https://eu.api.ovh.com/1.0/domain/zone++1")
            )
        );
        assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let rules = access_rules(&["Example.org"]);
        assert_eq!(rules[1]["path"], "/domain/zone/example.org/*");
        let rules = access_rules(&["chat.example.org", "example.org"]);
        assert_eq!(rules.as_array().unwrap().len(), 9);
        assert_eq!(rules[8]["path"], "/domain/zone/example.org/*");
        assert_eq!(access_rules(&[])[1]["path"], "/domain/zone/*");
    }

    #[test]
    fn reading_targets() {
        let r = to_api(
            OvhRecord {
                id: 1,
                sub_domain: "chat".into(),
                field_type: "SPF".into(),
                target: "\"v=spf1 a ~all\"".into(),
                ttl: 0,
            },
            "example.org",
        );
        assert_eq!(
            (r.rtype.as_str(), r.key()),
            ("TXT", "v=spf1 a ~all".to_string())
        );
        let mx = to_api(
            OvhRecord {
                id: 2,
                sub_domain: String::new(),
                field_type: "MX".into(),
                target: "10 mail".into(),
                ttl: 600,
            },
            "example.org",
        );
        assert_eq!(mx.key(), "10 mail.example.org");
        assert_eq!(mx.name, "example.org");
    }
}
