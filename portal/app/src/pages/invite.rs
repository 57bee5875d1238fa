//! An invite link's landing page: which group, and a button to join.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_params_map};

use crate::{
    api::{load_invite_page, InviteLinkState},
    components::{CsrfField, FlashMessage, LoadError, WithContext},
};

#[component]
pub fn Invite() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let page = Resource::new(token, load_invite_page);
    view! {
        <PageTitle text="Invitation" />
        <section class="narrow">
            <WithContext children=move |context| {
                let flash = context.flash.clone();
                let viewer = context.viewer.clone();
                view! {
                    <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                        {move || {
                            let flash = flash.clone();
                            let viewer = viewer.clone();
                            Suspend::new(async move {
                                let token = token();
                                let here = format!("/invite/{token}");
                                match page.await {
                                    Err(error) => view! { <LoadError error /> }.into_any(),
                                    Ok(invite) => {
                                        let name = invite.group_name.clone().unwrap_or_default();
                                        let body = match (invite.state, viewer) {
                                            (InviteLinkState::Valid, Some(viewer)) => view! {
                                                <h1>{format!("Join \u{201c}{name}\u{201d}")}</h1>
                                                <p>"You were invited to help run this group's chat relay."</p>
                                                <form method="post" action=here.clone()>
                                                    <CsrfField token=viewer.csrf />
                                                    <button type="submit" class="button button-primary">"Join the group"</button>
                                                </form>
                                            }.into_any(),
                                            (InviteLinkState::Valid, None) => view! {
                                                <h1>{format!("Join \u{201c}{name}\u{201d}")}</h1>
                                                <p>"Sign in or create an account to join this group."</p>
                                                <p>
                                                    <A href=format!("/signup?next={here}") attr:class="button button-primary">"Create an account"</A>
                                                    " "
                                                    <A href=format!("/signin?next={here}") attr:class="button">"Sign in"</A>
                                                </p>
                                            }.into_any(),
                                            (InviteLinkState::AlreadyMember, _) => view! {
                                                <h1>{format!("You are in \u{201c}{name}\u{201d}")}</h1>
                                                <p><A href="/groups">"Go to your groups"</A></p>
                                            }.into_any(),
                                            (state, _) => {
                                                let why = match state {
                                                    InviteLinkState::Used => "This invite link was used already: each link works once.",
                                                    InviteLinkState::Expired => "This invite link has expired.",
                                                    InviteLinkState::Revoked => "This invite link was withdrawn.",
                                                    _ => "This invite link is not valid.",
                                                };
                                                view! {
                                                    <h1>"This link does not work"</h1>
                                                    <p>{why}" Ask the person who sent it for a new one."</p>
                                                }.into_any()
                                            }
                                        };
                                        view! { <FlashMessage flash=flash.clone() />{body} }.into_any()
                                    }
                                }
                            })
                        }}
                    </Suspense>
                }
            } />
        </section>
    }
}
