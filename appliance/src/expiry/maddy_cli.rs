//! Maddy's own management commands, the only way the expiry reads or changes mail storage.
//!
//! `maddy --config <the generated maddy.conf> imap-acct|imap-mboxes|imap-msgs …` opens the
//! same `local_mailboxes` block as the server (research/maddy-pipeline.md §4). Listing is
//! `imap-msgs list --full`, whose "Server meta-data" lines carry UID, flags, size and the
//! internal date; removal is `imap-msgs remove --uid` (go-imap-sql deletes the blob files,
//! the rows and the folder's message count in one transaction) and `imap-acct remove`
//! (the account's blobs and rows). Each call is one short process; calls block.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::rules::StoredMessage;

/// Removal commands name at most this many UIDs, so a command line stays short.
const UIDS_PER_REMOVE: usize = 500;

/// Runs the Maddy binary against a config file.
#[derive(Debug, Clone)]
pub struct MaddyCli {
    /// The Maddy executable.
    pub binary: PathBuf,
    /// The maddy.conf the appliance generates.
    pub config: PathBuf,
    /// Maddy's state directory (its working directory, as for the server).
    pub state_dir: PathBuf,
}

/// A failed Maddy command.
#[derive(Debug, thiserror::Error)]
#[error("maddy {args}: {message}")]
pub struct CliError {
    args: String,
    message: String,
}

impl MaddyCli {
    fn run(&self, args: &[&str]) -> Result<String, CliError> {
        let fail = |message: String| CliError {
            args: args.join(" "),
            message,
        };
        let Output {
            status,
            stdout,
            stderr,
        } = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.state_dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.binary.display())))?;
        let stderr = String::from_utf8_lossy(&stderr);
        // Maddy's CLI prints `app.Run failed` and still exits 0 on some errors.
        if !status.success() || stderr.contains("app.Run failed") {
            return Err(fail(format!("{status}: {}", stderr.trim())));
        }
        String::from_utf8(stdout).map_err(|_| fail("output is not UTF-8".into()))
    }

    /// The storage accounts (lower-case addresses).
    pub fn accounts(&self) -> Result<Vec<String>, CliError> {
        Ok(self
            .run(&["imap-acct", "list"])?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// The folders of `account`.
    pub fn mailboxes(&self, account: &str) -> Result<Vec<String>, CliError> {
        Ok(parse_mailboxes(&self.run(&[
            "imap-mboxes",
            "list",
            "--",
            account,
        ])?))
    }

    /// Every message of `account` in `mailbox`.
    pub fn messages(&self, account: &str, mailbox: &str) -> Result<Vec<StoredMessage>, CliError> {
        let out = self.run(&["imap-msgs", "list", "--full", "--", account, mailbox])?;
        parse_messages(account, mailbox, &out).map_err(|message| CliError {
            args: format!("imap-msgs list --full {account} {mailbox}"),
            message,
        })
    }

    /// Removes the messages with these UIDs (absent ones are skipped by Maddy).
    pub fn remove_messages(
        &self,
        account: &str,
        mailbox: &str,
        uids: &[u32],
    ) -> Result<(), CliError> {
        for chunk in uids.chunks(UIDS_PER_REMOVE) {
            let set = chunk
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            self.run(&[
                "imap-msgs",
                "remove",
                "--uid",
                "--yes",
                "--",
                account,
                mailbox,
                &set,
            ])?;
        }
        Ok(())
    }

    /// Removes the storage account with all its folders, messages and blob files.
    pub fn remove_account(&self, account: &str) -> Result<(), CliError> {
        self.run(&["imap-acct", "remove", "--yes", "--", account])
            .map(|_| ())
    }
}

/// `imap-mboxes list` prints one folder a line, its attributes after a tab.
fn parse_mailboxes(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| line.split('\t').next())
        .filter(|name| !name.is_empty())
        .map(String::from)
        .collect()
}

