//! The HTTPS certificate on port 443: trusted, for the relay's name, and how long it lasts.

use std::{net::IpAddr, time::SystemTime};

use chatmail_shared::{probe_report::CertificateProbe, MailDomain};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::ProbeSettings;

/// Connects with verification (trusted chain, right name, in date). When that fails, says
/// why, and looks at the certificate anyway (without trusting it) to describe it.
pub async fn probe(
    address: IpAddr,
    domain: &MailDomain,
    settings: &ProbeSettings,
) -> CertificateProbe {
    let name = match ServerName::try_from(domain.as_str().to_string()) {
        Ok(name) => name,
        Err(_) => {
            return CertificateProbe {
                valid: false,
                names: Vec::new(),
                issuer: None,
                days_left: None,
                problem: Some("the relay's name cannot be used for TLS".into()),
            }
        }
    };
    let connect = async {
        let tcp = TcpStream::connect(settings.target(address, 443))
            .await
            .map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(settings.tls_config())
            .connect(name, tcp)
            .await;
        Ok::<_, String>(tls)
    };
    match tokio::time::timeout(settings.timeout, connect).await {
        Err(_) => failed("no TLS answer within the time limit".into()),
        Ok(Err(err)) => failed(format!("no connection: {err}")),
        Ok(Ok(Err(err))) => {
            let mut probe = failed(plain_tls_error(&err.to_string()));
            // Describe what is served, without trusting it.
            if let Some(described) = describe_untrusted(address, domain, settings).await {
                probe.names = described.names;
                probe.issuer = described.issuer;
                probe.days_left = described.days_left;
            }
            probe
        }
        Ok(Ok(Ok(stream))) => {
            let (_, connection) = stream.get_ref();
            let mut probe = connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| describe(leaf.as_ref()))
                .unwrap_or_else(|| failed("no certificate was sent".into()));
            probe.valid = probe.problem.is_none();
            probe
        }
    }
}

fn failed(problem: String) -> CertificateProbe {
    CertificateProbe {
        valid: false,
        names: Vec::new(),
        issuer: None,
        days_left: None,
        problem: Some(problem),
    }
}

/// rustls's reasons, in words a person can act on.
fn plain_tls_error(error: &str) -> String {
    if error.contains("UnknownIssuer") {
        "the certificate is not from a trusted authority (the device may still use its temporary self-made one)".into()
    } else if error.contains("NotValidForName") {
        "the certificate is for another name".into()
    } else if error.contains("Expired") {
        "the certificate has expired".into()
    } else if error.contains("NotValidYet") {
        "the certificate is not valid yet (check the device's clock)".into()
    } else {
        format!("the TLS handshake failed ({error})")
    }
}

/// Names, issuer and days left of a DER certificate.
fn describe(der: &[u8]) -> CertificateProbe {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return failed("the certificate cannot be read".into());
    };
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days_left = (cert.validity().not_after.timestamp() - now).div_euclid(86_400);
    CertificateProbe {
        valid: true,
        names,
        issuer: Some(cert.issuer().to_string()),
        days_left: Some(days_left),
        problem: None,
    }
}

/// Fetches the certificate without verifying it, only to describe it in an error.
async fn describe_untrusted(
    address: IpAddr,
    domain: &MailDomain,
    settings: &ProbeSettings,
) -> Option<CertificateProbe> {
    #[derive(Debug)]
    struct Anything(std::sync::Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for Anything {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(Anything(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(domain.as_str().to_string()).ok()?;
    let connect = async {
        let tcp = TcpStream::connect(settings.target(address, 443))
            .await
            .ok()?;
        TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .ok()
    };
    let stream = tokio::time::timeout(settings.timeout, connect)
        .await
        .ok()??;
    let leaf = stream.get_ref().1.peer_certificates()?.first()?.clone();
    let mut described = describe(leaf.as_ref());
    described.valid = false;
    Some(described)
}
