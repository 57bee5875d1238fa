//! What the probe results mean for a person: one finding per problem, with what to do and
//! who does it (the router at home, the hosting provider, the device, or just waiting).
//! No I/O.

use chatmail_shared::probe_report::{AddressProbe, CertificateProbe, Finding, Severity, WhoActs};

use super::{StatusError, Target};

fn finding(
    id: &str,
    severity: Severity,
    title: String,
    explanation: String,
    fix: String,
    who_acts: WhoActs,
    subject: Option<String>,
) -> Finding {
    Finding {
        id: id.to_string(),
        severity,
        title,
        explanation,
        expected: None,
        found: None,
        fix,
        who_acts,
        subject,
    }
}

fn purpose(port: u16) -> &'static str {
    match port {
        25 => "other mail servers deliver to your relay",
        80 => "the certificate authority checks your relay before it issues its certificate",
        443 => "apps and the portal reach your relay's web pages and HTTPS delivery",
        465 | 587 => "Delta Chat sends messages",
        993 => "Delta Chat fetches messages",
        _ => "your relay is reached",
    }
}

/// The portal was told not to probe devices.
pub fn probes_off() -> Finding {
    finding(
        "probes-off",
        Severity::Warning,
        "This portal does not check devices".into(),
        "Whoever runs this portal turned its device checks off, so it cannot tell whether \
         your relay is reachable or publish its keys by itself."
            .into(),
        "Ask whoever runs this portal to turn device checks on, or check your relay with \
         Delta Chat directly."
            .into(),
        WhoActs::PortalAdmin,
        None,
    )
}

