//! `GET /healthz`: is this portal process able to serve? For load balancers and people.

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::Serialize;

use crate::{db, AppState};

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    database: db::DbHealth,
}

pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let database = db::health(&state.pool).await;
    let (code, status) = if database.reachable {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    };
    (
        code,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(Health {
            status,
            version: env!("CARGO_PKG_VERSION"),
            database,
        }),
    )
}
