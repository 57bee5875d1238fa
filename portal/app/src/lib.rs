//! The portal's user interface: the HTML shell, the router and every page.
//!
//! This crate holds no I/O. The server renders it (feature `ssr`) and the browser bundle
//! hydrates it (feature `hydrate`); anything that touches the database or the network lives
//! in the server crate and reaches these components through context or server functions.

// Leptos view trees are deeply nested types; the larger pages need more room.
#![recursion_limit = "256"]

pub mod api;
pub mod bundle;
mod components;
mod layout;
mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

/// Every page is rendered completely on the server before it is sent, so it works without
/// JavaScript and carries the right HTTP status (404 for someone else's group); hydration
/// then takes over.
const SSR: SsrMode = SsrMode::Async;

pub use bundle::Bundle;
use layout::Layout;

/// The product's name as people see it.
pub const PRODUCT_NAME: &str = "Chatmail Relay Kit";

/// The whole HTML document around the app. The server calls this for every page.
pub fn shell(bundle: Bundle) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="stylesheet" href=bundle.css.clone() />
                <link rel="icon" href=bundle.favicon.clone() type="image/svg+xml" />
                <meta name="color-scheme" content="light dark" />
                <bundle::BundleScripts bundle />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The router and every page; the part of the document that hydrates.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Router>
            <Layout>
                <Routes fallback=pages::NotFound>
                    <Route path=path!("/") view=pages::Landing ssr=SSR />
                    <Route path=path!("/start") view=pages::Start ssr=SSR />
                    <Route path=path!("/signup") view=pages::SignUp ssr=SSR />
                    <Route path=path!("/signin") view=pages::SignIn ssr=SSR />
                    <Route path=path!("/account") view=pages::Account ssr=SSR />
                    <Route path=path!("/groups") view=pages::Groups ssr=SSR />
                    <Route path=path!("/groups/:id") view=pages::Group ssr=SSR />
                    <Route path=path!("/groups/:id/setup/:step") view=pages::Setup ssr=SSR />
                    <Route path=path!("/invite/:token") view=pages::Invite ssr=SSR />
                    <Route path=path!("/operator") view=pages::Operator ssr=SSR />
                </Routes>
            </Layout>
        </Router>
    }
}
