//! The commands the front answers itself instead of Maddy: ID, COMPRESS and STARTTLS
//! (answered by the session, which owns the stream), and the account's METADATA and QUOTA
//! (answered here, from the push token store, the relay's config and the usage reader).

use super::metadata::{self, SetMetadata, Target};
use super::parser::{imap_string, Command};
use super::Front;

/// A command the front answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCommand {
    /// RFC 2971.
    Id,
    /// RFC 4978.
    Compress,
    /// After TLS: refused.
    StartTls,
    /// Needs a logged-in account.
    Account(AccountCommand),
}

/// A command about the logged-in account's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountCommand {
    /// RFC 5464.
    GetMetadata,
    /// RFC 5464.
    SetMetadata,
    /// RFC 9208.
    GetQuota,
    /// RFC 9208.
    GetQuotaRoot,
}

impl LocalCommand {
    /// The command the front answers for this (upper-case) name, if any.
    pub fn of(name: &str) -> Option<LocalCommand> {
        Some(match name {
            "ID" => LocalCommand::Id,
            "COMPRESS" => LocalCommand::Compress,
            "STARTTLS" => LocalCommand::StartTls,
            "GETMETADATA" => LocalCommand::Account(AccountCommand::GetMetadata),
            "SETMETADATA" => LocalCommand::Account(AccountCommand::SetMetadata),
            "GETQUOTA" => LocalCommand::Account(AccountCommand::GetQuota),
            "GETQUOTAROOT" => LocalCommand::Account(AccountCommand::GetQuotaRoot),
            _ => return None,
        })
    }
}

impl AccountCommand {
    /// The answer for the logged-in `user`: untagged data and the tagged status.
    pub async fn answer(self, front: &Front, cmd: &Command, user: String) -> String {
        let tag = &cmd.tag;
        match self {
            AccountCommand::GetMetadata => {
                let get = match metadata::parse_get(cmd) {
                    Ok(get) => get,
                    Err(e) => return format!("{tag} BAD {e}\r\n"),
                };
                let mut values = Vec::new();
                for entry in &get.entries {
                    let value = match get.target {
                        Target::Server => front.server_entries.get(entry),
                        Target::Inbox if entry.eq_ignore_ascii_case(metadata::DEVICE_TOKEN) => {
                            let tokens = front.tokens.clone();
                            let user = user.clone();
                            match tokio::task::spawn_blocking(move || tokens.valid(&user)).await {
                                Ok(Ok(list)) if !list.is_empty() => Some(list.join(" ")),
                                Ok(Ok(_)) => None,
                                Ok(Err(e)) => {
                                    tracing::error!("IMAP front: device tokens: {e}");
                                    return format!("{tag} NO [SERVERBUG] Try again later\r\n");
                                }
                                Err(_) => {
                                    return format!("{tag} NO [SERVERBUG] Try again later\r\n")
                                }
                            }
                        }
                        Target::Inbox => None,
                    };
                    values.push((entry.clone(), value));
                }
                let mut out =
                    String::from_utf8_lossy(&metadata::response(get.target, &values)).into_owned();
                out.push_str(&format!("{tag} OK GETMETADATA completed\r\n"));
                out
            }
            AccountCommand::SetMetadata => match metadata::parse_set(cmd) {
                Err(e) => format!("{tag} NO {e}\r\n"),
                Ok(SetMetadata::AddToken(token)) => {
                    let tokens = front.tokens.clone();
                    match tokio::task::spawn_blocking(move || tokens.add(&user, &token)).await {
                        Ok(Ok(())) => format!("{tag} OK SETMETADATA completed\r\n"),
                        Ok(Err(e)) => format!("{tag} NO {e}\r\n"),
                        Err(_) => format!("{tag} NO [SERVERBUG] Try again later\r\n"),
                    }
                }
            },
            AccountCommand::GetQuota => match cmd.args.as_slice() {
                [root] if root.as_astring().is_some_and(|r| r.is_empty()) => {
                    format!(
                        "{}{tag} OK GETQUOTA completed\r\n",
                        front.quota_line(&user).await
                    )
                }
                [_] => format!("{tag} NO No such quota root\r\n"),
                _ => format!("{tag} BAD GETQUOTA takes a quota root\r\n"),
            },
            AccountCommand::GetQuotaRoot => match cmd.args.as_slice() {
                [mailbox] if mailbox.as_astring().is_some() => {
                    let name = mailbox.as_astring().expect("checked");
                    format!(
                        "* QUOTAROOT {} \"\"\r\n{}{tag} OK GETQUOTAROOT completed\r\n",
                        String::from_utf8_lossy(&imap_string(&name)),
                        front.quota_line(&user).await
                    )
                }
                _ => format!("{tag} BAD GETQUOTAROOT takes a mailbox\r\n"),
            },
        }
    }
}
