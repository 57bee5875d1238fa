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

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chatmail_shared::{autoconfig, mta_sts, AcmeAccountUrl, DkimPublicKey};

use super::WebState;
use crate::dkim;

use chatmail_shared::relay_status::{
    proof_message, valid_nonce, AcmeStatus, DkimStatus, HealthStatus, Proof, RelayStatus,
};
pub use chatmail_shared::relay_status::{STATUS_FORMAT, STATUS_PATH};

fn build_status(state: &WebState, nonce: Option<&str>) -> RelayStatus {
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
    let account_url = crate::acme::account_url(&state.paths, &directory)
        .as_ref()
        .map(AcmeAccountUrl::to_string);
    // The proof binds the nonce to the facts reported, signed with the DKIM key itself.
    let proof = nonce.and_then(|nonce| {
        let message = proof_message(&domain, nonce, key.base64(), account_url.as_deref());
        match dkim::sign(&state.paths.dkim_key(), &message) {
            Ok(signature) => Some(Proof {
                nonce: nonce.to_string(),
                signature,
            }),
            Err(err) => {
                tracing::warn!("cannot sign the status proof: {err}");
                None
            }
        }
    });
    RelayStatus {
        format: STATUS_FORMAT,
        version: state.release.to_string(),
        dkim: DkimStatus {
            selector: dkim::SELECTOR.to_string(),
            record_name: format!("{}._domainkey.{domain}", dkim::SELECTOR),
            txt: key.txt_value(),
            public_key: key.base64().to_string(),
        },
        acme: AcmeStatus {
            account_url,
            directory_url: directory,
        },
        health: HealthStatus {
            status: if all_ok { "ok" } else { "degraded" }.to_string(),
            maddy_running,
            accounts_store_ok,
            certificate_placeholder,
            certificate_not_after: cert.map(|c| c.not_after),
        },
        mail_domain: domain,
        proof,
    }
}

/// The status document; with `?nonce=…` it carries the device's proof.
pub async fn status(
    State(state): State<WebState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let nonce = query.get("nonce").cloned();
    if let Some(nonce) = &nonce {
        if !valid_nonce(nonce) {
            return (
                StatusCode::BAD_REQUEST,
                "the nonce must be 16 to 128 URL-safe base64 characters",
            )
                .into_response();
        }
    }
    let status = tokio::task::spawn_blocking(move || build_status(&state, nonce.as_deref())).await;
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
