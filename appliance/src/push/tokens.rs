//! The device-token store: per account, the tokens its clients set, each with the time of
//! its last set.
//!
//! Upstream's rules (research/chatmail.md §1.4, "Sets"): setting a token adds it (a
//! second device never replaces the first) and refreshes its time; a token expires 90
//! days after its last set; one stamped more than 60 s in the future is dropped; a token
//! the notification service calls gone (HTTP 410) is removed. This is what the IMAP
//! front's `SETMETADATA`/`GETMETADATA INBOX /private/devicetoken` calls: [`TokenStore::add`],
//! [`TokenStore::valid`], and the notifier's [`TokenStore::remove`].
//!
//! Clients are not trusted with the disk: a token is at most [`MAX_TOKEN_LEN`] bytes of
//! printable ASCII without spaces (Delta Chat sends `openpgp:` and base64, about 900
//! bytes; GETMETADATA joins tokens with spaces, so a space would split one), and an
//! account keeps at most [`MAX_TOKENS_PER_ACCOUNT`], the oldest going first.
//!
//! Calls block (disk I/O, fsync); async callers run them on the blocking thread pool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Clock, StoreError};

/// address → JSON object `{token: unix time of its last set}`.
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("device_tokens");

/// A token expires this long after its last set (upstream: 90 days).
pub const TOKEN_LIFETIME_SECS: u64 = 90 * 86_400;

/// A token stamped further than this in the future is dropped (upstream: 60 s).
pub const FUTURE_TOLERANCE_SECS: u64 = 60;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Tokens kept per account; setting one more drops the one set longest ago.
pub const MAX_TOKENS_PER_ACCOUNT: usize = 16;

/// Longest address accepted (RFC 5321's path limit is 256; this is generous).
const MAX_ADDRESS_LEN: usize = 320;

/// Why a token was not stored.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// An empty token.
    #[error("the device token is empty")]
    Empty,
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("the device token is {len} bytes long; at most {MAX_TOKEN_LEN} are accepted")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A space, control character or non-ASCII byte.
    #[error(
        "the device token has byte 0x{byte:02x} at offset {offset}; only printable ASCII \
         without spaces is accepted"
    )]
    NotPrintable {
        /// The byte.
        byte: u8,
        /// Where.
        offset: usize,
    },
    /// Not an address.
    #[error("not an account address: {0:?}")]
    BadAddress(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks that `token` may be stored (the IMAP front can answer with this before storing).
pub fn check_token(token: &str) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong { len: token.len() });
    }
    match token.bytes().position(|b| !b.is_ascii_graphic()) {
        Some(offset) => Err(TokenError::NotPrintable {
            byte: token.as_bytes()[offset],
            offset,
        }),
        None => Ok(()),
    }
}

/// Whether a token last set at `set_at` still counts at `now`.
fn is_valid(set_at: u64, now: u64) -> bool {
    set_at <= now.saturating_add(FUTURE_TOLERANCE_SECS)
        && now.saturating_sub(set_at) <= TOKEN_LIFETIME_SECS
}

/// The addresses' keys: lower case, as the delivery hook reports recipients.
fn account_key(address: &str) -> Result<String, TokenError> {
    if address.is_empty() || address.len() > MAX_ADDRESS_LEN || !address.contains('@') {
        return Err(TokenError::BadAddress(
            address.chars().take(MAX_ADDRESS_LEN).collect(),
        ));
    }
    Ok(address.to_ascii_lowercase())
}

type Tokens = BTreeMap<String, u64>;

/// The token store. Cheap to clone.
#[derive(Clone)]
pub struct TokenStore {
    db: Arc<Database>,
    path: PathBuf,
    clock: Arc<dyn Clock>,
}

