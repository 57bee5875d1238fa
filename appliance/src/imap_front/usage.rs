//! How much an account stores, for QUOTA. Maddy keeps message sizes only in its SQLite
//! store, which the static build cannot read without a C library, so the sizes come from
//! Maddy's own CLI (`imap-mboxes list`, `imap-msgs list`, as expiry reads them). That
//! starts Maddy once per folder, so a reading is kept for [`FRESH_FOR`], only one runs at
//! a time, and a reading that takes too long leaves the answer at the last one known.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::expiry::maddy_cli::MaddyCli;

/// How long a reading is used before it is taken again.
pub const FRESH_FOR: Duration = Duration::from_secs(10 * 60);
/// How long a GETQUOTA waits for a reading.
const WAIT: Duration = Duration::from_secs(5);
/// Most accounts remembered.
const MAX_CACHED: usize = 10_000;

/// Storage usage per account.
pub struct Usage {
    cli: MaddyCli,
    readings: Mutex<HashMap<String, (Instant, u64)>>,
    one_at_a_time: Semaphore,
}

impl Usage {
    /// Usage read through `cli`.
    pub fn new(cli: MaddyCli) -> Arc<Usage> {
        Arc::new(Usage {
            cli,
            readings: Mutex::new(HashMap::new()),
            one_at_a_time: Semaphore::new(1),
        })
    }

    fn cached(&self, account: &str) -> Option<(Instant, u64)> {
        self.readings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .copied()
    }

    /// The bytes `account` stores (RFC822.SIZE over every folder), if known.
    pub async fn bytes(self: &Arc<Self>, account: &str) -> Option<u64> {
        let account = account.to_ascii_lowercase();
        let cached = self.cached(&account);
        if let Some((at, bytes)) = cached {
            if at.elapsed() < FRESH_FOR {
                return Some(bytes);
            }
        }
        let this = self.clone();
        let reading = tokio::spawn(async move {
            let _turn = this.one_at_a_time.acquire().await.ok()?;
            // Another session may have read it meanwhile.
            if let Some((at, bytes)) = this.cached(&account) {
                if at.elapsed() < FRESH_FOR {
                    return Some(bytes);
                }
            }
            let cli = this.cli.clone();
            let who = account.clone();
            let total = tokio::task::spawn_blocking(move || -> Result<u64, String> {
                let mut total = 0;
                for mailbox in cli.mailboxes(&who).map_err(|e| e.to_string())? {
                    let messages = cli.messages(&who, &mailbox).map_err(|e| e.to_string())?;
                    total += messages.iter().map(|m| m.size).sum::<u64>();
                }
                Ok(total)
            })
            .await
            .ok()?;
            match total {
                Ok(total) => {
                    let mut readings = this.readings.lock().unwrap_or_else(|e| e.into_inner());
                    if readings.len() >= MAX_CACHED {
                        readings.clear();
                    }
                    readings.insert(account, (Instant::now(), total));
                    Some(total)
                }
                Err(e) => {
                    tracing::warn!("IMAP front: storage usage of {account}: {e}");
                    None
                }
            }
        });
        // The reading goes on in the background if it takes longer; the next asks find it.
        match tokio::time::timeout(WAIT, reading).await {
            Ok(Ok(Some(bytes))) => Some(bytes),
            _ => cached.map(|(_, bytes)| bytes),
        }
    }
}
