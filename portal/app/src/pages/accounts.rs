//! Sign-up, sign-in and the account page (password change, deletion).

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

use crate::{
    api::Flash,
    components::{CsrfField, Field, FlashMessage, WithContext},
};

/// The `next` query parameter, passed on through the form.
fn next_target() -> Signal<String> {
    let query = use_query_map();
    Signal::derive(move || query.read().get("next").unwrap_or_default())
}

#[component]
pub fn SignUp() -> impl IntoView {
    let next = next_target();
    view! {
        <PageTitle text="Create an account" />
        <section class="narrow">
            <h1>"Create an account"</h1>
            <p>"Your account lets you set up a relay with your group and come back to it later."</p>
            <WithContext children=move |context| view! { <SignUpForm next=next.get_untracked() flash=context.flash /> } />
        </section>
    }
}

/// The sign-up form itself, on its own page and on the start page. `next` is where the
/// new account goes once it exists.
#[component]
pub fn SignUpForm(next: String, flash: Flash) -> impl IntoView {
    let sign_in = format!("/signin?next={next}");
    view! {
        <FlashMessage flash=flash.clone() />
        <form method="post" action="/signup" class="stack" novalidate>
            <input type="hidden" name="next" value=next />
            <Field name="email" label="E-mail address" kind="email" required=true autocomplete="email" maxlength=254 flash=flash.clone() />
            <Field
                name="password"
                label="Password"
                kind="password"
                required=true
                autocomplete="new-password"
                hint="At least 10 characters. A few random words make a good password."
                flash=flash.clone()
            />
            <button type="submit" class="button button-primary">"Create account"</button>
        </form>
        <p>"Have an account already? " <A href=sign_in>"Sign in"</A></p>
    }
}

#[component]
pub fn SignIn() -> impl IntoView {
    let next = next_target();
    view! {
        <PageTitle text="Sign in" />
        <section class="narrow">
            <h1>"Sign in"</h1>
            <WithContext children=move |context| {
                let flash = context.flash;
                view! {
                    <FlashMessage flash=flash.clone() />
                    <form method="post" action="/signin" class="stack" novalidate>
                        <input type="hidden" name="next" value=next.get_untracked() />
                        <Field name="email" label="E-mail address" kind="email" required=true autocomplete="username" maxlength=254 flash=flash.clone() />
                        <Field name="password" label="Password" kind="password" required=true autocomplete="current-password" flash=flash.clone() />
                        <button type="submit" class="button button-primary">"Sign in"</button>
                    </form>
                    <p>"New here? " <A href=move || format!("/signup?next={}", next.get())>"Create an account"</A></p>
                }
            } />
        </section>
    }
}

#[component]
pub fn Account() -> impl IntoView {
    view! {
        <PageTitle text="Your account" />
        <section class="narrow">
            <h1>"Your account"</h1>
            <WithContext children=move |context| {
                let flash = context.flash;
                let Some(viewer) = context.viewer else {
                    return view! { <p><A href="/signin?next=/account">"Sign in"</A> " to see your account."</p> }.into_any();
                };
                view! {
                    <FlashMessage flash=flash.clone() />
                    <p>"Signed in as " <strong>{viewer.email.clone()}</strong> "."</p>

                    <h2>"Change your password"</h2>
                    <form method="post" action="/account/password" class="stack" novalidate>
                        <CsrfField token=viewer.csrf.clone() />
                        <Field name="current_password" label="Current password" kind="password" required=true autocomplete="current-password" flash=flash.clone() />
                        <Field name="new_password" label="New password" kind="password" required=true autocomplete="new-password" hint="At least 10 characters. Other devices will be signed out." flash=flash.clone() />
                        <Field name="new_password_confirm" label="New password again" kind="password" required=true autocomplete="new-password" flash=flash.clone() />
                        <button type="submit" class="button">"Change password"</button>
                    </form>

                    <h2>"Sign out"</h2>
                    <form method="post" action="/signout">
                        <CsrfField token=viewer.csrf.clone() />
                        <button type="submit" class="button">"Sign out"</button>
                    </form>

                    <h2>"Delete your account"</h2>
                    <p>
                        "This deletes your account, your memberships, and every group in which you are the only member, with its relay settings. It cannot be undone. A relay already running keeps running."
                    </p>
                    <form method="post" action="/account/delete" class="stack danger-zone" novalidate>
                        <CsrfField token=viewer.csrf.clone() />
                        <Field name="delete_password" label="Your password, to confirm" kind="password" required=true autocomplete="current-password" flash=flash.clone() />
                        <button type="submit" class="button button-danger">"Delete my account"</button>
                    </form>
                }
                    .into_any()
            } />
        </section>
    }
}
