//! Signing in with a DNS provider: the OAuth 2.0 authorization-code flow with PKCE (S256)
//! and `state` (RFC 6749 §4.1, RFC 7636), token refresh (RFC 6749 §6) and revocation on
//! disconnect (RFC 7009), for Cloudflare, DigitalOcean and Linode.
//!
//! The flow, as the portal runs it:
//!
//! 1. [`OAuthClient::start`] gives the provider's authorization URL and a [`PendingAuth`]
//!    (random `state`, PKCE verifier, provider, time). The portal stores the pending
//!    authorization **server-side** (sealed with [`crate::Keyring::seal_value`], in
//!    PostgreSQL, keyed by the person's session) and redirects the browser.
//! 2. The provider sends the browser back to the portal's callback route with `code` and
//!    `state` (or `error`), read as [`CallbackParams`].
//! 3. [`OAuthClient::finish`] refuses a `state` that is not the stored one (constant-time
//!    comparison), a pending authorization older than [`PENDING_LIFETIME`], and passes on
//!    the provider's refusal of a used code, an expired code or a wrong PKCE verifier as
//!    [`OAuthError::CodeRejected`]; otherwise it returns a [`TokenSet`], which the portal
//!    seals as [`crate::Credentials::OAuth`]. The pending authorization is deleted either
//!    way (single use).
//! 4. Before a job uses the tokens, [`OAuthClient::fresh`] refreshes them when they
//!    expire within [`REFRESH_MARGIN`]; the portal stores the new set. A refused refresh
//!    (revoked at the provider) is [`OAuthError::Revoked`], which
//!    [`OAuthError::to_provider_error`] turns into
//!    [`ProviderError::WrongCredentials`] telling the person to connect again.
//! 5. On disconnect, [`OAuthClient::revoke`] revokes the refresh token (which ends the
//!    grant) and the access token.
//!
//! Client credentials come from the portal's configuration ([`OAuthClientConfig`]); a
//! provider without them is not offered for signing in (the portal offers its token form
//! instead, see [`crate::guides`]).
//!
//! Endpoints and scopes (research/registrars.md §2.1, §2.2):
//!
//! | provider | authorize | token | revoke | scopes |
//! |---|---|---|---|---|
//! | Cloudflare | `https://dash.cloudflare.com/oauth2/auth` | `…/oauth2/token` | `…/oauth2/revoke` | `zone.read dns.read dns.write` (research [S]: check `GET /client/v4/oauth/scopes`) |
//! | DigitalOcean | `https://cloud.digitalocean.com/v1/oauth/authorize` | `…/token` | `…/revoke` | `read write` |
//! | Linode | `https://login.linode.com/oauth/authorize` | `…/oauth/token` | `…/oauth/revoke` | `domains:read_write` |
//!
//! Scopes can be replaced from the configuration ([`OAuthClientConfig::scopes`]), as
//! Cloudflare's scope names are not confirmed. PKCE is always sent; servers that do not
//! know it ignore the extra parameters (RFC 6749 §3.1). The `oauth2` crate builds the
//! authorization URL, the PKCE pair and the token requests, through this crate's reqwest
//! client (rustls on ring) with redirects switched off. Revocation is a plain RFC 7009
//! POST here, because `oauth2` refuses non-HTTPS revocation URLs, which the local test
//! server needs; endpoints must be HTTPS except on loopback addresses.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::error::ProviderError;
use crate::http::{transport_error, Advice};

/// How long a started sign-in may take.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Tokens that expire within this are refreshed before use.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The providers one can sign in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OAuthProvider {
    /// Cloudflare.
    #[serde(rename = "cloudflare")]
    Cloudflare,
    /// DigitalOcean.
    #[serde(rename = "digitalocean")]
    DigitalOcean,
    /// Linode (Akamai).
    #[serde(rename = "linode")]
    Linode,
}

/// Where a provider's OAuth endpoints are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthEndpoints {
    /// The authorization page.
    pub authorize: String,
    /// The token endpoint.
    pub token: String,
    /// The RFC 7009 revocation endpoint, if any.
    pub revoke: Option<String>,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// In the form body (`client_secret_post`).
    RequestBody,
}

impl OAuthProvider {
    /// Every provider.
    pub const ALL: [OAuthProvider; 3] = [
        OAuthProvider::Cloudflare,
        OAuthProvider::DigitalOcean,
        OAuthProvider::Linode,
    ];

