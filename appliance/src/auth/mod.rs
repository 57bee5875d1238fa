//! Accounts: created on first login, checked on every later one.
//!
//! Upstream creates a relay account the first time someone logs in with an unknown address
//! that passes its rules, and otherwise checks the stored password hash (research/
//! chatmail.md §1.2). [`Accounts`] is that decision, shared by the Dovecot auth socket
//! Maddy asks ([`server`]) and by `POST /new` (which creates an account at once). The wire
//! format is in [`protocol`], the rules in [`rules`], the database in [`store`].

pub mod protocol;
pub mod rules;
pub mod server;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use chatmail_shared::config::Limits;
use chatmail_shared::RelayConfig;

use crate::metrics::Metrics;
use crate::sysload::{self, ResourceLimits};
use rules::Refusal;
use store::{AccountRecord, AccountStore, Created};

/// A successful login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOk {
    /// The account existed and the password matched.
    Existing,
    /// The login created the account.
    Created,
}

/// The account service. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    mail_domain: String,
    limits: Limits,
    registration_open: bool,
    nocreate_file: PathBuf,
    state_dir: PathBuf,
    resources: ResourceLimits,
    store: AccountStore,
    metrics: Metrics,
}

impl Accounts {
    /// The service for `config`, storing in `store`.
    pub fn new(
        config: &RelayConfig,
        store: AccountStore,
        nocreate_file: PathBuf,
        state_dir: PathBuf,
        resources: ResourceLimits,
        metrics: Metrics,
    ) -> Self {
        let accounts = Accounts {
            inner: Arc::new(Inner {
                mail_domain: config.mail_domain.as_str().to_string(),
                limits: config.limits.clone(),
                registration_open: config.registration.open,
                nocreate_file,
                state_dir,
                resources,
                store,
                metrics,
            }),
        };
        accounts.refresh_count();
        accounts
    }

    /// The relay's mail domain.
    pub fn mail_domain(&self) -> &str {
        &self.inner.mail_domain
    }

    /// The configured limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The store (for status reports).
    pub fn store(&self) -> &AccountStore {
        &self.inner.store
    }

    fn refresh_count(&self) {
        if let Ok(n) = self.inner.store.count() {
            self.inner.metrics.accounts.set(n as i64);
        }
    }

    /// The switches and resource checks that gate every new account, in upstream's order:
    /// the "no new accounts" switch first, resources last (the caller checks the rules in
    /// between).
    fn registration_switch(&self) -> Result<(), Refusal> {
        if !self.inner.registration_open || self.inner.nocreate_file.exists() {
            return Err(Refusal::RegistrationClosed);
        }
        Ok(())
    }

    fn resources(&self) -> Result<(), Refusal> {
        sysload::judge(&sysload::read(&self.inner.state_dir), &self.inner.resources)
    }

    /// Handles one login: checks the password of an existing account, or creates the
    /// account if the address is new and allowed. Counts the outcome in the metrics.
    pub async fn login(&self, address: &str, password: &str) -> Result<LoginOk, Refusal> {
        let result = self.login_inner(address, password).await;
        match &result {
            Ok(outcome) => {
                self.inner.metrics.login(true);
                if *outcome == LoginOk::Created {
                    tracing::info!(address, "created account on first login");
                }
            }
            Err(refusal) => {
                self.inner.metrics.login(false);
                self.inner.metrics.refused(*refusal);
                if refusal.is_creation_refusal() {
                    // Upstream logs "registration rejected: <reason>" (research/chatmail.md §1.2).
                    tracing::warn!(address, reason = refusal.label(), "registration rejected");
                } else {
                    tracing::info!(address, reason = refusal.label(), "login refused");
                }
            }
        }
        result
    }

    async fn login_inner(&self, address: &str, password: &str) -> Result<LoginOk, Refusal> {
        let parsed = rules::parse_address(address, &self.inner.mail_domain)?;
        let address = format!("{}@{}", parsed.local, self.inner.mail_domain);
        let existing = self.get(&address).await?;
        if let Some(record) = existing {
            verify(password, &record.hash).await?;
            self.record_login(&address).await;
            return Ok(LoginOk::Existing);
        }
        self.registration_switch()?;
        rules::check_new_account(&self.inner.limits, parsed.local, password)?;
        self.resources()?;
        match self.create_record(&address, password).await? {
            Created::New => {
                self.record_login(&address).await;
                Ok(LoginOk::Created)
            }
            // A concurrent first login created it a moment ago: check against that one.
            Created::Exists(record) => {
                verify(password, &record.hash).await?;
                self.record_login(&address).await;
                Ok(LoginOk::Existing)
            }
        }
    }

    /// Creates `local@domain` with `password` at once (for `POST /new`): the switch, the
    /// rules and the resources are checked as for a first login. `Ok(false)` means the
    /// address exists already (the caller picks another).
    pub async fn create(&self, local: &str, password: &str) -> Result<bool, Refusal> {
        let result = self.create_inner(local, password).await;
        if let Err(refusal) = result {
            self.inner.metrics.refused(refusal);
            tracing::warn!(reason = refusal.label(), "registration rejected");
        }
        result
    }

