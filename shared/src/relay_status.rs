//! The status document a relay serves for its portal, at [`STATUS_PATH`]: what the device
//! made at first boot and the portal must publish in DNS (its DKIM key, its ACME account
//! URL), and how it is doing.
//!
//! When the portal asks with a `nonce` query parameter, the device adds a [`Proof`]: a
//! signature with its DKIM private key over [`proof_message`] (the domain, the nonce and the
//! facts it reports). Fetched over HTTPS with a certificate valid for the domain, a fresh
//! nonce rules out a replayed answer, and the signature shows that the device holds the key
//! the portal is about to publish.

use serde::{Deserialize, Serialize};

/// Where relays serve the document.
pub const STATUS_PATH: &str = "/.well-known/chatmail-relay/status.json";

/// The document format this crate reads and writes.
pub const STATUS_FORMAT: u32 = 1;

/// The whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStatus {
    /// [`STATUS_FORMAT`].
    pub format: u32,
    /// The appliance's version.
    pub version: String,
    /// The mail domain (ASCII).
    pub mail_domain: String,
    /// The DKIM record to publish.
    pub dkim: DkimStatus,
    /// The ACME account.
    pub acme: AcmeStatus,
    /// How the device is doing.
    pub health: HealthStatus,
    /// Present when the request carried a nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
}

/// The DKIM part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimStatus {
    /// The selector.
    pub selector: String,
    /// `<selector>._domainkey.<domain>`.
    pub record_name: String,
    /// The TXT value.
    pub txt: String,
    /// The bare base64 SubjectPublicKeyInfo.
    pub public_key: String,
}

/// The ACME part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeStatus {
    /// The configured directory.
    pub directory_url: String,
    /// The account URL, once the CA has assigned one (for CAA `accounturi`).
    pub account_url: Option<String>,
}

/// The health part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// `ok` when every part below is fine, otherwise `degraded`.
    pub status: String,
    /// Whether the mail server runs.
    pub maddy_running: bool,
    /// Whether the account store answers.
    pub accounts_store_ok: bool,
    /// Whether the served certificate is still the self-signed placeholder.
    pub certificate_placeholder: bool,
    /// Unix time at which the served certificate expires.
    pub certificate_not_after: Option<i64>,
}

/// The device's answer to the portal's nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The nonce, as received.
    pub nonce: String,
    /// Base64 RSASSA-PKCS1-v1_5 SHA-256 signature over [`proof_message`], made with the DKIM
    /// private key.
    pub signature: String,
}

/// Whether a nonce is acceptable: 16 to 128 characters of the URL-safe base64 alphabet.
pub fn valid_nonce(nonce: &str) -> bool {
    (16..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The exact bytes the device signs and the portal verifies.
pub fn proof_message(
    mail_domain: &str,
    nonce: &str,
    dkim_public_key: &str,
    account_url: Option<&str>,
) -> Vec<u8> {
    format!(
        "chatmail-relay-status-v1\ndomain={mail_domain}\nnonce={nonce}\ndkim={dkim_public_key}\nacme={}\n",
        account_url.unwrap_or("")
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces() {
        assert!(valid_nonce("abcdefghijklmnop"));
        assert!(valid_nonce(&"A-_9".repeat(32)));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce(&"a".repeat(129)));
        assert!(!valid_nonce("abcdefghijklmnop\n"));
        assert!(!valid_nonce("abcdefgh&ijklmnop"));
    }

    #[test]
    fn the_signed_message_names_every_fact() {
        let message = String::from_utf8(proof_message(
            "chat.example.org",
            "n0nce-n0nce-n0nce",
            "MIIB",
            Some("https://ca/acct/1"),
        ))
        .unwrap();
        assert_eq!(
            message,
            "chatmail-relay-status-v1\ndomain=chat.example.org\nnonce=n0nce-n0nce-n0nce\ndkim=MIIB\nacme=https://ca/acct/1\n"
        );
    }

    #[test]
    fn documents_round_trip_and_old_ones_have_no_proof() {
        let json = r#"{"format":1,"version":"0.1.0","mail_domain":"a.example","dkim":{"selector":"opendkim","record_name":"opendkim._domainkey.a.example","txt":"v=DKIM1","public_key":"MIIB"},"acme":{"directory_url":"https://ca/dir","account_url":null},"health":{"status":"ok","maddy_running":true,"accounts_store_ok":true,"certificate_placeholder":false,"certificate_not_after":1}}"#;
        let status: RelayStatus = serde_json::from_str(json).unwrap();
        assert!(status.proof.is_none());
        let again: RelayStatus =
            serde_json::from_str(&serde_json::to_string(&status).unwrap()).unwrap();
        assert_eq!(again, status);
    }
}
