//! The PowerDNS Authoritative HTTP API (`/api/v1`), for groups that run their own
//! PowerDNS or use a hoster that exposes it.
//!
//! API facts (research/registrars.md §3.2; <https://doc.powerdns.com/authoritative/http-api/zone.html>):
//! the key goes in `X-API-Key`; `GET /servers/{id}/zones` lists zones; `GET …/zones/{zone}`
//! returns its RRsets; `PATCH …/zones/{zone}` with `{"rrsets":[…]}` and `changetype`
//! `REPLACE` or `DELETE` changes them (204 on success). Names are absolute with the trailing
//! dot; record content is in zone-file presentation form (TXT quoted, split in 255-byte
//! strings), which is what `RecordData::presentation` writes.
//!
//! One [`DnsProvider::apply`] is one PATCH, which PowerDNS applies in one database
//! transaction: it succeeds or changes nothing. [`Change::Merge`] needs the RRset's current
//! records, so `apply` reads the zone first when the list has one; foreign values are
//! written back exactly as read (content and disabled flag).
//!
//! Errors: 401 → wrong key, 403 → permission denied, 404 → zone not found, 400/422 →
//! refused data, 429 → rate limited (Retry-After in seconds or as an HTTP date), 5xx and
//! connection failures → unreachable (retryable).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::ProviderError;
use crate::provider::{merge_plan, validate, Change, DnsProvider};
use crate::records::{normalize_name, parse_rdata, value_key, ZoneContents};

/// A PowerDNS server reached through its HTTP API.
pub struct PowerDns {
    /// `…/api/v1/servers/{server_id}`.
    base: String,
    api_key: Zeroizing<String>,
    client: reqwest::Client,
    label: String,
}

impl std::fmt::Debug for PowerDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerDns")
            .field("base", &self.base)
            .field("api_key", &"<hidden>")
            .finish()
    }
}

/// Timeout for one HTTP request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client with TLS through rustls (ring), verified against the system's trust
/// store, with the portal's timeouts. Shared by the HTTP-based providers.
pub fn http_client() -> Result<reqwest::Client, ProviderError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map_err(|e| ProviderError::Other(format!("TLS set-up failed: {e}")))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("chatmail-portal/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::Other(format!("HTTP client set-up failed: {e}")))
}

#[derive(Deserialize)]
struct ZoneSummary {
    name: String,
}

#[derive(Deserialize)]
struct ZoneDetail {
    #[serde(default)]
    rrsets: Vec<RrSet>,
}

#[derive(Deserialize, Serialize, Clone, Debug)]
struct RrSet {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    records: Vec<Rec>,
}

#[derive(Deserialize, Serialize, Clone, Debug)]
struct Rec {
    content: String,
    #[serde(default)]
    disabled: bool,
}

#[derive(Serialize)]
struct Patch {
    rrsets: Vec<PatchRrSet>,
}

#[derive(Serialize)]
struct PatchRrSet {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    changetype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<Vec<Rec>>,
}

#[derive(Deserialize)]
struct ApiError {
    error: String,
}

impl PowerDns {
    /// A client for the API at `base_url` (e.g. `https://dns.example.net:8081`; a trailing
    /// `/api/v1` is accepted), with `api_key` and `server_id` (normally `localhost`).
    pub fn new(base_url: &str, api_key: &str, server_id: &str) -> Result<Self, ProviderError> {
        let root = base_url.trim_end_matches('/');
        let root = root.strip_suffix("/api/v1").unwrap_or(root);
        if !(root.starts_with("http://") || root.starts_with("https://")) {
            return Err(ProviderError::Other(format!(
                "the PowerDNS API address must start with https:// or http:// (got {root})"
            )));
        }
        Ok(PowerDns {
            base: format!("{root}/api/v1/servers/{server_id}"),
            api_key: Zeroizing::new(api_key.to_string()),
            client: http_client()?,
            label: format!("PowerDNS ({root})"),
        })
    }

