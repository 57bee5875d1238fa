//! Facts only the device knows, which some DNS records need.
//!
//! The device makes its DKIM key and ACME account on first boot and publishes the public
//! parts (ARCHITECTURE.md, "No secret ever leaves the device"). Until the portal has read
//! them, the DKIM and CAA records are pending. The types here validate what the device
//! reports, because it ends up verbatim in DNS.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::web_url::HttpsUrl;

/// What the device has reported so far. Both parts may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// The public half of the device's DKIM key.
    pub dkim_public_key: Option<DkimPublicKey>,
    /// The URL the CA assigned to the device's ACME account.
    pub acme_account_url: Option<AcmeAccountUrl>,
}

/// Signature algorithm of a DKIM key (RFC 6376 `k=`, RFC 8463 for Ed25519).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimAlgorithm {
    /// RSA; the record carries the SubjectPublicKeyInfo, as upstream's does.
    Rsa,
    /// Ed25519; the record carries the raw 32-byte key (RFC 8463 §4).
    Ed25519,
}

impl DkimAlgorithm {
    /// The `k=` tag value.
    pub fn tag(self) -> &'static str {
        match self {
            DkimAlgorithm::Rsa => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        }
    }
}

/// Why a reported DKIM key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkimKeyError {
    /// Not base64 (after removing PEM armour and whitespace).
    #[error("the DKIM public key is not valid base64")]
    Base64,
    /// Not a DER SubjectPublicKeyInfo holding an RSA key of 1024 to 8192 bits.
    #[error(
        "the DKIM RSA public key must be a SubjectPublicKeyInfo (\"BEGIN PUBLIC KEY\") of 1024 to 8192 bits"
    )]
    NotRsaSpki,
    /// Not exactly 32 bytes.
    #[error("the DKIM Ed25519 public key must be exactly 32 bytes")]
    Ed25519Length,
}

/// A DKIM public key as it goes into the `p=` tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DkimPublicKey {
    algorithm: DkimAlgorithm,
    base64: String,
}

/// DER encoding of the rsaEncryption OID, 1.2.840.113549.1.1.1.
const RSA_ENCRYPTION_OID: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
];

impl DkimPublicKey {
    /// An RSA key, given as PEM (`-----BEGIN PUBLIC KEY-----`) or as the bare base64 of the
    /// DER SubjectPublicKeyInfo (what upstream publishes, research/chatmail.md §4).
    pub fn rsa(input: &str) -> Result<Self, DkimKeyError> {
        let der = decode_pem_or_base64(input)?;
        // SPKI of RSA-1024 is 162 bytes and of RSA-8192 about 1.06 KB.
        let plausible = (160..=1100).contains(&der.len())
            && der[0] == 0x30
            && der
                .windows(RSA_ENCRYPTION_OID.len())
                .take(24)
                .any(|w| w == RSA_ENCRYPTION_OID);
        if !plausible {
            return Err(DkimKeyError::NotRsaSpki);
        }
        Ok(DkimPublicKey {
            algorithm: DkimAlgorithm::Rsa,
            base64: STANDARD.encode(der),
        })
    }

