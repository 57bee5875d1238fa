//! Connecting a relay's DNS provider (PowerDNS API, RFC 2136 with TSIG, a cloud provider's
//! token or key, signing in with the provider, or by hand), disconnecting (which withdraws
//! a sign-in at the provider), queueing the apply and removal jobs, and the zone file for
//! people who enter records themselves. Credentials are checked against the provider
//! before they are kept, sealed, and never put into a page, a flash message or the log.
//!
//! Signing in (OAuth 2.0 with PKCE): `POST /groups/{id}/dns/oauth/{provider}` keeps the
//! pending sign-in (state, PKCE verifier, the group), sealed, in the person's session (in
//! PostgreSQL) and sends the browser to the provider; the provider sends it back to
//! `GET /dns/oauth/callback`, which takes the pending sign-in out of the session (so a
//! callback works once), checks the state, exchanges the code with the verifier, checks
//! the tokens can see the domain's zone and keeps them sealed as the group's connection.

use std::collections::BTreeSet;

use axum::{
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};
use chatmail_dns_providers::{
    credentials::Credentials,
    detect::ConnectWay,
    domain_connect::DcTokens,
    oauth::{CallbackParams, OAuthProvider, PendingAuth},
    rfc2136::TsigAlgorithm,
};
use chatmail_portal_app::api::CONTINUE_WHEN_WRITTEN;
use chatmail_shared::DnsPlan;
use tower_sessions::Session;
use uuid::Uuid;

use super::{
    groups::access, groups::refuse_if_disabled, internal, problem, FlashBuilder, FormFields,
};
use crate::{
    auth::{ClientIp, CurrentAccount},
    db::{self, dns::Owner},
    dns_providers::Providers,
    relay_config, AppState,
};

/// The session key of a pending sign-in: (group id, sealed [`PendingAuth`]).
const OAUTH_PENDING: &str = "dns_oauth_pending";

/// Longest token, key or user name the portal accepts.
const MAX_SECRET: usize = 500;

/// Fields kept after a rejected connection form: never the key or the secret.
const KEEP: &[&str] = &[
    "method",
    "url",
    "server_id",
    "server",
    "zone",
    "key_name",
    "algorithm",
    "api_user",
];

/// The credentials a connection form describes, or the field-level problems.
pub fn credentials_from(
    fields: &FormFields,
    default_zone: &str,
) -> Result<Credentials, FlashBuilder> {
    let mut flash = FlashBuilder::error(
        "The DNS provider was not connected. Please correct the fields marked below.",
    );
    let credentials = match fields.get("method") {
        "powerdns" => {
            let url = fields.trimmed("url").trim_end_matches('/').to_string();
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 500 {
                flash = flash.field(
                    "url",
                    "Enter the API address, e.g. https://dns.example.net:8081.",
                );
            }
            let api_key = fields.trimmed("api_key").to_string();
            if api_key.is_empty() || api_key.len() > 500 {
                flash = flash.field(
                    "api_key",
                    "Enter the API key (X-API-Key) from the PowerDNS configuration.",
                );
            }
            let server_id = match fields.trimmed("server_id") {
                "" => "localhost".to_string(),
                id if id.len() <= 100
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
                {
                    id.to_string()
                }
                _ => {
                    flash = flash.field("server_id", "Use letters, digits, dots and hyphens (normally \u{201c}localhost\u{201d}).");
                    String::new()
                }
            };
            Credentials::PowerDns {
                url,
                api_key,
                server_id,
            }
        }
        "rfc2136" => {
            let server = fields.trimmed("server").to_string();
            if server.parse::<std::net::SocketAddr>().is_err() {
                flash = flash.field(
                    "server",
                    "Enter the primary server's address with its port, e.g. 192.0.2.53:53.",
                );
            }
            let zone = match fields.trimmed("zone") {
                "" => default_zone.to_string(),
                text => match chatmail_shared::DomainName::parse(text) {
                    Ok(zone) => zone.as_str().to_string(),
                    Err(err) => {
                        flash = flash.field("zone", format!("This zone name {err}."));
                        String::new()
                    }
                },
            };
            let key_name = fields.trimmed("key_name").trim_end_matches('.').to_string();
            if key_name.is_empty()
                || key_name.len() > 253
                || key_name.chars().any(char::is_whitespace)
            {
                flash = flash.field(
                    "key_name",
                    "Enter the TSIG key's name, as in the server's configuration.",
                );
            }
            let algorithm = match fields.get("algorithm").parse::<TsigAlgorithm>() {
                Ok(algorithm) => algorithm,
                Err(_) => {
                    flash = flash.field("algorithm", "Choose hmac-sha256 or hmac-sha512.");
                    TsigAlgorithm::HmacSha256
                }
            };
            let secret = fields.trimmed("secret").to_string();
            use base64::Engine;
            if secret.is_empty()
                || secret.len() > 200
                || base64::engine::general_purpose::STANDARD
                    .decode(&secret)
                    .is_err()
            {
                flash = flash.field(
                    "secret",
                    "Enter the TSIG secret (base64), as in the server's configuration.",
                );
            }
            Credentials::Rfc2136 {
                server,
                zone,
                key_name,
                algorithm,
                secret,
            }
        }
        _ => return Err(flash.field("method", "Choose how the portal should reach your DNS.")),
    };
    if flash.has_errors() {
        Err(flash)
    } else {
        Ok(credentials)
    }
}

