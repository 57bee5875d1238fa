//! Groups: creating, inviting, joining, roles, removing members, deleting.

use axum::{
    extract::{Path, State},
    response::Response,
    Extension,
};
use tower_sessions::Session;
use uuid::Uuid;

use super::{check_token, internal, see_other, setup, signed_in, FlashBuilder, FormFields};
use crate::{
    auth::{ClientIp, CurrentAccount},
    db::{
        self,
        groups::{CreateRefused, MemberChangeRefused},
        invites::{Accepted, LinkState},
    },
    AppState,
};

/// A group the acting account belongs to, or a redirect explaining why not.
pub(super) struct GroupAccess {
    pub account: CurrentAccount,
    pub group: Uuid,
    pub role: String,
    pub disabled_reason: Option<String>,
}

/// Signed in, valid token, and a member of the group in the path. Anything else ends here,
/// and someone outside the group learns nothing about it.
pub(super) async fn access(
    state: &AppState,
    account: Option<Extension<CurrentAccount>>,
    group: &str,
    fields: &FormFields,
    back_to: &str,
) -> Result<GroupAccess, Response> {
    let account = signed_in(account.map(|e| e.0), back_to)?;
    check_token(&account, fields)?;
    let not_found = || super::problem(axum::http::StatusCode::NOT_FOUND, "There is no such group.");
    let group: Uuid = group.parse().map_err(|_| not_found())?;
    match db::groups::membership(&state.pool, account.id, group).await {
        Ok(Some(membership)) => Ok(GroupAccess {
            account,
            group,
            role: membership.role,
            disabled_reason: membership.disabled_reason,
        }),
        Ok(None) => Err(not_found()),
        Err(err) => Err(internal(err)),
    }
}

/// Refuses changes to a group the operator disabled.
pub(super) async fn refuse_if_disabled(
    access: &GroupAccess,
    session: &Session,
    back: &str,
) -> Result<(), Response> {
    match &access.disabled_reason {
        Some(reason) => Err(FlashBuilder::error(format!(
            "The portal's operator disabled this group, so nothing can be changed: {reason}"
        ))
        .redirect(session, back)
        .await),
        None => Ok(()),
    }
}

/// A group name as people type it: trimmed, 1–80 characters, no control characters.
fn parse_name(text: &str) -> Result<String, &'static str> {
    let name = text.trim();
    if name.is_empty() {
        return Err("Give your group a name, for example \u{201c}Family\u{201d} or \u{201c}Chess club\u{201d}.");
    }
    if name.chars().count() > 80 {
        return Err("Use at most 80 characters.");
    }
    if name.chars().any(char::is_control) {
        return Err("Use letters, digits, spaces and punctuation only.");
    }
    Ok(name.to_string())
}

pub async fn create(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let account = match signed_in(account.map(|e| e.0), "/groups") {
        Ok(account) => account,
        Err(redirect) => return redirect,
    };
    if let Err(refused) = check_token(&account, &fields) {
        return refused;
    }
    // The form names the relay (and so the group) at once; a name alone makes only the group,
    // as before, and its relay is named in the wizard's first step.
    let names_relay = !fields.trimmed("domain").is_empty()
        || !fields.trimmed("label").is_empty()
        || fields.trimmed("name").is_empty() && fields.names().any(|n| n == "domain");
    if !names_relay {
        return create_group_only(&state, &session, &account, ip, &fields).await;
    }
    let refused = |problems: Vec<(&'static str, String)>| {
        let mut flash = FlashBuilder::error(
            "The relay was not created. Please correct the fields marked below.",
        );
        for (field, problem) in problems {
            flash = flash.field(field, problem);
        }
        flash.keep(&fields, NEW_RELAY_FIELDS)
    };
    // Everything is checked before anything is made, so a refusal leaves nothing behind.
    let mut problems = Vec::new();
    let name = match fields.trimmed("name") {
        "" => None,
        text => match parse_name(text) {
            Ok(name) => Some(name),
            Err(problem) => {
                problems.push(("name", problem.to_string()));
                None
            }
        },
    };
    let choice = match setup::choose_domain(&state, Uuid::nil(), &fields).await {
        Ok(Ok(choice)) => Some(choice),
        Ok(Err(problem)) => {
            problems.push(problem);
            None
        }
        Err(err) => return internal(err),
    };
    let addresses = match setup::parse_addresses(&fields) {
        Ok(addresses) => Some(addresses),
        Err(more) => {
            problems.extend(more);
            None
        }
    };
    let (Some((domain, free_zone)), Some((ipv4, ipv6)), true) =
        (choice, addresses, problems.is_empty())
    else {
        return refused(problems).redirect(&session, "/groups").await;
    };
    let name = name.unwrap_or_else(|| domain.to_unicode());
    let group = match created_group(&state, &session, &account, ip, &name).await {
        Ok(group) => group,
        Err(response) => return response,
    };
    let domain_step = format!("/groups/{group}/setup/domain");
    match db::relays::set_domain(&state.pool, group, domain.as_str(), free_zone).await {
        Ok(true) => {}
        Ok(false) => {
            return FlashBuilder::error("Someone took this name a moment ago. Choose another.")
                .redirect(&session, &domain_step)
                .await
        }
        Err(err) => return internal(err),
    }
    match setup::save_prefilled_steps(&state, group, &account.email, ipv4, ipv6).await {
        Ok(Ok(())) => {}
        Ok(Err(flash)) => return flash.redirect(&session, &domain_step).await,
        Err(err) => return internal(err),
    }
    FlashBuilder::success(format!(
        "Relay {} created with chatmail's default settings. Next, connect your DNS.",
        domain.to_unicode()
    ))
    .redirect(&session, &format!("/groups/{group}/setup/dns"))
    .await
}

