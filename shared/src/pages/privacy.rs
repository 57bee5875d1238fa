//! The privacy page: who is responsible, what the relay stores and for how long.
//!
//! Facts covered, after upstream's `privacy.md` (research/chatmail.md §3): no personal
//! data asked for; messages deleted after `delete_mails_after` days; unencrypted mail
//! refused; no IP addresses kept or linked to addresses; the controller's postal address,
//! contact mail, data-protection officer and supervisory authority; what is processed for
//! account set-up, delivery and abuse prevention, with the GDPR legal bases; transfers;
//! the data subject's rights. Retention periods come from the config; push-token handling
//! from research/chatmail.md §1.4. Added here: the optional update check.

use std::fmt::Write as _;

use super::{days, esc};
use crate::config::{FreeText, RelayConfig, LARGE_MESSAGE_BYTES};

pub(super) fn body(config: &RelayConfig) -> String {
    let l = &config.limits;
    let p = &config.privacy;
    let domain = config.mail_domain.to_unicode();
    let d = esc(&domain);
    let keep = days(l.delete_mails_after_days);
    let inactive = days(l.delete_inactive_users_after_days);
    let mut out = String::new();
    let _ = writeln!(out, "<h1>Privacy policy for {d}</h1>");

    out.push_str("<h2>In short</h2>\n");
    let _ = writeln!(
        out,
        "<p>{d} neither asks for nor keeps personal information. It exists to pass end-to-end \
         encrypted messages between the devices of people who use \
         <a href=\"https://delta.chat\">Delta Chat</a>, much like a postal sorting office \
         that only ever sees sealed envelopes. Unlike a classic e-mail provider, {d}:</p>"
    );
    out.push_str("<ul>\n");
    let _ = writeln!(
        out,
        "<li>deletes every message after {keep} at the latest,</li>"
    );
    out.push_str("<li>refuses to send unencrypted messages,</li>\n");
    out.push_str("<li>does not keep Internet (IP) addresses, and</li>\n");
    out.push_str("<li>does not connect IP addresses with e-mail addresses.</li>\n");
    out.push_str("</ul>\n");
    out.push_str(
        "<p>Because so little personal data is processed, a privacy policy may not even be \
         required. The details below are for anyone who wants to check.</p>\n",
    );

    out.push_str("<h2>1. Who is responsible</h2>\n");
    contacts(&mut out, config);

    out.push_str("<h2>2. What the relay processes, and for how long</h2>\n<ul>\n");
    let _ = writeln!(
        out,
        "<li><strong>Your address.</strong> Delta Chat makes up a random address for you; no \
         phone number, other e-mail address or name is needed. The address exists as long \
         as the account does. An account nobody has logged in to for {inactive} is deleted \
         with everything in it.</li>"
    );
    out.push_str(
        "<li><strong>Your password</strong> is stored only in scrambled (hashed) form, and \
         only to check logins.</li>\n",
    );
    out.push_str(
        "<li><strong>The day of your last login</strong> (the day only, not the time) is \
         kept to know when an account is no longer used.</li>\n",
    );
    let _ = writeln!(
        out,
        "<li><strong>Messages</strong> are stored until your devices have fetched them or \
         you delete them, and never longer than {keep}. Messages larger than {} kB that have \
         been read are deleted after {}, and the oldest messages go first when an account's \
         storage is full. Their content is end-to-end encrypted, so the relay cannot read \
         it; the envelope (sender, recipients, time, size and technical headers) is \
         processed to deliver them. Messages for other servers are kept only until they \
         have been handed over or delivery has failed.</li>",
        LARGE_MESSAGE_BYTES / 1000,
        days(l.delete_large_after_days)
    );
    out.push_str(
        "<li><strong>Notification tokens.</strong> If you allow notifications, Delta Chat \
         gives the relay an encrypted token for your device. When a message arrives, the \
         relay passes that token to Delta Chat's notification service, which asks Apple or \
         Google to wake the app; the relay itself cannot read the token. Tokens that the \
         app has not renewed for 90 days are removed.</li>\n",
    );
    out.push_str(
        "<li><strong>Limits.</strong> To keep the relay working for everyone it counts how \
         much each account sends and stores, and enforces rate, storage and message size \
         limits (see <a href=\"info.html\">info</a>). It keeps short-lived technical logs \
         of deliveries to find delivery problems and software bugs; they contain no message \
         content and no IP addresses.</li>\n",
    );
    out.push_str("</ul>\n");
    out.push_str(
        "<p>The account is created the first time Delta Chat logs in, either after you \
         scanned the relay's QR code or tapped its button, or when Delta Chat sets up a \
         profile on this relay by itself. This processing is needed to provide the service \
         you use (Art. 6 (1) (b) GDPR); security and abuse prevention are in the operator's \
         legitimate interest (Art. 6 (1) (f) GDPR). The data is not used to learn anything \
         about you as a person.</p>\n",
    );

    out.push_str("<h2>3. This website</h2>\n");
    let _ = writeln!(
        out,
        "<p>These pages are served by the relay itself, not by an outside host. To answer \
         a request, the web server necessarily sees your IP address, your browser's \
         request and the time; it does not keep them after answering.</p>"
    );

    out.push_str("<h2>4. Software updates</h2>\n");
    match (&config.updates.enabled, &config.updates.portal_url) {
        (true, Some(url)) => {
            let host = url.as_url().host_str().unwrap_or_default();
            let _ = writeln!(
                out,
                "<p>The device that runs {d} asks <strong>{}</strong> about once a day \
                 whether a software update is available, and installs only updates signed by \
                 it. The request is an ordinary HTTPS request for the current release of its \
                 update channel ({}) and hardware type, without cookies and with a generic \
                 program name: it contains no accounts, messages or other data about the \
                 people using this relay, and nothing that names this relay. Like every web \
                 request, it shows {} the device's IP address and the time of the check; when \
                 an update is downloaded, that is visible too.</p>",
                esc(host),
                config.updates.channel.id(),
                esc(host)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "<p>The device that runs {d} does not contact anyone to check for software \
                 updates.</p>"
            );
        }
    }

    out.push_str("<h2>5. Passing data on</h2>\n");
    out.push_str(
        "<p>Messages go to the servers of their recipients, and notification tokens to the \
         notification service, as described above. Beyond that, the relay keeps no personal \
         data to pass on; messages waiting for delivery may contain some, and it is given to \
         third parties only</p>\n<ul>\n\
         <li>with your express consent (Art. 6 (1) (a) GDPR),</li>\n\
         <li>where needed to establish, exercise or defend legal claims and there is no \
         reason to assume an overriding interest of yours in it not being disclosed \
         (Art. 6 (1) (f) GDPR),</li>\n\
         <li>where the law requires it (Art. 6 (1) (c) GDPR),</li>\n\
         <li>where it is needed for the contract with you (Art. 6 (1) (b) GDPR), or</li>\n\
         <li>to a carefully chosen service provider working only on the operator's \
         instructions under a data processing agreement (Art. 28 GDPR).</li>\n</ul>\n",
    );

    out.push_str("<h2>6. Your rights</h2>\n");
    let _ = writeln!(
        out,
        "<p>Your rights are set out in Articles 12 to 23 GDPR. Since the relay keeps no \
         personal data beyond what is listed above, there is usually nothing to disclose. \
         You can delete your data yourself: remove the profile from Delta Chat on all your \
         devices, and the account with all its data is deleted {inactive} later.</p>"
    );
    match &p.contact_mail {
        Some(mail) => {
            let _ = writeln!(
                out,
                "<p>For questions or complaints, write to <a href=\"mailto:{}\">{}</a>.</p>",
                esc(&mail.to_string()),
                esc(&mail.to_unicode())
            );
        }
        None => out.push_str(
            "<p>The operator has not published a contact address for questions or \
             complaints.</p>\n",
        ),
    }
    match &p.supervisory_authority {
        Some(authority) => {
            let _ = writeln!(
                out,
                "<p>You can also complain to a data-protection supervisory authority, usually \
                 the one where you live or work or where the operator is based. The authority \
                 responsible for the operator is:</p>\n{}",
                block(authority)
            );
        }
        None => out.push_str(
            "<p>You can also complain to a data-protection supervisory authority, usually the \
             one where you live or work or where the operator is based.</p>\n",
        ),
    }
    out
}