/// Reads the "Server meta-data" blocks of `imap-msgs list --full`. Only those fixed lines
/// are read; the envelope lines after them come from the message and are skipped. As a
/// guard against an envelope that imitates a block, sequence numbers must count 1, 2, 3…
/// and UIDs must rise, or the whole listing is refused.
pub fn parse_messages(
    account: &str,
    mailbox: &str,
    out: &str,
) -> Result<Vec<StoredMessage>, String> {
    let mut messages = Vec::new();
    let mut lines = out.lines();
    while let Some(line) = lines.next() {
        if line != "- Server meta-data:" {
            continue;
        }
        let mut field = |name: &str| -> Result<String, String> {
            let line = lines.next().unwrap_or_default();
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(": "))
                .map(String::from)
                .ok_or_else(|| format!("expected {name:?}, found {line:?}"))
        };
        let uid: u32 = number(&field("UID")?)?;
        let seq: usize = number(&field("Sequence number")?)?;
        let flags = field("Flags")?;
        let size: u64 = number(&field("Body size")?)?;
        let date: u64 = number(field("Internal date")?.split(' ').next().unwrap_or(""))?;
        if seq != messages.len() + 1 {
            return Err(format!("sequence number {seq} out of order"));
        }
        if let Some(StoredMessage { uid: last, .. }) = messages.last() {
            if uid <= *last {
                return Err(format!("UID {uid} out of order"));
            }
        }
        let seen = flags
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(' ')
            .any(|f| f.eq_ignore_ascii_case("\\Seen"));
        messages.push(StoredMessage {
            account: account.to_string(),
            mailbox: mailbox.to_string(),
            uid,
            date,
            size,
            seen,
        });
    }
    Ok(messages)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("not a number: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Maddy 0.8.2 printed for two messages (captured by hand).
    const LISTING: &str = "- Server meta-data:
UID: 1
Sequence number: 1
Flags: [\\Seen \\Recent]
Body size: 66
Internal date: 1577836800 2020-01-01 00:00:00 +0000 UTC
- Envelope:
From:  <x@y>
Subject: hi

- Server meta-data:
UID: 7
Sequence number: 2
Flags: [\\Recent]
Body size: 34
Internal date: 1795979714 2026-11-29 19:15:14 +0000 UTC
- Envelope:
From:  <x@y>
Subject: two

";

    #[test]
    fn reads_meta_data_blocks() {
        let list = parse_messages("a@x.org", "INBOX", LISTING).unwrap();
        assert_eq!(
            list,
            vec![
                StoredMessage {
                    account: "a@x.org".into(),
                    mailbox: "INBOX".into(),
                    uid: 1,
                    date: 1_577_836_800,
                    size: 66,
                    seen: true,
                },
                StoredMessage {
                    account: "a@x.org".into(),
                    mailbox: "INBOX".into(),
                    uid: 7,
                    date: 1_795_979_714,
                    size: 34,
                    seen: false,
                },
            ]
        );
        assert_eq!(parse_messages("a", "INBOX", "").unwrap(), vec![]);
    }

    #[test]
    fn refuses_an_imitated_block() {
        // A subject that repeats a block out of order spoils the listing.
        let forged = LISTING.replace(
            "Subject: hi\n",
            "Subject: hi\n- Server meta-data:\nUID: 3\nSequence number: 2\nFlags: []\nBody size: 1\nInternal date: 1 x\n",
        );
        assert!(parse_messages("a", "INBOX", &forged).is_err());
        let truncated = "- Server meta-data:\nUID: 1\nSequence number: 1\n";
        assert!(parse_messages("a", "INBOX", truncated).is_err());
    }

    #[test]
    fn reads_folder_names() {
        assert_eq!(
            parse_mailboxes("INBOX\t[\\HasNoChildren]\nSent\t[\\Sent]\nDeltaChat\n"),
            vec!["INBOX", "Sent", "DeltaChat"]
        );
    }
}
