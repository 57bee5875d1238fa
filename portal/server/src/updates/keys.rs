//! `chatmail-portal release-key`: the operator's release signing key pair (minisign,
//! research/crates.md §10).
//!
//! The secret key is written to a file with mode 0600 (created new: an existing key is
//! never overwritten, since every device in the field trusts it) and never enters the
//! database, so a database leak cannot sign updates. The public key is printed and written
//! beside it; it goes into relay configs as `updates.signing_public_key`.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File names inside the key directory.
pub const SECRET_FILE: &str = "release.key";
pub const PUBLIC_FILE: &str = "release.pub";

/// Environment variable with the key's password, if it has one.
pub const PASSWORD_ENV: &str = "PORTAL_RELEASE_KEY_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} already exists; devices trust the key in it, so it is not replaced")]
    Exists(PathBuf),
    #[error("{path} can be read by other users (mode {mode:o}); run chmod 600 {path}")]
    Readable { path: PathBuf, mode: u32 },
    #[error(
        "{path}: not a minisign secret key, or the wrong password in {PASSWORD_ENV}: {message}"
    )]
    Bad { path: PathBuf, message: String },
    #[error("minisign: {0}")]
    Minisign(String),
}

/// The default key directory: `<data dir>/release-key`.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("release-key")
}

/// Makes a key pair in `dir` (created with mode 0700 if missing); returns the public key
/// line. With [`PASSWORD_ENV`] set, the secret key is encrypted with it.
pub fn generate(dir: &Path) -> Result<String, KeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    // Only the key directory itself is private; its parents (the data directory, which the
    // portal's PostgreSQL user must enter) keep their usual permissions.
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(dir)(e)),
        _ => {}
    }
    let secret_path = dir.join(SECRET_FILE);
    let public_path = dir.join(PUBLIC_FILE);
    if secret_path.exists() {
        return Err(KeyError::Exists(secret_path));
    }
    let password = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
    let pair = match &password {
        Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p.clone())),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| KeyError::Minisign(e.to_string()))?;
    let secret_box = pair
        .sk
        .to_box(Some("chatmail-portal release key"))
        .map_err(|e| KeyError::Minisign(e.to_string()))?;
    let public_line = pair.pk.to_base64();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists(secret_path.clone()),
            _ => KeyError::Io {
                path: secret_path.clone(),
                source,
            },
        })?;
    file.write_all(secret_box.to_string().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(&secret_path))?;
    let public_text =
        format!("untrusted comment: chatmail-portal release public key\n{public_line}\n");
    std::fs::write(&public_path, public_text).map_err(io(&public_path))?;
    Ok(public_line)
}

/// A secret key file, checked for its permissions, with its public key.
pub struct SigningKey {
    pub secret: minisign::SecretKey,
    pub public: minisign::PublicKey,
}

/// Loads the secret key from `path` (refusing a file others can read) and derives its
/// public key.
pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Readable {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |message: String| KeyError::Bad {
        path: path.to_path_buf(),
        message,
    };
    let secret_box = minisign::SecretKeyBox::from_string(&text).map_err(|e| bad(e.to_string()))?;
    let password = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
    let secret = match password {
        Some(p) => secret_box.into_secret_key(Some(p)),
        None => secret_box.into_unencrypted_secret_key(),
    }
    .map_err(|e| bad(e.to_string()))?;
    let public = minisign::PublicKey::from_secret_key(&secret).map_err(|e| bad(e.to_string()))?;
    Ok(SigningKey { secret, public })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_private_load_and_are_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let public = generate(&keys).unwrap();
        let secret_path = keys.join(SECRET_FILE);
        let mode = std::fs::metadata(&secret_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        // The public key is what a relay config accepts.
        chatmail_shared::signing_key::UpdateSigningKey::parse(&public).unwrap();
        let pub_file = std::fs::read_to_string(keys.join(PUBLIC_FILE)).unwrap();
        assert!(pub_file.contains(&public));
        let loaded = load(&secret_path).unwrap();
        assert_eq!(loaded.public.to_base64(), public);
        // A second run keeps the first key.
        assert!(matches!(generate(&keys), Err(KeyError::Exists(_))));
        assert_eq!(load(&secret_path).unwrap().public.to_base64(), public);
        // A key others can read is refused.
        std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&secret_path).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