    fn zone_url(&self, zone: &str) -> String {
        format!("{}/zones/{}", self.base, zone_id(zone))
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Patch>,
        zone: Option<&str>,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut req = self
            .client
            .request(method, url)
            .header("X-API-Key", self.api_key.as_str())
            .header("Accept", "application/json");
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
        Err(status_error(status, &headers, &text, zone))
    }

    async fn zone_detail(&self, zone: &str) -> Result<ZoneDetail, ProviderError> {
        let resp = self
            .send(Method::GET, &self.zone_url(zone), None, Some(zone))
            .await?;
        resp.json::<ZoneDetail>()
            .await
            .map_err(|e| ProviderError::Other(format!("unreadable answer from PowerDNS: {e}")))
    }
}

/// PowerDNS's zone id: the absolute name with its trailing dot, characters other than
/// letters, digits, `.`, `-` and `_` written as `=XX`.
fn zone_id(zone: &str) -> String {
    let mut out = String::new();
    for b in format!("{}.", normalize_name(zone)).bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

fn transport_error(e: reqwest::Error) -> ProviderError {
    let what = if e.is_timeout() {
        "no answer in time".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        // Walk to the innermost cause; reqwest's own text repeats the URL (no secrets).
        let mut source: &dyn std::error::Error = &e;
        while let Some(inner) = source.source() {
            source = inner;
        }
        source.to_string()
    };
    ProviderError::Unreachable(what)
}

/// The delay a `Retry-After` header asks for (RFC 9110 §10.2.3): seconds or an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    zone: Option<&str>,
) -> ProviderError {
    let detail = serde_json::from_str::<ApiError>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| body.chars().take(200).collect());
    match status.as_u16() {
        401 => ProviderError::wrong_credentials(),
        403 => ProviderError::permission_denied(),
        404 => match zone {
            Some(zone) => ProviderError::ZoneNotFound {
                domain: normalize_name(zone),
            },
            None => ProviderError::Other(
                "no PowerDNS API at this address: check the URL and the server id (normally \
                 `localhost`)"
                    .into(),
            ),
        },
        429 => ProviderError::RateLimited {
            retry_after: parse_retry_after(headers),
        },
        400 | 409 | 422 => ProviderError::Rejected(detail),
        500..=599 => ProviderError::Unreachable(format!(
            "the server reported an error (HTTP {}){}",
            status.as_u16(),
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        )),
        other => ProviderError::Other(format!("HTTP {other}: {detail}")),
    }
}

fn fqdn(name: &str) -> String {
    format!("{}.", normalize_name(name))
}

#[async_trait]
impl DnsProvider for PowerDns {
    fn name(&self) -> &str {
        &self.label
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        let resp = self
            .send(Method::GET, &format!("{}/zones", self.base), None, None)
            .await?;
        let zones: Vec<ZoneSummary> = resp
            .json()
            .await
            .map_err(|e| ProviderError::Other(format!("unreadable answer from PowerDNS: {e}")))?;
        Ok(zones.into_iter().map(|z| normalize_name(&z.name)).collect())
    }

    async fn read(&self, zone: &str) -> Result<ZoneContents, ProviderError> {
        let detail = self.zone_detail(zone).await?;
        let mut out = ZoneContents::default();
        for set in detail.rrsets {
            for r in set.records.iter().filter(|r| !r.disabled) {
                out.push_presentation(&set.name, set.ttl, &set.rtype, &r.content);
            }
        }
        Ok(out)
    }