/// The fields of the new-relay form shown again after a refusal.
const NEW_RELAY_FIELDS: &[&str] = &["name", "kind", "domain", "label", "zone", "ipv4", "ipv6"];

/// A group without a relay name yet: the wizard's first step asks for it.
async fn create_group_only(
    state: &AppState,
    session: &Session,
    account: &CurrentAccount,
    ip: std::net::IpAddr,
    fields: &FormFields,
) -> Response {
    let name = match parse_name(fields.get("name")) {
        Ok(name) => name,
        Err(problem) => {
            return FlashBuilder::error("The group was not created.")
                .field("name", problem)
                .keep(fields, &["name"])
                .redirect(session, "/groups")
                .await
        }
    };
    match created_group(state, session, account, ip, &name).await {
        Ok(group) => {
            FlashBuilder::success(format!(
                "Group \u{201c}{name}\u{201d} created. First, choose a name for its relay."
            ))
            .redirect(session, &format!("/groups/{group}/setup/domain"))
            .await
        }
        Err(response) => response,
    }
}

/// Makes the group (within the per-person limit) and records it.
async fn created_group(
    state: &AppState,
    session: &Session,
    account: &CurrentAccount,
    ip: std::net::IpAddr,
    name: &str,
) -> Result<Uuid, Response> {
    match db::groups::create(&state.pool, account.id, name).await {
        Ok(Ok(group)) => {
            db::audit::record(
                &state.pool,
                Some(account.id),
                Some(group),
                "group.created",
                name,
                Some(ip),
            )
            .await;
            Ok(group)
        }
        Ok(Err(CreateRefused::Limit(limit))) => Err(FlashBuilder::error(format!(
            "You already own {limit} group(s), the most this portal allows per person."
        ))
        .redirect(session, "/groups")
        .await),
        Err(err) => Err(internal(err)),
    }
}

pub async fn invite(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/groups/{group}");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    if let Err(response) = refuse_if_disabled(&access, &session, &back).await {
        return response;
    }
    let token = match db::invites::create(&state.pool, access.group, access.account.id).await {
        Ok(token) => token,
        Err(err) => return internal(err),
    };
    db::audit::record(
        &state.pool,
        Some(access.account.id),
        Some(access.group),
        "invite.created",
        "",
        Some(ip),
    )
    .await;
    let link = format!("{}/invite/{token}", state.settings.base_url);
    FlashBuilder::success(format!(
        "Invite link created. It works once, for {} days. Copy it now: it is shown only this time.",
        db::invites::VALID_DAYS
    ))
    .value("invite_link", link)
    .redirect(&session, &back)
    .await
}

pub async fn revoke_invite(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path((group, invite)): Path<(String, String)>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/groups/{group}");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    let Ok(invite) = invite.parse::<Uuid>() else {
        return FlashBuilder::error("There is no such invite.")
            .redirect(&session, &back)
            .await;
    };
    match db::invites::revoke(&state.pool, access.group, invite).await {
        Ok(true) => {
            db::audit::record(
                &state.pool,
                Some(access.account.id),
                Some(access.group),
                "invite.revoked",
                "",
                Some(ip),
            )
            .await;
            FlashBuilder::success("The invite link no longer works.")
                .redirect(&session, &back)
                .await
        }
        Ok(false) => {
            FlashBuilder::error("That invite was already used, revoked, or does not exist.")
                .redirect(&session, &back)
                .await
        }
        Err(err) => internal(err),
    }
}

