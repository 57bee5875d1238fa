//! Static assets: the stylesheet and favicon compiled into the binary, and the browser
//! bundle (JS + WASM) read from the site directory the build produced.
//!
//! Every file whose name carries a content hash is cached by browsers for a year
//! (`immutable`); anything else must be revalidated on each use.

use std::{
    hash::{Hash, Hasher},
    path::Path,
    sync::Arc,
};

use axum::{
    body::Body,
    extract::{Path as UrlPath, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use chatmail_portal_app::Bundle;
use tower::ServiceExt;
use tower_http::services::ServeDir;

const STYLESHEET: &str = include_str!("../../../style/main.css");
const FAVICON: &str = include_str!("../../../style/favicon.svg");

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const REVALIDATE: &str = "no-cache";

/// The assets one portal process serves.
#[derive(Clone)]
pub struct Assets {
    pub bundle: Bundle,
    css_path: String,
    favicon_path: String,
    pkg_dir: Arc<ServeDir>,
}

impl Assets {
    /// Loads the bundle's manifest from `site_root`; without one the portal still works,
    /// only without hydration.
    pub fn load(site_root: &Path) -> Assets {
        let css_path = format!("/pkg/portal.{}.css", short_hash(STYLESHEET));
        let favicon_path = format!("/pkg/favicon.{}.svg", short_hash(FAVICON));
        let (js, wasm) = match read_manifest(site_root) {
            Ok(scripts) => (Some(scripts.js), Some(scripts.wasm)),
            Err(reason) => {
                tracing::warn!(
                    site_root = %site_root.display(),
                    "no browser bundle ({reason}); pages work but are not interactive. \
                     Build it with portal/scripts/build.sh"
                );
                (None, None)
            }
        };
        let bundle = Bundle {
            css: css_path.clone(),
            favicon: favicon_path.clone(),
            js,
            wasm,
        };
        let bundle = if bundle.is_well_formed() {
            bundle
        } else {
            tracing::warn!("ignoring a browser bundle manifest with unexpected file names");
            Bundle {
                js: None,
                wasm: None,
                ..bundle
            }
        };
        Assets {
            bundle,
            css_path,
            favicon_path,
            pkg_dir: Arc::new(ServeDir::new(site_root.join("pkg")).precompressed_gzip()),
        }
    }

    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/pkg/{*file}", get(serve_pkg))
            .with_state(self.clone())
    }
}

#[derive(serde::Deserialize)]
struct ManifestScripts {
    js: String,
    wasm: String,
}

fn read_manifest(site_root: &Path) -> Result<ManifestScripts, String> {
    let path = site_root.join("manifest.json");
    let text =
        std::fs::read_to_string(&path).map_err(|err| format!("{}: {err}", path.display()))?;
    serde_json::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))
}

async fn serve_pkg(
    State(assets): State<Assets>,
    UrlPath(file): UrlPath<String>,
    request: Request,
) -> Response {
    let path = format!("/pkg/{file}");
    if path == assets.css_path {
        return embedded(STYLESHEET, "text/css; charset=utf-8");
    }
    if path == assets.favicon_path {
        return embedded(FAVICON, "image/svg+xml");
    }
    let cache = if has_content_hash(&file) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let mut response = match ServeDir::clone(&assets.pkg_dir)
        .oneshot(rewrite_path(request, &file))
        .await
    {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    if response.status() == StatusCode::NOT_FOUND {
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, REVALIDATE)],
            "not found",
        )
            .into_response();
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// ServeDir resolves the request's path against its root; strip the `/pkg` prefix.
fn rewrite_path(request: Request, file: &str) -> Request {
    let (mut parts, body) = request.into_parts();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    if let Ok(uri) = format!("/{file}{query}").parse() {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

fn embedded(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        body,
    )
        .into_response()
}

/// `name.<16 hex digits>.ext`, as the build names hashed files.
fn has_content_hash(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    let mut parts = name.rsplit('.');
    let _extension = parts.next();
    matches!(parts.next(), Some(hash) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A short, stable-within-a-build hash for cache busting (not for security).
fn short_hash(content: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_hashed_names() {
        assert!(has_content_hash("portal.0123456789abcdef.js"));
        assert!(has_content_hash("portal_bg.0123456789abcdef.wasm"));
        assert!(!has_content_hash("portal.js"));
        assert!(!has_content_hash("snippets/x/inline0.js"));
        assert!(!has_content_hash("portal.0123456789abcdeg.js"));
    }
}