    async fn apply(&self, zone: &str, changes: &[Change]) -> Result<(), ProviderError> {
        validate(zone, changes)?;
        if changes.is_empty() {
            return Ok(());
        }
        let current = if changes.iter().any(|c| matches!(c, Change::Merge { .. })) {
            self.zone_detail(zone).await?.rrsets
        } else {
            Vec::new()
        };
        let mut rrsets = Vec::new();
        for change in changes {
            let name = fqdn(change.name());
            let rtype = change.rtype().to_ascii_uppercase();
            let entry = match change {
                Change::Remove { .. } => PatchRrSet {
                    name,
                    rtype,
                    ttl: None,
                    changetype: "DELETE",
                    records: None,
                },
                Change::Put { ttl, values, .. } => PatchRrSet {
                    name,
                    rtype,
                    ttl: Some(*ttl),
                    changetype: "REPLACE",
                    records: Some(
                        values
                            .iter()
                            .map(|v| Rec {
                                content: v.presentation(),
                                disabled: false,
                            })
                            .collect(),
                    ),
                },
                Change::Merge {
                    ttl, add, remove, ..
                } => {
                    let existing = current
                        .iter()
                        .find(|s| fqdn(&s.name) == name && s.rtype.eq_ignore_ascii_case(&rtype));
                    let keyed: Vec<(String, Rec)> = existing
                        .map(|s| {
                            s.records
                                .iter()
                                .map(|r| {
                                    let key = parse_rdata(&rtype, &r.content)
                                        .map(|d| value_key(&d))
                                        .unwrap_or_else(|_| r.content.clone());
                                    (key, r.clone())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let (kept, added) = merge_plan(keyed, add, remove);
                    let ttl = match existing {
                        Some(s) if !kept.is_empty() => s.ttl,
                        _ => *ttl,
                    };
                    let mut records = kept;
                    records.extend(added.iter().map(|v| Rec {
                        content: v.presentation(),
                        disabled: false,
                    }));
                    if records.is_empty() {
                        PatchRrSet {
                            name,
                            rtype,
                            ttl: None,
                            changetype: "DELETE",
                            records: None,
                        }
                    } else {
                        PatchRrSet {
                            name,
                            rtype,
                            ttl: Some(ttl),
                            changetype: "REPLACE",
                            records: Some(records),
                        }
                    }
                }
            };
            rrsets.push(entry);
        }
        self.send(
            Method::PATCH,
            &self.zone_url(zone),
            Some(&Patch { rrsets }),
            Some(zone),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn zone_ids() {
        assert_eq!(zone_id("Example.org"), "example.org.");
        assert_eq!(zone_id("example.org."), "example.org.");
        assert_eq!(zone_id("a/b.example"), "a=2Fb.example.");
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(120)));
        let later = SystemTime::now() + Duration::from_secs(600);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = parse_retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(590) && d <= Duration::from_secs(600),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn statuses_map_to_plain_errors() {
        let h = HeaderMap::new();
        let e = |code: u16, body: &str, zone: Option<&str>| {
            status_error(StatusCode::from_u16(code).unwrap(), &h, body, zone)
        };
        assert_eq!(
            e(401, "Unauthorized", None),
            ProviderError::wrong_credentials()
        );
        assert_eq!(
            e(403, "", Some("x.org")),
            ProviderError::permission_denied()
        );
        assert_eq!(
            e(
                404,
                r#"{"error":"Could not find domain 'x.org.'"}"#,
                Some("x.org.")
            ),
            ProviderError::ZoneNotFound {
                domain: "x.org".into()
            }
        );
        assert_eq!(
            e(
                422,
                r#"{"error":"RRset x.org. IN CNAME: Conflicts with pre-existing RRset"}"#,
                Some("x.org")
            ),
            ProviderError::Rejected(
                "RRset x.org. IN CNAME: Conflicts with pre-existing RRset".into()
            )
        );
        assert!(e(503, "", None).is_retryable());
        assert!(matches!(e(404, "", None), ProviderError::Other(_)));
    }

    #[test]
    fn debug_hides_the_key() {
        let p = PowerDns::new("http://127.0.0.1:1/api/v1/", "s3cr3t", "localhost").unwrap();
        assert_eq!(p.base, "http://127.0.0.1:1/api/v1/servers/localhost");
        assert!(!format!("{p:?}").contains("s3cr3t"));
        assert!(PowerDns::new("ftp://x", "k", "localhost").is_err());
    }
}
