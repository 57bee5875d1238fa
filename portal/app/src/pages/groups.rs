//! The list of one's groups, and a group's own page: its relay, members and invites.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_params_map};

use crate::{
    api::{
        load_group_page, load_my_groups, Flash, FreeZone, GroupPage, InviteState, Role, SetupStep,
        Viewer,
    },
    components::{CopyButton, CsrfField, Field, FlashMessage, LoadError, WithContext},
    pages::relay_fields::{AddressFields, DomainChoice},
};

fn progress_text(completed: u8) -> String {
    match SetupStep::ALL.get(completed as usize) {
        Some(next) if completed == 0 => {
            format!("Not started: next is \u{201c}{}\u{201d}", next.title())
        }
        Some(next) => format!(
            "Step {completed} of 7 done: next is \u{201c}{}\u{201d}",
            next.title()
        ),
        None => "Set up".to_string(),
    }
}

fn next_step_href(group_id: &str, completed: u8) -> String {
    let step = SetupStep::ALL
        .get(completed as usize)
        .copied()
        .unwrap_or(SetupStep::Status);
    format!("/groups/{group_id}/setup/{}", step.slug())
}

#[component]
pub fn Groups() -> impl IntoView {
    let groups = Resource::new(|| (), |_| load_my_groups());
    view! {
        <PageTitle text="Your groups" />
        <h1>"Your groups"</h1>
        <WithContext children=move |context| {
            let flash = context.flash.clone();
            let viewer = context.viewer.clone();
            view! {
                <FlashMessage flash=flash.clone() />
                <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                    {move || {
                        let flash = flash.clone();
                        let viewer = viewer.clone();
                        Suspend::new(async move {
                            match groups.await {
                                Err(error) => view! { <LoadError error /> }.into_any(),
                                Ok(mine) => {
                                    let empty = mine.groups.is_empty();
                                    view! {
                                        {if empty {
                                            view! { <p>"You are not in a group yet. Create one for the people you want to chat with, or open an invite link someone sent you."</p> }.into_any()
                                        } else {
                                            view! {
                                                <ul class="cards" id="group-list">
                                                    {mine.groups.into_iter().map(|group| {
                                                        let href = format!("/groups/{}", group.id);
                                                        view! {
                                                            <li class="card">
                                                                <h2><A href=href>{group.name.clone()}</A></h2>
                                                                <p>{group.mail_domain.clone().unwrap_or_else(|| "No name chosen yet".into())}</p>
                                                                <p class="muted">{progress_text(group.completed_step)}" · "{group.role.label()}</p>
                                                                {group.disabled.then(|| view! { <p class="badge badge-warning">"Disabled by the operator"</p> })}
                                                                {group.broken.then(|| view! { <p class="badge badge-warning" data-relay-broken="true">"Relay not working: see its status"</p> })}
                                                            </li>
                                                        }
                                                    }).collect_view()}
                                                </ul>
                                            }.into_any()
                                        }}
                                        {viewer.map(|viewer| view! { <CreateGroup viewer flash=flash.clone() limit=mine.limit free_zones=mine.free_zones.clone() visitor_ip=mine.visitor_ip.clone() /> })}
                                    }.into_any()
                                }
                            }
                        })
                    }}
                </Suspense>
            }
        } />
    }
}

/// Starts a group with its relay in one go: the relay's name and address, everything else at
/// chatmail's defaults (changeable in the wizard). A group name alone still works: the
/// wizard then asks for the relay's name first.
#[component]
fn CreateGroup(
    viewer: Viewer,
    flash: Flash,
    limit: u32,
    free_zones: Vec<FreeZone>,
    visitor_ip: Option<String>,
) -> impl IntoView {
    view! {
        <h2>"Start a new relay"</h2>
        <p>"Your relay gets its own group: the people you invite set it up and run it with you."</p>
        <form method="post" action="/groups" class="stack" novalidate id="new-relay">
            <CsrfField token=viewer.csrf />
            <DomainChoice free_zones own_domain=None free_label=None free_zone_id=None flash=flash.clone() />
            <AddressFields ipv4=None ipv6=None visitor_ip flash=flash.clone() />
            <Field name="name" label="Group name (optional)" maxlength=80 hint="Only members see it. Without one, the group is called after its relay." flash />
            <button type="submit" class="button button-primary">"Create relay"</button>
            <p class="hint">{format!("You can own up to {limit} group(s) on this portal. The relay starts with chatmail's default settings on a Raspberry Pi; the setup steps let you change both.")}</p>
        </form>
    }
}

#[component]
pub fn Group() -> impl IntoView {
    let params = use_params_map();
    let group_id = move || params.read().get("id").unwrap_or_default();
    let page = Resource::new(group_id, load_group_page);
    view! {
        <WithContext children=move |context| {
            let flash = context.flash.clone();
            let viewer = context.viewer.clone();
            view! {
                <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                    {move || {
                        let flash = flash.clone();
                        let viewer = viewer.clone();
                        Suspend::new(async move {
                            match (page.await, viewer) {
                                (Ok(group), Some(viewer)) => view! { <GroupView group viewer flash /> }.into_any(),
                                (Err(error), _) => view! { <LoadError error /> }.into_any(),
                                (Ok(_), None) => view! { <LoadError error=crate::api::AppError::NotSignedIn /> }.into_any(),
                            }
                        })
                    }}
                </Suspense>
            }
        } />
    }
}

