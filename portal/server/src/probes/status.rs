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

#[cfg(test)]
mod tests {
    use super::*;
    use chatmail_shared::relay_status::{AcmeStatus, DkimStatus, HealthStatus, Proof};
    use rsa::{pkcs8::EncodePublicKey, signature::SignatureEncoding, signature::Signer};

    const NONCE: &str = "fresh-nonce-0123456789";

    /// A relay's key (1024 bits keeps the test fast; the check does not care).
    fn key() -> rsa::RsaPrivateKey {
        use std::sync::OnceLock;
        static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand_core(), 1024).unwrap())
            .clone()
    }

    fn rand_core() -> rand::rngs::OsRng {
        rand::rngs::OsRng
    }

    fn document(
        domain: &str,
        nonce: &str,
        signed_nonce: &str,
        key: &rsa::RsaPrivateKey,
    ) -> Vec<u8> {
        let engine = base64::engine::general_purpose::STANDARD;
        let public = engine.encode(key.to_public_key().to_public_key_der().unwrap().as_bytes());
        let account = Some("https://ca.example/acct/7".to_string());
        let message = proof_message(domain, signed_nonce, &public, account.as_deref());
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
        let signature = engine.encode(signer.sign(&message).to_vec());
        let status = RelayStatus {
            format: 1,
            version: "0.1.0".into(),
            mail_domain: domain.into(),
            dkim: DkimStatus {
                selector: "opendkim".into(),
                record_name: format!("opendkim._domainkey.{domain}"),
                txt: format!("v=DKIM1;k=rsa;p={public}"),
                public_key: public,
            },
            acme: AcmeStatus {
                directory_url: "https://ca.example/dir".into(),
                account_url: account,
            },
            health: HealthStatus {
                status: "ok".into(),
                maddy_running: true,
                accounts_store_ok: true,
                certificate_placeholder: false,
                certificate_not_after: None,
            },
            proof: Some(Proof {
                nonce: nonce.into(),
                signature,
            }),
        };
        serde_json::to_vec(&status).unwrap()
    }

    fn domain() -> MailDomain {
        MailDomain::parse("chat.example.org").unwrap()
    }

    #[test]
    fn a_fresh_signed_answer_from_this_relay_is_trusted() {
        let body = document("chat.example.org", NONCE, NONCE, &key());
        let trusted = check(&body, &domain(), NONCE).unwrap();
        assert_eq!(
            trusted.acme_account_url.as_deref(),
            Some("https://ca.example/acct/7")
        );
        assert!(trusted.dkim_txt.starts_with("v=DKIM1"));
    }

    #[test]
    fn another_relays_answer_is_refused() {
        let body = document("other.example.net", NONCE, NONCE, &key());
        assert_eq!(
            check(&body, &domain(), NONCE),
            Err(StatusError::OtherRelay {
                found: "other.example.net".into()
            })
        );
    }

    #[test]
    fn an_old_answer_is_refused_as_replayed() {
        // Recorded for an earlier question, signature and all.
        let body = document(
            "chat.example.org",
            "older-nonce-0123456789",
            "older-nonce-0123456789",
            &key(),
        );
        assert_eq!(check(&body, &domain(), NONCE), Err(StatusError::Replayed));
        // Without any proof (e.g. an old device or a copied page).
        let mut status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        status.as_object_mut().unwrap().remove("proof");
        let body = serde_json::to_vec(&status).unwrap();
        assert_eq!(check(&body, &domain(), NONCE), Err(StatusError::Replayed));
    }

    #[test]
    fn an_echoed_nonce_without_the_matching_signature_is_refused() {
        // A middlebox echoes the new nonce but cannot sign it.
        let body = document("chat.example.org", NONCE, "older-nonce-0123456789", &key());
        assert_eq!(
            check(&body, &domain(), NONCE),
            Err(StatusError::BadSignature)
        );
        // A key swapped in for the device's: the signature no longer matches.
        let mut status: serde_json::Value =
            serde_json::from_slice(&document("chat.example.org", NONCE, NONCE, &key())).unwrap();
        let other = rsa::RsaPrivateKey::new(&mut rand_core(), 1024).unwrap();
        let engine = base64::engine::general_purpose::STANDARD;
        status["dkim"]["public_key"] = engine
            .encode(
                other
                    .to_public_key()
                    .to_public_key_der()
                    .unwrap()
                    .as_bytes(),
            )
            .into();
        let body = serde_json::to_vec(&status).unwrap();
        assert_eq!(
            check(&body, &domain(), NONCE),
            Err(StatusError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for body in [
            &b""[..],
            b"<html>It works!</html>",
            b"{}",
            b"{\"format\":1}",
            &[0xff; 100][..],
        ] {
            assert!(
                matches!(
                    check(body, &domain(), NONCE),
                    Err(StatusError::Malformed(_))
                ),
                "{body:?}"
            );
        }
        let mut status: serde_json::Value =
            serde_json::from_slice(&document("chat.example.org", NONCE, NONCE, &key())).unwrap();
        status["proof"]["signature"] = "not base64 !!".into();
        let body = serde_json::to_vec(&status).unwrap();
        assert_eq!(
            check(&body, &domain(), NONCE),
            Err(StatusError::BadSignature)
        );
    }
}
