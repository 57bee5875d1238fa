//! The METADATA entries the front answers (RFC 5464), as upstream's relay answers them
//! (research/chatmail.md §1.4, research/deltachat-client.md §3.1 and §4).
//!
//! Server entries (mailbox `""`): `/shared/vendor/deltachat/maxsmtprecipients` is `1000`
//! (upstream's value), `/shared/admin` is `mailto:` the relay's contact address when the
//! config has one. `irohrelay`, `turn` and `appversions` are NIL: this relay runs no iroh
//! relay and no TURN server, and ships no app-version list, and upstream answers
//! "not found" when it has none. INBOX entry `/private/devicetoken`: the account's valid
//! push tokens joined by spaces; setting it adds a token (several devices per account).

use super::parser::{imap_string, Command, Value};

/// The entry that carries push device tokens.
pub const DEVICE_TOKEN: &str = "/private/devicetoken";

/// Upstream's answer for `maxsmtprecipients` (Postfix's default recipient limit).
pub const MAX_SMTP_RECIPIENTS: &str = "1000";

/// The relay's answers for the server entries.
#[derive(Debug, Clone, Default)]
pub struct ServerEntries {
    /// `mailto:` address for `/shared/admin`.
    pub admin: Option<String>,
}

impl ServerEntries {
    /// The value of a server entry, if it has one.
    pub fn get(&self, entry: &str) -> Option<String> {
        match entry.to_ascii_lowercase().as_str() {
            "/shared/vendor/deltachat/maxsmtprecipients" => Some(MAX_SMTP_RECIPIENTS.into()),
            "/shared/admin" => self.admin.as_ref().map(|a| format!("mailto:{a}")),
            _ => None,
        }
    }
}

/// Which mailbox a METADATA command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `""`: the server.
    Server,
    /// INBOX (any case).
    Inbox,
}

impl Target {
    fn parse(value: &Value) -> Result<Target, &'static str> {
        let name = value.as_astring().ok_or("mailbox expected")?;
        if name.is_empty() {
            Ok(Target::Server)
        } else if name.eq_ignore_ascii_case(b"INBOX") {
            Ok(Target::Inbox)
        } else {
            Err("metadata is kept for INBOX and the server only")
        }
    }

    /// The mailbox as written in responses.
    pub fn wire_name(self) -> &'static str {
        match self {
            Target::Server => "\"\"",
            Target::Inbox => "INBOX",
        }
    }
}

/// A parsed GETMETADATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMetadata {
    /// The mailbox.
    pub target: Target,
    /// The entries asked for.
    pub entries: Vec<String>,
}

/// A parsed SETMETADATA of the device token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetMetadata {
    /// Add this token.
    AddToken(String),
}

fn entry_name(value: &Value) -> Result<String, &'static str> {
    let bytes = value.as_astring().ok_or("entry name expected")?;
    let name = String::from_utf8(bytes).map_err(|_| "entry names are ASCII")?;
    if !name.starts_with('/') {
        return Err("entry names start with /");
    }
    Ok(name)
}

/// `GETMETADATA [(options)] mailbox (entry …) | entry`. Options (MAXSIZE, DEPTH) are
/// accepted and ignored: no value is large and no entry has children.
pub fn parse_get(cmd: &Command) -> Result<GetMetadata, &'static str> {
    let mut args = cmd.args.as_slice();
    if args.len() == 3 && matches!(args[0], Value::List(_)) {
        args = &args[1..];
    }
    let [mailbox, entries] = args else {
        return Err("GETMETADATA takes a mailbox and entries");
    };
    let target = Target::parse(mailbox)?;
    let entries = match entries {
        Value::List(list) if !list.is_empty() => {
            list.iter().map(entry_name).collect::<Result<_, _>>()?
        }
        Value::List(_) => return Err("no entries"),
        single => vec![entry_name(single)?],
    };
    Ok(GetMetadata { target, entries })
}

