//! A local OAuth 2.0 authorization server for tests (on 127.0.0.1, a free port), as
//! the portal meets one at Cloudflare, DigitalOcean or Linode: the authorization-code
//! grant (RFC 6749 §4.1) with PKCE (RFC 7636, `S256` only), refresh tokens (RFC 6749
//! §6) and revocation (RFC 7009).
//!
//! * `GET /authorize` checks the client, the redirect URI (exact match), `response_type=
//!   code` and the PKCE challenge, and shows a real HTML consent page: a form with the
//!   request in hidden fields and two buttons, **Allow** (`decision=allow`) and **Deny**
//!   (`decision=deny`). A browser test clicks one.
//! * `POST /authorize` (the form) redirects (303) to the redirect URI with `code` and
//!   `state`, or with `error=access_denied` and `state`.
//! * `POST /token` (form body; client authentication by HTTP Basic or `client_id`/
//!   `client_secret` in the body, RFC 6749 §2.3.1): `grant_type=authorization_code`
//!   checks that the code exists, is unused, not older than a minute, was issued to this
//!   client for this redirect URI, and that `BASE64URL(SHA-256(code_verifier))` equals
//!   the challenge; a code used twice is refused and the grant made with it is revoked
//!   (RFC 6749 §4.1.2). `grant_type=refresh_token` issues a new access token and a new
//!   refresh token (the old one stops working). Errors are RFC 6749 §5.2 JSON
//!   (`invalid_grant`, `invalid_client`, …).
//! * `POST /revoke` revokes the whole grant of the token given (RFC 7009 §2.1), and
//!   answers 200 also for unknown tokens (§2.2).
//! * Access tokens expire after [`OAuthServer::set_access_lifetime`] (one hour unless
//!   set); [`OAuthServer::token_checker`] lets a [`crate::cloud_mocks`] server accept
//!   exactly the live access tokens.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cloud_mocks::Access;

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its id.
    pub id: String,
    /// Its secret (confidential clients).
    pub secret: Option<String>,
    /// Its registered redirect URI.
    pub redirect_uri: String,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    issued: Instant,
    used: bool,
    grant: u64,
}

struct Grant {
    revoked: bool,
}

#[derive(Default)]
struct St {
    clients: Vec<Client>,
    codes: BTreeMap<String, Code>,
    grants: BTreeMap<u64, Grant>,
    access: BTreeMap<String, (u64, Instant)>,
    refresh: BTreeMap<String, u64>,
    next: u64,
    lifetime: Option<Duration>,
    log: Vec<String>,
}

impl St {
    fn token(&mut self, prefix: &str) -> String {
        self.next += 1;
        let mut h = Sha256::new();
        h.update(uuid::Uuid::new_v4().as_bytes());
        h.update(self.next.to_le_bytes());
        format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(h.finalize()))
    }

    fn lifetime(&self) -> Duration {
        self.lifetime.unwrap_or(Duration::from_secs(3600))
    }

    fn issue(&mut self, grant: u64, scope: &str) -> serde_json::Value {
        let at = self.token("at");
        let rt = self.token("rt");
        let life = self.lifetime();
        self.access
            .insert(at.clone(), (grant, Instant::now() + life));
        self.refresh.insert(rt.clone(), grant);
        json!({"access_token": at, "token_type": "bearer", "expires_in": life.as_secs(),
            "refresh_token": rt, "scope": scope})
    }

    fn live(&self, token: &str) -> bool {
        self.access.get(token).is_some_and(|(g, exp)| {
            *exp > Instant::now() && self.grants.get(g).is_some_and(|g| !g.revoked)
        })
    }
}

type Shared = Arc<Mutex<St>>;

/// A running authorization server.
pub struct OAuthServer {
    addr: SocketAddr,
    st: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"error": error, "error_description": description}).to_string(),
    )
        .into_response()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
             <body><main><h1>{}</h1>{body}</main></body></html>",
            esc(title),
            esc(title)
        )),
    )
        .into_response()
}

fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let q = serde_urlencoded::to_string(pairs).unwrap();
    if uri.contains('?') {
        format!("{uri}&{q}")
    } else {
        format!("{uri}?{q}")
    }
}

async fn authorize_page(
    State(st): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let s = st.lock().unwrap();
    let g = |k: &str| q.get(k).cloned().unwrap_or_default();
    let Some(client) = s.clients.iter().find(|c| c.id == g("client_id")) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown application",
            "<p>The client_id is not registered.</p>",
        );
    };
    if client.redirect_uri != g("redirect_uri") {
        // Never redirect to an unregistered address (RFC 6749 §4.1.2.1).
        return page(
            StatusCode::BAD_REQUEST,
            "Wrong redirect address",
            "<p>The redirect_uri is not registered for this application.</p>",
        );
    }
    if g("response_type") != "code" {
        return (
            StatusCode::SEE_OTHER,
            [(
                "location",
                with_query(
                    &client.redirect_uri,
                    &[
                        ("error", "unsupported_response_type"),
                        ("state", &g("state")),
                    ],
                ),
            )],
        )
            .into_response();
    }
    if g("code_challenge").is_empty() || g("code_challenge_method") != "S256" {
        return (
            StatusCode::SEE_OTHER,
            [(
                "location",
                with_query(
                    &client.redirect_uri,
                    &[
                        ("error", "invalid_request"),
                        ("error_description", "PKCE with S256 is required"),
                        ("state", &g("state")),
                    ],
                ),
            )],
        )
            .into_response();
    }
    let hidden: String = [
        "client_id",
        "redirect_uri",
        "state",
        "scope",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .map(|k| {
        format!(
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
            esc(&g(k))
        )
    })
    .collect();
    page(
        StatusCode::OK,
        "Allow access?",
        &format!(
            "<p>The application <strong>{}</strong> asks to manage your DNS records \
             (scopes: <code>{}</code>).</p>\
             <form method=\"post\" action=\"/authorize\">{hidden}\
             <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
             <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>",
            esc(&client.id),
            esc(&g("scope"))
        ),
    )
}

async fn authorize_decision(
    State(st): State<Shared>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    let g = |k: &str| f.get(k).cloned().unwrap_or_default();
    let Some(client) = s.clients.iter().find(|c| c.id == g("client_id")).cloned() else {
        return page(StatusCode::BAD_REQUEST, "Unknown application", "");
    };
    if client.redirect_uri != g("redirect_uri") {
        return page(StatusCode::BAD_REQUEST, "Wrong redirect address", "");
    }
    let state = g("state");
    if g("decision") != "allow" {
        s.log.push("deny".into());
        let to = with_query(
            &client.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The person declined."),
                ("state", &state),
            ],
        );
        return (StatusCode::SEE_OTHER, [("location", to)]).into_response();
    }
    s.next += 1;
    let grant = s.next;
    s.grants.insert(grant, Grant { revoked: false });
    let code = s.token("code");
    s.codes.insert(
        code.clone(),
        Code {
            client_id: client.id.clone(),
            redirect_uri: client.redirect_uri.clone(),
            challenge: g("code_challenge"),
            scope: g("scope"),
            issued: Instant::now(),
            used: false,
            grant,
        },
    );
    s.log.push("allow".into());
    let to = with_query(&client.redirect_uri, &[("code", &code), ("state", &state)]);
    (StatusCode::SEE_OTHER, [("location", to)]).into_response()
}

/// The client a token request authenticates as (Basic or body), or an error.
fn client_of(
    s: &St,
    headers: &HeaderMap,
    f: &BTreeMap<String, String>,
) -> Result<Client, Response> {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':').map(|(i, p)| {
                let dec = |x: &str| form_decode(x);
                (dec(i), Some(dec(p)))
            })
        });
    let (id, secret) = basic.unwrap_or_else(|| {
        (
            f.get("client_id").cloned().unwrap_or_default(),
            f.get("client_secret").cloned(),
        )
    });
    let bad = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    };
    let client = s
        .clients
        .iter()
        .find(|c| c.id == id)
        .cloned()
        .ok_or_else(bad)?;
    match (&client.secret, &secret) {
        (Some(want), Some(got)) if want == got => Ok(client),
        (None, _) => Ok(client),
        _ => Err(bad()),
    }
}

