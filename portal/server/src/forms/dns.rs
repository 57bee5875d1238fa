//! Connecting a relay's DNS provider (PowerDNS API, RFC 2136 with TSIG, or by hand),
//! queueing the apply and removal jobs, and the zone file for people who enter records
//! themselves. Credentials are checked against the provider before they are kept, sealed,
//! and never put into a page, a flash message or the log.

use std::collections::BTreeSet;

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};
use chatmail_dns_providers::{credentials::Credentials, rfc2136::TsigAlgorithm};
use chatmail_shared::{DeviceFacts, DnsPlan, MailDomain};
use tower_sessions::Session;
use uuid::Uuid;

use super::{
    groups::access, groups::refuse_if_disabled, internal, problem, FlashBuilder, FormFields,
};
use crate::{
    auth::{ClientIp, CurrentAccount},
    db::{self, dns::Owner},
    relay_config, AppState,
};

/// Fields kept after a rejected connection form: never the key or the secret.
const KEEP: &[&str] = &[
    "method",
    "url",
    "server_id",
    "server",
    "zone",
    "key_name",
    "algorithm",
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
    let next = format!("/groups/{group}/setup/settings");
    if fields.get("method") == "manual" {
        if let Err(err) = db::dns::set_mode(&state.pool, access.group, "manual").await {
            return internal(err);
        }
        if let Err(err) = db::relays::complete_step(&state.pool, access.group, 2).await {
            return internal(err);
        }
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
    let credentials = match credentials_from(&fields, &domain) {
        Ok(credentials) => credentials,
        Err(flash) => return flash.keep(&fields, KEEP).redirect(&session, &back).await,
    };
    let zone = match verify(&credentials, &domain).await {
        Ok(zone) => zone,
        Err(flash) => return flash.keep(&fields, KEEP).redirect(&session, &back).await,
    };
    let label = label(&credentials);
    let saved = db::dns::save_connection(
        &state.pool,
        Owner::Group(access.group),
        kind(&credentials),
        &label,
        &zone,
        |id| {
            state
                .keyring
                .seal(&credentials, &id.to_string())
                .expect("sealing cannot fail with a valid keyring")
        },
    )
    .await;
    if let Err(err) = saved {
        return internal(err);
    }
    if let Err(err) = db::relays::complete_step(&state.pool, access.group, 2).await {
        return internal(err);
    }
    db::audit::record(
        &state.pool,
        Some(access.account.id),
        Some(access.group),
        "dns.connected",
        &label,
        Some(ip),
    )
    .await;
    FlashBuilder::success(format!(
        "Connected: {label}, zone {zone}. Nothing is written until you confirm the changes."
    ))
    .redirect(&session, &next)
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
            FlashBuilder::success(message)
                .redirect(&session, &back)
                .await
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
    let Some(Extension(account)) = account else {
        return super::see_other(&format!("/signin?next=/groups/{group}/zone-file"));
    };
    let Ok(group) = group.parse::<Uuid>() else {
        return problem(StatusCode::NOT_FOUND, "There is no such group.");
    };
    let relay = match db::relays::of_group(&state.pool, account.id, group).await {
        Ok(Some(relay)) => relay,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "There is no such group."),
        Err(err) => return internal(err),
    };
    let Some(domain) = relay
        .mail_domain
        .as_deref()
        .and_then(|d| MailDomain::parse(d).ok())
    else {
        return problem(StatusCode::NOT_FOUND, "Choose the relay's name first.");
    };
    let config = relay_config::load_or_new(&relay, domain.clone());
    let plan = DnsPlan::new(&config, &DeviceFacts::default());
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
