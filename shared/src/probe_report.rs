//! What the portal's probes found out about a relay's device from the outside: which ports
//! answer on each address, the mail server's greeting and STARTTLS, the HTTPS certificate,
//! and the device's own status document (proved fresh and signed). Plain serde data, like
//! [`crate::dns_report`], so the portal can store it and the browser can show it; problems
//! are [`Finding`]s with who has to act.

use serde::{Deserialize, Serialize};

pub use crate::dns_report::{Finding, Severity, WhoActs};

/// One probe run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// When it finished (seconds since the Unix epoch).
    pub checked_at_unix_secs: u64,
    /// Per probed address (IPv4 and IPv6 separately).
    pub addresses: Vec<AddressProbe>,
    /// The HTTPS certificate, as the first address that answered on 443 showed it.
    pub certificate: Option<CertificateProbe>,
    /// The status document, if it could be fetched and trusted.
    pub status: Option<TrustedStatus>,
    /// Problems, most severe first.
    pub findings: Vec<Finding>,
}

impl ProbeReport {
    /// Every port answers everywhere, the certificate is valid and the status trusted.
    pub fn is_ready(&self) -> bool {
        !self.addresses.is_empty()
            && self
                .addresses
                .iter()
                .all(|a| a.ports.iter().all(|p| p.open))
            && self.certificate.as_ref().is_some_and(|c| c.valid)
            && self.status.is_some()
            && self.findings.iter().all(|f| f.severity != Severity::Error)
    }
}

/// The probes of one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressProbe {
    /// The address, e.g. `93.184.216.34` or `2a01:4f8::1`.
    pub address: String,
    /// `IPv4` or `IPv6`.
    pub family: String,
    pub ports: Vec<PortProbe>,
    /// The SMTP greeting on port 25 and whether STARTTLS is offered.
    pub smtp: Option<SmtpProbe>,
}

/// One TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortProbe {
    /// The relay's port (25, 80, 443, 465, 587, 993).
    pub port: u16,
    pub open: bool,
    /// Why not, in plain words.
    pub problem: Option<String>,
    pub millis: Option<u64>,
}

/// The mail server's greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpProbe {
    /// The `220` line.
    pub banner: Option<String>,
    pub starttls: bool,
    pub problem: Option<String>,
}

/// The certificate served on 443.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateProbe {
    /// Trusted and valid for the relay's name right now.
    pub valid: bool,
    /// Names it is for.
    pub names: Vec<String>,
    pub issuer: Option<String>,
    /// Days until it expires (negative when expired).
    pub days_left: Option<i64>,
    pub problem: Option<String>,
}

/// What the device reported, after the portal checked the proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedStatus {
    pub version: String,
    /// The DKIM TXT value to publish.
    pub dkim_txt: String,
    /// The bare base64 DKIM public key.
    pub dkim_public_key: String,
    /// The ACME account URL for CAA, once the device has one.
    pub acme_account_url: Option<String>,
    /// The device's own health summary (`ok` or `degraded`).
    pub health: String,
}