    /// The stable id (`cloudflare`, `digitalocean`, `linode`), as in [`crate::detect`].
    pub fn id(self) -> &'static str {
        match self {
            OAuthProvider::Cloudflare => "cloudflare",
            OAuthProvider::DigitalOcean => "digitalocean",
            OAuthProvider::Linode => "linode",
        }
    }

    /// The provider for an id.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.id() == id)
    }

    /// The name people know.
    pub fn display_name(self) -> &'static str {
        match self {
            OAuthProvider::Cloudflare => "Cloudflare",
            OAuthProvider::DigitalOcean => "DigitalOcean",
            OAuthProvider::Linode => "Linode",
        }
    }

    /// The provider's real endpoints.
    pub fn endpoints(self) -> OAuthEndpoints {
        let (a, t, r) = match self {
            OAuthProvider::Cloudflare => (
                "https://dash.cloudflare.com/oauth2/auth",
                "https://dash.cloudflare.com/oauth2/token",
                "https://dash.cloudflare.com/oauth2/revoke",
            ),
            OAuthProvider::DigitalOcean => (
                "https://cloud.digitalocean.com/v1/oauth/authorize",
                "https://cloud.digitalocean.com/v1/oauth/token",
                "https://cloud.digitalocean.com/v1/oauth/revoke",
            ),
            OAuthProvider::Linode => (
                "https://login.linode.com/oauth/authorize",
                "https://login.linode.com/oauth/token",
                "https://login.linode.com/oauth/revoke",
            ),
        };
        OAuthEndpoints {
            authorize: a.into(),
            token: t.into(),
            revoke: Some(r.into()),
        }
    }

    /// The scopes asked for unless the configuration says otherwise.
    pub fn default_scopes(self) -> Vec<String> {
        let s: &[&str] = match self {
            OAuthProvider::Cloudflare => &["zone.read", "dns.read", "dns.write"],
            OAuthProvider::DigitalOcean => &["read", "write"],
            OAuthProvider::Linode => &["domains:read_write"],
        };
        s.iter().map(|s| s.to_string()).collect()
    }

    /// How the client secret is sent: Cloudflare documents `client_secret_basic`;
    /// DigitalOcean and Linode document the secret as a request parameter.
    pub fn client_auth(self) -> ClientAuth {
        match self {
            OAuthProvider::Cloudflare => ClientAuth::Basic,
            OAuthProvider::DigitalOcean | OAuthProvider::Linode => ClientAuth::RequestBody,
        }
    }

    /// What a refused token tells the person.
    pub fn advice(self) -> Advice {
        Advice::reconnect(self.display_name())
    }
}

/// One provider's OAuth client, from the portal's configuration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClientConfig {
    /// The client id the provider issued.
    pub client_id: String,
    /// The client secret (confidential clients); `None` for a public client (PKCE only).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The portal's callback URL, exactly as registered at the provider.
    pub redirect_url: String,
    /// Scopes to ask for instead of [`OAuthProvider::default_scopes`].
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

impl std::fmt::Debug for OAuthClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClientConfig")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<hidden>"),
            )
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// A started sign-in, kept server-side until the provider sends the person back.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuth {
    /// The `state` sent to the provider.
    pub state: String,
    /// The PKCE code verifier (secret).
    pub pkce_verifier: String,
    /// The provider.
    pub provider: OAuthProvider,
    /// When it started, seconds since the Unix epoch.
    pub created_at: u64,
    /// The redirect URL used (the token request must repeat it).
    pub redirect_url: String,
}

impl std::fmt::Debug for PendingAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuth")
            .field("state", &self.state)
            .field("pkce_verifier", &"<hidden>")
            .field("provider", &self.provider)
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl Drop for PendingAuth {
    fn drop(&mut self) {
        self.pkce_verifier.zeroize();
    }
}

/// The query of the portal's callback route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackParams {
    /// The authorization code.
    #[serde(default)]
    pub code: Option<String>,
    /// The `state` as returned.
    #[serde(default)]
    pub state: Option<String>,
    /// An error code (`access_denied`, …) if the person declined or something failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The provider's explanation, if any.
    #[serde(default)]
    pub error_description: Option<String>,
}

/// Tokens from signing in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// The provider.
    pub provider: OAuthProvider,
    /// The access token (Bearer).
    pub access_token: String,
    /// The refresh token, if the provider issued one.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the access token expires, seconds since the Unix epoch, if said.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// The scopes granted, if said (else those asked for).
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("provider", &self.provider)
            .field("access_token", &"<hidden>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<hidden>"),
            )
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl Drop for TokenSet {
    fn drop(&mut self) {
        self.access_token.zeroize();
        if let Some(r) = self.refresh_token.as_mut() {
            r.zeroize();
        }
    }
}

