//! The status page's actions: re-check now, ignore a warning (per relay) or show it again,
//! and the report as JSON for scripts and the browser.

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use chatmail_shared::dns_report::Severity;
use tower_sessions::Session;
use uuid::Uuid;

use super::{groups::access, internal, problem, FlashBuilder, FormFields};
use crate::{
    auth::{ClientIp, CurrentAccount},
    db, dns_status, AppState,
};

/// `GET /groups/{id}/invite-card`: a page to print or share, with the join QR code and
/// what to do with it.
pub async fn invite_card(
    State(state): State<AppState>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
) -> Response {
    let (_, domain) =
        match super::named_relay_of_member(&state, account, &group, "invite-card").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let name = escape(&domain.to_unicode());
    let qr = chatmail_shared::qr::account_svg(&domain);
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Join {name}</title><style>body{{font-family:sans-serif;max-width:36rem;margin:2rem auto;\
         text-align:center}}.qr svg{{width:16rem;height:16rem}}ol{{text-align:left}}</style></head>\
         <body><h1>Chat with us on {name}</h1><div class=\"qr\">{qr}</div><ol>\
         <li>Install Delta Chat on your phone or computer (delta.chat).</li>\
         <li>Choose \"Create a new profile\", then \"Use a different server\" and scan this code.</li>\
         <li>Pick a name and a picture; your address on {name} is made for you.</li></ol>\
         <p>No phone number, no e-mail address and no password to remember.</p></body></html>"
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        page,
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn status_page(group: &str) -> String {
    format!("/groups/{group}/setup/status")
}

pub async fn recheck(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = status_page(&group);
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    let relay = match db::relays::of_group(&state.pool, access.account.id, access.group).await {
        Ok(Some(relay)) => relay,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "There is no such group."),
        Err(err) => return internal(err),
    };
    // DNS and the device, together; new device keys are published on the way.
    let checked = crate::go_live::check(
        &state.pool,
        &state.settings.dns,
        &state.settings.probes,
        &relay,
    )
    .await;
    match checked {
        Ok(Some(checked)) => {
            if checked.publishing {
                state.jobs_wake.notify_one();
            }
            let message = if checked.publishing {
                "Checked again just now. Your device's keys are being published in DNS."
            } else {
                "Checked again just now."
            };
            FlashBuilder::success(message)
                .redirect(&session, &back)
                .await
        }
        Ok(None) => {
            FlashBuilder::error("Choose the relay's name first, then its DNS can be checked.")
                .redirect(&session, &back)
                .await
        }
        Err(err) => internal(err),
    }
}

async fn set_ignored(
    state: AppState,
    session: Session,
    ip: std::net::IpAddr,
    group: String,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
    ignore: bool,
) -> Response {
    let back = status_page(&group);
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    let key = fields.get("finding");
    if key.is_empty() || key.len() > 600 {
        return FlashBuilder::error("That warning does not exist.")
            .redirect(&session, &back)
            .await;
    }
    if ignore {
        // Only warnings and hints of the current report can be ignored, never errors.
        let report = match dns_status::latest(&state.pool, access.group).await {
            Ok(report) => report.map(|(report, _)| report),
            Err(err) => return internal(err),
        };
        let ignorable = report
            .iter()
            .flat_map(|r| r.findings.iter())
            .any(|finding| {
                finding.severity != Severity::Error
                    && dns_status::ignore_key(&finding.id, finding.subject.as_deref()) == key
            });
        if !ignorable {
            return FlashBuilder::error("Only warnings can be ignored; errors must be fixed.")
                .redirect(&session, &back)
                .await;
        }
    }
    let sql = if ignore {
        "UPDATE relays SET ignored_warnings = array_append(array_remove(ignored_warnings, $2), $2) WHERE group_id = $1"
    } else {
        "UPDATE relays SET ignored_warnings = array_remove(ignored_warnings, $2) WHERE group_id = $1"
    };
    if let Err(err) = sqlx::query(sql)
        .bind(access.group)
        .bind(key)
        .execute(&state.pool)
        .await
    {
        return internal(err);
    }
    let action = if ignore {
        "status.warning_ignored"
    } else {
        "status.warning_shown"
    };
    db::audit::record(
        &state.pool,
        Some(access.account.id),
        Some(access.group),
        action,
        key,
        Some(ip),
    )
    .await;
    let message = if ignore {
        "The warning is ignored for this relay."
    } else {
        "The warning is shown again."
    };
    FlashBuilder::success(message)
        .redirect(&session, &back)
        .await
}

pub async fn ignore(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    set_ignored(state, session, ip, group, account, fields, true).await
}

pub async fn unignore(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    set_ignored(state, session, ip, group, account, fields, false).await
}

/// `GET /api/groups/{id}/dns-check`: the current report (re-checked when stale) and the
/// warnings the group chose to ignore, for members only.
pub async fn report_json(
    State(state): State<AppState>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
) -> Response {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such group"})),
        )
            .into_response()
    };
    let Some(Extension(account)) = account else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "sign in first"})),
        )
            .into_response();
    };
    let Ok(group) = group.parse::<Uuid>() else {
        return not_found();
    };
    let relay = match db::relays::of_group(&state.pool, account.id, group).await {
        Ok(Some(relay)) => relay,
        Ok(None) => return not_found(),
        Err(err) => return internal(err),
    };
    match dns_status::current(&state.pool, &state.settings.dns, &relay).await {
        Ok(report) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(serde_json::json!({ "report": report, "ignored": relay.ignored_warnings })),
        )
            .into_response(),
        Err(err) => internal(err),
    }
}
