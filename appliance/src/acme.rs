//! Certificates from an ACME CA (Let's Encrypt by default) with the HTTP-01 challenge.
//!
//! The ACME account key is made on the device at first boot and kept in `/perm`; the CA
//! assigns the account URL on registration, which the device publishes so the portal can
//! pin it in the CAA record (research/crates.md §2; ARCHITECTURE.md "No secret ever leaves
//! the device"). Maddy's own ACME loader only does DNS-01 (research/maddy-gochatmail.md
//! B.4), so this module obtains the certificate, answers the challenge through our port-80
//! server, and writes the files Maddy and our listeners read. A certificate is renewed
//! when less than [`RENEW_BEFORE_DAYS`] of it remain (a third of Let's Encrypt's 90 days).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chatmail_shared::AcmeAccountUrl;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, Key, NewOrder, OrderStatus,
    RetryPolicy,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::paths::{write_atomic, Paths};
use crate::tls::{self, CertResolver};

/// Renew when fewer days than this remain.
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// How often a valid certificate is looked at again.
const CHECK_INTERVAL: Duration = Duration::from_secs(12 * 3600);

/// First pause after a failed attempt; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// Longest pause between failed attempts.
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// Pending HTTP-01 challenges: token → key authorization, served at
/// `/.well-known/acme-challenge/<token>` by the port-80 server.
#[derive(Clone, Default)]
pub struct Challenges(Arc<RwLock<HashMap<String, String>>>);

impl Challenges {
    /// The key authorization for `token`, if a challenge is pending.
    pub fn get(&self, token: &str) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    fn insert(&self, token: String, key_authorization: String) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, key_authorization);
    }

    fn clear(&self) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The stored account: which directory it belongs to and the URL the CA assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAccount {
    /// The ACME directory URL.
    pub directory: String,
    /// The account URL.
    pub url: String,
}

/// Makes the ACME account key if there is none (first boot).
pub fn ensure_account_key(paths: &Paths) -> anyhow::Result<()> {
    let path = paths.acme_account_key();
    if path.exists() {
        return Ok(());
    }
    let (_, pkcs8) = Key::generate_pkcs8().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(
        &path,
        pem("PRIVATE KEY", pkcs8.secret_pkcs8_der()).as_bytes(),
        0o600,
    )?;
    tracing::info!(path = %path.display(), "generated the ACME account key");
    Ok(())
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The account URL recorded for `directory`, if any.
pub fn account_url(paths: &Paths, directory: &str) -> Option<AcmeAccountUrl> {
    let text = std::fs::read_to_string(paths.acme_account_file()).ok()?;
    let stored: StoredAccount = serde_json::from_str(&text).ok()?;
    if stored.directory != directory {
        return None;
    }
    AcmeAccountUrl::parse(&stored.url).ok()
}

/// What the certificate manager needs.
pub struct CertificateManager {
    /// File layout.
    pub paths: Paths,
    /// The ACME directory URL.
    pub directory: String,
    /// Contact address for the account, if configured.
    pub contact: Option<String>,
    /// Names to certify.
    pub names: Vec<String>,
    /// An extra root certificate (PEM file) to trust for the directory (test CAs only).
    pub extra_root: Option<PathBuf>,
    /// Challenges served by the port-80 server.
    pub challenges: Challenges,
    /// The resolver of our TLS listeners.
    pub resolver: Arc<CertResolver>,
    /// Told when the certificate files change, so Maddy reloads.
    pub changed: Arc<Notify>,
    /// Certificate expiry metrics.
    pub metrics: Metrics,
}

impl CertificateManager {
    /// Keeps a valid certificate in place until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut retry = FIRST_RETRY;
        loop {
            let wait = match self.check_and_renew().await {
                Ok(()) => {
                    retry = FIRST_RETRY;
                    CHECK_INTERVAL
                }
                Err(e) => {
                    tracing::warn!("certificate: {e:#}; trying again in {retry:?}");
                    let wait = retry;
                    retry = (retry * 2).min(MAX_RETRY);
                    wait
                }
            };
            self.challenges.clear();
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Records the current certificate in the metrics and renews it if needed.
    async fn check_and_renew(&self) -> anyhow::Result<()> {
        let current = tls::cert_info(&std::fs::read(self.paths.tls_cert())?)?;
        self.record(&current);
        let now = unix_now();
        if !needs_renewal(&current, now) {
            return Ok(());
        }
        tracing::info!(
            placeholder = current.placeholder,
            days_left = (current.not_after - now) / 86_400,
            "requesting a certificate from {}",
            self.directory
        );
        let account = self.account().await?;
        let (chain, key) = self.issue(&account).await?;
        let info = tls::cert_info(chain.as_bytes())?;
        tls::install(&self.paths, &chain, &key)?;
        self.resolver.reload(&self.paths)?;
        self.changed.notify_one();
        self.record(&info);
        tracing::info!(not_after = info.not_after, "installed a new certificate");
        Ok(())
    }

    fn record(&self, info: &tls::CertInfo) {
        self.metrics.certificate_expiry.set(info.not_after);
        self.metrics
            .certificate_placeholder
            .set(i64::from(info.placeholder));
    }

    fn builder(&self) -> anyhow::Result<instant_acme::AccountBuilder> {
        Ok(match &self.extra_root {
            Some(root) => Account::builder_with_root(root)?,
            None => Account::builder()?,
        })
    }

    /// Restores the account, or registers the device's key with the CA first.
    async fn account(&self) -> anyhow::Result<Account> {
        let key_pem = std::fs::read(self.paths.acme_account_key())?;
        let pkcs8 = PrivatePkcs8KeyDer::from_pem_slice(&key_pem)
            .map_err(|e| anyhow::anyhow!("ACME account key: {e}"))?;
        if let Some(url) = account_url(&self.paths, &self.directory) {
            let account = self
                .builder()?
                .from_parts(url.as_str().to_string(), pkcs8, self.directory.clone())
                .await?;
            return Ok(account);
        }
        let key = Key::from_pkcs8_der(pkcs8.clone_key())?;
        let (account, credentials) = self
            .builder()?
            .create_from_key(
                (key, PrivateKeyDer::Pkcs8(pkcs8.clone_key())),
                self.directory.clone(),
            )
            .await?;
        if let Some(contact) = &self.contact {
            let mailto = format!("mailto:{contact}");
            account.update_contacts(&[mailto.as_str()]).await?;
        }
        let _ = credentials;
        let stored = StoredAccount {
            directory: self.directory.clone(),
            url: account.id().to_string(),
        };
        write_atomic(
            &self.paths.acme_account_file(),
            serde_json::to_string_pretty(&stored)?.as_bytes(),
            0o600,
        )?;
        tracing::info!(url = stored.url, "registered the ACME account");
        Ok(account)
    }

    /// One order: HTTP-01 for every name, then a fresh ECDSA key and CSR. Returns the PEM
    /// chain and the PEM key.
    async fn issue(&self, account: &Account) -> anyhow::Result<(String, String)> {
        let identifiers: Vec<Identifier> = self
            .names
            .iter()
            .map(|n| Identifier::Dns(n.clone()))
            .collect();
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => anyhow::bail!("authorization is {other:?}"),
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| anyhow::anyhow!("the CA offers no HTTP-01 challenge"))?;
            self.challenges.insert(
                challenge.token.clone(),
                challenge.key_authorization().as_str().to_string(),
            );
            challenge.set_ready().await?;
        }
        let patience = RetryPolicy::new().timeout(Duration::from_secs(120));
        let status = order.poll_ready(&patience).await?;
        if status != OrderStatus::Ready {
            anyhow::bail!("the order is {status:?}, not ready");
        }
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(self.names.clone())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        order.finalize_csr(csr.der()).await?;
        let chain = order.poll_certificate(&patience).await?;
        Ok((chain, key.serialize_pem()))
    }
}

