//! What the HTTP API providers share: the TLS client, turning HTTP failures into
//! plain-language [`ProviderError`]s with the provider's own advice, rate-limit waits,
//! TTL clamping, relative and absolute names, and TXT quoting.
//!
//! Every provider module builds its [`Advice`] (what to do when the key is refused or
//! lacks a permission, in the words of that provider's control panel) and maps statuses
//! through [`status_error`], so a person reads e.g. "The Cloudflare token may not edit the
//! DNS of this zone: give it the permission Zone → DNS → Edit" instead of "HTTP 403".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatmail_shared::dns_plan::TxtStrings;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ProviderError;
use crate::powerdns::parse_retry_after;
use crate::records::{normalize_name, parse_rdata};

pub use crate::powerdns::{http_client, REQUEST_TIMEOUT};

/// What to tell a person when a provider refuses the credentials, in its own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// For 401: the key is wrong, expired or revoked.
    pub wrong_key: String,
    /// For 403: the key is valid but lacks a permission.
    pub no_permission: String,
}

impl Advice {
    /// Advice for a connection made by signing in (OAuth): the remedy is to reconnect.
    pub fn reconnect(provider: &str) -> Self {
        Advice {
            wrong_key: format!(
                "The connection to {provider} has expired or was withdrawn at {provider}. \
                 Connect {provider} again (sign in with {provider} in the portal); the \
                 portal then finishes what is left."
            ),
            no_permission: format!(
                "The connection to {provider} is not allowed to change the DNS records of \
                 this domain. Connect {provider} again and allow access to DNS when \
                 {provider} asks, with an account that manages this domain."
            ),
        }
    }

    /// The error for `status` 401 or 403.
    pub fn wrong_key(&self) -> ProviderError {
        ProviderError::WrongCredentials {
            advice: Some(self.wrong_key.clone()),
        }
    }

    /// The error for a valid key that lacks a permission.
    pub fn no_permission(&self) -> ProviderError {
        ProviderError::PermissionDenied {
            advice: Some(self.no_permission.clone()),
        }
    }
}

/// A transport failure (no connection, timeout, TLS) as a retryable error.
pub fn transport_error(e: reqwest::Error) -> ProviderError {
    let what = if e.is_timeout() {
        "no answer in time".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        let mut source: &dyn std::error::Error = &e;
        while let Some(inner) = source.source() {
            source = inner;
        }
        source.to_string()
    };
    ProviderError::Unreachable(what)
}

/// How long a 429 asks to wait: `Retry-After` (seconds or an HTTP date, RFC 9110
/// §10.2.3), else a `RateLimit-Reset` / `X-RateLimit-Reset` header (DigitalOcean and
/// Hetzner send a Unix time there; small numbers are read as seconds).
pub fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    if let Some(d) = parse_retry_after(headers) {
        return Some(d);
    }
    for name in ["ratelimit-reset", "x-ratelimit-reset"] {
        let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(n) = v.trim().parse::<u64>() else {
            continue;
        };
        if n > 1_000_000_000 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            return Some(Duration::from_secs(n.saturating_sub(now)));
        }
        return Some(Duration::from_secs(n));
    }
    None
}

