//! Domain Connect, for a zone whose `_domainconnect` record names a DNS provider that
//! knows the relay's template.
//!
//! - Synchronous flow: the person chooses it in step 2, and in the records step one button
//!   sends the browser to the provider's own page with a signed link that carries the
//!   relay's records as template variables. The provider shows them, asks the person to
//!   confirm, writes them, and sends the browser back. The portal holds no credentials
//!   then, so what happened is learnt from DNS (the status page), never from the return,
//!   which anyone could forge.
//! - Asynchronous flow, where the portal has a client pinned for that provider: the person
//!   allows the portal once on the provider's consent page; the code that comes back is
//!   exchanged for tokens, kept sealed as the group's connection, and the DNS jobs apply
//!   the template through the provider's API from then on (`dns_apply`).
//!
//! Each return's `state` is checked against the one kept in the person's session, so a
//! return works once and only in the browser that started it.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
    Extension,
};
use chatmail_dns_providers::detect::{detect, Resolvers};
use chatmail_dns_providers::domain_connect::{self, AsyncProvider, Settings, TemplateVars};
use chatmail_portal_app::api::DomainConnectChoice;
use chatmail_shared::DnsPlan;
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::dns::{keep_connection, own_domain, Kept, Sealed};
use super::groups::{access, refuse_if_disabled};
use super::{internal, problem, FlashBuilder, FormFields};
use crate::{
    auth::{ClientIp, CurrentAccount},
    db, relay_config, AppState,
};

/// The session key of an apply under way: (group id, state).
const DC_PENDING: &str = "dns_domain_connect_pending";

/// The session key of a grant under way: (group id, state, zone, host).
const DC_GRANT_PENDING: &str = "dns_domain_connect_grant_pending";

/// Where the provider sends the person back.
pub const RETURN_PATH: &str = "/dns/domain-connect/return";

/// The longest `error` text from a provider that is shown back.
const MAX_ERROR: usize = 100;

/// A Domain Connect provider ready to apply the relay's template for a zone.
pub struct Offer {
    /// The zone that holds the mail domain.
    pub zone: String,
    pub settings: Settings,
    /// Whether this portal signs synchronous links and the provider takes them.
    pub sync: bool,
    /// The portal's pinned client at this provider, for the asynchronous flow.
    pub client: Option<AsyncProvider>,
}

impl Offer {
    /// The provider's name to show.
    pub fn name(&self) -> String {
        self.settings.display_name().to_string()
    }

    /// What the DNS step shows.
    pub fn choice(&self) -> DomainConnectChoice {
        DomainConnectChoice {
            name: self.name(),
            confirm_each: self.sync,
            grant: self.client.is_some(),
        }
    }
}

fn resolvers(state: &AppState) -> Resolvers {
    match state.settings.dns.resolver {
        Some(resolver) => Resolvers::Servers(vec![resolver]),
        None => Resolvers::System,
    }
}

/// What Domain Connect offers for a zone whose `_domainconnect` record is `host`: the
/// provider must know the relay's template, and this portal must either sign synchronous
/// links (and the provider take them) or have a client pinned at that provider whose API
/// is the one discovery names. Any failure means "not offered": the other ways stay open.
pub async fn offer_for(state: &AppState, zone: &str, host: Option<&str>) -> Option<Offer> {
    let providers = &state.dns_providers;
    if !providers.domain_connect_configured() {
        return None;
    }
    let settings = domain_connect::discover(host?, zone).await.ok()?;
    let known = domain_connect::template_supported(
        &settings,
        providers.domain_connect_provider_id(),
        domain_connect::SERVICE_ID,
    )
    .await
    .ok()?;
    if !known {
        return None;
    }
    let sync = providers.domain_connect().is_some() && settings.url_sync_ux.is_some();
    let client = providers
        .domain_connect_client(&settings.provider_id)
        .filter(|client| client.check(&settings).is_ok())
        .cloned();
    (sync || client.is_some()).then(|| Offer {
        zone: zone.to_string(),
        settings,
        sync,
        client,
    })
}

/// Like [`offer_for`], looking the zone up first.
pub async fn offer(state: &AppState, domain: &str) -> Option<Offer> {
    if !state.dns_providers.domain_connect_configured() {
        return None;
    }
    let found = detect(
        domain,
        &resolvers(state),
        state.settings.dns.nameserver_port,
    )
    .await
    .ok()?;
    offer_for(state, &found.zone, found.domain_connect.as_deref()).await
}

