//! Every change a person makes arrives here, as an HTML form post (no JavaScript needed).
//! Each handler checks who is asking and what they may do, validates every field, and
//! answers with a redirect (post/redirect/get); problems travel to the next page as a
//! one-time flash message together with what was typed, so nothing is lost.

// Guards return the response to send instead (a redirect or an error page); boxing it
// would only add noise to every handler.
#![allow(clippy::result_large_err)]

mod accounts;
pub mod dns;
pub mod dns_domain_connect;
pub mod dns_ovh;
pub mod download;
mod groups;
mod operator;
mod setup;
pub mod status;

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequest, Request},
    http::{header, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::post,
    Router,
};
use chatmail_portal_app::api::{Flash, FlashLevel};
use tower_sessions::Session;

use crate::{auth::CurrentAccount, AppState};

/// Larger bodies are refused before parsing; no form of the portal comes near this.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
const FLASH_KEY: &str = "flash";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/signup", post(accounts::sign_up))
        .route("/signin", post(accounts::sign_in))
        .route("/signout", post(accounts::sign_out))
        .route("/account/password", post(accounts::change_password))
        .route("/account/delete", post(accounts::delete))
        .route("/groups", post(groups::create))
        .route("/groups/{id}/invites", post(groups::invite))
        .route(
            "/groups/{id}/invites/{invite}/revoke",
            post(groups::revoke_invite),
        )
        .route(
            "/groups/{id}/members/{account}/remove",
            post(groups::remove_member),
        )
        .route(
            "/groups/{id}/members/{account}/role",
            post(groups::set_role),
        )
        .route("/groups/{id}/delete", post(groups::delete))
        .route("/invite/{token}", post(groups::accept_invite))
        .route("/groups/{id}/setup/{step}", post(setup::save))
        .route("/groups/{id}/dns/connect", post(dns::connect))
        .route("/groups/{id}/dns/apply", post(dns::apply))
        .route("/groups/{id}/dns/remove", post(dns::remove))
        .route("/groups/{id}/dns/oauth/{provider}", post(dns::oauth_start))
        .route(
            crate::dns_providers::CALLBACK_PATH,
            axum::routing::get(dns::oauth_callback),
        )
        .route(
            crate::dns_providers::OVH_RETURN_PATH,
            axum::routing::get(dns_ovh::returned),
        )
        .route(
            "/groups/{id}/dns/domain-connect",
            post(dns_domain_connect::apply),
        )
        .route(
            dns_domain_connect::RETURN_PATH,
            axum::routing::get(dns_domain_connect::returned),
        )
        .route(
            crate::dns_providers::DOMAIN_CONNECT_CALLBACK_PATH,
            axum::routing::get(dns_domain_connect::callback),
        )
        .route("/groups/{id}/dns/disconnect", post(dns::disconnect))
        .route("/groups/{id}/zone-file", axum::routing::get(dns::zone_file))
        .route(
            "/groups/{id}/download/{file}",
            axum::routing::get(download::group_image),
        )
        .route("/groups/{id}/imager-link", post(download::new_imager_link))
        .route(
            "/imager/{token}/os-list.json",
            axum::routing::get(download::imager_list),
        )
        .route(
            "/imager/{token}/{file}",
            axum::routing::get(download::imager_image),
        )
        .route("/groups/{id}/dns-check", post(status::recheck))
        .route(
            "/groups/{id}/invite-card",
            axum::routing::get(status::invite_card),
        )
        .route("/groups/{id}/dns-check/ignore", post(status::ignore))
        .route("/groups/{id}/dns-check/unignore", post(status::unignore))
        .route("/operator/settings", post(operator::save_settings))
        .route("/operator/zones", post(operator::add_zone))
        .route("/operator/zones/{zone}/toggle", post(operator::toggle_zone))
        .route(
            "/operator/zones/{zone}/connect",
            post(operator::connect_zone),
        )
        .route(
            "/operator/groups/{id}/disable",
            post(operator::disable_group),
        )
        .route("/operator/groups/{id}/enable", post(operator::enable_group))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// The fields of a URL-encoded form. Missing fields read as empty; of repeated fields the
/// first counts. Anything that is not a form at all is refused with 400.
pub struct FormFields(BTreeMap<String, String>);

impl FormFields {
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }

    /// The field with surrounding white space removed.
    pub fn trimmed(&self, name: &str) -> &str {
        self.get(name).trim()
    }

    /// The names of all fields sent.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn checked(&self, name: &str) -> bool {
        matches!(self.get(name), "on" | "true" | "1" | "yes")
    }
}

/// Fields as a browser would send them, for a step the portal answers on the person's behalf.
impl<'a> FromIterator<(&'a str, String)> for FormFields {
    fn from_iter<I: IntoIterator<Item = (&'a str, String)>>(pairs: I) -> Self {
        FormFields(
            pairs
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect(),
        )
    }
}

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !content_type.starts_with("application/x-www-form-urlencoded") {
            return Err(problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "This address only takes HTML forms.",
            ));
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    problem(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "That form was far too large. Please shorten what you typed.",
                    )
                } else {
                    problem(StatusCode::BAD_REQUEST, "The form could not be read.")
                }
            })?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| problem(StatusCode::BAD_REQUEST, "The form could not be read."))?;
        let mut fields = BTreeMap::new();
        for (name, value) in pairs {
            fields.entry(name).or_insert(value);
        }
        Ok(FormFields(fields))
    }
}

