//! The frame around every page: document head, title, menu and stylesheet.
//!
//! Upstream wraps its pages in one layout with the title `<domain> <pagename>` and a menu
//! of home, info and privacy (research/chatmail.md §3); so does this.

use std::fmt::Write as _;

use super::{esc, Page};
use crate::config::RelayConfig;

/// A small stylesheet, inline so that a page is one self-contained file.
const STYLE: &str = "\
:root{color-scheme:light dark;--accent:#1b6ac9}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;line-height:1.55;max-width:42rem;margin:0 auto;padding:1rem 1.25rem 3rem}
nav{display:flex;flex-wrap:wrap;gap:1rem;padding:.5rem 0 1rem;border-bottom:1px solid #8884;margin-bottom:1.5rem}
nav a{text-decoration:none;color:var(--accent)}
nav a[aria-current=page]{font-weight:700;color:inherit}
h1{font-size:1.6rem;line-height:1.25;overflow-wrap:anywhere}
h2{font-size:1.2rem;margin-top:2rem}
a{color:var(--accent)}
.cta{display:inline-block;background:var(--accent);color:#fff;padding:.8rem 1.3rem;border-radius:.5rem;text-decoration:none;font-weight:700;margin:.5rem 0;overflow-wrap:anywhere}
.qr{display:block;width:16rem;max-width:100%;height:auto;margin:1rem 0}
.multiline{white-space:pre-line}
.contact{margin:.5rem 0 1rem 1rem;overflow-wrap:anywhere}
table{border-collapse:collapse}
td,th{text-align:left;padding:.2rem .8rem .2rem 0;vertical-align:top}
footer{margin-top:3rem;font-size:.9rem;opacity:.8}
";

/// The complete document for `page` with `body` (already escaped HTML) as its content.
pub(super) fn document(config: &RelayConfig, page: Page, body: &str) -> String {
    let domain = config.mail_domain.to_unicode();
    let mut out = String::with_capacity(body.len() + 4096);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<meta name=\"robots\" content=\"noindex\">\n");
    let _ = writeln!(out, "<title>{} {}</title>", esc(&domain), page.title());
    let _ = writeln!(out, "<style>\n{STYLE}</style>");
    out.push_str("</head>\n<body>\n<nav>\n");
    for p in Page::ALL {
        let current = if p == page {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<a href=\"{}\"{current}>{}</a>",
            p.file_name(),
            p.title()
        );
    }
    out.push_str("</nav>\n<main>\n");
    out.push_str(body);
    out.push_str("</main>\n<footer>\n");
    let _ = writeln!(
        out,
        "<p>{} is a chatmail relay for the <a href=\"https://delta.chat\">Delta Chat</a> messenger.</p>",
        esc(&domain)
    );
    out.push_str("</footer>\n</body>\n</html>\n");
    out
}
