//! The relay's DKIM key: made on the device at first boot, never leaving it.
//!
//! Other relays reject mail without a valid DKIM signature of the sender's domain
//! (research/chatmail.md §1.3), so the device needs a key before it sends anything. The
//! private key stays in `/perm`; Maddy signs with it (its `modify.dkim` reads PKCS#8 PEM,
//! research/maddy-gochatmail.md B.6), and the public half goes into the status document
//! for the portal to publish as `opendkim._domainkey.<domain>` (upstream's selector,
//! research/chatmail.md §4). RSA-2048, as `opendkim-genkey` makes by default.

use std::path::Path;

use chatmail_shared::DkimPublicKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::RsaPrivateKey;

use crate::paths::write_atomic;

/// The DKIM selector (upstream's).
pub const SELECTOR: &str = "opendkim";

/// RSA modulus size.
pub const KEY_BITS: usize = 2048;

/// Loads the key at `path`, generating and storing one first if there is none. Returns the
/// public key as it goes into DNS.
pub fn ensure_key(path: &Path) -> anyhow::Result<DkimPublicKey> {
    let key = if path.exists() {
        let pem = std::fs::read_to_string(path)?;
        RsaPrivateKey::from_pkcs8_pem(&pem)
            .map_err(|e| anyhow::anyhow!("DKIM key {} does not parse: {e}", path.display()))?
    } else {
        tracing::info!(path = %path.display(), "generating the DKIM key ({KEY_BITS}-bit RSA)");
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS)?;
        let pem = key.to_pkcs8_pem(LineEnding::LF)?;
        write_atomic(path, pem.as_bytes(), 0o600)?;
        key
    };
    public_key(&key)
}

/// The DNS form of `key`'s public half (SubjectPublicKeyInfo, as upstream publishes).
pub fn public_key(key: &RsaPrivateKey) -> anyhow::Result<DkimPublicKey> {
    let spki = key.to_public_key().to_public_key_der()?;
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(spki.as_bytes());
    Ok(DkimPublicKey::rsa(&b64)?)
}

/// Signs `message` with the DKIM key at `path` (RSASSA-PKCS1-v1_5 with SHA-256), base64.
/// The status document's proof uses it: the portal checks that the device holds the key
/// before it publishes the public half.
pub fn sign(path: &Path, message: &[u8]) -> anyhow::Result<String> {
    use rsa::signature::{SignatureEncoding, Signer};
    let pem = std::fs::read_to_string(path)?;
    let key = RsaPrivateKey::from_pkcs8_pem(&pem)
        .map_err(|e| anyhow::anyhow!("DKIM key {} does not parse: {e}", path.display()))?;
    let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key).sign(message);
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opendkim.key");
        let first = ensure_key(&path).unwrap();
        let second = ensure_key(&path).unwrap();
        assert_eq!(first, second);
        assert!(first.txt_value().starts_with("v=DKIM1;k=rsa;p=MIIBIjAN"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn signatures_verify_with_the_published_key() {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::signature::Verifier;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opendkim.key");
        let public = ensure_key(&path).unwrap();
        let signature = sign(&path, b"hello").unwrap();
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(public.base64())
            .unwrap();
        let key = rsa::RsaPublicKey::from_public_key_der(&der).unwrap();
        let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .unwrap();
        let signature = rsa::pkcs1v15::Signature::try_from(bytes.as_slice()).unwrap();
        assert!(verifier.verify(b"hello", &signature).is_ok());
        assert!(verifier.verify(b"hellO", &signature).is_err());
    }
}
