//! The certificate every TLS listener serves, and the placeholder used until ACME delivers.
//!
//! Maddy refuses to start without its certificate files (research/maddy-gochatmail.md
//! B.10), and the web server needs one for HTTPS, so the first boot writes a self-signed
//! placeholder for the relay's names (upstream's self-signed mode uses the same names,
//! research/chatmail.md §2). ACME later replaces the files in place; Maddy re-reads them
//! every minute and our listeners switch at once through [`CertResolver`].

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::paths::{write_atomic, Paths};

/// Common name that marks our self-signed placeholder.
pub const PLACEHOLDER_CN: &str = "chatmail relay placeholder certificate";

/// The host names a relay certificate covers: the domain, `www.` and `mta-sts.` (upstream's
/// names, research/chatmail.md §2 and §5).
pub fn relay_names(domain: &str) -> Vec<String> {
    vec![
        domain.to_string(),
        format!("www.{domain}"),
        format!("mta-sts.{domain}"),
    ]
}

/// Makes sure a usable certificate and key are in place before anything reads them:
/// finishes an installation a crash interrupted ([`install`]), and writes the self-signed
/// placeholder if there is no pair or the pair does not belong together. Returns whether
/// it wrote the placeholder.
pub fn ensure_usable(paths: &Paths, domain: &str) -> anyhow::Result<bool> {
    recover_pending(paths);
    if paths.tls_cert().exists() && paths.tls_key().exists() {
        match load_certified_key(&paths.tls_cert(), &paths.tls_key()) {
            Ok(_) => return Ok(false),
            Err(e) => tracing::error!("the stored certificate is unusable ({e:#}); replacing it"),
        }
    }
    let (cert, key) = placeholder_pem(domain)?;
    install(paths, &cert, &key)?;
    tracing::info!(domain, "wrote a self-signed placeholder certificate");
    Ok(true)
}

fn pending(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    path.with_file_name(name)
}

/// Installs a certificate chain and its key so that a crash at any point leaves either
/// the old pair or the new pair: both are first written next to the live files as
/// `*.new` (each durably), then renamed into place; [`ensure_usable`] completes the
/// renames after a crash.
pub fn install(paths: &Paths, chain_pem: &str, key_pem: &str) -> anyhow::Result<()> {
    let (cert, key) = (paths.tls_cert(), paths.tls_key());
    write_atomic(&pending(&key), key_pem.as_bytes(), 0o600)?;
    write_atomic(&pending(&cert), chain_pem.as_bytes(), 0o644)?;
    std::fs::rename(pending(&key), &key)?;
    std::fs::rename(pending(&cert), &cert)?;
    if let Some(dir) = cert.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Rolls an interrupted [`install`] forward if its new pair is complete and matches, and
/// removes it otherwise.
fn recover_pending(paths: &Paths) {
    let (cert, key) = (paths.tls_cert(), paths.tls_key());
    let (new_cert, new_key) = (pending(&cert), pending(&key));
    if new_cert.exists() {
        // The key is written first and renamed first: with the new certificate present,
        // the new key is either still pending or already in place.
        let key_source = if new_key.exists() { &new_key } else { &key };
        if load_certified_key(&new_cert, key_source).is_ok() {
            let _ = std::fs::rename(&new_key, &key);
            let _ = std::fs::rename(&new_cert, &cert);
            tracing::warn!("finished installing a certificate a crash had interrupted");
            return;
        }
    }
    let _ = std::fs::remove_file(&new_cert);
    let _ = std::fs::remove_file(&new_key);
}

/// A self-signed ECDSA P-256 certificate for the relay's names: (certificate PEM, key PEM).
pub fn placeholder_pem(domain: &str) -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(relay_names(domain))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, PLACEHOLDER_CN);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Facts about a served certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Unix time of `notAfter`.
    pub not_after: i64,
    /// Whether it is our placeholder.
    pub placeholder: bool,
}

