//! Which host a request was for, and the redirects that follow from it.
//!
//! Upstream's web server answers for the domain and `mta-sts.<domain>`, sends `www.<domain>`
//! to the bare domain, and on port 80 serves only ACME challenges and redirects everything
//! else to HTTPS (research/chatmail.md §5). The same rules, as middleware.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::WebState;

/// The kind of host a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// The mail domain itself (or anything unrecognised, e.g. an IP address).
    Main,
    /// `www.<domain>`.
    Www,
    /// `mta-sts.<domain>`.
    MtaSts,
}

/// The host name of a `Host` header value: port and trailing dot removed, lowercased.
pub fn host_name(host: &str) -> String {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Classifies `host` (a `Host` header value) for `domain`.
pub fn classify(host: &str, domain: &str) -> HostKind {
    let name = host_name(host);
    match name.strip_suffix(domain).and_then(|p| p.strip_suffix('.')) {
        Some("www") => HostKind::Www,
        Some("mta-sts") => HostKind::MtaSts,
        _ => HostKind::Main,
    }
}

fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
}

/// `https://<host><:port if not 443><path and query>`.
pub fn https_url(host: &str, https_port: u16, uri: &Uri) -> String {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    }
}

fn moved(location: String) -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// HTTPS: `www.` goes to the bare domain; `mta-sts.` serves the policy only.
pub async fn https_hosts(State(state): State<WebState>, request: Request, next: Next) -> Response {
    let domain = state.config.mail_domain.as_str();
    let kind = request_host(&request)
        .map(|h| classify(&h, domain))
        .unwrap_or(HostKind::Main);
    match kind {
        HostKind::Www => moved(https_url(domain, state.https_port, request.uri())),
        HostKind::MtaSts if request.uri().path() != chatmail_shared::mta_sts::POLICY_PATH => {
            StatusCode::NOT_FOUND.into_response()
        }
        _ => next.run(request).await,
    }
}

/// HTTP: everything (except ACME challenges, routed before this) goes to HTTPS on the same
/// host; `www.` goes straight to the bare domain.
pub async fn to_https(State(state): State<WebState>, request: Request) -> Response {
    let domain = state.config.mail_domain.as_str();
    let host = request_host(&request)
        .map(|h| host_name(&h))
        .filter(|h| !h.is_empty() && h.len() <= 253 && !h.contains(['/', '@', '\\', ' ']))
        .unwrap_or_else(|| domain.to_string());
    let target = match classify(&host, domain) {
        HostKind::Www => domain.to_string(),
        _ => host,
    };
    moved(https_url(&target, state.https_port, request.uri()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let d = "chat.example.org";
        assert_eq!(classify("chat.example.org", d), HostKind::Main);
        assert_eq!(classify("CHAT.example.org.:8443", d), HostKind::Main);
        assert_eq!(classify("www.chat.example.org", d), HostKind::Www);
        assert_eq!(
            classify("mta-sts.chat.example.org:443", d),
            HostKind::MtaSts
        );
        assert_eq!(classify("xwww.chat.example.org", d), HostKind::Main);
        assert_eq!(classify("203.0.113.7", d), HostKind::Main);
        assert_eq!(host_name("[2001:db8::1]:443"), "2001:db8::1");
    }

    #[test]
    fn urls() {
        let uri: Uri = "/info.html?x=1".parse().unwrap();
        assert_eq!(
            https_url("chat.example.org", 443, &uri),
            "https://chat.example.org/info.html?x=1"
        );
        assert_eq!(
            https_url("chat.example.org", 8443, &"/".parse().unwrap()),
            "https://chat.example.org:8443/"
        );
    }
}
