//! The community operator's actions: quotas, free-subdomain zones, disabling groups.

use axum::{
    extract::{Path, State},
    response::Response,
    Extension,
};
use chatmail_shared::DomainName;
use tower_sessions::Session;
use uuid::Uuid;

use super::{check_token, internal, problem, signed_in, FlashBuilder, FormFields};
use crate::{
    auth::{ClientIp, CurrentAccount},
    db, AppState,
};

const BACK: &str = "/operator";

/// Signed in as an operator with a valid form token; anyone else gets a plain 404.
fn operator(
    account: Option<Extension<CurrentAccount>>,
    fields: &FormFields,
) -> Result<CurrentAccount, Response> {
    let account = signed_in(account.map(|e| e.0), BACK)?;
    check_token(&account, fields)?;
    if !account.is_operator {
        return Err(problem(
            axum::http::StatusCode::NOT_FOUND,
            "There is nothing at this address.",
        ));
    }
    Ok(account)
}

pub async fn save_settings(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let account = match operator(account, &fields) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let mut flash = FlashBuilder::error("The settings were not saved.");
    let number = |name: &str, max: i32| {
        fields
            .trimmed(name)
            .parse::<i32>()
            .ok()
            .filter(|n| (0..=max).contains(n))
    };
    let groups = number("max_groups_per_account", 1000);
    if groups.is_none() {
        flash = flash.field(
            "max_groups_per_account",
            "Enter a whole number from 0 to 1000.",
        );
    }
    let downloads = number("downloads_per_day", 10_000);
    if downloads.is_none() {
        flash = flash.field("downloads_per_day", "Enter a whole number from 0 to 10000.");
    }
    let (Some(max_groups_per_account), Some(downloads_per_day)) = (groups, downloads) else {
        return flash
            .keep(&fields, &["max_groups_per_account", "downloads_per_day"])
            .redirect(&session, BACK)
            .await;
    };
    let settings = db::operator::Settings {
        max_groups_per_account,
        downloads_per_day,
        open_sign_up: fields.checked("open_sign_up"),
    };
    if let Err(err) = db::operator::save_settings(&state.pool, &settings).await {
        return internal(err);
    }
    let detail = format!(
        "groups per account {max_groups_per_account}, downloads per day {downloads_per_day}, open sign-up {}",
        settings.open_sign_up
    );
    db::audit::record(
        &state.pool,
        Some(account.id),
        None,
        "operator.settings",
        &detail,
        Some(ip),
    )
    .await;
    FlashBuilder::success("Settings saved.")
        .redirect(&session, BACK)
        .await
}

pub async fn add_zone(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let account = match operator(account, &fields) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let zone = match DomainName::parse(fields.trimmed("zone")) {
        Ok(zone) => zone,
        Err(err) => {
            return FlashBuilder::error("The zone was not added.")
                .field("zone", format!("This name {err}."))
                .keep(&fields, &["zone"])
                .redirect(&session, BACK)
                .await
        }
    };
    match db::operator::add_zone(&state.pool, zone.as_str()).await {
        Ok(true) => {
            db::audit::record(
                &state.pool,
                Some(account.id),
                None,
                "operator.zone_added",
                zone.as_str(),
                Some(ip),
            )
            .await;
            FlashBuilder::success(format!(
                "{} is now offered for free names.",
                zone.to_unicode()
            ))
            .redirect(&session, BACK)
            .await
        }
        Ok(false) => {
            FlashBuilder::error("That zone is offered already.")
                .redirect(&session, BACK)
                .await
        }
        Err(err) => internal(err),
    }
}

pub async fn toggle_zone(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(zone): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let account = match operator(account, &fields) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let Ok(zone) = zone.parse::<Uuid>() else {
        return FlashBuilder::error("There is no such zone.")
            .redirect(&session, BACK)
            .await;
    };
    match db::operator::toggle_zone(&state.pool, zone).await {
        Ok(true) => {
            db::audit::record(
                &state.pool,
                Some(account.id),
                None,
                "operator.zone_toggled",
                &zone.to_string(),
                Some(ip),
            )
            .await;
            FlashBuilder::success("Zone updated.")
                .redirect(&session, BACK)
                .await
        }
        Ok(false) => {
            FlashBuilder::error("There is no such zone.")
                .redirect(&session, BACK)
                .await
        }
        Err(err) => internal(err),
    }
}

pub async fn disable_group(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    set_disabled(state, session, ip, group, account, fields, true).await
}

pub async fn enable_group(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    set_disabled(state, session, ip, group, account, fields, false).await
}

async fn set_disabled(
    state: AppState,
    session: Session,
    ip: std::net::IpAddr,
    group: String,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
    disable: bool,
) -> Response {
    let account = match operator(account, &fields) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let Ok(group) = group.parse::<Uuid>() else {
        return FlashBuilder::error("There is no such group.")
            .redirect(&session, BACK)
            .await;
    };
    let reason = fields.trimmed("reason");
    if disable
        && (reason.is_empty()
            || reason.chars().count() > 500
            || reason.chars().any(char::is_control))
    {
        return FlashBuilder::error("The group was not disabled.")
            .field(
                &format!("reason-{group}"),
                "Give a reason of up to 500 characters; the group's members will see it.",
            )
            .redirect(&session, BACK)
            .await;
    }
    let reason = disable.then_some(reason);
    match db::groups::set_disabled(&state.pool, group, reason).await {
        Ok(true) => {
            let action = if disable {
                "operator.group_disabled"
            } else {
                "operator.group_enabled"
            };
            db::audit::record(
                &state.pool,
                Some(account.id),
                Some(group),
                action,
                reason.unwrap_or(""),
                Some(ip),
            )
            .await;
            FlashBuilder::success(if disable {
                "The group was disabled."
            } else {
                "The group was enabled again."
            })
            .redirect(&session, BACK)
            .await
        }
        Ok(false) => {
            FlashBuilder::error("There is no such group.")
                .redirect(&session, BACK)
                .await
        }
        Err(err) => internal(err),
    }
}

/// Connects the DNS of a free-subdomain zone (PowerDNS API or RFC 2136), so the portal can
/// write the records of the relays under it.
pub async fn connect_zone(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(zone): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let account = match operator(account, &fields) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let Ok(zone_id) = zone.parse::<Uuid>() else {
        return FlashBuilder::error("There is no such zone.")
            .redirect(&session, BACK)
            .await;
    };
    let name = match db::operator::zone_name(&state.pool, zone_id).await {
        Ok(Some(name)) => name,
        Ok(None) => {
            return FlashBuilder::error("There is no such zone.")
                .redirect(&session, BACK)
                .await
        }
        Err(err) => return internal(err),
    };
    let credentials = match super::dns::credentials_from(&fields, &name) {
        Ok(credentials) => credentials,
        Err(flash) => return flash.redirect(&session, BACK).await,
    };
    let found = match super::dns::verify(&credentials, &name).await {
        Ok(found) => found,
        Err(flash) => return flash.redirect(&session, BACK).await,
    };
    let label = super::dns::label(&credentials);
    let kind = credentials.kind();
    let saved = db::dns::save_connection(
        &state.pool,
        db::dns::Owner::FreeZone(zone_id),
        kind,
        &label,
        &found,
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
    db::audit::record(
        &state.pool,
        Some(account.id),
        None,
        "operator.zone_connected",
        &format!("{name}: {label}"),
        Some(ip),
    )
    .await;
    FlashBuilder::success(format!("{name} is connected: {label}."))
        .redirect(&session, BACK)
        .await
}