/// One token or key field: present, not too long, printable ASCII without spaces (what
/// every provider's tokens are).
fn token_field(fields: &FormFields, name: &str, label: &str, flash: &mut FlashBuilder) -> String {
    let value = fields.trimmed(name);
    let problem = if value.is_empty() {
        Some(format!("Enter the {label}."))
    } else if value.len() > MAX_SECRET {
        Some(format!(
            "This is longer than any {label} ({MAX_SECRET} characters at most); copy just the {label}."
        ))
    } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
        Some(format!(
            "The {label} has spaces or characters that never appear in one; copy it again from the provider."
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        *flash = std::mem::replace(flash, FlashBuilder::error("")).field(name, problem);
    }
    value.to_string()
}

/// The credentials of a cloud provider's token or key form (`method` is the provider's
/// id), `None` if the form is not one of them.
pub fn cloud_credentials_from(
    fields: &FormFields,
    providers: &Providers,
) -> Option<Result<Credentials, FlashBuilder>> {
    let method = fields.get("method");
    if !crate::dns_providers::TOKEN_PROVIDERS.contains(&method) {
        return None;
    }
    let mut flash = FlashBuilder::error(
        "The DNS provider was not connected. Please correct the fields marked below.",
    );
    if providers
        .offered(method, &[ConnectWay::ApiToken])
        .is_empty()
    {
        return Some(Err(flash.field(
            "method",
            "This portal is not set up to connect this provider by key; enter the records yourself.",
        )));
    }
    let mut token = |name: &str, label: &str| token_field(fields, name, label, &mut flash);
    let credentials = match method {
        "cloudflare" => Credentials::Cloudflare {
            api_token: token("api_token", "API token"),
        },
        "digitalocean" => Credentials::DigitalOcean {
            token: token("token", "personal access token"),
        },
        "linode" => Credentials::Linode {
            token: token("token", "personal access token"),
        },
        "hetzner" => Credentials::Hetzner {
            api_token: token("api_token", "API token"),
        },
        "desec" => Credentials::Desec {
            token: token("token", "token"),
        },
        "gandi" => Credentials::Gandi {
            token: token("token", "personal access token"),
        },
        "porkbun" => {
            let api_key = token("api_key", "API key");
            let secret_api_key = token("secret_api_key", "secret key");
            if !api_key.is_empty() && !api_key.starts_with("pk1_") {
                flash = flash.field(
                    "api_key",
                    "Porkbun's API key starts with pk1_; the secret key (sk1_) goes below.",
                );
            }
            if !secret_api_key.is_empty() && !secret_api_key.starts_with("sk1_") {
                flash = flash.field("secret_api_key", "Porkbun's secret key starts with sk1_.");
            }
            Credentials::Porkbun {
                api_key,
                secret_api_key,
            }
        }
        _ => {
            // Namecheap: the user name, the key, and the portal's allow-listed address.
            let api_user = token("api_user", "API user");
            let api_key = token("api_key", "API key");
            if !api_user.is_empty()
                && !api_user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                flash = flash.field(
                    "api_user",
                    "Enter your Namecheap user name (letters, digits, dots, hyphens).",
                );
            }
            Credentials::Namecheap {
                api_user,
                api_key,
                username: String::new(),
                client_ip: providers.namecheap_client_ip().unwrap_or("").to_string(),
            }
        }
    };
    Some(if flash.has_errors() {
        Err(flash)
    } else {
        Ok(credentials)
    })
}

