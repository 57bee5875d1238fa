//! Push notifications: when mail reaches an account with device tokens, Delta Chat's
//! notification service is told, so that the phone wakes up and fetches it.
//!
//! Upstream keeps the tokens a client sets by IMAP METADATA (`/private/devicetoken`) and,
//! on every new message, POSTs each of them to the notification service, retrying on a
//! fixed schedule from a queue that survives restarts (research/chatmail.md §1.4). Here:
//! [`tokens`] is the per-account token store, [`queue`] the persistent queue of pending
//! notifications, [`post`] the one HTTP request, and [`notifier`] the delivery hook and
//! the worker that sends and retries. Tokens and queue share one redb file on `/perm`
//! ([`open`]), so both are crash-safe in the same way as the account store.

pub mod cli;
pub mod notifier;
pub mod post;
pub mod queue;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::Database;

/// The push database failed.
#[derive(Debug, thiserror::Error)]
#[error("push database {path}: {message}")]
pub struct StoreError {
    /// The file.
    pub path: PathBuf,
    /// What happened.
    pub message: String,
}

impl StoreError {
    fn new(path: &Path, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// Seconds since the Unix epoch, injectable so tests control expiry and deadlines.
pub trait Clock: Send + Sync + 'static {
    /// Now, in Unix seconds.
    fn now(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        crate::auth::unix_now()
    }
}

/// Opens (or creates) the push database at `path`: the token store and the pending queue
/// on the same file. After an unclean shutdown redb repairs the file here.
pub fn open(
    path: &Path,
    clock: Arc<dyn Clock>,
) -> Result<(tokens::TokenStore, queue::PendingQueue), StoreError> {
    let db = Arc::new(Database::create(path).map_err(|e| StoreError::new(path, e))?);
    let tokens = tokens::TokenStore::new(db.clone(), path, clock)?;
    let queue = queue::PendingQueue::new(db, path)?;
    Ok((tokens, queue))
}

/// Creates `table` if missing, so read transactions never see it absent.
fn ensure_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    db: &Database,
    path: &Path,
    table: redb::TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(|e| StoreError::new(path, e))?;
    txn.open_table(table)
        .map_err(|e| StoreError::new(path, e))?;
    txn.commit().map_err(|e| StoreError::new(path, e))
}
