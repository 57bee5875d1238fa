//! Which messages and accounts the expiry removes: pure functions over (date, size, seen)
//! records and last-login days, with no I/O, so every rule is tested on its own.
//!
//! The rules and numbers are upstream's `chatmail-expire` (research/chatmail.md §1.6):
//! an account without a login for `delete_inactive_users_after` days goes whole; any
//! message older than `delete_mails_after` days goes; a seen message over 200000 bytes
//! goes after `delete_large_after` days; and a mailbox over its quota threshold loses its
//! oldest messages down to the target, never one younger than 24 hours. Comparisons are
//! strict ("older than"), as upstream compares a file's mtime with the cutoff.

use chatmail_shared::config::{Limits, LARGE_MESSAGE_BYTES};

const DAY: u64 = 86_400;

/// Quota trimming starts above this share of `max_mailbox_size_mb` (upstream's Dovecot
/// `quota_warning` at 75 %)…
pub const QUOTA_TRIGGER_PERCENT: u64 = 75;
/// …and removes the oldest messages until usage is at or below this share (upstream's
/// expire target, 70 %).
pub const QUOTA_TARGET_PERCENT: u64 = 70;
/// Quota trimming never removes a message younger than this (it stops at the first one).
pub const QUOTA_MIN_AGE_SECS: u64 = DAY;

/// The expiry settings of a relay, in seconds and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Every message older than this goes.
    pub max_message_age: u64,
    /// Seen messages over [`Policy::large_bytes`] older than this go.
    pub max_large_age: u64,
    /// The size above which a message counts as large.
    pub large_bytes: u64,
    /// Accounts whose last login is older than this go.
    pub max_inactivity: u64,
    /// The mailbox quota in bytes.
    pub quota_bytes: u64,
}

impl Policy {
    /// The relay's configured limits.
    pub fn from_limits(limits: &Limits) -> Self {
        Policy {
            max_message_age: u64::from(limits.delete_mails_after_days) * DAY,
            max_large_age: u64::from(limits.delete_large_after_days) * DAY,
            large_bytes: u64::from(LARGE_MESSAGE_BYTES),
            max_inactivity: u64::from(limits.delete_inactive_users_after_days) * DAY,
            quota_bytes: u64::from(limits.max_mailbox_size_mb) * 1024 * 1024,
        }
    }
}

/// One stored message, as the storage lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The account's address.
    pub account: String,
    /// The IMAP folder.
    pub mailbox: String,
    /// The IMAP UID within the folder.
    pub uid: u32,
    /// Arrival (internal) date, Unix seconds.
    pub date: u64,
    /// Full size in bytes (RFC822.SIZE).
    pub size: u64,
    /// Has the `\Seen` flag (upstream: the file is in `cur/`).
    pub seen: bool,
}

/// One account of the relay with the day of its last login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAccount {
    /// The address.
    pub address: String,
    /// Start of the (UTC) day of the last login, or of the creation if it never logged in.
    pub last_login_day: u64,
}

/// Why a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageRule {
    /// Older than `delete_mails_after_days`.
    Old,
    /// Seen, large and older than `delete_large_after_days`.
    Large,
    /// The oldest messages of a mailbox over its quota threshold.
    Quota,
}

impl MessageRule {
    /// Every rule, for metrics labels.
    pub const ALL: [MessageRule; 3] = [MessageRule::Old, MessageRule::Large, MessageRule::Quota];

    /// The name in listings and metrics.
    pub fn label(self) -> &'static str {
        match self {
            MessageRule::Old => "old",
            MessageRule::Large => "large",
            MessageRule::Quota => "quota",
        }
    }
}

/// What one expiry run removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Inactive accounts, removed whole (their messages are not listed separately).
    pub accounts: Vec<KnownAccount>,
    /// Messages of the remaining accounts, each with the first rule that takes it.
    pub messages: Vec<(StoredMessage, MessageRule)>,
}

impl Plan {
    /// Bytes the removed messages take (the removed accounts' mail not included).
    pub fn message_bytes(&self) -> u64 {
        self.messages.iter().map(|(m, _)| m.size).sum()
    }
}

/// Is an account whose last login was on `last_login_day` inactive at `now`?
pub fn is_inactive(policy: &Policy, now: u64, last_login_day: u64) -> bool {
    last_login_day < now.saturating_sub(policy.max_inactivity)
}

