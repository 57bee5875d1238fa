//! Probes of a relay's device from the outside, as the Internet sees it: each address
//! (IPv4 and IPv6 separately) and port, the mail server's greeting with STARTTLS, the HTTPS
//! certificate, and the device's status document, fetched over HTTPS only, with a fresh
//! nonce, and trusted only when the device's signature over it checks out. Every problem
//! becomes a finding that says what is wrong and who must act.
//!
//! Parsing and policy are separate from I/O: [`findings`] turns what was observed into
//! findings without sockets.

mod blocklist;
mod certificate;
mod findings;
mod ports;
mod smtp;
mod status;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chatmail_shared::{probe_report::ProbeReport, MailDomain};
use rustls::pki_types::CertificateDer;

pub use status::StatusError;

/// The relay's ports the Internet must reach: SMTP, HTTP (ACME), HTTPS, submission, IMAPS.
pub const PORTS: [u16; 6] = [25, 80, 443, 465, 587, 993];

/// How the portal probes.
#[derive(Clone)]
pub struct ProbeSettings {
    /// Trust anchors for HTTPS: the system's, plus any given (a test CA such as Pebble's).
    pub roots: Arc<rustls::RootCertStore>,
    /// Where each relay port is really reached (test networks forward ports elsewhere);
    /// empty on the Internet.
    pub port_map: HashMap<u16, u16>,
    /// Longest wait for one connection or answer.
    pub timeout: Duration,
    /// Whether the portal probes devices at all.
    pub enabled: bool,
    /// A resolver Spamhaus answers, for the blocklist check (none: not checked).
    pub blocklist_resolver: Option<SocketAddr>,
}

impl ProbeSettings {
    /// The system's trust store plus the PEM certificates in `extra_roots`.
    pub fn new(
        extra_roots: &[CertificateDer<'static>],
        port_map: HashMap<u16, u16>,
    ) -> ProbeSettings {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        for cert in extra_roots {
            let _ = roots.add(cert.clone());
        }
        ProbeSettings {
            roots: Arc::new(roots),
            port_map,
            timeout: Duration::from_secs(8),
            enabled: true,
            blocklist_resolver: None,
        }
    }

    fn target(&self, address: IpAddr, port: u16) -> SocketAddr {
        SocketAddr::new(address, *self.port_map.get(&port).unwrap_or(&port))
    }

    fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// What the portal knows about the relay it probes.
pub struct Target<'a> {
    pub domain: &'a MailDomain,
    pub addresses: Vec<IpAddr>,
    /// `raspberry_pi` (at home, behind a router) or `virtual_machine` (hosted).
    pub hardware: Option<&'a str>,
}

/// Probes every address and port, the certificate and the status document, in parallel.
pub async fn probe(target: &Target<'_>, settings: &ProbeSettings) -> ProbeReport {
    if !settings.enabled {
        return ProbeReport {
            checked_at_unix_secs: now_unix_secs(),
            addresses: Vec::new(),
            certificate: None,
            status: None,
            findings: vec![findings::probes_off()],
        };
    }
    let (addresses, blocklisted) = tokio::join!(
        futures_util::future::join_all(
            target
                .addresses
                .iter()
                .map(|address| ports::probe_address(*address, settings)),
        ),
        blocklist::check(
            settings.blocklist_resolver,
            &target.addresses,
            settings.timeout
        )
    );
    // The certificate and the status document come from the first address that is open
    // on 443 (they are the same device).
    let https = addresses
        .iter()
        .find(|a| a.ports.iter().any(|p| p.port == 443 && p.open))
        .and_then(|a| a.address.parse::<IpAddr>().ok());
    let (certificate, status) = match https {
        Some(address) => {
            let certificate = certificate::probe(address, target.domain, settings).await;
            let status = if certificate.valid {
                Some(status::fetch(address, target.domain, settings).await)
            } else {
                None
            };
            (Some(certificate), status)
        }
        None => (None, None),
    };
    let trusted = status.as_ref().and_then(|s| s.as_ref().ok().cloned());
    let status_error = status.and_then(|s| s.err());
    let mut findings = findings::explain(
        target,
        &addresses,
        certificate.as_ref(),
        status_error.as_ref(),
    );
    findings.extend(blocklisted);
    ProbeReport {
        checked_at_unix_secs: now_unix_secs(),
        addresses,
        certificate,
        status: trusted,
        findings,
    }
}

fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
