//! The portal server: configuration, start-up, the HTTP router and everything that does I/O.
//! The pages themselves live in `chatmail-portal-app`.

pub mod assets;
pub mod config;
pub mod data_dir;
pub mod db;
pub mod embedded_pg;
pub mod health;
pub mod startup;

use axum::{extract::FromRef, routing::get, Router};
use chatmail_portal_app::{shell, App};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use sqlx::PgPool;
use tower_http::{compression::CompressionLayer, trace::TraceLayer};

pub use assets::Assets;

/// What every request handler can reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub pool: PgPool,
    pub assets: Assets,
}

/// The complete HTTP application. `main` serves it; tests call it directly.
pub fn router(state: AppState) -> Router {
    let bundle = state.assets.bundle.clone();
    let page_shell = move || shell(bundle.clone());
    let context = {
        let pool = state.pool.clone();
        move || provide_context(pool.clone())
    };
    let routes = generate_route_list(App);
    Router::new()
        .route("/healthz", get(health::healthz))
        .merge(state.assets.router())
        .leptos_routes_with_context(&state, routes, context.clone(), page_shell.clone())
        // Every unknown address renders the app, whose fallback is the styled 404 page.
        .fallback(leptos_axum::render_app_to_stream_in_order_with_context(
            context, page_shell,
        ))
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
