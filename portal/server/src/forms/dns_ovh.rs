//! Connecting OVHcloud: the portal asks OVHcloud for a consumer key that may only list
//! zones and read and change the records of the zones the domain can be in, sends the
//! person to OVHcloud's page to log in and approve it, and on the way back checks that the
//! key works before keeping it, sealed, as the group's connection.
//!
//! The key waiting for approval is kept sealed in the person's session, so the return
//! works once, and only in the browser that started it. OVHcloud's return carries nothing
//! the portal trusts: whether the person approved is learnt by using the key.

use axum::{extract::State, response::Response, Extension};
use chatmail_dns_providers::{credentials::Credentials, ovh};
use tower_sessions::Session;
use uuid::Uuid;

use super::dns::{keep_connection, own_domain, verify_with, Kept, Sealed};
use super::{internal, FlashBuilder};
use crate::{
    auth::{ClientIp, CurrentAccount},
    db, AppState,
};

/// The session key of a consumer key waiting for approval: (group id, sealed key).
const OVH_PENDING: &str = "dns_ovh_pending";

/// The zones a domain can be in, itself first: `chat.example.org` can be served by the
/// zone `chat.example.org` or `example.org` (never by a top-level domain).
pub fn zone_candidates(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .collect();
    (0..labels.len().saturating_sub(1))
        .map(|i| labels[i..].join(".").to_ascii_lowercase())
        .collect()
}

fn context(group: Uuid) -> String {
    format!("ovh:{group}")
}

/// Step 2's OVHcloud button: asks for a consumer key and sends the person to approve it.
pub(super) async fn start(
    state: &AppState,
    session: &Session,
    group: Uuid,
    domain: &str,
    back: &str,
) -> Response {
    let Some(app) = state.dns_providers.ovh() else {
        return FlashBuilder::error(
            "This portal is not set up to connect OVHcloud; enter the records yourself.",
        )
        .redirect(session, back)
        .await;
    };
    let zones = zone_candidates(domain);
    let zones: Vec<&str> = zones.iter().map(String::as_str).collect();
    let request = match ovh::request_consumer_key(
        &app.api_base,
        &app.application_key,
        &app.return_url,
        &zones,
    )
    .await
    {
        Ok(request) => request,
        Err(err) => {
            return FlashBuilder::error(format!("OVHcloud was not connected: {err}"))
                .redirect(session, back)
                .await
        }
    };
    let url = request.validation_url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000 {
        return FlashBuilder::error(
            "OVHcloud answered with an approval address the portal will not follow; try again later.",
        )
        .redirect(session, back)
        .await;
    }
    let sealed = match state
        .keyring
        .seal_value(&request.consumer_key, &context(group))
    {
        Ok(sealed) => sealed,
        Err(err) => return internal(err),
    };
    if let Err(err) = session
        .insert(OVH_PENDING, (group.to_string(), sealed))
        .await
    {
        return internal(err);
    }
    super::see_other(url)
}

/// `GET /dns/ovh/return`: OVHcloud sends the person back here after the approval page.
pub async fn returned(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    account: Option<Extension<CurrentAccount>>,
) -> Response {
    let Some(Extension(account)) = account else {
        return super::see_other("/signin");
    };
    // Taken out of the session: a return works once.
    let pending: Option<(String, String)> = session.remove(OVH_PENDING).await.ok().flatten();
    let Some((group, sealed)) = pending else {
        return FlashBuilder::error(
            "No OVHcloud connection is under way here (it was finished already, or started in another browser). Start again from the DNS step.",
        )
        .redirect(&session, "/groups")
        .await;
    };
    let Ok(group) = group.parse::<Uuid>() else {
        return super::problem(axum::http::StatusCode::NOT_FOUND, "There is no such group.");
    };
    let back = format!("/groups/{group}/setup/dns");
    let consumer_key: String = match state.keyring.open_value(&sealed, &context(group)) {
        Ok(key) => key,
        Err(err) => return internal(err),
    };
    // Access to the group is checked again: membership may have changed meanwhile.
    let domain = match own_domain(&state, &session, account.id, group, &back).await {
        Ok(domain) => domain,
        Err(response) => return response,
    };
    let Some(app) = state.dns_providers.ovh() else {
        return FlashBuilder::error("OVHcloud is no longer set up on this portal.")
            .redirect(&session, &back)
            .await;
    };
    let credentials = Credentials::Ovh {
        endpoint: app.endpoint,
        application_key: app.application_key.clone(),
        application_secret: app.application_secret.clone(),
        consumer_key,
    };
    let zone = match verify_with(&state.dns_providers, &credentials, &domain).await {
        Ok(zone) => zone,
        Err(flash) => {
            db::audit::record(
                &state.pool,
                Some(account.id),
                Some(group),
                "dns.ovh_refused",
                "",
                Some(ip),
            )
            .await;
            return flash.redirect(&session, &back).await;
        }
    };
    keep_connection(
        &state,
        &session,
        Kept {
            account: account.id,
            group,
            ip,
            sealed: Sealed::Credentials(&credentials),
            label: "OVHcloud (approved at OVHcloud)",
            zone: &zone,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_a_domain_can_be_in() {
        assert_eq!(
            zone_candidates("Chat.Example.org."),
            ["chat.example.org", "example.org"]
        );
        assert_eq!(zone_candidates("example.org"), ["example.org"]);
        assert!(zone_candidates("org").is_empty());
        assert!(zone_candidates("").is_empty());
    }
}
