//! `/new`: Delta Chat's "create an account" call.
//!
//! Scanning `DCACCOUNT:https://<domain>/new` makes the app POST to this URL and configure
//! itself with the `{"email","password"}` it gets back; a failure is `{"reason"}` with a
//! non-2xx status, which the app shows to the user (research/deltachat-client.md §1.2).
//! As upstream, the local part is `username_max_length` random `[a-z0-9]` characters and the
//! password `password_min_length + 3` random letters, digits and punctuation
//! (research/chatmail.md §1.8). Unlike upstream the account is created at once, through the
//! same rules as a first login. A GET (a browser following the QR code's link) is sent on
//! to the `dcaccount:` link, as upstream's web server does. The request body is never read.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::Rng;
use serde::Serialize;

use super::WebState;
use crate::auth::rules::{self, Refusal};

/// The success body.
#[derive(Debug, Serialize)]
pub struct NewAccount {
    /// `<local>@<domain>`.
    pub email: String,
    /// The password.
    pub password: String,
}

/// The failure body Delta Chat shows.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// Human-readable reason.
    pub reason: String,
}

/// Attempts at finding an unused random address before giving up.
const MAX_ATTEMPTS: usize = 8;

fn random_string(charset: &[u8], len: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| charset[rng.gen_range(0..charset.len())] as char)
        .collect()
}

/// `POST /new`.
pub async fn create(State(state): State<WebState>) -> Response {
    let limits = state.accounts.limits().clone();
    for _ in 0..MAX_ATTEMPTS {
        let local = random_string(
            rules::GENERATED_LOCAL_CHARS,
            rules::generated_local_len(&limits),
        );
        let password = random_string(
            rules::GENERATED_PASSWORD_CHARS,
            rules::generated_password_len(&limits),
        );
        match state.accounts.create(&local, &password).await {
            Ok(true) => {
                let body = NewAccount {
                    email: format!("{local}@{}", state.accounts.mail_domain()),
                    password,
                };
                return (
                    StatusCode::OK,
                    [(header::CACHE_CONTROL, "no-store")],
                    Json(body),
                )
                    .into_response();
            }
            Ok(false) => continue,
            Err(refusal) => return refusal_response(refusal),
        }
    }
    refusal_response(Refusal::StoreUnavailable)
}

/// `GET /new`: on to `dcaccount:https://<domain>/new`.
pub async fn redirect(State(state): State<WebState>) -> Response {
    let link = chatmail_shared::qr::account_payload(&state.config.mail_domain);
    // Upstream's link is lowercase `dcaccount:`; Delta Chat matches the scheme either way.
    let link = link.replacen("DCACCOUNT:", "dcaccount:", 1);
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, link)]).into_response()
}

fn refusal_response(refusal: Refusal) -> Response {
    let (status, reason) = match refusal {
        Refusal::RegistrationClosed => (
            StatusCode::FORBIDDEN,
            "This relay does not accept new accounts at the moment.",
        ),
        Refusal::LowMemory | Refusal::LowDisk | Refusal::HighLoad => (
            StatusCode::SERVICE_UNAVAILABLE,
            "This relay is too busy to create new accounts right now. Please try again later.",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "The relay could not create an account. Please try again later.",
        ),
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(Failure {
            reason: reason.to_string(),
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatmail_shared::config::Limits;

    #[test]
    fn generated_credentials_pass_the_rules() {
        let limits = Limits::default();
        for _ in 0..200 {
            let local = random_string(
                rules::GENERATED_LOCAL_CHARS,
                rules::generated_local_len(&limits),
            );
            let password = random_string(
                rules::GENERATED_PASSWORD_CHARS,
                rules::generated_password_len(&limits),
            );
            assert_eq!(rules::check_new_account(&limits, &local, &password), Ok(()));
            assert_eq!(password.len(), 12);
        }
    }
}