pub fn explain(
    target: &Target<'_>,
    addresses: &[AddressProbe],
    certificate: Option<&CertificateProbe>,
    status: Option<&StatusError>,
) -> Vec<Finding> {
    let at_home = target.hardware == Some("raspberry_pi");
    let mut out = Vec::new();
    if addresses.is_empty() {
        out.push(finding(
            "no-address",
            Severity::Error,
            "The portal does not know your relay's address".into(),
            "Without an IPv4 or IPv6 address there is nothing to check.".into(),
            "Enter the address in the hardware step.".into(),
            WhoActs::YouAtDevice,
            None,
        ));
    }
    for address in addresses {
        let closed: Vec<u16> = address
            .ports
            .iter()
            .filter(|p| !p.open)
            .map(|p| p.port)
            .collect();
        if closed.len() == address.ports.len() {
            out.push(finding(
                "all-ports-closed",
                Severity::Error,
                format!("Nothing answers at {} ({})", address.address, address.family),
                format!("None of the relay's ports answers at {}.", address.address),
                if at_home {
                    "Check that the Raspberry Pi is switched on, booted from the image and connected by cable, \
                     and that this is your connection's public address; then forward the ports to the Pi in your router."
                        .into()
                } else {
                    "Check that the machine runs the image and that this is its public address.".into()
                },
                WhoActs::YouAtDevice,
                Some(address.address.clone()),
            ));
            continue;
        }
        for port in closed {
            let (id, fix, who) = match (port, at_home) {
                (_, true) => (
                    "port-closed",
                    format!("In your router, forward TCP port {port} to the Raspberry Pi (the same port on the Pi)."),
                    WhoActs::YouAtRouter,
                ),
                (25, false) => (
                    "port25-blocked",
                    "Many hosting providers block port 25 for new machines. Ask your provider to unblock it \
                     (mention that it is for a mail server), and check the firewall in its control panel."
                        .to_string(),
                    WhoActs::HostingProvider,
                ),
                (_, false) => (
                    "port-closed",
                    format!("Allow incoming TCP port {port} in your hosting provider's firewall for this machine."),
                    WhoActs::HostingProvider,
                ),
            };
            out.push(finding(
                id,
                Severity::Error,
                format!("Port {port} is not reachable on {}", address.address),
                format!("Port {port} is how {}.", purpose(port)),
                fix,
                who,
                Some(format!("{}:{port}", address.address)),
            ));
        }
        if let Some(smtp) = &address.smtp {
            let greets = smtp.banner.as_deref().is_some_and(|b| b.starts_with("220"));
            if !greets {
                out.push(finding(
                    "smtp-not-mail-server",
                    Severity::Error,
                    format!("Something other than your relay answers on port 25 at {}", address.address),
                    "The answer on port 25 is not a mail server's greeting.".into(),
                    if at_home {
                        "Make sure your router forwards port 25 to the Raspberry Pi and does not answer itself.".into()
                    } else {
                        "Make sure port 25 reaches this machine.".into()
                    },
                    if at_home { WhoActs::YouAtRouter } else { WhoActs::HostingProvider },
                    Some(format!("{}:25", address.address)),
                ));
            } else if !smtp.starttls {
                out.push(finding(
                    "smtp-no-starttls",
                    Severity::Warning,
                    format!("The mail server at {} offers no encryption (STARTTLS)", address.address),
                    "Other mail servers could only deliver unencrypted, which chatmail relays refuse.".into(),
                    "Restart the device; if it persists, the device's mail server needs attention.".into(),
                    WhoActs::YouAtDevice,
                    Some(format!("{}:25", address.address)),
                ));
            }
        }
    }
    if let Some(certificate) = certificate {
        if let Some(problem) = &certificate.problem {
            let (id, fix, who) = if problem.contains("another name") {
                (
                    "certificate-wrong-name",
                    "Check that your relay's name points to this device's address (the DNS check shows it).",
                    WhoActs::YouAtDnsProvider,
                )
            } else if problem.contains("expired") {
                (
                    "certificate-expired",
                    "The device renews its certificate by itself when port 80 reaches it; check that port.",
                    WhoActs::YouAtDevice,
                )
            } else {
                (
                    "certificate-not-trusted",
                    "The device asks for its certificate by itself a few minutes after it first starts, once its \
                     name points to it and port 80 reaches it. Wait, then check again.",
                    WhoActs::Wait,
                )
            };
            out.push(finding(
                id,
                Severity::Error,
                "Your relay's HTTPS certificate is not valid yet".into(),
                format!("The portal could not verify the certificate: {problem}."),
                fix.into(),
                who,
                certificate.names.first().cloned(),
            ));
        } else if certificate.days_left.is_some_and(|days| days < 14) {
            out.push(finding(
                "certificate-expiring",
                Severity::Warning,
                "Your relay's certificate expires soon".into(),
                format!(
                    "It expires in {} day(s); the device should have renewed it by now.",
                    certificate.days_left.unwrap_or(0)
                ),
                "Check that port 80 reaches the device; it renews by itself.".into(),
                WhoActs::YouAtDevice,
                None,
            ));
        }
    }
    if let Some(error) = status {
        let (id, fix, who) = match error {
            StatusError::OtherRelay { .. } => (
                "status-other-relay",
                "Your name points to a different relay. Check the addresses in the DNS check.",
                WhoActs::YouAtDnsProvider,
            ),
            StatusError::Replayed | StatusError::BadSignature => (
                "status-not-proved",
                "Something answers in your device's place. Check that the address is your device's, and that \
                 nothing in between (a proxy or another server) answers for it.",
                WhoActs::YouAtDevice,
            ),
            StatusError::Fetch(_) | StatusError::Malformed(_) => (
                "status-unreachable",
                "Check that the device runs the relay image; if it just started, wait a minute and check again.",
                WhoActs::YouAtDevice,
            ),
        };
        out.push(finding(
            id,
            Severity::Error,
            "The portal cannot confirm that your device is your relay".into(),
            format!("{error}. Nothing is published until it can."),
            fix.into(),
            who,
            None,
        ));
    }
    out.sort_by_key(|finding| std::cmp::Reverse(finding.severity));
    out
}
