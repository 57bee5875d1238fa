//! The page for any address the portal does not know. Answers with HTTP status 404.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <PageTitle text="Page not found" />
        <section class="not-found">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. It may have moved, or the link may have a typo."</p>
            <p>
                <A href="/" attr:class="button">"Go to the start page"</A>
            </p>
        </section>
    }
}
