//! The first step of setting up: what you need before you begin, and the way in.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::components::A;

use crate::{components::WithContext, pages::accounts::SignUpForm};

#[component]
pub fn Start() -> impl IntoView {
    view! {
        <PageTitle text="Get started" />
        <h1>"Before you begin"</h1>
        <p>"Have these ready; the whole setup then takes about half an hour."</p>
        <ul class="checklist">
            <li>"A name for your relay: a domain you control, or a free name from this portal if it offers them."</li>
            <li>"The login to your DNS provider (often the company you bought the domain from)."</li>
            <li>"A Raspberry Pi 4 or 5, or a virtual machine, with the ports named on the home page reachable from the internet."</li>
            <li>"Delta Chat installed on your phone or computer."</li>
        </ul>
        <WithContext children=|context| match context.viewer {
            Some(_) => view! { <A href="/groups" attr:class="button button-primary" attr:id="continue-button">"Go to your groups"</A> }.into_any(),
            // Most visitors come here to begin: the sign-up form is right here.
            None => view! {
                <section class="narrow" id="start-sign-up">
                    <h2>"Create an account"</h2>
                    <SignUpForm next="/groups".to_string() flash=context.flash />
                </section>
            }
                .into_any(),
        } />
    }
}
