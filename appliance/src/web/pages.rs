//! The relay's public pages (home with the QR code, info, privacy, robots.txt).
//!
//! The HTML comes from `chatmail-shared` (the portal previews the same pages); the config
//! does not change while the device runs, so each page is rendered once at start-up.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use chatmail_shared::pages::{Page, ROBOTS_TXT};
use chatmail_shared::RelayConfig;

/// The pages, rendered.
#[derive(Debug, Clone)]
pub struct RenderedPages {
    home: String,
    info: String,
    privacy: String,
}

impl RenderedPages {
    /// Renders every page for `config`.
    pub fn new(config: &RelayConfig) -> Self {
        RenderedPages {
            home: Page::Home.render(config),
            info: Page::Info.render(config),
            privacy: Page::Privacy.render(config),
        }
    }

    /// The response for `page`.
    pub fn response(&self, page: Page) -> Response {
        let body = match page {
            Page::Home => &self.home,
            Page::Info => &self.info,
            Page::Privacy => &self.privacy,
        };
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body.clone(),
        )
            .into_response()
    }
}

/// `robots.txt`: no indexing, as upstream.
pub fn robots() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        ROBOTS_TXT,
    )
        .into_response()
}