/// Whether `current` must be replaced at `now` (Unix time): the placeholder always, a CA
/// certificate once fewer than [`RENEW_BEFORE_DAYS`] remain.
pub fn needs_renewal(current: &tls::CertInfo, now: i64) -> bool {
    current.placeholder || current.not_after - now < RENEW_BEFORE_DAYS * 86_400
}

fn unix_now() -> i64 {
    crate::auth::unix_now() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("perm"), dir.path().join("run"));
        paths.create_dirs().unwrap();
        ensure_account_key(&paths).unwrap();
        let first = std::fs::read(paths.acme_account_key()).unwrap();
        ensure_account_key(&paths).unwrap();
        assert_eq!(first, std::fs::read(paths.acme_account_key()).unwrap());
        let der = PrivatePkcs8KeyDer::from_pem_slice(&first).unwrap();
        Key::from_pkcs8_der(der).unwrap();
    }

    #[test]
    fn account_url_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("perm"), dir.path().join("run"));
        paths.create_dirs().unwrap();
        assert_eq!(account_url(&paths, "https://ca.example/dir"), None);
        let stored = StoredAccount {
            directory: "https://ca.example/dir".into(),
            url: "https://ca.example/acct/1".into(),
        };
        std::fs::write(
            paths.acme_account_file(),
            serde_json::to_string(&stored).unwrap(),
        )
        .unwrap();
        assert_eq!(
            account_url(&paths, "https://ca.example/dir")
                .unwrap()
                .as_str(),
            "https://ca.example/acct/1"
        );
        assert_eq!(account_url(&paths, "https://other.example/dir"), None);
    }

    #[test]
    fn renewal_window() {
        let now = 1_800_000_000;
        let cert = |days: i64, placeholder| tls::CertInfo {
            not_after: now + days * 86_400,
            placeholder,
        };
        assert!(needs_renewal(&cert(10_000, true), now));
        assert!(!needs_renewal(&cert(89, false), now));
        assert!(!needs_renewal(&cert(30, false), now));
        assert!(needs_renewal(&cert(29, false), now));
        assert!(needs_renewal(&cert(-1, false), now));
    }

    #[test]
    fn challenges_map() {
        let c = Challenges::default();
        c.insert("tok".into(), "tok.thumb".into());
        assert_eq!(c.get("tok").as_deref(), Some("tok.thumb"));
        c.clear();
        assert_eq!(c.get("tok"), None);
    }
}