/// The age rule that takes `message` at `now`, if any (the plain age limit first).
pub fn age_rule(policy: &Policy, now: u64, message: &StoredMessage) -> Option<MessageRule> {
    if message.date < now.saturating_sub(policy.max_message_age) {
        Some(MessageRule::Old)
    } else if message.seen
        && message.size > policy.large_bytes
        && message.date < now.saturating_sub(policy.max_large_age)
    {
        Some(MessageRule::Large)
    } else {
        None
    }
}

/// The oldest of `messages` (one account's, all folders) to remove so that usage falls
/// from above the trigger to at most the target; stops at the first message younger than
/// 24 hours, so it may stay above the target.
pub fn quota_trim<'a>(
    policy: &Policy,
    now: u64,
    messages: &[&'a StoredMessage],
) -> Vec<&'a StoredMessage> {
    let used: u64 = messages.iter().map(|m| m.size).sum();
    if used * 100 <= policy.quota_bytes * QUOTA_TRIGGER_PERCENT {
        return Vec::new();
    }
    let target = policy.quota_bytes * QUOTA_TARGET_PERCENT / 100;
    let mut oldest_first = messages.to_vec();
    // Ties by folder and UID, so the choice does not depend on the listing order.
    oldest_first.sort_by(|a, b| (a.date, &a.mailbox, a.uid).cmp(&(b.date, &b.mailbox, b.uid)));
    let young = now.saturating_sub(QUOTA_MIN_AGE_SECS);
    let mut remaining = used;
    let mut removed = Vec::new();
    for message in oldest_first {
        if remaining <= target || message.date > young {
            break;
        }
        remaining -= message.size;
        removed.push(message);
    }
    removed
}

