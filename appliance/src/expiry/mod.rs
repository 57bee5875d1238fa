//! Expiry: old and large messages, full mailboxes and inactive accounts go, daily and on
//! demand (`chatmail-appliance expire [--dry-run]`), as upstream's `chatmail-expire` and
//! `chatmail-quota-expire` do (research/chatmail.md §1.6). The rules are in [`rules`].
//!
//! **How mail is removed, and why that way.** Maddy keeps mail in go-imap-sql: rows in
//! `imapsql.db` (SQLite) and each body in a blob file under `messages/`, referenced by
//! ref-counted keys that go-imap-sql maintains in Go, not in SQL. Deleting rows ourselves
//! would leave blob files behind and stale folder counts (research/maddy-pipeline.md
//! §4.3), and reading SQLite would need a C library in the static build. IMAP as the
//! account is not possible either: only password hashes are stored. So every read and
//! change goes through Maddy's own CLI with the config the appliance generates
//! ([`maddy_cli`]): `imap-msgs remove --uid` deletes blobs, rows and counts in one
//! transaction, `imap-acct remove` an account's folders and blobs. The CLI works beside
//! the running server: both open the database with the same busy timeout and exclusive
//! write transactions, so they wait for each other. One caveat: Maddy 0.8 built without
//! cgo has no "update pipe", so an IMAP session that has the folder open is not told
//! (EXPUNGE) at once; it stops seeing the message at its next look. What goes is at least
//! a day old (seen large mail a week, everything else 20 days), long since fetched, and
//! Delta Chat addresses messages by UID, so a late EXPUNGE costs nothing.
//!
//! **Inactive accounts.** The last login is the day in our account store (auth/store.rs),
//! written by the IMAP front after each IMAP login and by the auth service after every
//! successful login. Maddy asks that service with `service=SMTP` for IMAP and submission
//! alike, so unlike upstream (IMAP only) an SMTP login counts too; that can only keep an
//! account longer. An account that never logged in (made by `POST /new`)
//! counts from its creation day. Its record is removed first, checked again in the same
//! transaction (so a login in the meantime keeps it), then Maddy's storage account and its
//! push tokens. Maddy holds no credentials of ours (no `creds` table), so `maddy creds
//! remove` has nothing to do.

pub mod cli;
pub mod maddy_cli;
pub use chatmail_appliance::expiry_rules as rules;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::auth::store::AccountStore;
use crate::metrics::{ExpiryLabel, Metrics};
use crate::push::tokens::TokenStore;
use crate::push::Clock;
use maddy_cli::MaddyCli;
use rules::{KnownAccount, MessageRule, Plan, Policy, StoredMessage};

/// What the expiry works on.
pub struct Expiry {
    /// Maddy's storage, through its CLI.
    pub maddy: MaddyCli,
    /// Our accounts (credentials and last logins).
    pub accounts: AccountStore,
    /// Push tokens, removed with their account.
    pub push_tokens: TokenStore,
    /// The relay's limits.
    pub policy: Policy,
    /// Where removals are counted.
    pub metrics: Metrics,
}

/// What a run found and did.
#[derive(Debug, Default)]
pub struct Report {
    /// What was (or, in a dry run, would be) removed.
    pub plan: Plan,
    /// Accounts and messages that could not be removed (or listed), with the reason.
    pub errors: Vec<String>,
}

impl Expiry {
    /// One run at `now`: works out the plan and, unless `dry_run`, carries it out. Blocks
    /// (Maddy processes, database writes).
    pub fn run(&self, now: u64, dry_run: bool) -> anyhow::Result<Report> {
        let mut report = Report::default();
        let (plan, storage_accounts) = self.survey(now, &mut report.errors)?;
        if !dry_run {
            self.remove_accounts(now, &plan.accounts, &storage_accounts, &mut report.errors);
            self.remove_messages(&plan.messages, &mut report.errors);
            self.metrics.expiry_last_run.set(now as i64);
        }
        report.plan = plan;
        Ok(report)
    }

    /// The plan, and the accounts Maddy's storage has.
    fn survey(&self, now: u64, errors: &mut Vec<String>) -> anyhow::Result<(Plan, Vec<String>)> {
        let known: Vec<KnownAccount> = self
            .accounts
            .all()?
            .into_iter()
            .map(|(address, record)| KnownAccount {
                last_login_day: record.last_activity_day(),
                address,
            })
            .collect();
        let storage_accounts = self.maddy.accounts()?;
        let mut messages = Vec::new();
        for account in &storage_accounts {
            // An account that goes whole needs no listing.
            let inactive = known.iter().any(|k| {
                &k.address == account && rules::is_inactive(&self.policy, now, k.last_login_day)
            });
            if inactive {
                continue;
            }
            match self.list_account(account) {
                Ok(list) => messages.extend(list),
                Err(e) => errors.push(format!("listing {account}: {e}")),
            }
        }
        Ok((
            rules::plan(&self.policy, now, &known, &messages),
            storage_accounts,
        ))
    }

    fn list_account(&self, account: &str) -> Result<Vec<StoredMessage>, maddy_cli::CliError> {
        let mut all = Vec::new();
        for mailbox in self.maddy.mailboxes(account)? {
            all.extend(self.maddy.messages(account, &mailbox)?);
        }
        Ok(all)
    }

