//! The device's status document, fetched over HTTPS (verified certificate) with a fresh
//! nonce, and trusted only if the device's signature over the nonce and the reported facts
//! verifies with the DKIM key it reports.

use std::net::IpAddr;

use base64::Engine;
use chatmail_shared::{
    probe_report::TrustedStatus,
    relay_status::{proof_message, RelayStatus, STATUS_PATH},
    MailDomain,
};
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::TokioIo;
use rsa::{pkcs8::DecodePublicKey, signature::Verifier};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::ProbeSettings;

/// The largest status document accepted.
const MAX_BODY: usize = 64 * 1024;

/// Why the status document was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("the device's status page could not be fetched: {0}")]
    Fetch(String),
    #[error("the device's status page is not a relay status document: {0}")]
    Malformed(String),
    #[error("the status page is for {found}, not for this relay")]
    OtherRelay { found: String },
    #[error(
        "the status page did not answer the portal's fresh question (an old or copied answer)"
    )]
    Replayed,
    #[error("the status page's signature does not match its key")]
    BadSignature,
}

/// Fetches and checks the document; the nonce is made here, fresh for each fetch.
pub async fn fetch(
    address: IpAddr,
    domain: &MailDomain,
    settings: &ProbeSettings,
) -> Result<TrustedStatus, StatusError> {
    let nonce = crate::auth::session::random_token();
    let body = tokio::time::timeout(settings.timeout, get(address, domain, &nonce, settings))
        .await
        .map_err(|_| StatusError::Fetch("no answer within the time limit".into()))??;
    check(&body, domain, &nonce)
}

async fn get(
    address: IpAddr,
    domain: &MailDomain,
    nonce: &str,
    settings: &ProbeSettings,
) -> Result<Vec<u8>, StatusError> {
    let fetch = |e: &dyn std::fmt::Display| StatusError::Fetch(e.to_string());
    let name = ServerName::try_from(domain.as_str().to_string()).map_err(|e| fetch(&e))?;
    let tcp = TcpStream::connect(settings.target(address, 443))
        .await
        .map_err(|e| fetch(&e))?;
    let tls = TlsConnector::from(settings.tls_config())
        .connect(name, tcp)
        .await
        .map_err(|e| fetch(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| fetch(&e))?;
    let driver = tokio::spawn(connection);
    let request = http::Request::get(format!("{STATUS_PATH}?nonce={nonce}"))
        .header(http::header::HOST, domain.as_str())
        .header(http::header::USER_AGENT, "chatmail-portal-probe")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| fetch(&e))?;
    let response = sender.send_request(request).await.map_err(|e| fetch(&e))?;
    if !response.status().is_success() {
        driver.abort();
        return Err(StatusError::Fetch(format!(
            "it answered {}",
            response.status()
        )));
    }
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| StatusError::Fetch(format!("{e}")))?
        .to_bytes();
    driver.abort();
    Ok(body.to_vec())
}

/// The checks, without I/O: the right relay, this nonce, a valid signature.
pub fn check(body: &[u8], domain: &MailDomain, nonce: &str) -> Result<TrustedStatus, StatusError> {
    let status: RelayStatus =
        serde_json::from_slice(body).map_err(|e| StatusError::Malformed(e.to_string()))?;
    if !status.mail_domain.eq_ignore_ascii_case(domain.as_str()) {
        return Err(StatusError::OtherRelay {
            found: status.mail_domain,
        });
    }
    let proof = status.proof.as_ref().ok_or(StatusError::Replayed)?;
    if proof.nonce != nonce {
        return Err(StatusError::Replayed);
    }
    let message = proof_message(
        &status.mail_domain,
        nonce,
        &status.dkim.public_key,
        status.acme.account_url.as_deref(),
    );
    let engine = base64::engine::general_purpose::STANDARD;
    let der = engine
        .decode(&status.dkim.public_key)
        .map_err(|_| StatusError::BadSignature)?;
    let key =
        rsa::RsaPublicKey::from_public_key_der(&der).map_err(|_| StatusError::BadSignature)?;
    let signature = engine
        .decode(&proof.signature)
        .map_err(|_| StatusError::BadSignature)?;
    let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice())
        .map_err(|_| StatusError::BadSignature)?;
    rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key)
        .verify(&message, &signature)
        .map_err(|_| StatusError::BadSignature)?;
    Ok(TrustedStatus {
        version: status.version,
        dkim_txt: status.dkim.txt,
        dkim_public_key: status.dkim.public_key,
        acme_account_url: status.acme.account_url,
        health: status.health.status,
    })
}