#[component]
fn GroupView(group: GroupPage, viewer: Viewer, flash: crate::api::Flash) -> impl IntoView {
    let csrf = viewer.csrf.clone();
    let owner = group.my_role == Role::Owner;
    let invite_link = flash.value_of("invite_link");
    let id = group.id.clone();
    view! {
        <PageTitle text=group.name.clone() />
        <p class="breadcrumb"><A href="/groups">"Your groups"</A></p>
        <h1>{group.name.clone()}</h1>
        <FlashMessage flash=flash.clone() />
        {group.disabled_reason.clone().map(|reason| view! {
            <div class="flash flash-error" role="alert"><p>"The portal's operator disabled this group: "{reason}</p></div>
        })}

        <section aria-labelledby="relay-heading">
            <h2 id="relay-heading">"Relay"</h2>
            <p>{group.mail_domain.clone().unwrap_or_else(|| "No name chosen yet.".into())}</p>
            <p class="muted">{progress_text(group.completed_step)}</p>
            <A href=next_step_href(&id, group.completed_step) attr:class="button button-primary">
                {if group.completed_step == 0 { "Start the setup" } else { "Continue the setup" }}
            </A>
        </section>

        <section aria-labelledby="members-heading">
            <h2 id="members-heading">"Members"</h2>
            <table class="table">
                <thead><tr><th scope="col">"E-mail"</th><th scope="col">"Role"</th><th scope="col">"Joined"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                <tbody>
                    {group.members.iter().map(|member| {
                        let base = format!("/groups/{}/members/{}", id, member.account_id);
                        let csrf = csrf.clone();
                        let can_remove = member.is_me || owner || member.role == Role::Admin;
                        view! {
                            <tr>
                                <td>{member.email.clone()}{member.is_me.then_some(" (you)")}</td>
                                <td>{member.role.label()}</td>
                                <td>{member.joined.clone()}</td>
                                <td class="actions">
                                    {(owner && !member.is_me).then(|| {
                                        let (new_role, label) = match member.role {
                                            Role::Owner => ("admin", "Make admin"),
                                            Role::Admin => ("owner", "Make owner"),
                                        };
                                        view! {
                                            <form method="post" action=format!("{base}/role")>
                                                <CsrfField token=csrf.clone() />
                                                <input type="hidden" name="role" value=new_role />
                                                <button type="submit" class="button button-small">{label}</button>
                                            </form>
                                        }
                                    })}
                                    {can_remove.then(|| view! {
                                        <form method="post" action=format!("{base}/remove")>
                                            <CsrfField token=csrf.clone() />
                                            <button type="submit" class="button button-small">{if member.is_me { "Leave group" } else { "Remove" }}</button>
                                        </form>
                                    })}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            <p class="hint">"Owners manage members and can delete the group; admins can set up the relay and invite people."</p>
        </section>

        <section aria-labelledby="invites-heading">
            <h2 id="invites-heading">"Invite someone"</h2>
            {invite_link.map(|link| view! {
                <div class="invite-link">
                    <label for="new-invite-link">"New invite link"</label>
                    <input id="new-invite-link" type="text" readonly value=link.clone() />
                    <CopyButton text=link />
                </div>
            })}
            <form method="post" action=format!("/groups/{id}/invites")>
                <CsrfField token=csrf.clone() />
                <button type="submit" class="button">"Create an invite link"</button>
            </form>
            {(!group.invites.is_empty()).then(|| view! {
                <table class="table">
                    <thead><tr><th scope="col">"Created"</th><th scope="col">"Expires"</th><th scope="col">"State"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                    <tbody>
                        {group.invites.iter().map(|invite| {
                            let state = match invite.state {
                                InviteState::Open => "Waiting",
                                InviteState::Used => "Used",
                                InviteState::Expired => "Expired",
                                InviteState::Revoked => "Withdrawn",
                            };
                            let csrf = csrf.clone();
                            view! {
                                <tr>
                                    <td>{invite.created.clone()}</td>
                                    <td>{invite.expires.clone()}</td>
                                    <td>{state}</td>
                                    <td>{(invite.state == InviteState::Open).then(|| view! {
                                        <form method="post" action=format!("/groups/{}/invites/{}/revoke", id, invite.id)>
                                            <CsrfField token=csrf />
                                            <button type="submit" class="button button-small">"Withdraw"</button>
                                        </form>
                                    })}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </section>

        {owner.then(|| view! {
            <section aria-labelledby="delete-heading" class="danger-zone">
                <h2 id="delete-heading">"Delete this group"</h2>
                <p>"Deleting removes the group, its members' access and its relay settings here. A relay already running keeps running on its device."</p>
                <form method="post" action=format!("/groups/{id}/delete") class="stack" novalidate>
                    <CsrfField token=csrf.clone() />
                    <Field name="confirm_name" label="Type the group's name to confirm" required=true flash=flash.clone() />
                    <button type="submit" class="button button-danger">"Delete group"</button>
                </form>
            </section>
        })}
    }
}