impl TokenStore {
    /// The store on `db` (see [`super::open`]).
    pub(super) fn new(
        db: Arc<Database>,
        path: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<TokenStore, StoreError> {
        super::ensure_table(&db, path, TOKENS)?;
        Ok(TokenStore {
            db,
            path: path.to_path_buf(),
            clock,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::new(&self.path, e)
    }

    /// Adds `token` to `address` or refreshes its time (`SETMETADATA`). Expired tokens of
    /// the account are pruned on the way; above [`MAX_TOKENS_PER_ACCOUNT`] the one set
    /// longest ago goes.
    pub fn add(&self, address: &str, token: &str) -> Result<(), TokenError> {
        check_token(token)?;
        let key = account_key(address)?;
        let now = self.clock.now();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(TOKENS).map_err(|e| self.err(e))?;
            let mut tokens = self.read(&table, &key)?;
            tokens.retain(|_, set_at| is_valid(*set_at, now));
            tokens.insert(token.to_string(), now);
            while tokens.len() > MAX_TOKENS_PER_ACCOUNT {
                let oldest = oldest_first(&tokens)[0].clone();
                tokens.remove(&oldest);
            }
            let encoded = serde_json::to_string(&tokens).expect("maps serialise");
            table
                .insert(key.as_str(), encoded.as_str())
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The tokens of `address` that count now, set longest ago first (`GETMETADATA`; the
    /// notifier's recipients).
    pub fn valid(&self, address: &str) -> Result<Vec<String>, StoreError> {
        let Ok(key) = account_key(address) else {
            return Ok(Vec::new());
        };
        let now = self.clock.now();
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(TOKENS).map_err(|e| self.err(e))?;
        let mut tokens = self.read(&table, &key)?;
        tokens.retain(|_, set_at| is_valid(*set_at, now));
        Ok(oldest_first(&tokens))
    }

    /// Removes one token of `address` (the notification service answered 410). Returns
    /// whether it was there.
    pub fn remove(&self, address: &str, token: &str) -> Result<bool, StoreError> {
        let Ok(key) = account_key(address) else {
            return Ok(false);
        };
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut table = txn.open_table(TOKENS).map_err(|e| self.err(e))?;
            let mut tokens = self.read(&table, &key)?;
            let removed = tokens.remove(token).is_some();
            if tokens.is_empty() {
                table.remove(key.as_str()).map_err(|e| self.err(e))?;
            } else if removed {
                let encoded = serde_json::to_string(&tokens).expect("maps serialise");
                table
                    .insert(key.as_str(), encoded.as_str())
                    .map_err(|e| self.err(e))?;
            }
            removed
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    /// Removes every token of `address` (its account is being deleted).
    // Called by account expiry, which is not built yet.
    #[allow(dead_code)]
    pub fn remove_account(&self, address: &str) -> Result<bool, StoreError> {
        let key = address.to_ascii_lowercase();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut table = txn.open_table(TOKENS).map_err(|e| self.err(e))?;
            let removed = table.remove(key.as_str()).map_err(|e| self.err(e))?;
            removed.is_some()
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    /// The stored map of `key`; a damaged record counts as empty (the next set rewrites it).
    fn read(
        &self,
        table: &impl ReadableTable<&'static str, &'static str>,
        key: &str,
    ) -> Result<Tokens, StoreError> {
        let Some(value) = table.get(key).map_err(|e| self.err(e))? else {
            return Ok(Tokens::new());
        };
        Ok(serde_json::from_str(value.value()).unwrap_or_else(|e| {
            tracing::warn!(address = key, "damaged device-token record dropped: {e}");
            Tokens::new()
        }))
    }
}

/// The tokens ordered by the time of their last set, then by text.
fn oldest_first(tokens: &Tokens) -> Vec<String> {
    let mut list: Vec<(&u64, &String)> = tokens.iter().map(|(t, at)| (at, t)).collect();
    list.sort();
    list.into_iter().map(|(_, t)| t.clone()).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock the test sets.
    #[derive(Default)]
    pub struct ManualClock(pub AtomicU64);

    impl ManualClock {
        pub fn at(now: u64) -> Arc<ManualClock> {
            Arc::new(ManualClock(AtomicU64::new(now)))
        }
        pub fn set(&self, now: u64) {
            self.0.store(now, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    const T0: u64 = 1_800_000_000;
    const A: &str = "alice@chat.example";

    fn store(dir: &Path, clock: Arc<ManualClock>) -> TokenStore {
        super::super::open(&dir.join("push.redb"), clock).unwrap().0
    }

    #[test]
    fn set_adds_never_replaces_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T0);
        let s = store(dir.path(), clock.clone());
        s.add(A, "1111").unwrap();
        s.add("Alice@Chat.Example", "2222").unwrap();
        s.add(A, "1111").unwrap();
        assert_eq!(s.valid(A).unwrap(), ["1111", "2222"]);
        assert!(s.valid("bob@chat.example").unwrap().is_empty());
        drop(s);
        let s = store(dir.path(), clock);
        assert_eq!(s.valid(A).unwrap(), ["1111", "2222"]);
    }

    #[test]
    fn tokens_expire_90_days_after_their_last_set() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T0);
        let s = store(dir.path(), clock.clone());
        s.add(A, "old").unwrap();
        clock.set(T0 + 10 * 86_400);
        s.add(A, "new").unwrap();
        clock.set(T0 + TOKEN_LIFETIME_SECS);
        assert_eq!(s.valid(A).unwrap(), ["old", "new"]);
        clock.set(T0 + TOKEN_LIFETIME_SECS + 1);
        assert_eq!(s.valid(A).unwrap(), ["new"]);
        // A set refreshes: "new" set again lives 90 days from now.
        s.add(A, "new").unwrap();
        clock.set(T0 + 2 * TOKEN_LIFETIME_SECS);
        assert_eq!(s.valid(A).unwrap(), ["new"]);
        clock.set(T0 + 2 * TOKEN_LIFETIME_SECS + 2);
        assert!(s.valid(A).unwrap().is_empty());
    }

    #[test]
    fn tokens_from_the_future_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        // Set while the clock was wrong (ahead), read after it was corrected.
        let clock = ManualClock::at(T0 + 61);
        let s = store(dir.path(), clock.clone());
        s.add(A, "ahead-61").unwrap();
        clock.set(T0 + 60);
        s.add(A, "ahead-60").unwrap();
        clock.set(T0);
        assert_eq!(s.valid(A).unwrap(), ["ahead-60"]);
        // Pruned for good by the next set.
        s.add(A, "now").unwrap();
        clock.set(T0 + 61);
        assert_eq!(s.valid(A).unwrap(), ["now", "ahead-60"]);
    }

    #[test]
    fn remove_one_token_and_whole_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), ManualClock::at(T0));
        s.add(A, "1111").unwrap();
        s.add(A, "2222").unwrap();
        assert!(s.remove(A, "1111").unwrap());
        assert!(!s.remove(A, "1111").unwrap());
        assert_eq!(s.valid(A).unwrap(), ["2222"]);
        assert!(s.remove(A, "2222").unwrap());
        assert!(s.valid(A).unwrap().is_empty());
        s.add(A, "3333").unwrap();
        assert!(s.remove_account(A).unwrap());
        assert!(!s.remove_account(A).unwrap());
        assert!(s.valid(A).unwrap().is_empty());
    }

    #[test]
    fn an_account_keeps_at_most_16_tokens_dropping_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T0);
        let s = store(dir.path(), clock.clone());
        for i in 0..MAX_TOKENS_PER_ACCOUNT + 4 {
            clock.set(T0 + i as u64);
            s.add(A, &format!("token-{i:02}")).unwrap();
        }
        let kept = s.valid(A).unwrap();
        assert_eq!(kept.len(), MAX_TOKENS_PER_ACCOUNT);
        assert_eq!(kept[0], "token-04");
        assert_eq!(kept.last().unwrap(), "token-19");
    }

    #[test]
    fn hostile_tokens_are_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), ManualClock::at(T0));
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let cases: [(&str, &str); 5] = [
            ("", "the device token is empty"),
            (
                &long,
                "the device token is 4097 bytes long; at most 4096 are accepted",
            ),
            ("two words", "byte 0x20 at offset 3"),
            ("line\nbreak", "byte 0x0a at offset 4"),
            ("caf\u{e9}", "byte 0xc3 at offset 3"),
        ];
        for (token, message) in cases {
            let err = s.add(A, token).unwrap_err().to_string();
            assert!(err.contains(message), "{token:?}: {err}");
        }
        assert!(matches!(
            s.add("no-at-sign", "1111"),
            Err(TokenError::BadAddress(_))
        ));
        assert!(s.valid(A).unwrap().is_empty());
        // The longest allowed token, and what Delta Chat sends, are fine.
        s.add(A, &"a".repeat(MAX_TOKEN_LEN)).unwrap();
        s.add(A, "openpgp:wcFMA+/9Zz0=").unwrap();
        assert_eq!(s.valid(A).unwrap().len(), 2);
    }
}
