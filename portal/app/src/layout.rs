//! The frame every page shares: skip link, header with the product name, main area, footer.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::PRODUCT_NAME;

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true">"✉"</span>
                {PRODUCT_NAME}
            </A>
            <nav aria-label="Main">
                <A href="/start">"Get started"</A>
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
