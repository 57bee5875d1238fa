//! Sign-up, sign-in, sign-out, password change and account deletion.

use axum::{extract::State, response::Response, Extension};
use chatmail_shared::EmailAddress;
use tower_sessions::Session;

use super::{check_token, internal, safe_next, see_other, signed_in, FlashBuilder, FormFields};
use crate::{
    auth::{password, rate_limit, session, ClientIp, CurrentAccount},
    db::{self, accounts::DeleteBlocked},
    AppState,
};

/// Lowercased and checked; the message says what is wrong.
fn parse_email(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("Enter your e-mail address.");
    }
    if text.len() > 254 {
        return Err("That e-mail address is too long.");
    }
    EmailAddress::parse(text)
        .map(|_| text.to_lowercase())
        .map_err(|_| "That does not look like an e-mail address (name@example.org).")
}

pub async fn sign_up(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    fields: FormFields,
) -> Response {
    let next = safe_next(fields.get("next")).to_string();
    let back = format!("/signup?next={}", super::urlencode(&next));
    let settings = match db::operator::settings(&state.pool).await {
        Ok(settings) => settings,
        Err(err) => return internal(err),
    };
    if !settings.open_sign_up && !next.starts_with("/invite/") {
        return FlashBuilder::error(
            "This portal is not taking new accounts. Ask its operator for an invite link.",
        )
        .redirect(&session, &back)
        .await;
    }
    match rate_limit::check_sign_up(&state.pool, ip).await {
        Ok(rate_limit::Verdict::Allowed) => {}
        Ok(verdict) => {
            let minutes = match verdict {
                rate_limit::Verdict::AddressLimited { minutes }
                | rate_limit::Verdict::AccountLocked { minutes } => minutes,
                rate_limit::Verdict::Allowed => 0,
            };
            return FlashBuilder::error(format!(
                "Too many accounts were created from your network just now. Please try again in {minutes} minutes."
            ))
            .keep(&fields, &["email"])
            .redirect(&session, &back)
            .await;
        }
        Err(err) => return internal(err),
    }

    let mut flash = FlashBuilder::error("Please correct the fields marked below.");
    let email = parse_email(fields.get("email"));
    if let Err(problem) = email {
        flash = flash.field("email", problem);
    }
    let new_password = fields.get("password");
    if let Err(problem) = password::check_new(new_password, fields.trimmed("email")) {
        flash = flash.field("password", problem);
    } else if fields.names().any(|name| name == "password_confirm")
        && new_password != fields.get("password_confirm")
    {
        // The form no longer asks twice; a client that still sends the second copy gets it
        // checked, and the answer shows at the one password field there is.
        flash = flash.field("password", "The two passwords are not the same.");
    }
    let Ok(email) = email else {
        return flash
            .keep(&fields, &["email"])
            .redirect(&session, &back)
            .await;
    };
    if flash.has_errors() {
        return flash
            .keep(&fields, &["email"])
            .redirect(&session, &back)
            .await;
    }

    let hash = password::hash(new_password).await;
    let created = db::accounts::create(&state.pool, &email, &hash, false).await;
    let _ = rate_limit::record(
        &state.pool,
        "sign_up",
        None,
        ip,
        matches!(created, Ok(Some(_))),
    )
    .await;
    let account = match created {
        Ok(Some(account)) => account,
        Ok(None) => {
            return FlashBuilder::error("Please correct the fields marked below.")
                .field(
                    "email",
                    "An account with this address exists already. Sign in instead.",
                )
                .keep(&fields, &["email"])
                .redirect(&session, &back)
                .await
        }
        Err(err) => return internal(err),
    };
    if let Err(err) = session::sign_in(&session, account.id, account.session_epoch).await {
        return internal(err);
    }
    db::audit::record(
        &state.pool,
        Some(account.id),
        None,
        "account.created",
        "",
        Some(ip),
    )
    .await;
    FlashBuilder::success("Welcome! Your account is ready.")
        .redirect(&session, &next)
        .await
}