/// Like [`verify`], reaching cloud providers at the portal's configured addresses.
pub async fn verify_with(
    providers: &Providers,
    credentials: &Credentials,
    domain: &str,
) -> Result<String, FlashBuilder> {
    let refuse = |message: String| {
        FlashBuilder::error(format!("The DNS provider was not connected: {message}"))
    };
    let provider = providers
        .provider(credentials)
        .map_err(|err| refuse(err.to_string()))?;
    let zone = provider
        .find_zone(domain)
        .await
        .map_err(|err| refuse(err.to_string()))?;
    provider
        .read(&zone)
        .await
        .map_err(|err| refuse(err.to_string()))?;
    Ok(zone)
}

/// Tries the credentials: finds the zone that holds `domain` and reads it. Returns the zone.
pub async fn verify(credentials: &Credentials, domain: &str) -> Result<String, FlashBuilder> {
    let refuse = |message: String| {
        FlashBuilder::error(format!("The DNS provider was not connected: {message}"))
    };
    let provider = credentials
        .provider()
        .map_err(|err| refuse(err.to_string()))?;
    let zone = provider
        .find_zone(domain)
        .await
        .map_err(|err| refuse(err.to_string()))?;
    provider
        .read(&zone)
        .await
        .map_err(|err| refuse(err.to_string()))?;
    Ok(zone)
}

/// A label people recognise, without any secret.
pub fn label(credentials: &Credentials) -> String {
    match credentials {
        Credentials::PowerDns { url, .. } => format!("PowerDNS at {url}"),
        Credentials::Rfc2136 {
            server, key_name, ..
        } => format!("DNS updates to {server} (key {key_name})"),
        other => chatmail_dns_providers::guides::token_guide(other.provider_id())
            .map(|guide| guide.name.to_string())
            .unwrap_or_else(|| other.provider_id().to_string()),
    }
}

fn kind(credentials: &Credentials) -> &'static str {
    credentials.kind()
}

/// Step 2 for a group's own domain: connect a provider, or choose to enter records by hand.
pub async fn connect(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/groups/{group}/setup/dns");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    if let Err(response) = refuse_if_disabled(&access, &session, &back).await {
        return response;
    }
    let relay = match db::relays::of_group(&state.pool, access.account.id, access.group).await {
        Ok(Some(relay)) => relay,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "There is no such group."),
        Err(err) => return internal(err),
    };
    let Some(domain) = relay
        .mail_domain
        .clone()
        .filter(|_| relay.free_zone_id.is_none())
    else {
        return FlashBuilder::error("Choose your own domain first; free names need no connection.")
            .redirect(&session, &back)
            .await;
    };
    if fields.get("method") == "manual" {
        if let Err(err) = db::dns::set_mode(&state.pool, access.group, "manual").await {
            return internal(err);
        }
        let next = match super::setup::finish_dns_step(&state.pool, access.group).await {
            Ok(next) => format!("/groups/{group}/setup/{}", next.slug()),
            Err(err) => return internal(err),
        };
        db::audit::record(
            &state.pool,
            Some(access.account.id),
            Some(access.group),
            "dns.manual",
            "",
            Some(ip),
        )
        .await;
        return FlashBuilder::success(
            "You will enter the records yourself; the records step lists each one.",
        )
        .redirect(&session, &next)
        .await;
    }
    if fields.get("method") == "ovh" {
        return super::dns_ovh::start(&state, &session, access.group, &domain, &back).await;
    }
    if fields.get("method") == "domain_connect_async" {
        return super::dns_domain_connect::start_grant(
            &state,
            &session,
            access.group,
            &domain,
            &back,
        )
        .await;
    }
    if fields.get("method") == "domain_connect" {
        return super::dns_domain_connect::choose(
            &state,
            &session,
            access.account.id,
            access.group,
            ip,
            &domain,
            &back,
        )
        .await;
    }
    let parsed = cloud_credentials_from(&fields, &state.dns_providers)
        .unwrap_or_else(|| credentials_from(&fields, &domain));
    let credentials = match parsed {
        Ok(credentials) => credentials,
        Err(flash) => return flash.keep(&fields, KEEP).redirect(&session, &back).await,
    };
    let zone = match verify_with(&state.dns_providers, &credentials, &domain).await {
        Ok(zone) => zone,
        Err(flash) => return flash.keep(&fields, KEEP).redirect(&session, &back).await,
    };
    let label = label(&credentials);
    keep_connection(
        &state,
        &session,
        Kept {
            account: access.account.id,
            group: access.group,
            ip,
            sealed: Sealed::Credentials(&credentials),
            label: &label,
            zone: &zone,
        },
    )
    .await
}