    async fn create_inner(&self, local: &str, password: &str) -> Result<bool, Refusal> {
        self.registration_switch()?;
        rules::check_new_account(&self.inner.limits, local, password)?;
        self.resources()?;
        let address = format!("{local}@{}", self.inner.mail_domain);
        let created = self.create_record(&address, password).await?;
        if created == Created::New {
            tracing::info!(address, "created account for /new");
        }
        Ok(created == Created::New)
    }

    async fn get(&self, address: &str) -> Result<Option<AccountRecord>, Refusal> {
        let store = self.inner.store.clone();
        let address = address.to_string();
        tokio::task::spawn_blocking(move || store.get(&address))
            .await
            .map_err(|_| Refusal::StoreUnavailable)?
            .map_err(|e| {
                tracing::error!("account store: {e}");
                Refusal::StoreUnavailable
            })
    }

    async fn create_record(&self, address: &str, password: &str) -> Result<Created, Refusal> {
        let hash = hash(password).await?;
        let record = AccountRecord {
            v: 1,
            hash,
            created: unix_now(),
            last_login_day: 0,
        };
        let store = self.inner.store.clone();
        let address_owned = address.to_string();
        let created = tokio::task::spawn_blocking(move || store.create(&address_owned, &record))
            .await
            .map_err(|_| Refusal::StoreUnavailable)?
            .map_err(|e| {
                tracing::error!("account store: {e}");
                Refusal::StoreUnavailable
            })?;
        if created == Created::New {
            self.inner.metrics.creations.inc();
            // Upstream prints "Created address: <addr>" (research/chatmail.md §1.2).
            tracing::info!("Created address: {address}");
            self.refresh_count();
        }
        Ok(created)
    }

    /// Records the login day; a failure is logged, never fatal for the login.
    async fn record_login(&self, address: &str) {
        let store = self.inner.store.clone();
        let address = address.to_string();
        let day = unix_now() / 86_400 * 86_400;
        match tokio::task::spawn_blocking(move || store.record_login(&address, day)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("recording last login: {e}"),
            Err(e) => tracing::warn!("recording last login: {e}"),
        }
    }
}

/// argon2id with the crate's default (OWASP-recommended) parameters, as a PHC string.
async fn hash(password: &str) -> Result<String, Refusal> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await
    .map_err(|_| Refusal::StoreUnavailable)?
    .map_err(|e| {
        tracing::error!("hashing a password: {e}");
        Refusal::StoreUnavailable
    })
}

async fn verify(password: &str, stored: &str) -> Result<(), Refusal> {
    let password = password.to_string();
    let stored = stored.to_string();
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored).map_err(|e| {
            tracing::error!("stored password hash is damaged: {e}");
            Refusal::StoreUnavailable
        })?;
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .map_err(|_| Refusal::WrongPassword)
    })
    .await
    .map_err(|_| Refusal::StoreUnavailable)?
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatmail_shared::MailDomain;

    fn service(dir: &std::path::Path, config: &RelayConfig) -> Accounts {
        let store = AccountStore::open(&dir.join("a.redb")).unwrap();
        Accounts::new(
            config,
            store,
            dir.join("nocreate"),
            dir.to_path_buf(),
            ResourceLimits {
                max_load_1m: 1e9,
                min_available_memory_mb: 0,
                min_free_disk_mb: 0,
            },
            Metrics::new(),
        )
    }

    fn config() -> RelayConfig {
        RelayConfig::new(MailDomain::parse("chat.example.org").unwrap())
    }

    #[tokio::test]
    async fn first_login_creates_then_checks() {
        let dir = tempfile::tempdir().unwrap();
        let a = service(dir.path(), &config());
        let addr = "abcdefghi@chat.example.org";
        assert_eq!(a.login(addr, "123456789").await, Ok(LoginOk::Created));
        assert_eq!(a.login(addr, "123456789").await, Ok(LoginOk::Existing));
        assert_eq!(
            a.login(addr, "wrong-pass").await,
            Err(Refusal::WrongPassword)
        );
        assert_eq!(
            a.login("abcdefghi@other.org", "123456789").await,
            Err(Refusal::ForeignDomain)
        );
        let record = a.store().get(addr).unwrap().unwrap();
        assert!(record.hash.starts_with("$argon2id$"));
        assert!(record.last_login_day > 0);
    }

    #[tokio::test]
    async fn switches_close_registration() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config();
        c.registration.open = false;
        let a = service(dir.path(), &c);
        assert_eq!(
            a.login("abcdefghi@chat.example.org", "123456789").await,
            Err(Refusal::RegistrationClosed)
        );
        let dir = tempfile::tempdir().unwrap();
        let a = service(dir.path(), &config());
        std::fs::write(dir.path().join("nocreate"), "").unwrap();
        assert_eq!(
            a.create("abcdefghi", "123456789").await,
            Err(Refusal::RegistrationClosed)
        );
    }
}