/// Step 2's Domain Connect choice: the records will be applied at the provider.
pub(super) async fn choose(
    state: &AppState,
    session: &Session,
    account: Uuid,
    group: Uuid,
    ip: std::net::IpAddr,
    domain: &str,
    back: &str,
) -> Response {
    let Some(offer) = offer(state, domain).await.filter(|offer| offer.sync) else {
        return FlashBuilder::error(
            "Domain Connect is not available for this domain on this portal; choose another way.",
        )
        .redirect(session, back)
        .await;
    };
    if let Err(err) = db::dns::set_mode(&state.pool, group, "domain_connect").await {
        return internal(err);
    }
    let next = match super::setup::finish_dns_step(&state.pool, group).await {
        Ok(next) => next,
        Err(err) => return internal(err),
    };
    let name = offer.name();
    db::audit::record(
        &state.pool,
        Some(account),
        Some(group),
        "dns.domain_connect",
        &name,
        Some(ip),
    )
    .await;
    FlashBuilder::success(format!(
        "{name} will write the records: in the records step, one button opens {name}'s page to confirm them."
    ))
    .redirect(session, &format!("/groups/{group}/setup/{}", next.slug()))
    .await
}

/// `POST /groups/{id}/dns/domain-connect`: sends the person to the provider's page with
/// the signed link for the records that are ready now.
pub async fn apply(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/groups/{group}/setup/records");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    if let Err(response) = refuse_if_disabled(&access, &session, &back).await {
        return response;
    }
    let domain = match own_domain(&state, &session, access.account.id, access.group, &back).await {
        Ok(domain) => domain,
        Err(response) => return response,
    };
    let relay = match db::relays::of_group(&state.pool, access.account.id, access.group).await {
        Ok(Some(relay)) => relay,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "There is no such group."),
        Err(err) => return internal(err),
    };
    if relay.dns_mode.as_deref() != Some("domain_connect") {
        return FlashBuilder::error("Choose Domain Connect in step 2 first.")
            .redirect(&session, &back)
            .await;
    }
    let (Some(signer), Some(offer)) = (
        state.dns_providers.domain_connect(),
        offer(&state, &domain).await.filter(|offer| offer.sync),
    ) else {
        return FlashBuilder::error(
            "Your DNS provider cannot be reached by Domain Connect right now. Try again later, or choose another way in step 2.",
        )
        .redirect(&session, &back)
        .await;
    };
    let Ok(mail_domain) = chatmail_shared::MailDomain::parse(&domain) else {
        return internal("a relay's stored domain does not parse");
    };
    let config = relay_config::load_or_new(&relay, mail_domain);
    let plan = DnsPlan::new(&config, &relay.device_facts());
    let (host, vars) = match TemplateVars::from_plan(&plan, &offer.zone) {
        Ok(found) => found,
        Err(err) => {
            return FlashBuilder::error(err.to_string())
                .redirect(&session, &back)
                .await
        }
    };
    if vars.groups.is_empty() {
        return FlashBuilder::error(
            "No record is ready yet: enter the device's address in the hardware step first.",
        )
        .redirect(&session, &back)
        .await;
    }
    let nonce = Uuid::new_v4().simple().to_string();
    let return_url = format!(
        "{}{RETURN_PATH}",
        state.settings.base_url.trim_end_matches('/')
    );
    let url = match signer.sync_apply_url(
        &offer.settings,
        &offer.zone,
        &host,
        &vars,
        Some(&return_url),
        Some(&nonce),
    ) {
        Ok(url) => url,
        Err(err) => {
            return FlashBuilder::error(err.to_string())
                .redirect(&session, &back)
                .await
        }
    };
    if let Err(err) = session
        .insert(DC_PENDING, (access.group.to_string(), nonce))
        .await
    {
        return internal(err);
    }
    super::see_other(&url)
}