/// A small page for requests no form of the portal would send.
pub fn problem(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><meta charset=\"utf-8\"><title>{status}</title>\
         <h1>{}</h1><p>{}</p><p><a href=\"/\">Back to the portal</a></p></html>",
        status.canonical_reason().unwrap_or("Error"),
        html_escape(message)
    );
    (status, Html(body)).into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Logs a database failure and answers with a generic page; the details stay in the log.
pub fn internal(err: impl std::fmt::Display) -> Response {
    tracing::error!("request failed: {err}");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side and nothing was changed. Please try again in a moment.",
    )
}

pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// Builds the message the next page shows once.
#[derive(Default)]
pub struct FlashBuilder(Flash);

impl FlashBuilder {
    pub fn error(message: impl Into<String>) -> Self {
        FlashBuilder(Flash {
            level: Some(FlashLevel::Error),
            message: message.into(),
            ..Flash::default()
        })
    }

    pub fn success(message: impl Into<String>) -> Self {
        FlashBuilder(Flash {
            level: Some(FlashLevel::Success),
            message: message.into(),
            ..Flash::default()
        })
    }

    pub fn field(mut self, name: &str, problem: impl Into<String>) -> Self {
        self.0.errors.insert(name.to_string(), problem.into());
        self
    }

    /// Keeps what was typed in these fields, so the form shows it again.
    pub fn keep(mut self, fields: &FormFields, names: &[&str]) -> Self {
        for name in names {
            let value: String = fields.get(name).chars().take(2000).collect();
            self.0.values.insert(name.to_string(), value);
        }
        self
    }

    pub fn value(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.values.insert(name.to_string(), value.into());
        self
    }

    pub fn has_errors(&self) -> bool {
        !self.0.errors.is_empty()
    }

    /// Stores the message and redirects to `path`.
    pub async fn redirect(self, session: &Session, path: &str) -> Response {
        if let Err(err) = session.insert(FLASH_KEY, self.0).await {
            return internal(err);
        }
        see_other(path)
    }
}

/// Takes the pending flash message, if any (it is shown once).
pub async fn take_flash(session: &Session) -> Flash {
    session
        .remove::<Flash>(FLASH_KEY)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The signed-in account, or a redirect to the sign-in page that comes back to `back_to`.
pub fn signed_in(
    account: Option<CurrentAccount>,
    back_to: &str,
) -> Result<CurrentAccount, Response> {
    account.ok_or_else(|| see_other(&format!("/signin?next={}", urlencode(back_to))))
}

/// Checks the form's anti-forgery token against the session's.
pub fn check_token(account: &CurrentAccount, fields: &FormFields) -> Result<(), Response> {
    if crate::auth::csrf::token_matches(fields.get("csrf"), &account.csrf) {
        Ok(())
    } else {
        Err(problem(
            StatusCode::FORBIDDEN,
            "This form is out of date (your session changed since the page was loaded). Go back, reload the page and try again.",
        ))
    }
}

pub fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A `next` target is only ever a path on this portal, never another site.
pub fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() < 512
        && next.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        next
    } else {
        "/groups"
    }
}

/// For a member's download of one of the relay's files (`/groups/{group}/{file}`): the
/// relay and its name, or what to answer instead (sign in first, no such group, no name
/// chosen yet).
pub(crate) async fn named_relay_of_member(
    state: &AppState,
    account: Option<axum::Extension<CurrentAccount>>,
    group: &str,
    file: &str,
) -> Result<(crate::db::relays::RelayRow, chatmail_shared::MailDomain), Response> {
    let Some(axum::Extension(account)) = account else {
        return Err(see_other(&format!("/signin?next=/groups/{group}/{file}")));
    };
    let Ok(group) = group.parse::<uuid::Uuid>() else {
        return Err(problem(StatusCode::NOT_FOUND, "There is no such group."));
    };
    let relay = match crate::db::relays::of_group(&state.pool, account.id, group).await {
        Ok(Some(relay)) => relay,
        Ok(None) => return Err(problem(StatusCode::NOT_FOUND, "There is no such group.")),
        Err(err) => return Err(internal(err)),
    };
    let Some(domain) = relay
        .mail_domain
        .as_deref()
        .and_then(|d| chatmail_shared::MailDomain::parse(d).ok())
    else {
        return Err(problem(
            StatusCode::NOT_FOUND,
            "Choose the relay's name first.",
        ));
    };
    Ok((relay, domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets_stay_on_the_portal() {
        assert_eq!(safe_next("/groups/abc"), "/groups/abc");
        assert_eq!(safe_next("https://evil.example/"), "/groups");
        assert_eq!(safe_next("//evil.example/"), "/groups");
        assert_eq!(safe_next("/\\evil.example"), "/groups");
        assert_eq!(safe_next(""), "/groups");
        assert_eq!(safe_next("/a b"), "/groups");
    }
}