/// Reads the leaf of a PEM chain.
pub fn cert_info(chain_pem: &[u8]) -> anyhow::Result<CertInfo> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem)
        .next()
        .ok_or_else(|| anyhow::anyhow!("no certificate in the PEM file"))??;
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf)
        .map_err(|e| anyhow::anyhow!("certificate does not parse: {e}"))?;
    let placeholder = cert
        .subject()
        .iter_common_name()
        .any(|cn| cn.as_str().ok() == Some(PLACEHOLDER_CN));
    Ok(CertInfo {
        not_after: cert.validity().not_after.timestamp(),
        placeholder,
    })
}

/// Loads a certificate chain and its key into a rustls key.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{}: no certificate", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let signing_key =
        any_supported_type(&key).map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| {
        anyhow::anyhow!(
            "{} does not belong to {}: {e}",
            key_path.display(),
            cert_path.display()
        )
    })?;
    Ok(certified)
}

/// Hands the current certificate to every handshake; [`CertResolver::set`] swaps it.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// A resolver serving `key`.
    pub fn new(key: CertifiedKey) -> Arc<Self> {
        Arc::new(CertResolver {
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Serves `key` from the next handshake on.
    pub fn set(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }

    /// Reloads from the certificate files.
    pub fn reload(&self, paths: &Paths) -> anyhow::Result<()> {
        self.set(load_certified_key(&paths.tls_cert(), &paths.tls_key())?);
        Ok(())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// A rustls server configuration using `resolver`, for HTTPS (ALPN h2 and http/1.1).
pub fn server_config(resolver: Arc<CertResolver>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_is_recognised_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("perm"), dir.path().join("run"));
        paths.create_dirs().unwrap();
        assert!(ensure_usable(&paths, "chat.example.org").unwrap());
        assert!(!ensure_usable(&paths, "chat.example.org").unwrap());
        let info = cert_info(&std::fs::read(paths.tls_cert()).unwrap()).unwrap();
        assert!(info.placeholder);
        assert!(info.not_after > 4_000_000_000);
        let key = load_certified_key(&paths.tls_cert(), &paths.tls_key()).unwrap();
        let resolver = CertResolver::new(key);
        resolver.reload(&paths).unwrap();
        let _ = server_config(resolver);
    }

    fn paths() -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("perm"), dir.path().join("run"));
        paths.create_dirs().unwrap();
        (dir, paths)
    }

    #[test]
    fn mismatched_pair_is_replaced() {
        let (_dir, paths) = paths();
        let (cert, _) = placeholder_pem("chat.example.org").unwrap();
        let (_, other_key) = placeholder_pem("chat.example.org").unwrap();
        std::fs::write(paths.tls_cert(), cert).unwrap();
        std::fs::write(paths.tls_key(), other_key).unwrap();
        assert!(load_certified_key(&paths.tls_cert(), &paths.tls_key()).is_err());
        assert!(ensure_usable(&paths, "chat.example.org").unwrap());
        load_certified_key(&paths.tls_cert(), &paths.tls_key()).unwrap();
    }

    #[test]
    fn interrupted_install_rolls_forward_or_back() {
        // Crash after the key was renamed, before the certificate was.
        let (_dir, paths) = paths();
        ensure_usable(&paths, "chat.example.org").unwrap();
        let (cert, key) = placeholder_pem("chat.example.org").unwrap();
        std::fs::write(paths.tls_key(), &key).unwrap();
        std::fs::write(pending(&paths.tls_cert()), &cert).unwrap();
        assert!(!ensure_usable(&paths, "chat.example.org").unwrap());
        assert_eq!(std::fs::read_to_string(paths.tls_cert()).unwrap(), cert);
        assert!(!pending(&paths.tls_cert()).exists());

        // Crash while the new key was being written: the old pair stays.
        let (_dir, paths) = self::paths();
        ensure_usable(&paths, "chat.example.org").unwrap();
        let old = std::fs::read_to_string(paths.tls_cert()).unwrap();
        std::fs::write(pending(&paths.tls_key()), "-----BEGIN PRIV").unwrap();
        assert!(!ensure_usable(&paths, "chat.example.org").unwrap());
        assert_eq!(std::fs::read_to_string(paths.tls_cert()).unwrap(), old);
        assert!(!pending(&paths.tls_key()).exists());
    }
}
