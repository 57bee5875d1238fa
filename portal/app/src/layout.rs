//! The frame every page shares: skip link, header with the product name and the account
//! links, main area, footer.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::{
    components::{provide_page_context, WithContext},
    PRODUCT_NAME,
};

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    provide_page_context();
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true">"✉"</span>
                {PRODUCT_NAME}
            </A>
            <nav aria-label="Main">
                <WithContext children=|context| match context.viewer {
                    Some(viewer) => view! {
                        <A href="/groups">"Your groups"</A>
                        {viewer.is_operator.then(|| view! { <A href="/operator">"Operator"</A> })}
                        <A href="/account" attr:title=viewer.email.clone()>"Account"</A>
                    }
                        .into_any(),
                    None => view! {
                        <A href="/start">"Get started"</A>
                        <A href="/signin">"Sign in"</A>
                    }
                        .into_any(),
                } />
            </nav>
        </header>
        <main id="main" tabindex="-1">{children()}</main>
        <footer class="site-footer">
            <p>
                "Your relay runs on your own device. This portal only helps you set it up and, if you want, tells it about updates."
            </p>
        </footer>
    }
}