fn form_decode(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={s}"))
        .ok()
        .and_then(|v| v.into_iter().next())
        .map(|(_, v)| v)
        .unwrap_or_else(|| s.to_string())
}

async fn token(
    State(st): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    let client = match client_of(&s, &headers, &f) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let g = |k: &str| f.get(k).cloned().unwrap_or_default();
    let ok = |v: serde_json::Value| {
        (
            StatusCode::OK,
            [
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
            ],
            v.to_string(),
        )
            .into_response()
    };
    match g("grant_type").as_str() {
        "authorization_code" => {
            let code = g("code");
            s.log.push("token:authorization_code".into());
            let Some(c) = s.codes.get_mut(&code) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown authorization code",
                );
            };
            if c.used {
                let grant = c.grant;
                if let Some(gr) = s.grants.get_mut(&grant) {
                    gr.revoked = true;
                }
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "authorization code already used",
                );
            }
            c.used = true;
            if c.issued.elapsed() > Duration::from_secs(60) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "authorization code expired",
                );
            }
            if c.client_id != client.id || c.redirect_uri != g("redirect_uri") {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "code was issued to another client or redirect_uri",
                );
            }
            let verifier = g("code_verifier");
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if verifier.is_empty() || computed != c.challenge {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "PKCE verification failed",
                );
            }
            let (grant, scope) = (c.grant, c.scope.clone());
            let v = s.issue(grant, &scope);
            ok(v)
        }
        "refresh_token" => {
            s.log.push("token:refresh_token".into());
            let rt = g("refresh_token");
            let Some(grant) = s.refresh.get(&rt).copied() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown or used refresh token",
                );
            };
            if s.grants.get(&grant).is_none_or(|g| g.revoked) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the grant was revoked",
                );
            }
            s.refresh.remove(&rt);
            let v = s.issue(grant, "");
            ok(v)
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "unsupported grant_type",
        ),
    }
}

async fn revoke(
    State(st): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(e) = client_of(&s, &headers, &f) {
        return e;
    }
    let t = f.get("token").cloned().unwrap_or_default();
    let grant = s
        .access
        .get(&t)
        .map(|(g, _)| *g)
        .or_else(|| s.refresh.get(&t).copied());
    if let Some(g) = grant.and_then(|g| s.grants.get_mut(&g)) {
        g.revoked = true;
    }
    s.log.push("revoke".into());
    StatusCode::OK.into_response()
}

impl OAuthServer {
    /// Starts a server knowing `clients`.
    pub async fn start(clients: Vec<Client>) -> OAuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let st: Shared = Arc::new(Mutex::new(St {
            clients,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/authorize", get(authorize_page).post(authorize_decision))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .with_state(st.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        OAuthServer { addr, st, task }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The authorization page.
    pub fn authorize_url(&self) -> String {
        format!("{}/authorize", self.url())
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    /// The revocation endpoint.
    pub fn revoke_url(&self) -> String {
        format!("{}/revoke", self.url())
    }

    /// How long access tokens issued from now on live.
    pub fn set_access_lifetime(&self, d: Duration) {
        self.st.lock().unwrap().lifetime = Some(d);
    }

    /// Whether `token` is a live access token.
    pub fn is_live(&self, token: &str) -> bool {
        self.st.lock().unwrap().live(token)
    }

    /// A check for [`crate::cloud_mocks::MockServer::accept_tokens`]: live access tokens
    /// may read and write.
    pub fn token_checker(&self) -> Arc<dyn Fn(&str) -> Option<Access> + Send + Sync> {
        let st = self.st.clone();
        Arc::new(move |t: &str| st.lock().unwrap().live(t).then_some(Access::ReadWrite))
    }

    /// What happened, in order (`allow`, `deny`, `token:…`, `revoke`).
    pub fn log(&self) -> Vec<String> {
        self.st.lock().unwrap().log.clone()
    }
}