    /// An Ed25519 key: base64 of the raw 32 bytes.
    pub fn ed25519(input: &str) -> Result<Self, DkimKeyError> {
        let raw = decode_pem_or_base64(input)?;
        if raw.len() != 32 {
            return Err(DkimKeyError::Ed25519Length);
        }
        Ok(DkimPublicKey {
            algorithm: DkimAlgorithm::Ed25519,
            base64: STANDARD.encode(raw),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DkimAlgorithm {
        self.algorithm
    }

    /// The `p=` value (canonical base64, no whitespace).
    pub fn base64(&self) -> &str {
        &self.base64
    }

    /// The whole TXT record value, in upstream's form (research/chatmail.md §4):
    /// `v=DKIM1;k=rsa;p=<key>;s=email;t=s`.
    pub fn txt_value(&self) -> String {
        format!(
            "v=DKIM1;k={};p={};s=email;t=s",
            self.algorithm.tag(),
            self.base64
        )
    }
}

fn decode_pem_or_base64(input: &str) -> Result<Vec<u8>, DkimKeyError> {
    let body: String = input
        .lines()
        .filter(|l| !l.trim_start().starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    if body.is_empty() {
        return Err(DkimKeyError::Base64);
    }
    STANDARD.decode(body).map_err(|_| DkimKeyError::Base64)
}

/// Longest account URL accepted. Let's Encrypt's are about 60 characters; the limit keeps
/// the CAA value well within what zone tools and DNS provider APIs handle.
pub const MAX_ACCOUNT_URL_LEN: usize = 200;

/// Why a reported ACME account URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountUrlError {
    /// Not an acceptable HTTPS URL.
    #[error("the ACME account URL {0}")]
    Url(crate::web_url::UrlError),
    /// Would break the CAA value's syntax.
    #[error(
        "the ACME account URL must be at most {MAX_ACCOUNT_URL_LEN} characters and contain no `;`, `\"`, `\\` or spaces"
    )]
    Unsuitable,
}

/// The account URL the CA assigned, for the CAA record's `accounturi` parameter
/// (RFC 8657).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AcmeAccountUrl(HttpsUrl);

impl AcmeAccountUrl {
    /// Validates `input`.
    pub fn parse(input: &str) -> Result<Self, AccountUrlError> {
        let url = HttpsUrl::parse(input).map_err(AccountUrlError::Url)?;
        let s = url.as_str();
        if s.len() > MAX_ACCOUNT_URL_LEN
            || s.chars()
                .any(|c| matches!(c, ';' | '"' | '\\') || c.is_whitespace() || c.is_control())
        {
            return Err(AccountUrlError::Unsuitable);
        }
        Ok(AcmeAccountUrl(url))
    }

    /// The URL text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for AcmeAccountUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DER SPKI header of a 2048-bit RSA key followed by filler: enough for the
    /// plausibility checks here.
    pub(crate) fn fake_rsa_2048_spki() -> String {
        let mut der = vec![
            0x30, 0x82, 0x01, 0x22, 0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D,
            0x01, 0x01, 0x01, 0x05, 0x00, 0x03, 0x82, 0x01, 0x0F, 0x00,
        ];
        der.resize(294, 0xAB);
        STANDARD.encode(der)
    }

    #[test]
    fn rsa_from_base64_and_pem() {
        let b64 = fake_rsa_2048_spki();
        let k = DkimPublicKey::rsa(&b64).unwrap();
        assert_eq!(k.base64(), b64);
        assert!(k
            .txt_value()
            .starts_with("v=DKIM1;k=rsa;p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"));
        assert!(k.txt_value().ends_with(";s=email;t=s"));
        let wrapped: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            wrapped.join("\n")
        );
        assert_eq!(DkimPublicKey::rsa(&pem).unwrap(), k);
    }

    #[test]
    fn rejects_bad_keys() {
        assert_eq!(DkimPublicKey::rsa(""), Err(DkimKeyError::Base64));
        assert_eq!(DkimPublicKey::rsa("p=\"x\""), Err(DkimKeyError::Base64));
        assert_eq!(
            DkimPublicKey::rsa(&STANDARD.encode([0x30; 300])),
            Err(DkimKeyError::NotRsaSpki)
        );
        assert_eq!(
            DkimPublicKey::ed25519(&STANDARD.encode([1; 31])),
            Err(DkimKeyError::Ed25519Length)
        );
        let k = DkimPublicKey::ed25519(&STANDARD.encode([1; 32])).unwrap();
        assert!(k.txt_value().starts_with("v=DKIM1;k=ed25519;p="));
    }

    #[test]
    fn account_url() {
        let u =
            AcmeAccountUrl::parse("https://acme-v02.api.letsencrypt.org/acme/acct/123456").unwrap();
        assert_eq!(
            u.as_str(),
            "https://acme-v02.api.letsencrypt.org/acme/acct/123456"
        );
        assert!(AcmeAccountUrl::parse("https://ca.example/acct;x=1").is_err());
        assert!(AcmeAccountUrl::parse("http://ca.example/acct").is_err());
        let long = format!("https://ca.example/{}", "a".repeat(200));
        assert_eq!(
            AcmeAccountUrl::parse(&long),
            Err(AccountUrlError::Unsuitable)
        );
    }
}
