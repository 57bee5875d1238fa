//! The account store: one embedded, crash-safe database file on `/perm`.
//!
//! redb (pure Rust, so it builds into the static musl binary) commits each write
//! transaction atomically and durably, so a crash in the middle of creating an account
//! leaves the account complete or absent. Write transactions are serialised by redb, so two
//! first logins of the same new address cannot both create it: the second finds the first
//! one's record and is checked against it instead. The store keeps only what upstream
//! keeps: the password hash, and the day of the last login (research/chatmail.md §1.5).
//!
//! Calls block (disk I/O, fsync); async callers run them on the blocking thread pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

/// address → JSON-encoded [`AccountRecord`].
const ACCOUNTS: TableDefinition<&str, &str> = TableDefinition::new("accounts");

/// Environment variable naming a directory: when set, account creation stops right before
/// (`before-commit`) or after (`after-commit`) its commit, drops a marker file there and
/// waits to be killed. Only the crash-safety tests set it; see [`CrashPoint`].
pub const TEST_CRASH_POINT_ENV: &str = "CHATMAIL_TEST_CRASH_POINT";

/// What is stored per account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Record format version.
    pub v: u32,
    /// PHC string of the password hash (argon2id).
    pub hash: String,
    /// Unix time the account was created.
    pub created: u64,
    /// Unix time of the start of the (UTC) day of the last login, or 0 if never.
    pub last_login_day: u64,
}

impl AccountRecord {
    /// Start of the (UTC) day of the last login, or of the creation for an account that
    /// never logged in (one made by `POST /new`): the day the expiry counts inactivity from.
    pub fn last_activity_day(&self) -> u64 {
        self.last_login_day.max(self.created / 86_400 * 86_400)
    }
}

/// Result of [`AccountStore::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The record was written.
    New,
    /// The address already had this record; nothing was written.
    Exists(AccountRecord),
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("account database {path}: {message}")]
    Database {
        /// The file.
        path: PathBuf,
        /// What happened.
        message: String,
    },
    /// A record could not be decoded.
    #[error("account record of {address} is damaged: {message}")]
    Corrupt {
        /// Whose.
        address: String,
        /// What happened.
        message: String,
    },
}

/// A test-only stop inside account creation (see [`TEST_CRASH_POINT_ENV`]).
#[derive(Debug, Clone)]
enum CrashPoint {
    BeforeCommit(PathBuf),
    AfterCommit(PathBuf),
}

impl CrashPoint {
    fn from_env() -> Option<CrashPoint> {
        let value = std::env::var(TEST_CRASH_POINT_ENV).ok()?;
        let (point, dir) = value.split_once(':')?;
        match point {
            "before-commit" => Some(CrashPoint::BeforeCommit(dir.into())),
            "after-commit" => Some(CrashPoint::AfterCommit(dir.into())),
            _ => None,
        }
    }

    /// Marks that `address` reached this point and waits forever (for SIGKILL).
    fn stop(dir: &Path, address: &str) -> ! {
        let _ = std::fs::write(dir.join(format!("reached-{address}")), b"");
        tracing::warn!(address, "test crash point reached; waiting to be killed");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// The account database. Cheap to clone.
#[derive(Clone)]
pub struct AccountStore {
    db: Arc<Database>,
    path: PathBuf,
    crash_point: Option<CrashPoint>,
}

impl AccountStore {
    /// Opens the database, creating it if needed. After an unclean shutdown redb repairs
    /// the file here (the last committed state survives).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| db_err(path, e))?;
        let store = AccountStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
            crash_point: CrashPoint::from_env(),
        };
        // Make sure the table exists, so read transactions never see it missing.
        let txn = store.db.begin_write().map_err(|e| store.err(e))?;
        txn.open_table(ACCOUNTS).map_err(|e| store.err(e))?;
        txn.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        db_err(&self.path, e)
    }