pub async fn accept_invite(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(token): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/invite/{}", super::urlencode(&token));
    let account = match signed_in(account.map(|e| e.0), &back) {
        Ok(account) => account,
        Err(redirect) => return redirect,
    };
    if let Err(refused) = check_token(&account, &fields) {
        return refused;
    }
    if token.len() > 100 {
        return FlashBuilder::error("This invite link is not valid.")
            .redirect(&session, "/groups")
            .await;
    }
    match db::invites::accept(&state.pool, &token, account.id).await {
        Ok(Accepted::Joined(group)) => {
            db::audit::record(
                &state.pool,
                Some(account.id),
                Some(group),
                "invite.accepted",
                "",
                Some(ip),
            )
            .await;
            FlashBuilder::success("You joined the group.")
                .redirect(&session, &format!("/groups/{group}"))
                .await
        }
        Ok(Accepted::AlreadyMember(group)) => see_other(&format!("/groups/{group}")),
        Ok(Accepted::Refused(state_)) => {
            let why = match state_ {
                LinkState::Used => {
                    "This invite link was used already; each link works once. Ask for a new one."
                }
                LinkState::Expired => "This invite link has expired. Ask for a new one.",
                LinkState::Revoked => "This invite link was withdrawn. Ask for a new one.",
                LinkState::Valid | LinkState::Unknown => "This invite link is not valid.",
            };
            FlashBuilder::error(why).redirect(&session, &back).await
        }
        Err(err) => internal(err),
    }
}

fn member_change_message(refused: MemberChangeRefused) -> &'static str {
    match refused {
        MemberChangeRefused::NotAllowed => "Only an owner of the group can do that.",
        MemberChangeRefused::NoSuchMember => "That person is not a member of this group.",
        MemberChangeRefused::LastOwner => {
            "A group needs at least one owner. Make someone else an owner first, or delete the group."
        }
    }
}

pub async fn remove_member(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path((group, member)): Path<(String, String)>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/groups/{group}");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    let Ok(member) = member.parse::<Uuid>() else {
        return FlashBuilder::error(member_change_message(MemberChangeRefused::NoSuchMember))
            .redirect(&session, &back)
            .await;
    };
    let leaving = member == access.account.id;
    match db::groups::remove_member(&state.pool, access.account.id, access.group, member).await {
        Ok(Ok(())) => {
            let action = if leaving {
                "member.left"
            } else {
                "member.removed"
            };
            db::audit::record(
                &state.pool,
                Some(access.account.id),
                Some(access.group),
                action,
                "",
                Some(ip),
            )
            .await;
            if leaving {
                FlashBuilder::success("You left the group.")
                    .redirect(&session, "/groups")
                    .await
            } else {
                FlashBuilder::success("The member was removed.")
                    .redirect(&session, &back)
                    .await
            }
        }
        Ok(Err(refused)) => {
            FlashBuilder::error(member_change_message(refused))
                .redirect(&session, &back)
                .await
        }
        Err(err) => internal(err),
    }
}

pub async fn set_role(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path((group, member)): Path<(String, String)>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/groups/{group}");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    let role = fields.get("role");
    let (Ok(member), true) = (member.parse::<Uuid>(), matches!(role, "owner" | "admin")) else {
        return FlashBuilder::error("That change is not possible.")
            .redirect(&session, &back)
            .await;
    };
    match db::groups::set_role(&state.pool, access.account.id, access.group, member, role).await {
        Ok(Ok(())) => {
            db::audit::record(
                &state.pool,
                Some(access.account.id),
                Some(access.group),
                "member.role",
                role,
                Some(ip),
            )
            .await;
            FlashBuilder::success("The role was changed.")
                .redirect(&session, &back)
                .await
        }
        Ok(Err(refused)) => {
            FlashBuilder::error(member_change_message(refused))
                .redirect(&session, &back)
                .await
        }
        Err(err) => internal(err),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/groups/{group}");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    if access.role != "owner" {
        return FlashBuilder::error("Only an owner can delete the group.")
            .redirect(&session, &back)
            .await;
    }
    let name = match db::groups::membership(&state.pool, access.account.id, access.group).await {
        Ok(Some(membership)) => membership.name,
        Ok(None) => return see_other("/groups"),
        Err(err) => return internal(err),
    };
    if fields.trimmed("confirm_name") != name {
        return FlashBuilder::error("The group was not deleted.")
            .field("confirm_name", "Type the group's name exactly to confirm.")
            .redirect(&session, &back)
            .await;
    }
    match db::groups::delete(&state.pool, access.account.id, access.group).await {
        Ok(true) => {
            db::audit::record(
                &state.pool,
                Some(access.account.id),
                None,
                "group.deleted",
                &name,
                Some(ip),
            )
            .await;
            FlashBuilder::success(format!("The group \u{201c}{name}\u{201d} was deleted."))
                .redirect(&session, "/groups")
                .await
        }
        Ok(false) => {
            FlashBuilder::error("Only an owner can delete the group.")
                .redirect(&session, &back)
                .await
        }
        Err(err) => internal(err),
    }
}