impl TokenSet {
    /// Whether the access token expires within `margin` from `now` (Unix seconds).
    pub fn expires_within(&self, now: u64, margin: Duration) -> bool {
        self.expires_at
            .is_some_and(|at| at <= now.saturating_add(margin.as_secs()))
    }
}

/// Why signing in, refreshing or revoking failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The portal has no (or no valid) client configuration for this provider.
    #[error("Signing in with {0} is not set up on this portal.")]
    NotConfigured(String),
    /// The `state` came back different: a forged or mixed-up callback.
    #[error(
        "The answer from the provider does not belong to this sign-in (it may have been \
         tampered with). Start again from the portal."
    )]
    StateMismatch,
    /// The pending sign-in is older than [`PENDING_LIFETIME`].
    #[error("The sign-in took too long and has expired. Start again from the portal.")]
    Expired,
    /// The person declined, or the provider reported an error on the way back.
    #[error("{provider} did not grant access{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied {
        /// The provider's name.
        provider: String,
        /// The provider's explanation.
        description: Option<String>,
    },
    /// The provider refused the code: already used, expired, or the PKCE verifier does not
    /// match (RFC 6749 `invalid_grant`).
    #[error(
        "{provider} refused to complete the sign-in (the link was already used, has expired, \
         or does not match this sign-in). Start again from the portal."
    )]
    CodeRejected {
        /// The provider's name.
        provider: String,
        /// The provider's detail.
        detail: String,
    },
    /// The provider refused the portal's client id or secret (a configuration problem).
    #[error(
        "{0} did not accept the portal's own sign-in credentials; the portal's operator \
         must check its configuration."
    )]
    ClientRejected(String),
    /// The refresh token was refused: access was withdrawn or has expired.
    #[error(
        "The connection to {0} has expired or was withdrawn. Connect {0} again (sign in with \
         {0} in the portal)."
    )]
    Revoked(String),
    /// The provider could not be reached (retryable).
    #[error("{provider} could not be reached ({detail}). Try again in a little while.")]
    Unreachable {
        /// The provider's name.
        provider: String,
        /// What went wrong.
        detail: String,
    },
    /// Anything else.
    #[error("Signing in with {provider} failed: {detail}")]
    Other {
        /// The provider's name.
        provider: String,
        /// What went wrong.
        detail: String,
    },
}

impl OAuthError {
    /// The same failure as a [`ProviderError`] for the job runner (a withdrawn grant is
    /// [`ProviderError::WrongCredentials`] with the advice to reconnect).
    pub fn to_provider_error(&self) -> ProviderError {
        match self {
            OAuthError::Revoked(p) => ProviderError::WrongCredentials {
                advice: Some(self_advice(p).wrong_key),
            },
            OAuthError::Unreachable { detail, .. } => ProviderError::Unreachable(detail.clone()),
            other => ProviderError::Other(other.to_string()),
        }
    }

    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, OAuthError::Unreachable { .. })
    }
}

