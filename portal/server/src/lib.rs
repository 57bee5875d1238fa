//! The portal server: configuration, start-up, the HTTP router and everything that does I/O.
//! The pages themselves live in `chatmail-portal-app`.

pub mod assets;
pub mod auth;
pub mod backend;
pub mod config;
pub mod data_dir;
pub mod db;
pub mod dns_apply;
pub mod dns_apply_domain_connect;
pub mod dns_providers;
pub mod dns_status;
pub mod embedded_pg;
pub mod forms;
pub mod go_live;
pub mod health;
pub mod images;
pub mod operator_cli;
pub mod probes;
pub mod relay_config;
pub mod secrets;
pub mod startup;
pub mod updates;

use std::sync::Arc;

use axum::{
    extract::{FromRef, Request},
    http::{header, HeaderValue, Method},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::get,
    Router,
};
use chatmail_portal_app::{api::backend::SharedBackend, shell, App};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use sqlx::PgPool;
use tower_http::{
    compression::CompressionLayer, set_header::SetResponseHeaderLayer, trace::TraceLayer,
};
use tower_sessions::{cookie::SameSite, Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;

pub use assets::Assets;

/// Settings the request handlers need.
#[derive(Clone)]
pub struct Settings {
    /// The portal's public URL without a trailing slash, e.g. `https://portal.example.org`.
    pub base_url: String,
    /// Trust the last `X-Forwarded-For` hop (the portal runs behind a reverse proxy).
    pub behind_proxy: bool,
    /// Where the DNS checker asks.
    pub dns: dns_status::DnsSettings,
    /// How the device probes connect and what they trust.
    pub probes: probes::ProbeSettings,
    /// Where published releases keep their pieces.
    pub releases_dir: std::path::PathBuf,
    /// What relays that opt in to update checks are told: this portal's URL and its release
    /// key. `None` when the portal has no release key (or no URL a device may use).
    pub update_source: Option<UpdateSource>,
}

/// Where relays check for updates, and the key their releases are signed with.
#[derive(Clone, Debug)]
pub struct UpdateSource {
    pub portal_url: chatmail_shared::web_url::HttpsUrl,
    pub key: chatmail_shared::signing_key::UpdateSigningKey,
}

/// What every request handler can reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub pool: PgPool,
    pub assets: Assets,
    pub settings: Arc<Settings>,
    /// Seals and opens DNS provider credentials.
    pub keyring: Arc<chatmail_dns_providers::credentials::Keyring>,
    /// Wakes this process's DNS job runner when a job is queued here.
    pub jobs_wake: Arc<tokio::sync::Notify>,
    /// The cloud DNS providers offered, their sign-in clients and addresses.
    pub dns_providers: Arc<dns_providers::Providers>,
    /// The device images this portal personalizes and streams.
    pub images: images::Images,
}

/// Paths whose pages need a signed-in person; anonymous visitors are sent to sign in.
const SIGNED_IN_PAGES: &[&str] = &["/groups", "/account", "/operator"];

/// The complete HTTP application. `main` serves it; tests call it directly.
pub fn router(state: AppState, sessions: PostgresStore) -> Router {
    let bundle = state.assets.bundle.clone();
    let page_shell = move || shell(bundle.clone());
    let backend: SharedBackend = Arc::new(backend::PortalBackend {
        state: state.clone(),
    });
    let context = move || provide_context(backend.clone());
    let routes = generate_route_list(App);

    let session_layer = SessionManagerLayer::new(sessions)
        .with_name("portal_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.settings.base_url.starts_with("https://"))
        .with_expiry(Expiry::OnInactivity(time::Duration::days(14)));

    Router::new()
        .route("/healthz", get(health::healthz))
        .route(
            "/api/groups/{id}/dns-check",
            get(forms::status::report_json),
        )
        .merge(state.assets.router())
        .merge(forms::routes())
        .merge(updates::routes())
        .leptos_routes_with_context(&state, routes, context.clone(), page_shell.clone())
        // Every unknown address renders the app, whose fallback is the styled 404 page.
        .fallback(leptos_axum::render_app_to_stream_in_order_with_context(
            context, page_shell,
        ))
        .layer(middleware::from_fn(private_responses))
        .layer(middleware::from_fn(sign_in_first))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::csrf::same_origin_only,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::session::attach,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::client_ip::attach,
        ))
        .layer(session_layer)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        // Responses that support byte ranges (image downloads) go out as they are: their
        // lengths and ranges count the bytes sent.
        .layer(CompressionLayer::new().compress_when(
            tower_http::compression::predicate::Predicate::and(
                tower_http::compression::predicate::DefaultPredicate::new(),
                |_: http::StatusCode,
                 _: http::Version,
                 headers: &http::HeaderMap,
                 _: &http::Extensions| {
                    !headers.contains_key(header::ACCEPT_RANGES)
                },
            ),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Pages for signed-in people redirect anonymous visitors to the sign-in page, which
/// brings them back afterwards.
async fn sign_in_first(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let protected = SIGNED_IN_PAGES
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")));
    if request.method() == Method::GET
        && protected
        && request.extensions().get::<auth::CurrentAccount>().is_none()
    {
        let target = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/groups");
        return Redirect::to(&format!("/signin?next={}", forms::urlencode(target))).into_response();
    }
    next.run(request).await
}

/// Personal pages and page data must never sit in a shared cache.
async fn private_responses(request: Request, next: Next) -> Response {
    let personal = request.extensions().get::<auth::CurrentAccount>().is_some()
        || request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    if personal {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
