//! The persistent queue of pending notifications: one item per (recipient, token) and new
//! message, kept until the notification service took it, called the token gone, or the
//! deadline passed.
//!
//! Upstream writes each item as a file (address, start time, token) and re-queues all of
//! them when the notifier starts, deleting what it cannot read (research/chatmail.md §1.4,
//! "Restart"). Here the items are rows of the push database, so a crash leaves each one
//! whole or absent; a row that does not parse (a damaged or foreign record) is deleted
//! with a log line when the queue is loaded. The queue has a ceiling
//! ([`MAX_PENDING`]): while the notification service is down, a flood of mail cannot fill
//! `/perm`.
//!
//! Calls block (disk I/O, fsync); async callers run them on the blocking thread pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::StoreError;

/// id → `"<address>\n<start unix time>\n<token>"`.
const PENDING: TableDefinition<u64, &str> = TableDefinition::new("push_pending");

/// Most items kept at once (about 50 MB with Delta Chat's tokens).
pub const MAX_PENDING: u64 = 50_000;

/// One notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its row.
    pub id: u64,
    /// The recipient whose token it is.
    pub address: String,
    /// Unix time of the delivery that caused it; the deadline counts from here.
    pub start: u64,
    /// The device token, sent as the request body.
    pub token: String,
}

impl Pending {
    fn encode(&self) -> String {
        format!("{}\n{}\n{}", self.address, self.start, self.token)
    }

    fn decode(id: u64, text: &str) -> Option<Pending> {
        let mut parts = text.splitn(3, '\n');
        let address = parts.next().filter(|a| !a.is_empty())?;
        let start = parts.next()?.parse().ok()?;
        let token = parts.next().filter(|t| !t.is_empty())?;
        Some(Pending {
            id,
            address: address.to_string(),
            start,
            token: token.to_string(),
        })
    }
}

/// Why items were not queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// [`MAX_PENDING`] items are waiting already.
    #[error("{MAX_PENDING} notifications are pending already")]
    Full,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The queue. Cheap to clone.
#[derive(Clone)]
pub struct PendingQueue {
    db: Arc<Database>,
    path: PathBuf,
}

impl PendingQueue {
    /// The queue on `db` (see [`super::open`]).
    pub(super) fn new(db: Arc<Database>, path: &Path) -> Result<PendingQueue, StoreError> {
        super::ensure_table(&db, path, PENDING)?;
        Ok(PendingQueue {
            db,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::new(&self.path, e)
    }

    /// Queues one item per token for `address`, all in one durable transaction.
    pub fn create(
        &self,
        address: &str,
        start: u64,
        tokens: &[String],
    ) -> Result<Vec<Pending>, QueueError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let items = {
            let mut table = txn.open_table(PENDING).map_err(|e| self.err(e))?;
            if table.len().map_err(|e| self.err(e))? + tokens.len() as u64 > MAX_PENDING {
                return Err(QueueError::Full);
            }
            let first = match table.last().map_err(|e| self.err(e))? {
                Some((id, _)) => id.value() + 1,
                None => 0,
            };
            let mut items = Vec::with_capacity(tokens.len());
            for (id, token) in (first..).zip(tokens) {
                let item = Pending {
                    id,
                    address: address.to_string(),
                    start,
                    token: token.clone(),
                };
                table
                    .insert(item.id, item.encode().as_str())
                    .map_err(|e| self.err(e))?;
                items.push(item);
            }
            items
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(items)
    }

    /// Deletes a finished (or dropped) item.
    pub fn finish(&self, id: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(PENDING)
            .map_err(|e| self.err(e))?
            .remove(id)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    /// Every pending item, oldest first, for re-queueing at start. Rows that do not parse
    /// are deleted, each with a log line.
    pub fn load(&self) -> Result<Vec<Pending>, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let items = {
            let mut table = txn.open_table(PENDING).map_err(|e| self.err(e))?;
            let mut items = Vec::new();
            let mut damaged = Vec::new();
            for row in table.iter().map_err(|e| self.err(e))? {
                let (id, text) = row.map_err(|e| self.err(e))?;
                match Pending::decode(id.value(), text.value()) {
                    Some(item) => items.push(item),
                    None => damaged.push(id.value()),
                }
            }
            for id in damaged {
                tracing::warn!(id, "deleting an unreadable pending push notification");
                table.remove(id).map_err(|e| self.err(e))?;
            }
            items
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(items)
    }

    /// Number of pending items.
    #[cfg(test)]
    pub fn len(&self) -> Result<u64, StoreError> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(PENDING).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }

    /// Writes a raw row, as a damaged or half-written record would look (tests only).
    #[cfg(test)]
    pub(crate) fn insert_raw(&self, id: u64, text: &str) {
        let txn = self.db.begin_write().unwrap();
        txn.open_table(PENDING).unwrap().insert(id, text).unwrap();
        txn.commit().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::tokens::tests::ManualClock;

    fn queue(dir: &Path) -> PendingQueue {
        super::super::open(&dir.join("push.redb"), ManualClock::at(0))
            .unwrap()
            .1
    }

    #[test]
    fn items_survive_reopening_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path());
        let tokens = vec!["t1".to_string(), "t2".to_string()];
        let items = q.create("a@x.org", 100, &tokens).unwrap();
        assert_eq!(items.len(), 2);
        assert_ne!(items[0].id, items[1].id);
        q.finish(items[0].id).unwrap();
        drop(q);
        let q = queue(dir.path());
        assert_eq!(q.load().unwrap(), vec![items[1].clone()]);
        // New ids come after every pending one, so a new item never takes a pending row.
        let more = q.create("a@x.org", 200, &tokens[..1]).unwrap();
        assert!(more[0].id > items[1].id);
    }

    #[test]
    fn the_queue_has_a_ceiling() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path());
        q.create("a@x.org", 100, &["t".to_string()]).unwrap();
        let flood = vec!["t".to_string(); MAX_PENDING as usize];
        assert!(matches!(
            q.create("a@x.org", 100, &flood),
            Err(QueueError::Full)
        ));
        assert_eq!(q.len().unwrap(), 1);
    }

    #[test]
    fn unreadable_rows_are_deleted_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path());
        q.insert_raw(1, "a@x.org\n100\ntoken");
        q.insert_raw(2, "a@x.org\nnot-a-time\ntoken");
        q.insert_raw(3, "a@x.org\n100");
        q.insert_raw(4, "");
        let loaded = q.load().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].token, "token");
        assert_eq!(q.len().unwrap(), 1);
    }
}