/// The whole plan at `now`: inactive accounts, then per remaining account the age rules
/// and the quota trim of what the age rules leave. Messages of accounts the relay does not
/// know (no login record) still get the message rules; such an account is never removed.
pub fn plan(
    policy: &Policy,
    now: u64,
    accounts: &[KnownAccount],
    messages: &[StoredMessage],
) -> Plan {
    let mut plan = Plan::default();
    for account in accounts {
        if is_inactive(policy, now, account.last_login_day) {
            plan.accounts.push(account.clone());
        }
    }
    let removed_account = |address: &str| plan.accounts.iter().any(|a| a.address == address);
    let mut by_account: std::collections::BTreeMap<&str, Vec<&StoredMessage>> = Default::default();
    let mut chosen = Vec::new();
    for message in messages {
        if removed_account(&message.account) {
            continue;
        }
        match age_rule(policy, now, message) {
            Some(rule) => chosen.push((message.clone(), rule)),
            None => by_account
                .entry(&message.account)
                .or_default()
                .push(message),
        }
    }
    for kept in by_account.values() {
        for message in quota_trim(policy, now, kept) {
            chosen.push((message.clone(), MessageRule::Quota));
        }
    }
    chosen.sort_by(|(a, _), (b, _)| {
        (&a.account, &a.mailbox, a.uid).cmp(&(&b.account, &b.mailbox, b.uid))
    });
    plan.messages = chosen;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn policy() -> Policy {
        Policy::from_limits(&Limits::default())
    }

    fn msg(uid: u32, age_secs: u64, size: u64, seen: bool) -> StoredMessage {
        StoredMessage {
            account: "a@x.org".into(),
            mailbox: "INBOX".into(),
            uid,
            date: NOW - age_secs,
            size,
            seen,
        }
    }

    #[test]
    fn defaults_are_upstreams() {
        let p = policy();
        assert_eq!(p.max_message_age, 20 * DAY);
        assert_eq!(p.max_large_age, 7 * DAY);
        assert_eq!(p.large_bytes, 200_000);
        assert_eq!(p.max_inactivity, 90 * DAY);
        assert_eq!(p.quota_bytes, 500 * 1024 * 1024);
    }

    #[test]
    fn age_rules() {
        let p = policy();
        // Exactly 20 days old stays; a second more goes, whatever its size or flag.
        assert_eq!(age_rule(&p, NOW, &msg(1, 20 * DAY, 10, false)), None);
        assert_eq!(
            age_rule(&p, NOW, &msg(1, 20 * DAY + 1, 10, false)),
            Some(MessageRule::Old)
        );
        // Large and seen goes after 7 days; unseen, or not over 200000 bytes, stays.
        assert_eq!(
            age_rule(&p, NOW, &msg(1, 7 * DAY + 1, 200_001, true)),
            Some(MessageRule::Large)
        );
        assert_eq!(
            age_rule(&p, NOW, &msg(1, 7 * DAY + 1, 200_001, false)),
            None
        );
        assert_eq!(age_rule(&p, NOW, &msg(1, 7 * DAY + 1, 200_000, true)), None);
        assert_eq!(age_rule(&p, NOW, &msg(1, 7 * DAY, 300_000, true)), None);
        // Old wins over large.
        assert_eq!(
            age_rule(&p, NOW, &msg(1, 30 * DAY, 300_000, true)),
            Some(MessageRule::Old)
        );
    }

    #[test]
    fn inactivity_is_strictly_older() {
        let p = policy();
        let day = NOW / DAY * DAY;
        assert!(!is_inactive(&p, day, day - 90 * DAY));
        assert!(is_inactive(&p, day, day - 91 * DAY));
        assert!(is_inactive(&p, day + 1, day - 90 * DAY));
        // A clock before the epoch's 90th day never removes anyone.
        assert!(!is_inactive(&p, 10, 0));
    }

    #[test]
    fn quota_trims_oldest_from_above_75_to_70_percent() {
        let p = Policy {
            quota_bytes: 1000,
            ..policy()
        };
        // 760 bytes (76 %): the two oldest go, leaving 660 (≤ 700).
        let all = [
            msg(3, 3 * DAY, 100, false),
            msg(1, 5 * DAY, 50, false),
            msg(2, 4 * DAY, 60, true),
            msg(4, 2 * DAY, 550, false),
        ];
        let refs: Vec<_> = all.iter().collect();
        let gone: Vec<u32> = quota_trim(&p, NOW, &refs).iter().map(|m| m.uid).collect();
        assert_eq!(gone, vec![1, 2]);
        // At exactly 75 % nothing happens.
        let at = [msg(1, 5 * DAY, 750, false)];
        assert!(quota_trim(&p, NOW, &at.iter().collect::<Vec<_>>()).is_empty());
    }

    #[test]
    fn quota_never_touches_the_last_24_hours() {
        let p = Policy {
            quota_bytes: 1000,
            ..policy()
        };
        // The oldest is old enough, the next is 23 hours old: trimming stops there,
        // even though usage stays above the target.
        let all = [
            msg(1, 2 * DAY, 100, false),
            msg(2, 23 * 3600, 100, false),
            msg(3, 3600, 700, false),
        ];
        let refs: Vec<_> = all.iter().collect();
        let gone: Vec<u32> = quota_trim(&p, NOW, &refs).iter().map(|m| m.uid).collect();
        assert_eq!(gone, vec![1]);
    }

    #[test]
    fn plan_removes_inactive_accounts_whole_and_trims_the_rest() {
        let p = Policy {
            quota_bytes: 1000,
            ..policy()
        };
        let day = NOW / DAY * DAY;
        let accounts = [
            KnownAccount {
                address: "a@x.org".into(),
                last_login_day: day,
            },
            KnownAccount {
                address: "gone@x.org".into(),
                last_login_day: day - 100 * DAY,
            },
        ];
        let mut stale = msg(9, 30 * DAY, 10, false);
        stale.account = "gone@x.org".into();
        let mut other = msg(5, 25 * DAY, 10, false);
        other.account = "unknown@x.org".into();
        let messages = [
            msg(1, 21 * DAY, 10, false),     // old
            msg(2, 8 * DAY, 300_000, true),  // large, seen
            msg(3, 8 * DAY, 300_000, false), // large, unseen: stays
            msg(4, 2 * DAY, 790, false),     // quota: 800 of 1000 remain, this goes
            msg(6, 3600, 10, false),         // young: stays
            stale,
            other.clone(),
        ];
        let plan = plan(&p, NOW, &accounts, &messages);
        assert_eq!(plan.accounts, vec![accounts[1].clone()]);
        let chosen: Vec<(&str, u32, MessageRule)> = plan
            .messages
            .iter()
            .map(|(m, r)| (m.account.as_str(), m.uid, *r))
            .collect();
        // Message 3 is unseen and large: it stays. Quota counts 300000 + 790 + 10 > 75 %
        // of 1000, so the oldest (3, then 4) go until ≤ 700; 6 is younger than a day.
        assert_eq!(
            chosen,
            vec![
                ("a@x.org", 1, MessageRule::Old),
                ("a@x.org", 2, MessageRule::Large),
                ("a@x.org", 3, MessageRule::Quota),
                ("a@x.org", 4, MessageRule::Quota),
                ("unknown@x.org", 5, MessageRule::Old),
            ]
        );
        assert_eq!(plan.message_bytes(), 10 + 300_000 + 300_000 + 790 + 10);
    }
}