/// Maps an HTTP failure to a [`ProviderError`]: 401 → wrong key, 403 → missing
/// permission (both with the provider's `advice`), 404 → the zone (if the request was
/// about one) is not there, 429 → rate limited, 400/409/422 → the data was refused (with
/// the provider's `detail`), 5xx → unreachable (retryable).
pub fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    detail: &str,
    zone: Option<&str>,
    advice: &Advice,
) -> ProviderError {
    match status.as_u16() {
        401 => advice.wrong_key(),
        403 => advice.no_permission(),
        404 => match zone {
            Some(zone) => ProviderError::ZoneNotFound {
                domain: normalize_name(zone),
            },
            None => ProviderError::Other(format!("the provider answered “not found”: {detail}")),
        },
        429 => ProviderError::RateLimited {
            retry_after: rate_limit_wait(headers),
        },
        400 | 409 | 422 => ProviderError::Rejected(if detail.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            detail.to_string()
        }),
        500..=599 => ProviderError::Unreachable(format!(
            "the provider reported an error (HTTP {}){}",
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

/// The first 200 characters of a body, for error messages when no field says more.
pub fn short(body: &str) -> String {
    body.chars().take(200).collect()
}

/// Reads a JSON answer, or says which provider answered something unreadable.
pub async fn json<T: DeserializeOwned>(
    resp: reqwest::Response,
    provider: &str,
) -> Result<T, ProviderError> {
    let text = resp.text().await.map_err(transport_error)?;
    serde_json::from_str(&text)
        .map_err(|e| ProviderError::Other(format!("unreadable answer from {provider}: {e}")))
}

/// `ttl` raised to `min` and lowered to `max` (providers refuse values outside their
/// range; the portal's own TTL, 3600, is inside every range here).
pub fn clamp_ttl(ttl: u32, min: u32, max: u32) -> u32 {
    ttl.clamp(min, max)
}

/// `name` relative to `zone`: `""` for the apex, `www` for `www.example.org`.
pub fn relative(name: &str, zone: &str) -> String {
    let name = normalize_name(name);
    let zone = normalize_name(zone);
    if name == zone {
        String::new()
    } else {
        name.strip_suffix(&format!(".{zone}"))
            .unwrap_or(&name)
            .to_string()
    }
}

/// The absolute name of `rel` in `zone`; `""` and `@` are the apex, a name ending in a dot
/// is already absolute, and so is one that already ends with the zone.
pub fn absolute(rel: &str, zone: &str) -> String {
    let zone = normalize_name(zone);
    let rel = rel.trim();
    if rel.is_empty() || rel == "@" {
        return zone;
    }
    if rel.ends_with('.') {
        return normalize_name(rel);
    }
    let low = rel.to_ascii_lowercase();
    if low == zone || low.ends_with(&format!(".{zone}")) {
        return low;
    }
    format!("{low}.{zone}")
}

/// A host name in record data as an API that writes relative or absolute names returns
/// it: `@` is the zone, a trailing dot means absolute, and a name without a dot is taken
/// as relative to the zone; anything else is absolute.
pub fn host_from_api(text: &str, zone: &str) -> String {
    let t = text.trim();
    if t == "@" || t.is_empty() {
        return normalize_name(zone);
    }
    if t.ends_with('.') || t.contains('.') {
        return normalize_name(t);
    }
    absolute(t, zone)
}

/// TXT text from an API that may answer quoted character-strings (`"a" "b"`, RFC 1035
/// §5.1) or the raw text: quoted is parsed and joined, raw is taken as it is.
pub fn txt_from_api(content: &str) -> TxtStrings {
    let c = content.trim();
    if c.starts_with('"') && c.ends_with('"') && c.len() >= 2 {
        if let Ok(chatmail_shared::RecordData::Txt(t)) = parse_rdata("TXT", c) {
            return t;
        }
    }
    TxtStrings::split(content)
}

/// `s` with `"` and `\` escaped, in quotes (for providers that want one quoted string and
/// split long ones themselves).
pub fn quote_one(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn names() {
        assert_eq!(relative("www.Example.org.", "example.org"), "www");
        assert_eq!(relative("example.org", "example.org."), "");
        assert_eq!(absolute("@", "example.org"), "example.org");
        assert_eq!(absolute("", "example.org"), "example.org");
        assert_eq!(absolute("WWW", "example.org"), "www.example.org");
        assert_eq!(absolute("a.example.net.", "example.org"), "a.example.net");
        assert_eq!(
            absolute("chat.example.org", "example.org"),
            "chat.example.org"
        );
        assert_eq!(host_from_api("@", "example.org"), "example.org");
        assert_eq!(host_from_api("mail", "example.org"), "mail.example.org");
        assert_eq!(
            host_from_api("mx.example.net", "example.org"),
            "mx.example.net"
        );
    }

    #[test]
    fn txt_forms() {
        assert_eq!(
            txt_from_api(r#""v=spf1 " "a ~all""#).joined(),
            "v=spf1 a ~all"
        );
        assert_eq!(txt_from_api("v=spf1 a ~all").joined(), "v=spf1 a ~all");
        assert_eq!(txt_from_api("\"").joined(), "\"");
        assert_eq!(quote_one(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn waits() {
        let mut h = HeaderMap::new();
        assert_eq!(rate_limit_wait(&h), None);
        h.insert("ratelimit-reset", HeaderValue::from_static("12"));
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(12)));
        let later = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 100;
        h.insert(
            "ratelimit-reset",
            HeaderValue::from_str(&later.to_string()).unwrap(),
        );
        let d = rate_limit_wait(&h).unwrap();
        assert!(d.as_secs() > 90 && d.as_secs() <= 100, "{d:?}");
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(3)));
    }

    #[test]
    fn statuses() {
        let advice = Advice::reconnect("Example");
        let h = HeaderMap::new();
        let e =
            |c: u16, zone| status_error(StatusCode::from_u16(c).unwrap(), &h, "x", zone, &advice);
        assert!(e(401, None).to_string().contains("Connect Example again"));
        assert!(matches!(
            e(403, None),
            ProviderError::PermissionDenied { advice: Some(_) }
        ));
        assert!(matches!(
            e(404, Some("a.org")),
            ProviderError::ZoneNotFound { .. }
        ));
        assert!(matches!(e(429, None), ProviderError::RateLimited { .. }));
        assert!(matches!(e(422, None), ProviderError::Rejected(_)));
        assert!(e(502, None).is_retryable());
    }
}
