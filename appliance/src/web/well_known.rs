//! Files under `/.well-known/` (and the autoconfig path): what clients, other mail servers,
//! the ACME CA and the portal fetch from the relay.
//!
//! - MTA-STS policy (`/.well-known/mta-sts.txt`, served for `mta-sts.<domain>`), from
//!   `chatmail-shared` so it agrees with the DNS plan's policy id;
//! - autoconfig XML (`/.well-known/autoconfig/mail/config-v1.1.xml`, also
//!   `/mail/config-v1.1.xml` for `autoconfig.<domain>`), from `chatmail-shared`;
//! - ACME HTTP-01 answers (`/.well-known/acme-challenge/<token>`, port 80 only);
//! - the relay status document ([`STATUS_PATH`]): what the device publishes for the portal
//!   (software version, DKIM record, ACME account URL) and its health.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chatmail_shared::{autoconfig, mta_sts, AcmeAccountUrl, DkimPublicKey};
use serde::Serialize;

use super::WebState;
use crate::dkim;

/// Where the status document is served.
pub const STATUS_PATH: &str = "/.well-known/chatmail-relay/status.json";

/// Version of the status document's format.
pub const STATUS_FORMAT: u32 = 1;

/// The status document.
#[derive(Debug, Serialize)]
pub struct RelayStatus {
    /// [`STATUS_FORMAT`].
    pub format: u32,
    /// The appliance's version.
    pub version: &'static str,
    /// The mail domain.
    pub mail_domain: String,
    /// The DKIM record to publish.
    pub dkim: DkimStatus,
    /// The ACME account.
    pub acme: AcmeStatus,
    /// How the device is doing.
    pub health: HealthStatus,
}

/// The DKIM part.
#[derive(Debug, Serialize)]
pub struct DkimStatus {
    /// The selector (`opendkim`).
    pub selector: &'static str,
    /// `<selector>._domainkey.<domain>`.
    pub record_name: String,
    /// The TXT value, e.g. `v=DKIM1;k=rsa;p=…;s=email;t=s`.
    pub txt: String,
    /// The bare base64 public key.
    pub public_key: String,
}

/// The ACME part.
#[derive(Debug, Serialize)]
pub struct AcmeStatus {
    /// The configured directory.
    pub directory_url: String,
    /// The account URL, once the CA has assigned one (for CAA `accounturi`).
    pub account_url: Option<String>,
}

/// The health part.
#[derive(Debug, Serialize)]
pub struct HealthStatus {
    /// `ok` when every part below is fine, otherwise `degraded`.
    pub status: &'static str,
    /// Whether Maddy is running.
    pub maddy_running: bool,
    /// Whether the account store answers.
    pub accounts_store_ok: bool,
    /// Whether the served certificate is still the self-signed placeholder.
    pub certificate_placeholder: bool,
    /// Unix time at which the served certificate expires.
    pub certificate_not_after: Option<i64>,
}

impl RelayStatus {
    fn build(state: &WebState) -> Self {
        let domain = state.config.mail_domain.as_str().to_string();
        let key: &DkimPublicKey = &state.dkim_key;
        let cert = std::fs::read(state.paths.tls_cert())
            .ok()
            .and_then(|pem| crate::tls::cert_info(&pem).ok());
        let accounts_store_ok = state.accounts.store().count().is_ok();
        let maddy_running = state.health.maddy_running();
        let certificate_placeholder = cert.as_ref().is_none_or(|c| c.placeholder);
        let all_ok = maddy_running && accounts_store_ok && !certificate_placeholder;
        let directory = state.config.acme.directory_url.to_string();
        RelayStatus {
            format: STATUS_FORMAT,
            version: env!("CARGO_PKG_VERSION"),
            dkim: DkimStatus {
                selector: dkim::SELECTOR,
                record_name: format!("{}._domainkey.{domain}", dkim::SELECTOR),
                txt: key.txt_value(),
                public_key: key.base64().to_string(),
            },
            acme: AcmeStatus {
                account_url: crate::acme::account_url(&state.paths, &directory)
                    .as_ref()
                    .map(AcmeAccountUrl::to_string),
                directory_url: directory,
            },
            health: HealthStatus {
                status: if all_ok { "ok" } else { "degraded" },
                maddy_running,
                accounts_store_ok,
                certificate_placeholder,
                certificate_not_after: cert.map(|c| c.not_after),
            },
            mail_domain: domain,
        }
    }
}

/// The status document.
pub async fn status(State(state): State<WebState>) -> Response {
    let status = tokio::task::spawn_blocking(move || RelayStatus::build(&state)).await;
    match status {
        Ok(status) => ([(header::CACHE_CONTROL, "no-store")], Json(status)).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The MTA-STS policy.
pub async fn mta_sts_policy(State(state): State<WebState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        mta_sts::policy_text(&state.config.mail_domain),
    )
        .into_response()
}

/// The autoconfig XML.
pub async fn autoconfig_xml(State(state): State<WebState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        autoconfig::autoconfig_xml(&state.config.mail_domain),
    )
        .into_response()
}

/// An ACME HTTP-01 answer.
pub async fn acme_challenge(State(state): State<WebState>, Path(token): Path<String>) -> Response {
    match state.challenges.get(&token) {
        Some(key_authorization) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