pub async fn sign_in(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    fields: FormFields,
) -> Response {
    let next = safe_next(fields.get("next")).to_string();
    let back = format!("/signin?next={}", super::urlencode(&next));
    let email = fields.trimmed("email").to_lowercase();
    let given = fields.get("password");
    if email.is_empty()
        || given.is_empty()
        || email.len() > 254
        || given.chars().count() > password::MAX_LENGTH
    {
        return FlashBuilder::error("Enter your e-mail address and your password.")
            .keep(&fields, &["email"])
            .redirect(&session, &back)
            .await;
    }
    match rate_limit::check_sign_in(&state.pool, &email, ip).await {
        Ok(rate_limit::Verdict::Allowed) => {}
        Ok(rate_limit::Verdict::AccountLocked { minutes }) => {
            return FlashBuilder::error(format!(
                "This account is locked for {minutes} minutes after too many wrong passwords. \
                 Wait, then try again; if it was not you, change your password once you are in."
            ))
            .keep(&fields, &["email"])
            .redirect(&session, &back)
            .await
        }
        Ok(rate_limit::Verdict::AddressLimited { minutes }) => {
            return FlashBuilder::error(format!(
                "Too many failed sign-ins from your network. Please try again in {minutes} minutes."
            ))
            .keep(&fields, &["email"])
            .redirect(&session, &back)
            .await
        }
        Err(err) => return internal(err),
    }
    let account = match db::accounts::by_email(&state.pool, &email).await {
        Ok(account) => account,
        Err(err) => return internal(err),
    };
    let ok = password::verify(given, account.as_ref().map(|a| a.password_hash.clone())).await;
    let _ = rate_limit::record(&state.pool, "sign_in", Some(&email), ip, ok).await;
    match account {
        Some(account) if ok => {
            if let Err(err) = session::sign_in(&session, account.id, account.session_epoch).await {
                return internal(err);
            }
            db::audit::record(&state.pool, Some(account.id), None, "sign_in", "", Some(ip)).await;
            see_other(&next)
        }
        account => {
            if let Some(account) = account {
                db::audit::record(
                    &state.pool,
                    Some(account.id),
                    None,
                    "sign_in.failed",
                    "",
                    Some(ip),
                )
                .await;
            }
            FlashBuilder::error("The e-mail address or the password is wrong.")
                .keep(&fields, &["email"])
                .redirect(&session, &back)
                .await
        }
    }
}

pub async fn sign_out(
    Extension(session): Extension<Session>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    if let Some(Extension(account)) = account {
        if let Err(refused) = check_token(&account, &fields) {
            return refused;
        }
    }
    session::sign_out(&session).await;
    see_other("/")
}

pub async fn change_password(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let account = match signed_in(account.map(|e| e.0), "/account") {
        Ok(account) => account,
        Err(redirect) => return redirect,
    };
    if let Err(refused) = check_token(&account, &fields) {
        return refused;
    }
    let stored = match db::accounts::by_id(&state.pool, account.id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return see_other("/signin"),
        Err(err) => return internal(err),
    };
    let mut flash = FlashBuilder::error("Your password was not changed.");
    let new_password = fields.get("new_password");
    if let Err(problem) = password::check_new(new_password, &account.email) {
        flash = flash.field("new_password", problem);
    } else if new_password != fields.get("new_password_confirm") {
        flash = flash.field(
            "new_password_confirm",
            "The two new passwords are not the same.",
        );
    }
    let current = fields.get("current_password");
    if current.chars().count() > password::MAX_LENGTH
        || !password::verify(current, Some(stored.password_hash)).await
    {
        flash = flash.field("current_password", "This is not your current password.");
    }
    if flash.has_errors() {
        return flash.redirect(&session, "/account").await;
    }
    let hash = password::hash(new_password).await;
    let epoch = match db::accounts::change_password(&state.pool, account.id, &hash).await {
        Ok(epoch) => epoch,
        Err(err) => return internal(err),
    };
    // This session continues under a new id; every other one ends.
    if let Err(err) = session::sign_in(&session, account.id, epoch).await {
        return internal(err);
    }
    db::audit::record(
        &state.pool,
        Some(account.id),
        None,
        "password.changed",
        "",
        Some(ip),
    )
    .await;
    FlashBuilder::success("Your password was changed. Other devices were signed out.")
        .redirect(&session, "/account")
        .await
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let account = match signed_in(account.map(|e| e.0), "/account") {
        Ok(account) => account,
        Err(redirect) => return redirect,
    };
    if let Err(refused) = check_token(&account, &fields) {
        return refused;
    }
    let stored = match db::accounts::by_id(&state.pool, account.id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return see_other("/"),
        Err(err) => return internal(err),
    };
    let given = fields.get("delete_password");
    if given.chars().count() > password::MAX_LENGTH
        || !password::verify(given, Some(stored.password_hash)).await
    {
        return FlashBuilder::error("Your account was not deleted.")
            .field("delete_password", "This is not your password.")
            .redirect(&session, "/account")
            .await;
    }
    match db::accounts::delete(&state.pool, account.id).await {
        // The log keeps only that an account was deleted, not whose.
        Ok(Ok(())) => db::audit::record(&state.pool, None, None, "account.deleted", "", Some(ip)).await,
        Ok(Err(DeleteBlocked::SoleOwner(groups))) => {
            return FlashBuilder::error(format!(
                "You are the only owner of {}. Make another member an owner there first, or delete the group.",
                groups.join(", ")
            ))
            .redirect(&session, "/account")
            .await
        }
        Err(err) => return internal(err),
    }
    session::sign_out(&session).await;
    FlashBuilder::success("Your account and everything only you had here were deleted.")
        .redirect(&session, "/")
        .await
}
