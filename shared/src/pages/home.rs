//! The home page: what the relay is, and the button and QR code that create a profile.
//!
//! Facts covered, after upstream's `index.md` (research/chatmail.md §3): the "Get a
//! `<domain>` chat profile" button and the QR code, both `DCACCOUNT:https://<domain>/new`;
//! the alternative of scanning the code from another device; the next steps (choose a
//! name and avatar, add contacts with QR invite codes); and a pointer to other relays
//! when registration is closed.

use std::fmt::Write as _;

use super::{days, esc};
use crate::config::RelayConfig;
use crate::qr;

pub(super) fn body(config: &RelayConfig) -> String {
    let domain = config.mail_domain.to_unicode();
    let d = esc(&domain);
    let link = esc(&qr::account_payload(&config.mail_domain)).into_owned();
    let mut out = String::new();
    let _ = writeln!(out, "<h1>Welcome to {d}</h1>");
    let _ = writeln!(
        out,
        "<p>{d} is a <em>chatmail relay</em>: a small e-mail server made for the \
         <a href=\"https://delta.chat\">Delta Chat</a> messenger. It passes on only end-to-end \
         encrypted messages, asks for no phone number or other personal data, and deletes \
         every message from the server after {}. See the <a href=\"privacy.html\">privacy \
         page</a> for details.</p>",
        days(config.limits.delete_mails_after_days)
    );
    if config.registration.open {
        let _ = writeln!(
            out,
            "<p><a class=\"cta\" href=\"{link}\">Get a {d} chat profile</a></p>"
        );
        out.push_str(
            "<p>Tap the button on the phone or computer where Delta Chat is installed. \
             If you are reading this on another device, <strong>scan this QR code</strong> \
             with Delta Chat instead:</p>\n",
        );
        let _ = writeln!(
            out,
            "<a href=\"{link}\">{}</a>",
            qr::account_svg(&config.mail_domain)
        );
        out.push_str(
            "<p>No Delta Chat yet? Get it for your phone or computer at \
             <a href=\"https://get.delta.chat\">get.delta.chat</a>.</p>\n",
        );
        out.push_str("<h2>Then</h2>\n<ol>\n");
        out.push_str("<li><strong>Choose</strong> a name and, if you like, a picture.</li>\n");
        out.push_str(
            "<li><strong>Start chatting</strong>: add contacts by showing or scanning \
             <a href=\"https://delta.chat/en/help#howtoe2ee\">QR invite codes</a>, which \
             also sets up the encryption.</li>\n",
        );
        out.push_str("</ol>\n");
    } else {
        out.push_str(
            "<p><strong>This relay does not accept new profiles at the moment.</strong></p>\n",
        );
        out.push_str(
            "<p><a class=\"cta\" href=\"https://delta.chat/en/chatmail\">Find a relay that \
             does</a></p>\n",
        );
    }
    let _ = writeln!(
        out,
        "<p>More about limits and how the relay works: <a href=\"info.html\">info</a>.</p>"
    );
    out
}