fn self_advice(provider: &str) -> Advice {
    Advice::reconnect(provider)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Compares secrets without leaking where they differ (through SHA-256, as the `oauth2`
/// crate recommends).
fn same_secret(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// An endpoint must be HTTPS, except on loopback (local tests).
fn check_url(what: &str, url: &str, provider: OAuthProvider) -> Result<(), OAuthError> {
    let parsed = oauth2::url::Url::parse(url).map_err(|e| {
        OAuthError::NotConfigured(format!(
            "{} ({what} URL {url}: {e})",
            provider.display_name()
        ))
    })?;
    let loopback = match parsed.host() {
        Some(oauth2::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(oauth2::url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(oauth2::url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback) {
        Ok(())
    } else {
        Err(OAuthError::NotConfigured(format!(
            "{} ({what} URL {url} must use https)",
            provider.display_name()
        )))
    }
}

/// The reqwest client as `oauth2`'s HTTP client.
struct Http(reqwest::Client);

/// A transport failure, for `oauth2`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpFailure(String);

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpFailure;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpFailure>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut req = self
                .0
                .request(parts.method, parts.uri.to_string())
                .body(body);
            for (name, value) in parts.headers.iter() {
                req = req.header(name, value);
            }
            let resp = req.send().await.map_err(|e| {
                HttpFailure(match transport_error(e) {
                    ProviderError::Unreachable(d) => d,
                    other => other.to_string(),
                })
            })?;
            let status = resp.status();
            if status.is_server_error() || status.as_u16() == 429 {
                // Worth trying again later, unlike a refusal.
                return Err(HttpFailure(format!(
                    "the server answered HTTP {}",
                    status.as_u16()
                )));
            }
            let mut builder = oauth2::http::Response::builder().status(status);
            for (name, value) in resp.headers() {
                builder = builder.header(name, value);
            }
            let bytes = resp.bytes().await.map_err(|e| HttpFailure(e.to_string()))?;
            builder
                .body(bytes.to_vec())
                .map_err(|e| HttpFailure(e.to_string()))
        })
    }
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Signing in with one provider.
pub struct OAuthClient {
    provider: OAuthProvider,
    config: OAuthClientConfig,
    endpoints: OAuthEndpoints,
    http: reqwest::Client,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.provider)
            .field("config", &self.config)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl OAuthClient {
    /// A client for `provider` with the portal's `config`, at the provider's real
    /// endpoints.
    pub fn new(provider: OAuthProvider, config: OAuthClientConfig) -> Result<Self, OAuthError> {
        if config.client_id.trim().is_empty() {
            return Err(OAuthError::NotConfigured(provider.display_name().into()));
        }
        check_url("redirect", &config.redirect_url, provider)?;
        // The same TLS set-up as every provider, without following redirects.
        let http = no_redirect_client().map_err(|e| OAuthError::Other {
            provider: provider.display_name().into(),
            detail: e.to_string(),
        })?;
        Ok(OAuthClient {
            provider,
            endpoints: provider.endpoints(),
            config,
            http,
        })
    }

    /// The same client with other endpoints (tests: a local authorization server).
    pub fn with_endpoints(mut self, endpoints: OAuthEndpoints) -> Result<Self, OAuthError> {
        check_url("authorize", &endpoints.authorize, self.provider)?;
        check_url("token", &endpoints.token, self.provider)?;
        if let Some(r) = &endpoints.revoke {
            check_url("revoke", r, self.provider)?;
        }
        self.endpoints = endpoints;
        Ok(self)
    }

    /// The provider.
    pub fn provider(&self) -> OAuthProvider {
        self.provider
    }

    fn scopes(&self) -> Vec<String> {
        self.config
            .scopes
            .clone()
            .unwrap_or_else(|| self.provider.default_scopes())
    }

    fn name(&self) -> String {
        self.provider.display_name().to_string()
    }

    fn client(&self, redirect_url: &str) -> Result<Client, OAuthError> {
        let bad = |e: oauth2::url::ParseError| {
            OAuthError::NotConfigured(format!("{} ({e})", self.name()))
        };
        let mut c = BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_uri(AuthUrl::new(self.endpoints.authorize.clone()).map_err(bad)?)
            .set_token_uri(TokenUrl::new(self.endpoints.token.clone()).map_err(bad)?)
            .set_redirect_uri(RedirectUrl::new(redirect_url.to_string()).map_err(bad)?)
            .set_auth_type(match self.provider.client_auth() {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::RequestBody => AuthType::RequestBody,
            });
        if let Some(secret) = &self.config.client_secret {
            c = c.set_client_secret(ClientSecret::new(secret.clone()));
        }
        Ok(c)
    }

    /// Starts a sign-in: the URL to send the browser to, and what to keep server-side.
    pub fn start(&self) -> Result<(String, PendingAuth), OAuthError> {
        let client = self.client(&self.config.redirect_url)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes().into_iter().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        Ok((
            url.to_string(),
            PendingAuth {
                state: state.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                provider: self.provider,
                created_at: unix_now(),
                redirect_url: self.config.redirect_url.clone(),
            },
        ))
    }

    /// Finishes a sign-in with the callback's parameters: checks `state` and age, then
    /// exchanges the code (with the PKCE verifier) for tokens.
    pub async fn finish(
        &self,
        pending: &PendingAuth,
        callback: &CallbackParams,
    ) -> Result<TokenSet, OAuthError> {
        if pending.provider != self.provider {
            return Err(OAuthError::StateMismatch);
        }
        let returned = callback.state.as_deref().unwrap_or("");
        if !same_secret(returned, &pending.state) {
            return Err(OAuthError::StateMismatch);
        }
        if unix_now().saturating_sub(pending.created_at) > PENDING_LIFETIME.as_secs() {
            return Err(OAuthError::Expired);
        }
        if let Some(error) = &callback.error {
            return Err(OAuthError::Denied {
                provider: self.name(),
                description: Some(callback.error_description.clone().unwrap_or_else(|| {
                    match error.as_str() {
                        "access_denied" => "access was declined".to_string(),
                        other => other.to_string(),
                    }
                })),
            });
        }
        let Some(code) = callback.code.as_deref().filter(|c| !c.is_empty()) else {
            return Err(OAuthError::Denied {
                provider: self.name(),
                description: Some("no authorization code came back".into()),
            });
        };
        let client = self.client(&pending.redirect_url)?;
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&Http(self.http.clone()))
            .await
            .map_err(|e| self.token_error(e, false))?;
        Ok(self.token_set(&answer, None))
    }

    fn token_set(
        &self,
        answer: &oauth2::basic::BasicTokenResponse,
        old_refresh: Option<&String>,
    ) -> TokenSet {
        TokenSet {
            provider: self.provider,
            access_token: answer.access_token().secret().clone(),
            refresh_token: answer
                .refresh_token()
                .map(|r| r.secret().clone())
                .or_else(|| old_refresh.cloned()),
            expires_at: answer
                .expires_in()
                .map(|d| unix_now().saturating_add(d.as_secs())),
            scopes: answer
                .scopes()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
                .unwrap_or_else(|| self.scopes()),
        }
    }

    fn token_error(
        &self,
        e: RequestTokenError<HttpFailure, oauth2::basic::BasicErrorResponse>,
        refreshing: bool,
    ) -> OAuthError {
        match e {
            RequestTokenError::ServerResponse(r) => match r.error() {
                BasicErrorResponseType::InvalidGrant if refreshing => {
                    OAuthError::Revoked(self.name())
                }
                BasicErrorResponseType::InvalidGrant => OAuthError::CodeRejected {
                    provider: self.name(),
                    detail: r.error_description().cloned().unwrap_or_default(),
                },
                BasicErrorResponseType::InvalidClient
                | BasicErrorResponseType::UnauthorizedClient => {
                    OAuthError::ClientRejected(self.name())
                }
                other => OAuthError::Other {
                    provider: self.name(),
                    detail: format!(
                        "{}{}",
                        other.as_ref(),
                        r.error_description()
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default()
                    ),
                },
            },
            RequestTokenError::Request(f) => OAuthError::Unreachable {
                provider: self.name(),
                detail: f.0,
            },
            RequestTokenError::Parse(_, body) => OAuthError::Other {
                provider: self.name(),
                detail: format!(
                    "unreadable answer: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            },
            RequestTokenError::Other(m) => OAuthError::Other {
                provider: self.name(),
                detail: m,
            },
        }
    }

    /// New tokens from the refresh token.
    pub async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, OAuthError> {
        let Some(refresh) = tokens.refresh_token.as_ref() else {
            return Err(OAuthError::Revoked(self.name()));
        };
        let client = self.client(&self.config.redirect_url)?;
        let answer = client
            .exchange_refresh_token(&RefreshToken::new(refresh.clone()))
            .request_async(&Http(self.http.clone()))
            .await
            .map_err(|e| self.token_error(e, true))?;
        Ok(self.token_set(&answer, Some(refresh)))
    }

    /// `Some(new tokens)` if `tokens` expire within [`REFRESH_MARGIN`] (store them),
    /// `None` if they are still good.
    pub async fn fresh(&self, tokens: &TokenSet) -> Result<Option<TokenSet>, OAuthError> {
        if tokens.expires_within(unix_now(), REFRESH_MARGIN) {
            self.refresh(tokens).await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// Revokes the grant at the provider (RFC 7009): the refresh token, then the access
    /// token. A provider without a revocation endpoint is left alone (the person can
    /// withdraw access in the provider's control panel). Revoking a token that is already
    /// invalid succeeds (RFC 7009 §2.2).
    pub async fn revoke(&self, tokens: &TokenSet) -> Result<(), OAuthError> {
        let Some(url) = self.endpoints.revoke.clone() else {
            return Ok(());
        };
        let mut list: Vec<(&str, &str)> = Vec::new();
        if let Some(r) = tokens.refresh_token.as_deref() {
            list.push((r, "refresh_token"));
        }
        list.push((tokens.access_token.as_str(), "access_token"));
        for (token, hint) in list {
            let mut form: Vec<(&str, &str)> = vec![("token", token), ("token_type_hint", hint)];
            let mut req = self.http.post(&url);
            match (self.provider.client_auth(), &self.config.client_secret) {
                (ClientAuth::Basic, Some(secret)) => {
                    req = req.basic_auth(&self.config.client_id, Some(secret));
                }
                (_, secret) => {
                    form.push(("client_id", &self.config.client_id));
                    if let Some(s) = secret {
                        form.push(("client_secret", s));
                    }
                }
            }
            let resp = req
                .form(&form)
                .send()
                .await
                .map_err(|e| OAuthError::Unreachable {
                    provider: self.name(),
                    detail: transport_error(e).to_string(),
                })?;
            let status = resp.status();
            if status.is_success() {
                continue;
            }
            let body = resp.text().await.unwrap_or_default();
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(OAuthError::Unreachable {
                    provider: self.name(),
                    detail: format!("HTTP {}", status.as_u16()),
                });
            }
            if body.contains("invalid_client") || status.as_u16() == 401 {
                return Err(OAuthError::ClientRejected(self.name()));
            }
            // `unsupported_token_type` for the access token: the refresh token is gone.
            if hint == "access_token" && body.contains("unsupported_token_type") {
                continue;
            }
            return Err(OAuthError::Other {
                provider: self.name(),
                detail: format!(
                    "revocation refused (HTTP {}): {}",
                    status.as_u16(),
                    body.chars().take(200).collect::<String>()
                ),
            });
        }
        Ok(())
    }
}

fn no_redirect_client() -> Result<reqwest::Client, ProviderError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map_err(|e| ProviderError::Other(format!("TLS set-up failed: {e}")))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(crate::http::REQUEST_TIMEOUT)
        .user_agent(concat!("chatmail-portal/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::Other(format!("HTTP client set-up failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OAuthClientConfig {
        OAuthClientConfig {
            client_id: "portal".into(),
            client_secret: Some("s3cret".into()),
            redirect_url: "https://portal.example/dns/oauth/callback".into(),
            scopes: None,
        }
    }

    #[test]
    fn start_builds_a_pkce_url() {
        let c = OAuthClient::new(OAuthProvider::Linode, config()).unwrap();
        let (url, pending) = c.start().unwrap();
        assert!(
            url.starts_with("https://login.linode.com/oauth/authorize?"),
            "{url}"
        );
        let parsed = reqwest::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "portal");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], pending.state);
        assert_eq!(q["scope"], "domains:read_write");
        let expect = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            Sha256::digest(pending.pkce_verifier.as_bytes()),
        );
        assert_eq!(q["code_challenge"], expect);
        assert!(!format!("{pending:?}").contains(&pending.pkce_verifier));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn endpoints_must_be_https_off_loopback() {
        let c = OAuthClient::new(OAuthProvider::Cloudflare, config()).unwrap();
        let local = OAuthEndpoints {
            authorize: "http://127.0.0.1:9/authorize".into(),
            token: "http://127.0.0.1:9/token".into(),
            revoke: None,
        };
        assert!(c.with_endpoints(local).is_ok());
        let c = OAuthClient::new(OAuthProvider::Cloudflare, config()).unwrap();
        let remote = OAuthEndpoints {
            authorize: "http://auth.example/authorize".into(),
            token: "http://auth.example/token".into(),
            revoke: None,
        };
        assert!(matches!(
            c.with_endpoints(remote),
            Err(OAuthError::NotConfigured(_))
        ));
        let empty = OAuthClientConfig {
            client_id: " ".into(),
            ..config()
        };
        assert!(OAuthClient::new(OAuthProvider::Linode, empty).is_err());
    }

    #[test]
    fn token_sets() {
        let t = TokenSet {
            provider: OAuthProvider::DigitalOcean,
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            expires_at: Some(1000),
            scopes: vec![],
        };
        assert!(t.expires_within(800, Duration::from_secs(300)));
        assert!(!t.expires_within(600, Duration::from_secs(300)));
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("\"at\"") && !shown.contains("rt\""),
            "{shown}"
        );
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains("\"provider\":\"digitalocean\""), "{json}");
        let e = OAuthError::Revoked("DigitalOcean".into()).to_provider_error();
        assert!(matches!(
            e,
            ProviderError::WrongCredentials { advice: Some(_) }
        ));
        assert!(e.to_string().contains("Connect DigitalOcean again"), "{e}");
    }
}
