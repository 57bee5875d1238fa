//! The relay's own web pages: home (with the "get a profile" button and QR code), info and
//! privacy.
//!
//! Upstream builds these from Markdown templates at deploy time (research/chatmail.md §3).
//! Here they are plain Rust functions of a [`RelayConfig`], so the device can serve them
//! and the portal can preview them from the same code. The wording is our own; the facts
//! covered are upstream's. Every value from the config goes through `esc`, so operator
//! input such as `<script>` in a privacy field shows up as text.

mod home;
mod info;
mod layout;
mod privacy;

use std::borrow::Cow;

use crate::config::RelayConfig;

/// One of the relay's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Page {
    /// `index.html`: what the relay is, and how to get a profile.
    Home,
    /// `info.html`: limits, ports and retention.
    Info,
    /// `privacy.html`: who is responsible and what is stored for how long.
    Privacy,
}

impl Page {
    /// All pages, in menu order.
    pub const ALL: [Page; 3] = [Page::Home, Page::Info, Page::Privacy];

    /// File name under the web root (upstream's names).
    pub fn file_name(self) -> &'static str {
        match self {
            Page::Home => "index.html",
            Page::Info => "info.html",
            Page::Privacy => "privacy.html",
        }
    }

    /// The name used in the title and menu (upstream: `<domain> <pagename>`).
    pub fn title(self) -> &'static str {
        match self {
            Page::Home => "home",
            Page::Info => "info",
            Page::Privacy => "privacy",
        }
    }

    /// The complete HTML document for `config`.
    pub fn render(self, config: &RelayConfig) -> String {
        let body = match self {
            Page::Home => home::body(config),
            Page::Info => info::body(config),
            Page::Privacy => privacy::body(config),
        };
        layout::document(config, self, &body)
    }
}

/// The home page.
pub fn render_home(config: &RelayConfig) -> String {
    Page::Home.render(config)
}

/// The info page.
pub fn render_info(config: &RelayConfig) -> String {
    Page::Info.render(config)
}

/// The privacy page.
pub fn render_privacy(config: &RelayConfig) -> String {
    Page::Privacy.render(config)
}

/// `robots.txt`: the relay's pages are not for search engines (as upstream's,
/// research/chatmail.md §3).
pub const ROBOTS_TXT: &str = "User-agent: *\nDisallow: /\n";

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(text: &str) -> Cow<'_, str> {
    html_escape::encode_quoted_attribute(text)
}

/// A size for people: `500 MB`, `30 MB`, `1.5 MB`, `200 KB` (binary units, as Dovecot's
/// and upstream's `M`).
pub(crate) fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MB", bytes as f64 / MIB as f64)
    } else {
        format!("{} KB", bytes.div_ceil(KIB))
    }
}

/// `1 day` / `20 days`.
pub(crate) fn days(n: u32) -> String {
    if n == 1 {
        "1 day".to_string()
    } else {
        format!("{n} days")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(500 * 1024 * 1024), "500 MB");
        assert_eq!(human_size(31_457_280), "30 MB");
        assert_eq!(human_size(1_572_864), "1.5 MB");
        assert_eq!(human_size(200_000), "196 KB");
        assert_eq!(human_size(2 * 1024 * 1024 * 1024), "2 GB");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;y&#x27;"
        );
    }
}