/// What the provider adds to the return address.
#[derive(Debug, Deserialize)]
pub struct ReturnParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET /dns/domain-connect/return`: the provider sends the person back here.
pub async fn returned(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    account: Option<Extension<CurrentAccount>>,
    Query(params): Query<ReturnParams>,
) -> Response {
    let Some(Extension(account)) = account else {
        return super::see_other("/signin");
    };
    // Taken out of the session: a return works once.
    let pending: Option<(String, String)> = session.remove(DC_PENDING).await.ok().flatten();
    let Some((group, nonce)) = pending else {
        return FlashBuilder::error(
            "No Domain Connect change is under way here (it was finished already, or started in another browser). Start again from the records step.",
        )
        .redirect(&session, "/groups")
        .await;
    };
    let Ok(group) = group.parse::<Uuid>() else {
        return problem(StatusCode::NOT_FOUND, "There is no such group.");
    };
    let back = format!("/groups/{group}/setup/records");
    if params.state.as_deref() != Some(nonce.as_str()) {
        return FlashBuilder::error(
            "That return did not come from the change started here; nothing is assumed. Start again if the records are not in place.",
        )
        .redirect(&session, &back)
        .await;
    }
    if let Err(response) = own_domain(&state, &session, account.id, group, &back).await {
        return response;
    }
    if let Some(error) = params.error.as_deref() {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ' ')
            .take(MAX_ERROR)
            .collect();
        db::audit::record(
            &state.pool,
            Some(account.id),
            Some(group),
            "dns.domain_connect_refused",
            &error,
            Some(ip),
        )
        .await;
        let text = if error == "access_denied" {
            "You did not confirm the records at your DNS provider, so nothing was written."
                .to_string()
        } else {
            format!("Your DNS provider did not write the records ({error}).")
        };
        return FlashBuilder::error(text).redirect(&session, &back).await;
    }
    db::audit::record(
        &state.pool,
        Some(account.id),
        Some(group),
        "dns.domain_connect_applied",
        "",
        Some(ip),
    )
    .await;
    FlashBuilder::success(
        "Your DNS provider has the records. The status page shows when the world sees them (usually within minutes).",
    )
    .redirect(&session, &back)
    .await
}

/// The mail domain's name relative to `zone` (empty at the apex).
fn host_in(domain: &str, zone: &str) -> String {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    domain
        .strip_suffix(&zone)
        .map(|rest| rest.trim_end_matches('.').to_string())
        .unwrap_or_default()
}

/// Step 2's "Connect by Domain Connect": sends the person to the provider's consent page.
pub(super) async fn start_grant(
    state: &AppState,
    session: &Session,
    group: Uuid,
    domain: &str,
    back: &str,
) -> Response {
    let Some((offer, client)) = offer(state, domain)
        .await
        .and_then(|offer| offer.client.clone().map(|client| (offer, client)))
    else {
        return FlashBuilder::error(
            "Connecting this domain's DNS provider by Domain Connect is not available on this portal; choose another way.",
        )
        .redirect(session, back)
        .await;
    };
    let host = host_in(domain, &offer.zone);
    let nonce = Uuid::new_v4().simple().to_string();
    let url = match client.consent_url(
        state.dns_providers.domain_connect_provider_id(),
        domain_connect::SERVICE_ID,
        &offer.zone,
        &host,
        &nonce,
    ) {
        Ok(url) => url,
        Err(err) => {
            return FlashBuilder::error(err.to_string())
                .redirect(session, back)
                .await
        }
    };
    let pending = (
        group.to_string(),
        nonce,
        client.dns_provider_id.clone(),
        offer.zone.clone(),
        host,
        offer.name(),
    );
    if let Err(err) = session.insert(DC_GRANT_PENDING, pending).await {
        return internal(err);
    }
    super::see_other(&url)
}

/// What the provider adds to the callback address.
#[derive(Debug, Deserialize)]
pub struct GrantParams {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET /dns/domain-connect/callback`: the provider sends the person back after the
/// consent page; the code is exchanged and the tokens kept, sealed.
pub async fn callback(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    account: Option<Extension<CurrentAccount>>,
    Query(params): Query<GrantParams>,
) -> Response {
    let Some(Extension(account)) = account else {
        return super::see_other("/signin");
    };
    type Pending = (String, String, String, String, String, String);
    let pending: Option<Pending> = session.remove(DC_GRANT_PENDING).await.ok().flatten();
    let Some((group, nonce, provider_id, zone, host, name)) = pending else {
        return FlashBuilder::error(
            "No Domain Connect connection is under way here (it was finished already, or started in another browser). Start again from the DNS step.",
        )
        .redirect(&session, "/groups")
        .await;
    };
    let Ok(group) = group.parse::<Uuid>() else {
        return problem(StatusCode::NOT_FOUND, "There is no such group.");
    };
    let back = format!("/groups/{group}/setup/dns");
    if params.state.as_deref() != Some(nonce.as_str()) {
        return FlashBuilder::error(
            "That answer did not come from the connection started here; nothing was connected.",
        )
        .redirect(&session, &back)
        .await;
    }
    if let Err(response) = own_domain(&state, &session, account.id, group, &back).await {
        return response;
    }
    if params.error.is_some() {
        return FlashBuilder::error(format!(
            "{name} was not connected: access was not allowed on its page."
        ))
        .redirect(&session, &back)
        .await;
    }
    let (Some(code), Some(client)) = (
        params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2000),
        state.dns_providers.domain_connect_client(&provider_id),
    ) else {
        return FlashBuilder::error(format!("{name} was not connected: no usable answer."))
            .redirect(&session, &back)
            .await;
    };
    let tokens = match client.exchange_code(code, &zone, &host).await {
        Ok(tokens) => tokens,
        Err(err) => {
            db::audit::record(
                &state.pool,
                Some(account.id),
                Some(group),
                "dns.domain_connect_refused",
                &err.to_string(),
                Some(ip),
            )
            .await;
            return FlashBuilder::error(format!("{name} was not connected: {err}"))
                .redirect(&session, &back)
                .await;
        }
    };
    let label = format!("{name} (Domain Connect)");
    keep_connection(
        &state,
        &session,
        Kept {
            account: account.id,
            group,
            ip,
            sealed: Sealed::DomainConnect(&tokens),
            label: &label,
            zone: &zone,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::host_in;

    #[test]
    fn hosts() {
        assert_eq!(host_in("example.org", "example.org"), "");
        assert_eq!(host_in("Chat.Example.org.", "example.org"), "chat");
        assert_eq!(host_in("a.b.example.org", "example.org"), "a.b");
    }
}
