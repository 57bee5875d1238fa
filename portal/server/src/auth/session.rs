//! Sessions (kept in PostgreSQL by tower-sessions) and the signed-in account they carry.
//!
//! A session holds the account id and the account's `session_epoch` at sign-in; changing
//! the password bumps the epoch, which ends every other session of that account. Signing
//! in issues a new session id (no fixation), and every signed-in session has its own
//! anti-forgery token.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use base64::Engine;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use uuid::Uuid;

use crate::{db, AppState};

const AUTH_KEY: &str = "auth";
const CSRF_KEY: &str = "csrf";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SessionAuth {
    account_id: Uuid,
    epoch: i32,
}

/// The signed-in account, put into request extensions by [`attach`].
#[derive(Clone, Debug)]
pub struct CurrentAccount {
    pub id: Uuid,
    pub email: String,
    pub is_operator: bool,
    pub csrf: String,
}

/// A fresh random token, URL-safe.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Resolves the session's account (if any) for every request.
pub async fn attach(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if let Some(session) = request.extensions().get::<Session>().cloned() {
        if let Some(account) = current(&state, &session).await {
            request.extensions_mut().insert(account);
        }
    }
    next.run(request).await
}

async fn current(state: &AppState, session: &Session) -> Option<CurrentAccount> {
    let auth: SessionAuth = session.get(AUTH_KEY).await.ok().flatten()?;
    let account = db::accounts::by_id(&state.pool, auth.account_id)
        .await
        .ok()
        .flatten();
    match account {
        Some(account) if account.session_epoch == auth.epoch => {
            let csrf = match session.get::<String>(CSRF_KEY).await.ok().flatten() {
                Some(token) => token,
                None => {
                    let token = random_token();
                    session.insert(CSRF_KEY, &token).await.ok()?;
                    token
                }
            };
            Some(CurrentAccount {
                id: account.id,
                email: account.email,
                is_operator: account.is_operator,
                csrf,
            })
        }
        // Deleted account, or signed out everywhere by a password change.
        _ => {
            let _ = session.remove::<SessionAuth>(AUTH_KEY).await;
            None
        }
    }
}

/// Starts a signed-in session under a new id.
pub async fn sign_in(
    session: &Session,
    account_id: Uuid,
    epoch: i32,
) -> Result<(), tower_sessions::session::Error> {
    session.cycle_id().await?;
    session
        .insert(AUTH_KEY, SessionAuth { account_id, epoch })
        .await?;
    session.insert(CSRF_KEY, random_token()).await
}

/// Ends the session entirely.
pub async fn sign_out(session: &Session) {
    let _ = session.flush().await;
}
