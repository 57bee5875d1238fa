//! The keyring that seals DNS provider credentials at rest.
//!
//! Operators give it with `--secret-keys` / `PORTAL_SECRET_KEYS` as
//! `"<id>:<base64 32-byte key>,…"` (first key seals, all open; rotation is described in
//! `chatmail_dns_providers::credentials`). Without it, the portal makes one key on first
//! start and keeps it in `<data dir>/secret-keys` (mode 0600), so a portal started with no
//! configuration still never stores a credential in clear; keeping that key away from the
//! database (the environment variable) is better, and the log says so.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use base64::Engine;
use chatmail_dns_providers::credentials::Keyring;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("PORTAL_SECRET_KEYS (--secret-keys) is not usable: {0}")]
    BadConfig(String),
    #[error("the key file {path} is not usable: {detail}")]
    BadFile { path: String, detail: String },
}

/// The keyring from the configuration, or from (and on first start into) the data directory.
pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<Keyring, SecretsError> {
    if let Some(text) = configured {
        return Keyring::parse(text).map_err(|err| SecretsError::BadConfig(err.to_string()));
    }
    let path = data_dir.join("secret-keys");
    let bad = |detail: String| SecretsError::BadFile {
        path: path.display().to_string(),
        detail,
    };
    if !path.exists() {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let line = format!(
            "k1:{}\n",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| bad(err.to_string()))?;
        file.write_all(line.as_bytes())
            .map_err(|err| bad(err.to_string()))?;
        tracing::warn!(
            path = %path.display(),
            "made a key for DNS credentials in the data directory; for production, move it to PORTAL_SECRET_KEYS"
        );
    }
    let text = std::fs::read_to_string(&path).map_err(|err| bad(err.to_string()))?;
    Keyring::parse(text.trim()).map_err(|err| bad(err.to_string()))
}
