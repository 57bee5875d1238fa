//! The Thunderbird-style autoconfig file that tells Delta Chat which servers and ports to
//! use.
//!
//! After creating an account, Delta Chat fetches
//! `https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml` (research/
//! deltachat-client.md §3.4). Port 443 is only ever used because this file lists it
//! (same source, §3.3). The content follows upstream's `autoconfig.xml.j2` (research/
//! chatmail.md §5): the relay itself for every server, cleartext password over TLS, the
//! whole address as user name.

use std::fmt::Write as _;

use crate::domain::MailDomain;

/// Where the file is served.
pub const AUTOCONFIG_PATH: &str = "/.well-known/autoconfig/mail/config-v1.1.xml";

/// Port and TLS mode of one server entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerEntry {
    /// `imap` or `smtp`.
    pub protocol: &'static str,
    /// TCP port.
    pub port: u16,
    /// `SSL` (TLS from the start) or `STARTTLS`.
    pub socket_type: &'static str,
}

/// Upstream's entries, in upstream's order (research/chatmail.md §5).
pub const SERVER_ENTRIES: [ServerEntry; 6] = [
    ServerEntry {
        protocol: "imap",
        port: 993,
        socket_type: "SSL",
    },
    ServerEntry {
        protocol: "imap",
        port: 143,
        socket_type: "STARTTLS",
    },
    ServerEntry {
        protocol: "imap",
        port: 443,
        socket_type: "SSL",
    },
    ServerEntry {
        protocol: "smtp",
        port: 465,
        socket_type: "SSL",
    },
    ServerEntry {
        protocol: "smtp",
        port: 587,
        socket_type: "STARTTLS",
    },
    ServerEntry {
        protocol: "smtp",
        port: 443,
        socket_type: "SSL",
    },
];

/// The autoconfig XML for `domain`.
pub fn autoconfig_xml(domain: &MailDomain) -> String {
    // The domain is ASCII letters, digits, dots and hyphens only; escaping is a formality.
    let d = html_escape::encode_text(domain.as_str());
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<clientConfig version=\"1.1\">\n");
    let _ = writeln!(out, "  <emailProvider id=\"{d}\">");
    let _ = writeln!(out, "    <domain>{d}</domain>");
    let _ = writeln!(out, "    <displayName>{d} chatmail</displayName>");
    let _ = writeln!(out, "    <displayShortName>{d}</displayShortName>");
    for entry in SERVER_ENTRIES {
        let element = if entry.protocol == "imap" {
            "incomingServer"
        } else {
            "outgoingServer"
        };
        let _ = writeln!(out, "    <{element} type=\"{}\">", entry.protocol);
        let _ = writeln!(out, "      <hostname>{d}</hostname>");
        let _ = writeln!(out, "      <port>{}</port>", entry.port);
        let _ = writeln!(out, "      <socketType>{}</socketType>", entry.socket_type);
        out.push_str("      <authentication>password-cleartext</authentication>\n");
        out.push_str("      <username>%EMAILADDRESS%</username>\n");
        let _ = writeln!(out, "    </{element}>");
    }
    out.push_str("  </emailProvider>\n");
    out.push_str("</clientConfig>\n");
    out
}