    fn remove_accounts(
        &self,
        now: u64,
        accounts: &[KnownAccount],
        storage_accounts: &[String],
        errors: &mut Vec<String>,
    ) {
        let cutoff = now.saturating_sub(self.policy.max_inactivity);
        for account in accounts {
            let address = account.address.as_str();
            match self.accounts.remove_if_inactive(address, cutoff) {
                Ok(true) => {}
                Ok(false) => continue, // logged in since the survey
                Err(e) => {
                    errors.push(format!("removing {address}: {e}"));
                    continue;
                }
            }
            if storage_accounts.iter().any(|a| a == address) {
                if let Err(e) = self.maddy.remove_account(address) {
                    errors.push(format!("removing the mailbox of {address}: {e}"));
                }
            }
            if let Err(e) = self.push_tokens.remove_account(address) {
                errors.push(format!("removing the push tokens of {address}: {e}"));
            }
            self.metrics.expiry_accounts.inc();
            tracing::info!(address, "expiry: removed inactive account");
        }
        if let Ok(n) = self.accounts.count() {
            self.metrics.accounts.set(n as i64);
        }
    }

    fn remove_messages(&self, messages: &[(StoredMessage, MessageRule)], errors: &mut Vec<String>) {
        let mut by_folder: BTreeMap<(&str, &str), Vec<&(StoredMessage, MessageRule)>> =
            BTreeMap::new();
        for entry in messages {
            by_folder
                .entry((&entry.0.account, &entry.0.mailbox))
                .or_default()
                .push(entry);
        }
        for ((account, mailbox), entries) in by_folder {
            let uids: Vec<u32> = entries.iter().map(|(m, _)| m.uid).collect();
            if let Err(e) = self.maddy.remove_messages(account, mailbox, &uids) {
                errors.push(format!("removing messages of {account} in {mailbox}: {e}"));
                continue;
            }
            for (message, rule) in entries {
                self.metrics
                    .expiry_messages
                    .get_or_create(&ExpiryLabel { rule: rule.label() })
                    .inc();
                self.metrics.expiry_bytes.inc_by(message.size);
            }
            tracing::info!(
                account,
                mailbox,
                count = uids.len(),
                "expiry: removed messages"
            );
        }
    }
}

/// When the daily run happens.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Delay after start before the first run.
    pub first: Duration,
    /// Time between runs.
    pub interval: Duration,
    /// Largest random delay added to each wait, so relays do not all expire at once.
    pub jitter: Duration,
}

impl Default for Schedule {
    /// An hour after start (the relay settles first), then daily, each plus up to an hour.
    fn default() -> Self {
        Schedule {
            first: Duration::from_secs(3600),
            interval: Duration::from_secs(86_400),
            jitter: Duration::from_secs(3600),
        }
    }
}

/// The system clock moved by a fixed number of seconds, so a test can expire a running
/// relay "days later" (`--expiry-clock-offset-secs`).
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock(pub u64);

impl Clock for OffsetClock {
    fn now(&self) -> u64 {
        crate::push::SystemClock.now() + self.0
    }
}

/// Runs the expiry on `schedule` until `shutdown`; a failed run is logged and the next
/// one comes as planned.
pub async fn run_daily(
    expiry: Arc<Expiry>,
    clock: Arc<dyn Clock>,
    schedule: Schedule,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut wait = schedule.first;
    loop {
        let jitter_ms = rand::thread_rng().gen_range(0..=schedule.jitter.as_millis() as u64);
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait + Duration::from_millis(jitter_ms)) => {}
        }
        wait = schedule.interval;
        let expiry = expiry.clone();
        let now = clock.now();
        match tokio::task::spawn_blocking(move || expiry.run(now, false)).await? {
            Ok(report) => {
                for error in &report.errors {
                    tracing::warn!("expiry: {error}");
                }
                tracing::info!(
                    accounts = report.plan.accounts.len(),
                    messages = report.plan.messages.len(),
                    bytes = report.plan.message_bytes(),
                    "expiry run done"
                );
            }
            Err(e) => tracing::error!("expiry run failed: {e:#}"),
        }
    }
}

/// The listing of a plan, one tab-separated line per account or message:
/// `account <address> <last login day> inactive` and
/// `message <account> <folder> <uid> <date> <size> <rule>`, dates in UTC.
pub fn listing(plan: &Plan) -> String {
    let mut out = String::new();
    for account in &plan.accounts {
        out.push_str(&format!(
            "account\t{}\t{}\tinactive\n",
            account.address,
            &utc(account.last_login_day)[..10]
        ));
    }
    for (m, rule) in &plan.messages {
        out.push_str(&format!(
            "message\t{}\t{}\t{}\t{}\t{}\t{}\n",
            m.account,
            m.mailbox,
            m.uid,
            utc(m.date),
            m.size,
            rule.label()
        ));
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (the proleptic Gregorian calendar).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (era-based conversion, 400-year cycles).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_979_714), "2026-11-29T19:15:14Z");
    }

    #[test]
    fn listing_lines() {
        let plan = Plan {
            accounts: vec![KnownAccount {
                address: "old@x.org".into(),
                last_login_day: 86_400,
            }],
            messages: vec![(
                StoredMessage {
                    account: "a@x.org".into(),
                    mailbox: "INBOX".into(),
                    uid: 3,
                    date: 0,
                    size: 250_000,
                    seen: true,
                },
                MessageRule::Large,
            )],
        };
        assert_eq!(
            listing(&plan),
            "account\told@x.org\t1970-01-02\tinactive\n\
             message\ta@x.org\tINBOX\t3\t1970-01-01T00:00:00Z\t250000\tlarge\n"
        );
    }
}
