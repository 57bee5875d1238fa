//! Cross-site request forgery defence, in two layers.
//!
//! 1. Every state-changing request must come from this portal's own pages: browsers say
//!    where a request comes from (`Sec-Fetch-Site`, `Origin`), and anything cross-site is
//!    refused before it reaches a handler. This also covers the sign-in and sign-up forms,
//!    which have no session yet.
//! 2. Every form of a signed-in session carries that session's token, checked by the form
//!    handlers ([`token_matches`]), for browsers that send neither header.

use axum::{
    extract::{Request, State},
    http::{header, Method, StatusCode},
    middleware::Next,
    response::{Html, IntoResponse, Response},
};

use crate::AppState;

pub async fn same_origin_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    if is_same_origin(&state.settings.base_url, &request) {
        next.run(request).await
    } else {
        tracing::warn!(path = %request.uri().path(), "refused a cross-site request");
        (
            StatusCode::FORBIDDEN,
            Html(
                "<!DOCTYPE html><title>Request refused</title><h1>Request refused</h1>\
                 <p>This form was sent from another website, so the portal did not act on it. \
                 If you meant to do this, open the portal and try again from there.</p>",
            ),
        )
            .into_response()
    }
}

fn is_same_origin(base_url: &str, request: &Request) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        if origin == "null" {
            return false;
        }
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        return origin.trim_end_matches('/') == base_url.trim_end_matches('/')
            || (origin_host.is_some() && origin_host == host);
    }
    // Neither header: not a modern browser's cross-site request. The form token decides.
    true
}

/// Constant-time comparison of a submitted token with the session's.
pub fn token_matches(submitted: &str, expected: &str) -> bool {
    let (a, b) = (submitted.as_bytes(), expected.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().method("POST").uri("/signin");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn origin_rules() {
        let base = "https://portal.example.org";
        assert!(is_same_origin(
            base,
            &request(&[("sec-fetch-site", "same-origin")])
        ));
        assert!(is_same_origin(
            base,
            &request(&[("sec-fetch-site", "none")])
        ));
        assert!(!is_same_origin(
            base,
            &request(&[("sec-fetch-site", "cross-site")])
        ));
        assert!(!is_same_origin(
            base,
            &request(&[("sec-fetch-site", "same-site")])
        ));
        assert!(is_same_origin(
            base,
            &request(&[("origin", "https://portal.example.org")])
        ));
        assert!(!is_same_origin(
            base,
            &request(&[("origin", "https://evil.example")])
        ));
        assert!(!is_same_origin(base, &request(&[("origin", "null")])));
        assert!(is_same_origin(
            base,
            &request(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080")
            ])
        ));
        assert!(is_same_origin(base, &request(&[])));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
        assert!(!token_matches("", ""));
    }
}