    /// The record of `address`, if it exists.
    pub fn get(&self, address: &str) -> Result<Option<AccountRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
        let value = table.get(address).map_err(|e| self.err(e))?;
        value.map(|v| decode(address, v.value())).transpose()
    }

    /// Writes `record` for `address` unless the address exists already, in one atomic,
    /// durable transaction.
    pub fn create(&self, address: &str, record: &AccountRecord) -> Result<Created, StoreError> {
        let encoded = serde_json::to_string(record).expect("records serialise");
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            let existing = table
                .get(address)
                .map_err(|e| self.err(e))?
                .map(|v| decode(address, v.value()))
                .transpose()?;
            if let Some(existing) = existing {
                return Ok(Created::Exists(existing));
            }
            table
                .insert(address, encoded.as_str())
                .map_err(|e| self.err(e))?;
        }
        if let Some(CrashPoint::BeforeCommit(dir)) = &self.crash_point {
            CrashPoint::stop(dir, address);
        }
        txn.commit().map_err(|e| self.err(e))?;
        if let Some(CrashPoint::AfterCommit(dir)) = &self.crash_point {
            CrashPoint::stop(dir, address);
        }
        Ok(Created::New)
    }

    /// Records a login on `day` (start of the UTC day, Unix time) unless already recorded.
    /// Returns whether anything was written.
    pub fn record_login(&self, address: &str, day: u64) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let changed = {
            let mut table = txn.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            let record = table
                .get(address)
                .map_err(|e| self.err(e))?
                .map(|v| decode(address, v.value()))
                .transpose()?;
            match record {
                Some(mut record) if record.last_login_day != day => {
                    record.last_login_day = day;
                    let encoded = serde_json::to_string(&record).expect("records serialise");
                    table
                        .insert(address, encoded.as_str())
                        .map_err(|e| self.err(e))?;
                    true
                }
                _ => false,
            }
        };
        if changed {
            txn.commit().map_err(|e| self.err(e))?;
        } else {
            txn.abort().map_err(|e| self.err(e))?;
        }
        Ok(changed)
    }

    /// Every account with its record, in address order.
    pub fn all(&self) -> Result<Vec<(String, AccountRecord)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
        let mut all = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let address = key.value().to_string();
            let record = decode(&address, value.value())?;
            all.push((address, record));
        }
        Ok(all)
    }

    /// Removes `address` if its last activity is still before `cutoff` (checked and
    /// removed in one transaction, so a login that just happened keeps the account).
    /// Returns whether it was removed.
    pub fn remove_if_inactive(&self, address: &str, cutoff: u64) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut table = txn.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            let record = table
                .get(address)
                .map_err(|e| self.err(e))?
                .map(|v| decode(address, v.value()))
                .transpose()?;
            match record {
                Some(record) if record.last_activity_day() < cutoff => {
                    table.remove(address).map_err(|e| self.err(e))?;
                    true
                }
                _ => false,
            }
        };
        if removed {
            txn.commit().map_err(|e| self.err(e))?;
        } else {
            txn.abort().map_err(|e| self.err(e))?;
        }
        Ok(removed)
    }

    /// Number of accounts.
    pub fn count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }
}

fn decode(address: &str, text: &str) -> Result<AccountRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        address: address.to_string(),
        message: e.to_string(),
    })
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str) -> AccountRecord {
        AccountRecord {
            v: 1,
            hash: hash.into(),
            created: 1,
            last_login_day: 0,
        }
    }

    #[test]
    fn create_once_then_exists() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(&dir.path().join("a.redb")).unwrap();
        assert_eq!(
            store.create("a@x.org", &record("h1")).unwrap(),
            Created::New
        );
        assert_eq!(
            store.create("a@x.org", &record("h2")).unwrap(),
            Created::Exists(record("h1"))
        );
        assert_eq!(store.count().unwrap(), 1);
        assert!(store.record_login("a@x.org", 86400).unwrap());
        assert!(!store.record_login("a@x.org", 86400).unwrap());
        assert!(!store.record_login("b@x.org", 86400).unwrap());
        assert_eq!(store.get("a@x.org").unwrap().unwrap().last_login_day, 86400);
        drop(store);
        let store = AccountStore::open(&dir.path().join("a.redb")).unwrap();
        assert_eq!(store.get("a@x.org").unwrap().unwrap().hash, "h1");
        assert_eq!(store.get("b@x.org").unwrap(), None);
    }

    #[test]
    fn lists_and_removes_inactive_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(&dir.path().join("a.redb")).unwrap();
        store.create("b@x.org", &record("h")).unwrap();
        store.create("a@x.org", &record("h")).unwrap();
        store.record_login("a@x.org", 10 * 86400).unwrap();
        let all = store.all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, "a@x.org");
        assert_eq!(all[0].1.last_activity_day(), 10 * 86400);
        // Created at second 1 and never logged in: active from day 0.
        assert_eq!(all[1].1.last_activity_day(), 0);
        assert!(!store.remove_if_inactive("a@x.org", 10 * 86400).unwrap());
        assert!(store.remove_if_inactive("a@x.org", 11 * 86400).unwrap());
        assert!(!store.remove_if_inactive("a@x.org", 11 * 86400).unwrap());
        assert_eq!(store.count().unwrap(), 1);
    }

    #[test]
    fn concurrent_creates_write_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(&dir.path().join("a.redb")).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || store.create("a@x.org", &record(&format!("h{i}"))))
            })
            .collect();
        let new = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .filter(|c| *c == Created::New)
            .count();
        assert_eq!(new, 1);
    }
}
