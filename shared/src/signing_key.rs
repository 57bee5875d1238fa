//! The public key a device uses to check that an update really comes from its portal.
//!
//! Updates are signed with minisign (research/crates.md §10). The key is written into the
//! image, so a typo would make every future update fail verification; it is therefore
//! decoded and checked here, when the config is written.
//!
//! Format (minisign public key): base64 of `"Ed"` ‖ 8-byte key id ‖ 32-byte Ed25519 key.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Why a string is not a minisign public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    /// Not base64, or not 42 bytes once decoded.
    #[error(
        "must be a minisign public key: the base64 line of a .pub file (56 characters, starting with RW)"
    )]
    Format,
    /// Decoded fine, but the algorithm tag is not `Ed`.
    #[error("must be an Ed25519 minisign public key (its algorithm tag is not `Ed`)")]
    Algorithm,
}

/// A minisign Ed25519 public key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UpdateSigningKey {
    base64: String,
    key_id: [u8; 8],
    key: [u8; 32],
}

impl UpdateSigningKey {
    /// Accepts the base64 line alone or a whole `.pub` file (an `untrusted comment:` line
    /// followed by the base64 line).
    pub fn parse(input: &str) -> Result<Self, SigningKeyError> {
        let line = input
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or(SigningKeyError::Format)?;
        if line.len() != 56 {
            return Err(SigningKeyError::Format);
        }
        let bytes = STANDARD.decode(line).map_err(|_| SigningKeyError::Format)?;
        if bytes.len() != 42 {
            return Err(SigningKeyError::Format);
        }
        if &bytes[..2] != b"Ed" {
            return Err(SigningKeyError::Algorithm);
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[2..10]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[10..]);
        Ok(UpdateSigningKey {
            base64: line.to_string(),
            key_id,
            key,
        })
    }

    /// The base64 line, as minisign tools print it.
    pub fn as_str(&self) -> &str {
        &self.base64
    }

    /// The 8-byte key id (as stored, little-endian).
    pub fn key_id(&self) -> [u8; 8] {
        self.key_id
    }

    /// The key id as minisign shows it (upper-case hex of the little-endian number).
    pub fn key_id_hex(&self) -> String {
        self.key_id
            .iter()
            .rev()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// The raw Ed25519 public key.
    pub fn ed25519_key(&self) -> [u8; 32] {
        self.key
    }
}

impl fmt::Debug for UpdateSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UpdateSigningKey({})", self.key_id_hex())
    }
}

impl fmt::Display for UpdateSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key in minisign's format, made for this test.
    fn sample() -> String {
        let mut raw = b"Ed".to_vec();
        raw.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        raw.extend_from_slice(&[9u8; 32]);
        STANDARD.encode(raw)
    }

    #[test]
    fn parses_line_and_pub_file() {
        let line = sample();
        assert!(line.starts_with("RW"));
        let k = UpdateSigningKey::parse(&line).unwrap();
        assert_eq!(k.key_id_hex(), "0807060504030201");
        assert_eq!(k.ed25519_key(), [9u8; 32]);
        let file = format!("untrusted comment: minisign public key 0807060504030201\n{line}\n");
        assert_eq!(UpdateSigningKey::parse(&file).unwrap(), k);
    }

    #[test]
    fn rejects() {
        assert_eq!(UpdateSigningKey::parse(""), Err(SigningKeyError::Format));
        assert_eq!(
            UpdateSigningKey::parse("not a key"),
            Err(SigningKeyError::Format)
        );
        let mut raw = b"XX".to_vec();
        raw.extend_from_slice(&[0u8; 40]);
        assert_eq!(
            UpdateSigningKey::parse(&STANDARD.encode(raw)),
            Err(SigningKeyError::Algorithm)
        );
        let bad = format!("{}!", &sample()[..55]);
        assert_eq!(UpdateSigningKey::parse(&bad), Err(SigningKeyError::Format));
    }
}