/// A connection that has just proved it can see the domain's zone.
pub(super) struct Kept<'a> {
    pub account: Uuid,
    pub group: Uuid,
    pub ip: std::net::IpAddr,
    pub sealed: Sealed<'a>,
    pub label: &'a str,
    pub zone: &'a str,
}

/// What a connection keeps, sealed.
pub(super) enum Sealed<'a> {
    /// A provider's credentials (a key, a token, sign-in tokens).
    Credentials(&'a Credentials),
    /// A Domain Connect grant's tokens.
    DomainConnect(&'a DcTokens),
}

impl Sealed<'_> {
    /// The connection's kind and provider id, as stored.
    fn kind_and_provider(&self) -> (&'static str, Option<String>) {
        match self {
            Sealed::Credentials(
                credentials @ (Credentials::PowerDns { .. } | Credentials::Rfc2136 { .. }),
            ) => (kind(credentials), None),
            Sealed::Credentials(Credentials::OAuth(tokens)) => {
                ("oauth", Some(tokens.provider.id().to_string()))
            }
            Sealed::Credentials(other) => (kind(other), Some(other.provider_id().to_string())),
            Sealed::DomainConnect(tokens) => (
                crate::dns_apply_domain_connect::KIND,
                Some(tokens.dns_provider_id.clone()),
            ),
        }
    }

    fn seal(&self, keyring: &chatmail_dns_providers::Keyring, id: Uuid) -> String {
        let context = id.to_string();
        match self {
            Sealed::Credentials(credentials) => keyring.seal(credentials, &context),
            Sealed::DomainConnect(tokens) => keyring.seal_value(tokens, &context),
        }
        .expect("sealing cannot fail with a valid keyring")
    }
}

/// Keeps a checked connection, sealed, as the group's, marks the DNS step done and sends
/// the person on to the next step.
pub(super) async fn keep_connection(
    state: &AppState,
    session: &Session,
    kept: Kept<'_>,
) -> Response {
    let Kept {
        account,
        group,
        ip,
        sealed,
        label,
        zone,
    } = kept;
    let (kind, provider) = sealed.kind_and_provider();
    let saved = db::dns::save_provider_connection(
        &state.pool,
        Owner::Group(group),
        kind,
        provider.as_deref(),
        label,
        zone,
        |id| sealed.seal(&state.keyring, id),
    )
    .await;
    if let Err(err) = saved {
        return internal(err);
    }
    let next = match super::setup::finish_dns_step(&state.pool, group).await {
        Ok(next) => next,
        Err(err) => return internal(err),
    };
    db::audit::record(
        &state.pool,
        Some(account),
        Some(group),
        "dns.connected",
        label,
        Some(ip),
    )
    .await;
    FlashBuilder::success(format!(
        "Connected: {label}, zone {zone}. Nothing is written until you confirm the changes."
    ))
    .redirect(session, &format!("/groups/{group}/setup/{}", next.slug()))
    .await
}

/// The relay of a group that uses its own domain, or the response that says why not.
pub(super) async fn own_domain(
    state: &AppState,
    session: &Session,
    account: uuid::Uuid,
    group: Uuid,
    back: &str,
) -> Result<String, Response> {
    let relay = match db::relays::of_group(&state.pool, account, group).await {
        Ok(Some(relay)) => relay,
        Ok(None) => return Err(problem(StatusCode::NOT_FOUND, "There is no such group.")),
        Err(err) => return Err(internal(err)),
    };
    match relay.mail_domain.filter(|_| relay.free_zone_id.is_none()) {
        Some(domain) => Ok(domain),
        None => Err(FlashBuilder::error(
            "Choose your own domain first; free names need no connection.",
        )
        .redirect(session, back)
        .await),
    }
}

