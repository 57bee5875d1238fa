//! The info page: limits, retention, account rules and ports.
//!
//! Facts covered, after upstream's `info.md` (research/chatmail.md §3) plus what a user or
//! mail-program user needs from §1–§2 and §6: the encryption-only rule and its exceptions
//! (§1.3), the send rate, mailbox and message sizes, when messages and accounts are
//! deleted (§1.6), how account names and passwords look (§1.2, §1.8), the ports
//! (§6 "Listening ports", §5 autoconfig) and whom to ask.

use std::fmt::Write as _;

use super::{days, esc, human_size};
use crate::config::{RelayConfig, LARGE_MESSAGE_BYTES};

pub(super) fn body(config: &RelayConfig) -> String {
    let l = &config.limits;
    let domain = config.mail_domain.to_unicode();
    let d = esc(&domain);
    let mut out = String::new();
    let _ = writeln!(out, "<h1>About {d}</h1>");
    let _ = writeln!(
        out,
        "<p>{d} gives out e-mail addresses made for chatting with \
         <a href=\"https://delta.chat\">Delta Chat</a>. An address here is an ordinary e-mail \
         address: it works with other chatmail relays and with any e-mail server, as long as \
         messages are end-to-end encrypted. The relay is built to need little maintenance and \
         few resources.</p>"
    );

    out.push_str("<h2>Encrypted messages only</h2>\n");
    let _ = writeln!(
        out,
        "<p>{d} passes on only end-to-end encrypted messages, outgoing and incoming alike. \
         The exceptions are the first message of a contact invitation made with a \
         <a href=\"https://delta.chat/en/help#howtoe2ee\">QR invite code</a>, which is how \
         encryption gets set up, and notices from other mail servers that a message could \
         not be delivered.</p>"
    );

    out.push_str("<h2>Limits</h2>\n<ul>\n");
    let _ = writeln!(
        out,
        "<li>You can send up to {} messages per minute (with short bursts of up to {}).</li>",
        l.max_user_send_per_minute, l.max_user_send_burst_size
    );
    let _ = writeln!(
        out,
        "<li>Each profile can keep up to {} of messages on the relay. When it gets full, the \
         oldest messages are removed to make room.</li>",
        human_size(l.max_mailbox_size_bytes())
    );
    let _ = writeln!(
        out,
        "<li>A single message, with attachments, can be up to {}.</li>",
        human_size(u64::from(l.max_message_size_bytes))
    );
    out.push_str("</ul>\n");

    out.push_str("<h2>How long things are kept</h2>\n<ul>\n");
    let _ = writeln!(
        out,
        "<li>Every message is deleted from the relay {} after it arrived, or earlier if the \
         profile's storage runs full. Your devices keep their own copies.</li>",
        days(l.delete_mails_after_days)
    );
    let _ = writeln!(
        out,
        "<li>Messages larger than {} kB that have already been read are deleted after {}.</li>",
        LARGE_MESSAGE_BYTES / 1000,
        days(l.delete_large_after_days)
    );
    let _ = writeln!(
        out,
        "<li id=\"account-deletion\">An account that nobody has logged in to for {} is deleted \
         together with all its data. So if you remove your {d} profile from Delta Chat, its \
         account disappears from the relay {} later. If you use the profile on several \
         devices, remove it from each of them.</li>",
        days(l.delete_inactive_users_after_days),
        days(l.delete_inactive_users_after_days)
    );
    out.push_str("</ul>\n");

    out.push_str("<h2>Accounts</h2>\n");
    let names = if l.username_min_length == l.username_max_length {
        format!("exactly {} characters", l.username_min_length)
    } else {
        format!(
            "{} to {} characters",
            l.username_min_length, l.username_max_length
        )
    };
    let _ = writeln!(
        out,
        "<p>Delta Chat creates your address for you. The part before the @ is made of {names} \
         (lowercase letters, digits, dots, hyphens and underscores), and the password has at \
         least {} characters. The account comes into existence the first time Delta Chat \
         logs in with them.{}</p>",
        l.password_min_length,
        if config.registration.open {
            ""
        } else {
            " New accounts are not accepted at the moment."
        }
    );

    out.push_str("<h2>Ports</h2>\n");
    out.push_str(
        "<p>Delta Chat sets all of this up by itself. For other mail programs, the server \
         name is the domain itself:</p>\n",
    );
    let _ = writeln!(
        out,
        "<table>\n<tr><th>Server</th><th>Port</th><th>Security</th></tr>"
    );
    for (what, port, how) in [
        ("Reading mail (IMAP)", "993", "TLS"),
        ("Reading mail (IMAP)", "143", "STARTTLS"),
        ("Sending mail (SMTP)", "465", "TLS"),
        ("Sending mail (SMTP)", "587", "STARTTLS"),
        (
            "Reading and sending",
            "443",
            "TLS (for networks that block the others)",
        ),
    ] {
        let _ = writeln!(out, "<tr><td>{what}</td><td>{port}</td><td>{how}</td></tr>");
    }
    out.push_str("</table>\n");
    out.push_str(
        "<p>Other mail servers deliver to the relay on port 25, and only over encrypted \
         connections.</p>\n",
    );

    out.push_str("<h2>Questions</h2>\n");
    match &config.privacy.contact_mail {
        Some(mail) => {
            let m = esc(&mail.to_unicode()).into_owned();
            let _ = writeln!(
                out,
                "<p>For questions about your account, including deleting it, write from that \
                 account to <a href=\"mailto:{}\">{m}</a>.</p>",
                esc(&mail.to_string())
            );
        }
        None => {
            out.push_str(
                "<p>The operator of this relay has not published a contact address.</p>\n",
            );
        }
    }
    out.push_str(
        "<p>Who runs this relay, and what data it keeps, is on the \
         <a href=\"privacy.html\">privacy page</a>.</p>\n",
    );
    out
}