/// Section 1: the controller and contacts, or a clear note where they are missing.
fn contacts(out: &mut String, config: &RelayConfig) {
    let p = &config.privacy;
    if p.postal_address.is_none() && p.contact_mail.is_none() && p.data_protection_officer.is_none()
    {
        out.push_str("<p>The operator of this relay has not published contact details here.</p>\n");
        return;
    }
    match &p.postal_address {
        Some(postal) => {
            out.push_str("<p>Responsible for processing your data is:</p>\n");
            out.push_str(&block(postal));
        }
        None => out.push_str("<p>The operator has not published a postal address.</p>\n"),
    }
    if let Some(mail) = &p.contact_mail {
        let _ = writeln!(
            out,
            "<p>E-mail: <a href=\"mailto:{}\">{}</a></p>",
            esc(&mail.to_string()),
            esc(&mail.to_unicode())
        );
    }
    if let Some(dpo) = &p.data_protection_officer {
        out.push_str("<p>The operator has appointed a data protection officer:</p>\n");
        out.push_str(&block(dpo));
    }
}

/// Multi-line operator text, escaped, line breaks kept by CSS.
fn block(text: &FreeText) -> String {
    format!(
        "<p class=\"contact multiline\">{}</p>\n",
        esc(text.as_str())
    )
}