/// `POST /groups/{id}/dns/oauth/{provider}`: starts signing in with the provider.
pub async fn oauth_start(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path((group, provider)): Path<(String, String)>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/groups/{group}/setup/dns");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    if let Err(response) = refuse_if_disabled(&access, &session, &back).await {
        return response;
    }
    if let Err(response) =
        own_domain(&state, &session, access.account.id, access.group, &back).await
    {
        return response;
    }
    let Some(client) = OAuthProvider::from_id(&provider).and_then(|p| state.dns_providers.oauth(p))
    else {
        return FlashBuilder::error(
            "Signing in with this provider is not set up on this portal; use its key form or enter the records yourself.",
        )
        .redirect(&session, &back)
        .await;
    };
    let (url, pending) = match client.start() {
        Ok(started) => started,
        Err(err) => {
            return FlashBuilder::error(err.to_string())
                .redirect(&session, &back)
                .await
        }
    };
    let sealed = match state
        .keyring
        .seal_value(&pending, &format!("oauth:{}", access.group))
    {
        Ok(sealed) => sealed,
        Err(err) => return internal(err),
    };
    if let Err(err) = session
        .insert(OAUTH_PENDING, (access.group.to_string(), sealed))
        .await
    {
        return internal(err);
    }
    super::see_other(&url)
}

/// `GET /dns/oauth/callback`: the provider sends the person back here.
pub async fn oauth_callback(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    account: Option<Extension<CurrentAccount>>,
    Query(params): Query<CallbackParams>,
) -> Response {
    let Some(Extension(account)) = account else {
        return super::see_other("/signin");
    };
    // Taken out of the session: a callback works once.
    let pending: Option<(String, String)> = session.remove(OAUTH_PENDING).await.ok().flatten();
    let Some((group, sealed)) = pending else {
        return FlashBuilder::error(
            "There is no sign-in under way here (it was finished already, or started in another browser). Start again from the DNS step.",
        )
        .redirect(&session, "/groups")
        .await;
    };
    let Ok(group) = group.parse::<Uuid>() else {
        return problem(StatusCode::NOT_FOUND, "There is no such group.");
    };
    let back = format!("/groups/{group}/setup/dns");
    let pending: PendingAuth = match state.keyring.open_value(&sealed, &format!("oauth:{group}")) {
        Ok(pending) => pending,
        Err(err) => return internal(err),
    };
    let domain = match own_domain(&state, &session, account.id, group, &back).await {
        Ok(domain) => domain,
        Err(response) => return response,
    };
    let Some(client) = state.dns_providers.oauth(pending.provider) else {
        return FlashBuilder::error(
            "Signing in with this provider is no longer set up on this portal.",
        )
        .redirect(&session, &back)
        .await;
    };
    let tokens = match client.finish(&pending, &params).await {
        Ok(tokens) => tokens,
        Err(err) => {
            db::audit::record(
                &state.pool,
                Some(account.id),
                Some(group),
                "dns.oauth_refused",
                &err.to_string(),
                Some(ip),
            )
            .await;
            return FlashBuilder::error(format!("The DNS provider was not connected: {err}"))
                .redirect(&session, &back)
                .await;
        }
    };
    let credentials = Credentials::OAuth(tokens.clone());
    let zone = match verify_with(&state.dns_providers, &credentials, &domain).await {
        Ok(zone) => zone,
        Err(flash) => {
            // A grant the portal will not use is handed back.
            let _ = client.revoke(&tokens).await;
            return flash.redirect(&session, &back).await;
        }
    };
    let label = format!("{} (signed in)", pending.provider.display_name());
    keep_connection(
        &state,
        &session,
        Kept {
            account: account.id,
            group,
            ip,
            sealed: Sealed::Credentials(&credentials),
            label: &label,
            zone: &zone,
        },
    )
    .await
}

