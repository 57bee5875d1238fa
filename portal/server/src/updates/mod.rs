//! Signed releases for devices that opt in to update checks.
//!
//! - [`keys`]: `chatmail-portal release-key` makes the operator's minisign key pair; the
//!   secret key goes to a file only the operator can read, never into the database;
//! - [`publish`]: `chatmail-portal publish-release` cuts the update pieces (root, boot, MBR
//!   boot code, as gokrazy's update API takes them) out of a base image, stores them by
//!   sha256, signs the manifest and makes it the channel's current release;
//! - this module: the public routes devices ask, `GET /updates/<channel>/<target>/manifest.json`
//!   (+ `.minisig`) and `GET /updates/<channel>/<target>/pieces/<sha256>` (exact
//!   Content-Length, byte ranges), plus what the status page shows.
//!
//! A release is the same for every group: personalization writes only partition 4 (/perm),
//! and updates never touch it.
//!
//! **Why not gokrazy's update server protocol (GUS, research/gokrazy.md §5.4).** GUS keys
//! everything on a per-device `machine_id` (heartbeats, `POST /api/v1/update`), so each
//! check would tell the portal which device asks, and its selfupdate client verifies no
//! signature. Our devices instead fetch one public, signed manifest per channel and target
//! with a plain GET that carries nothing identifying. Serving GUS as well would cost little
//! code but would invite exactly the identifying requests this design avoids, so it is not
//! offered.

pub mod keys;
pub mod publish;

use std::path::{Path, PathBuf};

use axum::{
    extract::{Path as UrlPath, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use chatmail_shared::update_manifest::{Channel, ReleaseVersion, Sha256Digest, UpdateTarget};
use tower::ServiceExt as _;

use crate::{db, AppState};

/// Where pieces are kept: `<releases dir>/pieces/<sha256>`.
pub fn pieces_dir(releases_dir: &Path) -> PathBuf {
    releases_dir.join("pieces")
}

/// The public routes devices use.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/updates/{channel}/{target}/manifest.json", get(manifest))
        .route(
            "/updates/{channel}/{target}/manifest.json.minisig",
            get(signature),
        )
        .route("/updates/{channel}/{target}/pieces/{sha256}", get(piece))
}

fn parse(channel: &str, target: &str) -> Option<(Channel, UpdateTarget)> {
    Some((
        Channel::parse(channel).ok()?,
        UpdateTarget::parse(target).ok()?,
    ))
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what}\n")).into_response()
}

async fn current(
    state: &AppState,
    channel: &str,
    target: &str,
) -> Result<Option<db::releases::ReleaseRow>, Response> {
    let Some((channel, target)) = parse(channel, target) else {
        return Err(not_found(
            "No such channel or target (channels: stable, testing; targets: amd64, rpi).",
        ));
    };
    db::releases::current(&state.pool, channel.id(), target.id())
        .await
        .map_err(|err| {
            tracing::error!("reading the current release: {err}");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        })
}

/// Short caching: a new release reaches devices within minutes.
fn small(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn manifest(
    State(state): State<AppState>,
    UrlPath((channel, target)): UrlPath<(String, String)>,
) -> Response {
    match current(&state, &channel, &target).await {
        Ok(Some(row)) => small("application/json", row.manifest),
        Ok(None) => not_found("No release is published on this channel for this target yet."),
        Err(response) => response,
    }
}

async fn signature(
    State(state): State<AppState>,
    UrlPath((channel, target)): UrlPath<(String, String)>,
) -> Response {
    match current(&state, &channel, &target).await {
        Ok(Some(row)) => small("text/plain; charset=utf-8", row.signature.into_bytes()),
        Ok(None) => not_found("No release is published on this channel for this target yet."),
        Err(response) => response,
    }
}

/// A piece by its sha256. Pieces are immutable (named by their hash), so any piece is
/// served under any channel and target; tower-http's file service answers ranges and sets
/// the exact length.
async fn piece(
    State(state): State<AppState>,
    UrlPath((channel, target, sha256)): UrlPath<(String, String, String)>,
    request: Request,
) -> Response {
    if parse(&channel, &target).is_none() {
        return not_found("No such channel or target.");
    }
    let Ok(digest) = Sha256Digest::parse(&sha256) else {
        return not_found("No such piece.");
    };
    let path = pieces_dir(&state.settings.releases_dir).join(digest.to_hex());
    if !path.is_file() {
        return not_found("No such piece.");
    }
    let service = tower_http::services::ServeFile::new_with_mime(
        path,
        &"application/octet-stream"
            .parse()
            .expect("constant MIME type"),
    );
    let mut response = match service.oneshot(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    };
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
        .headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response
}

/// The newest release version a relay on `channel` could install, given its hardware
/// (`None`: either target). Unparseable rows are skipped.
pub async fn newest_for(
    state: &AppState,
    channel: Channel,
    target: Option<UpdateTarget>,
) -> Result<Option<ReleaseVersion>, sqlx::Error> {
    let rows = db::releases::all_current(&state.pool).await?;
    Ok(rows
        .iter()
        .filter(|r| r.channel == channel.id())
        .filter(|r| target.is_none_or(|t| r.target == t.id()))
        .filter_map(|r| ReleaseVersion::parse(&r.version).ok())
        .max())
}
