//! The browser entry point: hydrates the server-rendered page, then marks the document as
//! hydrated (`<html data-hydrated="true">`) so tests and styles can tell when the
//! interactive controls are live.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(chatmail_portal_app::App);
    if let Some(root) = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| document.document_element())
    {
        let _ = root.set_attribute("data-hydrated", "true");
    }
}