/// `SETMETADATA mailbox (entry value …)`: only the device token of INBOX may be set.
pub fn parse_set(cmd: &Command) -> Result<SetMetadata, &'static str> {
    let [mailbox, Value::List(pairs)] = cmd.args.as_slice() else {
        return Err("SETMETADATA takes a mailbox and a list of entries and values");
    };
    let target = Target::parse(mailbox)?;
    let [entry, value] = pairs.as_slice() else {
        return Err("one entry and its value are accepted");
    };
    let entry = entry_name(entry)?;
    if target != Target::Inbox || !entry.eq_ignore_ascii_case(DEVICE_TOKEN) {
        return Err("only /private/devicetoken of INBOX can be set");
    }
    if value.is_nil() {
        return Err("device tokens are removed by expiry only");
    }
    let Value::String(token) = value else {
        return Err("the value must be a string");
    };
    let token = String::from_utf8(token.clone()).map_err(|_| "tokens are ASCII")?;
    Ok(SetMetadata::AddToken(token))
}

/// The untagged `* METADATA` response for `entries` of `target`, given each one's value
/// (NIL when absent, as Dovecot answers).
pub fn response(target: Target, values: &[(String, Option<String>)]) -> Vec<u8> {
    let mut out = format!("* METADATA {} (", target.wire_name()).into_bytes();
    for (i, (entry, value)) in values.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(entry.as_bytes());
        out.push(b' ');
        match value {
            Some(v) => out.extend_from_slice(&imap_string(v.as_bytes())),
            None => out.extend_from_slice(b"NIL"),
        }
    }
    out.extend_from_slice(b")\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::parser::{parse_command, Part};
    use super::*;

    fn cmd(line: &str) -> Command {
        parse_command(&[Part::of_line(line.as_bytes())]).unwrap()
    }

    #[test]
    fn gets() {
        let get = parse_get(&cmd(
            "a GETMETADATA \"\" (/shared/comment /shared/vendor/deltachat/maxsmtprecipients)",
        ))
        .unwrap();
        assert_eq!(get.target, Target::Server);
        assert_eq!(get.entries.len(), 2);
        let get = parse_get(&cmd(
            "a GETMETADATA (MAXSIZE 1024) INBOX /private/devicetoken",
        ))
        .unwrap();
        assert_eq!(get.target, Target::Inbox);
        assert!(parse_get(&cmd("a GETMETADATA Sent /private/x")).is_err());
        assert!(parse_get(&cmd("a GETMETADATA INBOX")).is_err());
        assert!(parse_get(&cmd("a GETMETADATA INBOX (x)")).is_err());
    }

    #[test]
    fn sets() {
        assert_eq!(
            parse_set(&cmd(
                "a SETMETADATA \"INBOX\" (/private/devicetoken \"openpgp:x\")"
            )),
            Ok(SetMetadata::AddToken("openpgp:x".into()))
        );
        assert!(parse_set(&cmd("a SETMETADATA INBOX (/private/devicetoken NIL)")).is_err());
        assert!(parse_set(&cmd("a SETMETADATA \"\" (/private/devicetoken \"x\")")).is_err());
        assert!(parse_set(&cmd("a SETMETADATA INBOX (/private/comment \"x\")")).is_err());
    }

    #[test]
    fn server_entries_and_response() {
        let entries = ServerEntries {
            admin: Some("admin@example.org".into()),
        };
        assert_eq!(
            entries.get("/shared/admin").as_deref(),
            Some("mailto:admin@example.org")
        );
        assert_eq!(entries.get("/shared/vendor/deltachat/turn"), None);
        let text = response(
            Target::Server,
            &[
                ("/shared/comment".into(), None),
                ("/shared/admin".into(), Some("mailto:a@b".into())),
            ],
        );
        assert_eq!(
            text,
            b"* METADATA \"\" (/shared/comment NIL /shared/admin \"mailto:a@b\")\r\n"
        );
    }
}