/// `POST /groups/{id}/dns/disconnect`: forgets the group's connection; a sign-in is
/// withdrawn at the provider first. The records already written stay in the zone.
pub async fn disconnect(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/groups/{group}/setup/dns");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    if let Err(response) = refuse_if_disabled(&access, &session, &back).await {
        return response;
    }
    if let Err(response) =
        own_domain(&state, &session, access.account.id, access.group, &back).await
    {
        return response;
    }
    let connection = match db::dns::connection_for_group(&state.pool, access.group).await {
        Ok(connection) => connection,
        Err(err) => return internal(err),
    };
    let mut note = String::new();
    if let Some(connection) = connection {
        let opened: Option<Credentials> = state
            .keyring
            .open(&connection.sealed_credentials, &connection.id.to_string())
            .ok();
        if let Some(Credentials::OAuth(tokens)) = &opened {
            let name = tokens.provider.display_name();
            match state.dns_providers.oauth(tokens.provider) {
                Some(client) => {
                    if let Err(err) = client.revoke(tokens).await {
                        tracing::warn!("revoking the {name} sign-in failed: {err}");
                        note = format!(
                            " {name} could not be told to withdraw the portal's access; withdraw it in {name}'s settings."
                        );
                    }
                }
                None => {
                    note = format!(" Withdraw the portal's access in {name}'s settings.");
                }
            }
        }
    }
    if let Err(err) = db::dns::disconnect(&state.pool, access.group).await {
        return internal(err);
    }
    db::audit::record(
        &state.pool,
        Some(access.account.id),
        Some(access.group),
        "dns.disconnected",
        "",
        Some(ip),
    )
    .await;
    FlashBuilder::success(format!(
        "Disconnected. The records already written stay in your zone.{note}"
    ))
    .redirect(&session, &back)
    .await
}

/// Queues the apply (with the foreign records the person allowed to replace) or the removal.
async fn queue(
    state: AppState,
    session: Session,
    ip: std::net::IpAddr,
    group: String,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
    action: &'static str,
) -> Response {
    let back = format!("/groups/{group}/setup/records");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    if let Err(response) = refuse_if_disabled(&access, &session, &back).await {
        return response;
    }
    match db::dns::connection_for_group(&state.pool, access.group).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return FlashBuilder::error(
                "Connect a DNS provider first (step 2), or enter the records yourself.",
            )
            .redirect(&session, &back)
            .await
        }
        Err(err) => return internal(err),
    }
    let confirmed: BTreeSet<String> = fields
        .names()
        .filter_map(|name| name.strip_prefix("confirm-"))
        .filter(|id| id.len() <= 100)
        .map(str::to_string)
        .collect();
    match db::dns::enqueue(
        &state.pool,
        access.group,
        action,
        &confirmed,
        access.account.id,
    )
    .await
    {
        Ok(true) => {
            state.jobs_wake.notify_one();
            let detail = format!("{action}, {} confirmed replacement(s)", confirmed.len());
            db::audit::record(
                &state.pool,
                Some(access.account.id),
                Some(access.group),
                "dns.queued",
                &detail,
                Some(ip),
            )
            .await;
            let message = if action == "remove" {
                "Removing the portal's records from your DNS. This page shows when it is done."
            } else {
                "Writing the records to your DNS. This page shows when it is done."
            };
            let mut flash = FlashBuilder::success(message);
            if action == "apply" {
                flash = flash.value(CONTINUE_WHEN_WRITTEN, "yes");
            }
            flash.redirect(&session, &back).await
        }
        Ok(false) => {
            FlashBuilder::error(
                "A DNS change for this relay is already under way; wait for it to finish.",
            )
            .redirect(&session, &back)
            .await
        }
        Err(err) => internal(err),
    }
}

pub async fn apply(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    queue(state, session, ip, group, account, fields, "apply").await
}

pub async fn remove(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    queue(state, session, ip, group, account, fields, "remove").await
}

/// `GET /groups/{id}/zone-file`: the relay's records as zone-file lines, to import or copy.
pub async fn zone_file(
    State(state): State<AppState>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
) -> Response {
    let (relay, domain) =
        match super::named_relay_of_member(&state, account, &group, "zone-file").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let config = relay_config::load_or_new(&relay, domain.clone());
    let plan = DnsPlan::new(&config, &relay.device_facts());
    let body = chatmail_dns_providers::manual::records_file(&plan);
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.zone\"", domain.as_str()),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}
