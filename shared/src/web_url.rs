//! URLs the device will call: the ACME directory and the portal's update endpoint.
//!
//! A device that boots with a mistyped or plain-HTTP URL fails quietly far from anyone who
//! could fix it, so the config accepts only HTTPS URLs without embedded credentials. Plain
//! HTTP is allowed for loopback hosts only, so that local test setups (e.g. a portal on
//! 127.0.0.1) work.

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2000;

/// Why a string is not an acceptable URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Longer than [`MAX_URL_LEN`].
    #[error("must be at most {MAX_URL_LEN} characters long")]
    TooLong,
    /// Not parseable as an absolute URL.
    #[error("must be an absolute URL such as https://example.org/path ({0})")]
    Syntax(String),
    /// Not `https:` (and not `http:` to a loopback host).
    #[error("must use https:// (http:// is allowed only for localhost and loopback addresses)")]
    NotHttps,
    /// `user:password@` in the URL.
    #[error("must not contain a user name or password")]
    Credentials,
    /// A `#fragment`.
    #[error("must not contain a #fragment")]
    Fragment,
}

/// A validated `https://` URL (or `http://` to a loopback host).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpsUrl(Url);

impl HttpsUrl {
    /// Parses and validates `input`.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        if input.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let url = Url::parse(input).map_err(|e| UrlError::Syntax(e.to_string()))?;
        let loopback = match url.host() {
            Some(Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
            Some(Host::Ipv4(a)) => IpAddr::V4(a).is_loopback(),
            Some(Host::Ipv6(a)) => IpAddr::V6(a).is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" if loopback => {}
            _ => return Err(UrlError::NotHttps),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        if url.as_str().len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        Ok(HttpsUrl(url))
    }

    /// The normalized URL text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for HttpsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_loopback_http() {
        assert!(HttpsUrl::parse("https://acme-v02.api.letsencrypt.org/directory").is_ok());
        assert!(HttpsUrl::parse("http://127.0.0.1:8080/updates").is_ok());
        assert!(HttpsUrl::parse("http://localhost/x").is_ok());
        assert!(HttpsUrl::parse("http://[::1]/x").is_ok());
        assert_eq!(
            HttpsUrl::parse("http://portal.example.org/"),
            Err(UrlError::NotHttps)
        );
        assert_eq!(HttpsUrl::parse("ftp://x.example/"), Err(UrlError::NotHttps));
        assert_eq!(
            HttpsUrl::parse("javascript:alert(1)"),
            Err(UrlError::NotHttps)
        );
        assert_eq!(
            HttpsUrl::parse("https://u:p@example.org/"),
            Err(UrlError::Credentials)
        );
        assert_eq!(
            HttpsUrl::parse("https://example.org/#x"),
            Err(UrlError::Fragment)
        );
        assert!(matches!(
            HttpsUrl::parse("not a url"),
            Err(UrlError::Syntax(_))
        ));
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(HttpsUrl::parse(&long), Err(UrlError::TooLong));
    }
}
