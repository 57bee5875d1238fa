//! The Dovecot authentication protocol (server side), as text: parsing what a client sends
//! and formatting what the server answers. No I/O and no policy, so it can be fuzzed and
//! tested on its own.
//!
//! Maddy's `auth.dovecot_sasl` is a client of this protocol: it connects to our socket,
//! reads the handshake (`VERSION`, `MECH`, `SPID`, `CUID`, `COOKIE`, `DONE`), sends
//! `VERSION` and `CPID`, then one `AUTH <id> PLAIN service=… resp=<base64>` per login and
//! expects `OK <id> …` or `FAIL <id> …` (research/maddy-gochatmail.md B.1). Fields are
//! separated by tabs, lines end in LF. Values that contain a tab, LF, CR or the escape byte
//! 0x01 are escaped as `\x01t`, `\x01n`, `\x01r`, `\x011` (Dovecot's "tab escaping").

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Longest line accepted from a client, in bytes (without the LF). Dovecot's own limit for
/// auth client lines is of the same order; a login needs well under 1 KiB.
pub const MAX_LINE_LEN: usize = 8192;

/// Longest user name accepted inside a PLAIN response, in bytes.
pub const MAX_USERNAME_LEN: usize = 320;

/// Longest password accepted inside a PLAIN response, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Major protocol version we speak.
pub const VERSION_MAJOR: u32 = 1;

/// Minor protocol version we announce.
pub const VERSION_MINOR: u32 = 2;

/// Why a client line was refused. The messages are for our log, never sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// More than [`MAX_LINE_LEN`] bytes.
    #[error("line is longer than {MAX_LINE_LEN} bytes")]
    LineTooLong,
    /// Not UTF-8 after unescaping.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// An empty line.
    #[error("empty line")]
    Empty,
    /// A command we do not know.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// A command without a field it needs, or with a malformed one.
    #[error("malformed {command} line: {problem}")]
    Malformed {
        /// The command.
        command: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// An escape sequence other than the four defined ones.
    #[error("invalid escape sequence")]
    BadEscape,
}

fn malformed(command: &'static str, problem: &'static str) -> ProtocolError {
    ProtocolError::Malformed { command, problem }
}

/// One line from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientLine {
    /// `VERSION <major> <minor>`.
    Version {
        /// Major version; must equal ours.
        major: u32,
        /// Minor version.
        minor: u32,
    },
    /// `CPID <pid>`: the client's process id, informational.
    Cpid(String),
    /// `AUTH <id> <mechanism> [params…]`.
    Auth(AuthRequest),
    /// `CONT <id> <base64>`: continuation of a multi-step mechanism.
    Cont {
        /// Request id.
        id: u32,
        /// Decoded data.
        data: Vec<u8>,
    },
}

/// An `AUTH` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// Request id, echoed in the answer.
    pub id: u32,
    /// SASL mechanism name, upper-cased.
    pub mechanism: String,
    /// `service=` (e.g. `SMTP`, `imap`), if given.
    pub service: Option<String>,
    /// The decoded initial response (`resp=`), if given.
    pub initial_response: Option<Vec<u8>>,
    /// Every other parameter as `(name, value)`; flags like `secured` have no value.
    pub params: Vec<(String, Option<String>)>,
}

/// Splits one line (without its LF) into unescaped fields.
fn split_fields(line: &[u8]) -> Result<Vec<String>, ProtocolError> {
    if line.len() > MAX_LINE_LEN {
        return Err(ProtocolError::LineTooLong);
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(ProtocolError::Empty);
    }
    line.split(|&b| b == b'\t')
        .map(|field| {
            let raw = unescape(field)?;
            String::from_utf8(raw).map_err(|_| ProtocolError::NotUtf8)
        })
        .collect()
}

fn unescape(field: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != 0x01 {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(b'1') => 0x01,
            Some(b't') => b'\t',
            Some(b'r') => b'\r',
            Some(b'n') => b'\n',
            _ => return Err(ProtocolError::BadEscape),
        });
    }
    Ok(out)
}

/// Escapes a value for a field of a server line.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\u{1}' => out.push_str("\u{1}1"),
            '\t' => out.push_str("\u{1}t"),
            '\r' => out.push_str("\u{1}r"),
            '\n' => out.push_str("\u{1}n"),
            c => out.push(c),
        }
    }
    out
}

fn parse_id(command: &'static str, field: Option<&String>) -> Result<u32, ProtocolError> {
    let field = field.ok_or_else(|| malformed(command, "missing request id"))?;
    if field.is_empty() || field.len() > 10 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(command, "request id is not a number"));
    }
    field
        .parse()
        .map_err(|_| malformed(command, "request id out of range"))
}

impl ClientLine {
    /// Parses one line, without its trailing LF.
    pub fn parse(line: &[u8]) -> Result<Self, ProtocolError> {
        let fields = split_fields(line)?;
        let (command, rest) = fields.split_first().ok_or(ProtocolError::Empty)?;
        match command.as_str() {
            "VERSION" => {
                let number = |f: Option<&String>| {
                    f.and_then(|s| {
                        if s.len() <= 9 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                            s.parse::<u32>().ok()
                        } else {
                            None
                        }
                    })
                };
                let major = number(rest.first())
                    .ok_or_else(|| malformed("VERSION", "major version is not a number"))?;
                let minor = number(rest.get(1))
                    .ok_or_else(|| malformed("VERSION", "minor version is not a number"))?;
                Ok(ClientLine::Version { major, minor })
            }
            "CPID" => {
                let pid = rest
                    .first()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| malformed("CPID", "missing process id"))?;
                Ok(ClientLine::Cpid(pid.clone()))
            }
            "AUTH" => {
                let id = parse_id("AUTH", rest.first())?;
                let mechanism = rest
                    .get(1)
                    .filter(|m| {
                        !m.is_empty()
                            && m.len() <= 64
                            && m.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
                    .ok_or_else(|| malformed("AUTH", "missing or invalid mechanism"))?
                    .to_ascii_uppercase();
                let mut request = AuthRequest {
                    id,
                    mechanism,
                    service: None,
                    initial_response: None,
                    params: Vec::new(),
                };
                for param in &rest[2..] {
                    match param.split_once('=') {
                        Some(("service", value)) => request.service = Some(value.to_string()),
                        Some(("resp", value)) => {
                            let data = STANDARD
                                .decode(value)
                                .map_err(|_| malformed("AUTH", "resp= is not base64"))?;
                            request.initial_response = Some(data);
                        }
                        Some((name, value)) => request
                            .params
                            .push((name.to_string(), Some(value.to_string()))),
                        None => request.params.push((param.clone(), None)),
                    }
                }
                Ok(ClientLine::Auth(request))
            }
            "CONT" => {
                let id = parse_id("CONT", rest.first())?;
                let data = rest
                    .get(1)
                    .map(|d| STANDARD.decode(d))
                    .unwrap_or(Ok(Vec::new()))
                    .map_err(|_| malformed("CONT", "data is not base64"))?;
                Ok(ClientLine::Cont { id, data })
            }
            other => {
                let mut name: String = other.chars().take(32).collect();
                name.retain(|c| !c.is_control());
                Err(ProtocolError::UnknownCommand(name))
            }
        }
    }
}

/// User name and password from a SASL PLAIN response (RFC 4616).
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The authentication identity (the login name).
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a PLAIN response was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    /// Not `authzid NUL authcid NUL password`.
    #[error("PLAIN response does not have three NUL-separated parts")]
    Shape,
    /// Not UTF-8.
    #[error("PLAIN response is not UTF-8")]
    NotUtf8,
    /// Empty user name or password.
    #[error("PLAIN response has an empty user name or password")]
    Empty,
    /// Over [`MAX_USERNAME_LEN`] or [`MAX_PASSWORD_LEN`].
    #[error("PLAIN response has an over-long user name or password")]
    TooLong,
    /// An authorization identity other than the user itself (no proxy logins here).
    #[error("PLAIN response asks to act as another user")]
    ForeignAuthzid,
}

/// Decodes a PLAIN response.
pub fn decode_plain(data: &[u8]) -> Result<PlainCredentials, PlainError> {
    let mut parts = data.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PlainError::Shape);
    };
    if authcid.len() > MAX_USERNAME_LEN || password.len() > MAX_PASSWORD_LEN {
        return Err(PlainError::TooLong);
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| PlainError::NotUtf8);
    let (authzid, username, password) = (text(authzid)?, text(authcid)?, text(password)?);
    if username.is_empty() || password.is_empty() {
        return Err(PlainError::Empty);
    }
    if !authzid.is_empty() && authzid != username {
        return Err(PlainError::ForeignAuthzid);
    }
    Ok(PlainCredentials { username, password })
}

/// One line from the server. [`ServerLine::format`] gives the wire form, LF included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine {
    /// `VERSION 1 2`.
    Version,
    /// `MECH <name> [flags…]`.
    Mech {
        /// Mechanism name.
        name: &'static str,
        /// Flags such as `plaintext`.
        flags: &'static [&'static str],
    },
    /// `SPID <pid>`.
    Spid(u32),
    /// `CUID <n>`: connection id.
    Cuid(u64),
    /// `COOKIE <hex>`.
    Cookie(String),
    /// `DONE`: end of the handshake.
    Done,
    /// `OK <id> user=<user>`.
    Ok {
        /// Request id.
        id: u32,
        /// The authenticated user.
        user: String,
    },
    /// `FAIL <id> [user=<user>] [code=temp_fail]`.
    Fail {
        /// Request id.
        id: u32,
        /// The user, if known.
        user: Option<String>,
        /// A temporary failure (e.g. the store is unavailable): the client may retry.
        temporary: bool,
    },
    /// `CONT <id> <base64>`.
    Cont {
        /// Request id.
        id: u32,
        /// Challenge data.
        data: Vec<u8>,
    },
}

impl ServerLine {
    /// The wire form, ending in LF.
    pub fn format(&self) -> String {
        let fields: Vec<String> = match self {
            ServerLine::Version => vec![
                "VERSION".into(),
                VERSION_MAJOR.to_string(),
                VERSION_MINOR.to_string(),
            ],
            ServerLine::Mech { name, flags } => std::iter::once("MECH".to_string())
                .chain(std::iter::once(name.to_string()))
                .chain(flags.iter().map(|f| f.to_string()))
                .collect(),
            ServerLine::Spid(pid) => vec!["SPID".into(), pid.to_string()],
            ServerLine::Cuid(n) => vec!["CUID".into(), n.to_string()],
            ServerLine::Cookie(c) => vec!["COOKIE".into(), escape(c)],
            ServerLine::Done => vec!["DONE".into()],
            ServerLine::Ok { id, user } => {
                vec![
                    "OK".into(),
                    id.to_string(),
                    format!("user={}", escape(user)),
                ]
            }
            ServerLine::Fail {
                id,
                user,
                temporary,
            } => {
                let mut f = vec!["FAIL".to_string(), id.to_string()];
                if let Some(user) = user {
                    f.push(format!("user={}", escape(user)));
                }
                if *temporary {
                    f.push("code=temp_fail".into());
                }
                f
            }
            ServerLine::Cont { id, data } => {
                vec!["CONT".into(), id.to_string(), STANDARD.encode(data)]
            }
        };
        let mut line = fields.join("\t");
        line.push('\n');
        line
    }
}

/// The handshake the server sends right after a client connects.
pub fn handshake(pid: u32, connection_id: u64, cookie: &str) -> String {
    [
        ServerLine::Version,
        ServerLine::Mech {
            name: "PLAIN",
            flags: &["plaintext"],
        },
        ServerLine::Spid(pid),
        ServerLine::Cuid(connection_id),
        ServerLine::Cookie(cookie.to_string()),
        ServerLine::Done,
    ]
    .iter()
    .map(ServerLine::format)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(user: &str, pass: &str) -> String {
        STANDARD.encode(format!("\0{user}\0{pass}"))
    }

    #[test]
    fn parses_maddys_auth_line() {
        // What go-dovecot-sasl sends for Maddy: AUTH, id, mech, service, flags, resp.
        let line = format!(
            "AUTH\t1\tPLAIN\tservice=SMTP\tsecured\tno-penalty\tresp={}",
            plain("abcdefghi@chat.example.org", "p\"a\\ss word")
        );
        let ClientLine::Auth(req) = ClientLine::parse(line.as_bytes()).unwrap() else {
            panic!("not AUTH")
        };
        assert_eq!(req.id, 1);
        assert_eq!(req.mechanism, "PLAIN");
        assert_eq!(req.service.as_deref(), Some("SMTP"));
        assert_eq!(
            req.params,
            vec![("secured".into(), None), ("no-penalty".into(), None)]
        );
        let creds = decode_plain(req.initial_response.as_deref().unwrap()).unwrap();
        assert_eq!(creds.username, "abcdefghi@chat.example.org");
        assert_eq!(creds.password, "p\"a\\ss word");
    }

    #[test]
    fn parses_handshake_lines() {
        assert_eq!(
            ClientLine::parse(b"VERSION\t1\t1").unwrap(),
            ClientLine::Version { major: 1, minor: 1 }
        );
        assert_eq!(
            ClientLine::parse(b"CPID\t4242\r").unwrap(),
            ClientLine::Cpid("4242".into())
        );
        assert_eq!(
            ClientLine::parse(b"CONT\t7\taGk=").unwrap(),
            ClientLine::Cont {
                id: 7,
                data: b"hi".to_vec()
            }
        );
    }

    #[test]
    fn refuses_hostile_lines() {
        assert_eq!(ClientLine::parse(b""), Err(ProtocolError::Empty));
        assert_eq!(
            ClientLine::parse(&vec![b'A'; MAX_LINE_LEN + 1]),
            Err(ProtocolError::LineTooLong)
        );
        assert_eq!(
            ClientLine::parse(b"AUTH\t\xff\tPLAIN"),
            Err(ProtocolError::NotUtf8)
        );
        assert!(matches!(
            ClientLine::parse(b"AUTH\tx\tPLAIN"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            ClientLine::parse(b"AUTH\t99999999999\tPLAIN"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            ClientLine::parse(b"AUTH\t1\tPL AIN"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            ClientLine::parse(b"AUTH\t1\tPLAIN\tresp=!!!"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            ClientLine::parse(b"VERSION\t1"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert_eq!(
            ClientLine::parse(b"AUTH\t1\tPLAIN\tx=\x01z"),
            Err(ProtocolError::BadEscape)
        );
        assert!(matches!(
            ClientLine::parse(b"HELLO\tthere"),
            Err(ProtocolError::UnknownCommand(_))
        ));
    }

    #[test]
    fn plain_rules() {
        assert_eq!(decode_plain(b"a\0b"), Err(PlainError::Shape));
        assert_eq!(decode_plain(b"\0a\0b\0c"), Err(PlainError::Shape));
        assert_eq!(decode_plain(b"\0\0pw"), Err(PlainError::Empty));
        assert_eq!(decode_plain(b"\0u\0"), Err(PlainError::Empty));
        assert_eq!(decode_plain(b"\0u\0\xff"), Err(PlainError::NotUtf8));
        assert_eq!(
            decode_plain(b"other\0u\0pw"),
            Err(PlainError::ForeignAuthzid)
        );
        assert!(decode_plain(b"u\0u\0pw").is_ok());
        let long = [b"\0u\0".as_slice(), &[b'x'; MAX_PASSWORD_LEN + 1]].concat();
        assert_eq!(decode_plain(&long), Err(PlainError::TooLong));
    }

    #[test]
    fn escaping_round_trips() {
        let tricky = "a\tb\nc\rd\u{1}e";
        let line = format!("CPID\t{}", escape(tricky));
        assert!(!escape(tricky).contains(['\t', '\n', '\r']));
        assert_eq!(
            ClientLine::parse(line.as_bytes()).unwrap(),
            ClientLine::Cpid(tricky.into())
        );
    }

    #[test]
    fn formats_server_lines() {
        let hs = handshake(12, 3, "00ff");
        assert_eq!(
            hs,
            "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t12\nCUID\t3\nCOOKIE\t00ff\nDONE\n"
        );
        assert_eq!(
            ServerLine::Ok {
                id: 5,
                user: "a@b.c".into()
            }
            .format(),
            "OK\t5\tuser=a@b.c\n"
        );
        assert_eq!(
            ServerLine::Fail {
                id: 5,
                user: None,
                temporary: true
            }
            .format(),
            "FAIL\t5\tcode=temp_fail\n"
        );
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = ClientLine::parse(&line);
            let _ = decode_plain(&line);
        }

        #[test]
        fn auth_lines_round_trip(id in 0u32.., user in "[a-z0-9._-]{1,20}@[a-z]{1,10}\\.[a-z]{2,5}", pass in "[ -~]{1,40}") {
            let line = format!("AUTH\t{id}\tplain\tservice=imap\tresp={}", plain(&user, &pass));
            let ClientLine::Auth(req) = ClientLine::parse(line.as_bytes()).unwrap() else { panic!() };
            proptest::prop_assert_eq!(req.id, id);
            proptest::prop_assert_eq!(req.mechanism.as_str(), "PLAIN");
            let creds = decode_plain(req.initial_response.as_deref().unwrap()).unwrap();
            proptest::prop_assert_eq!(creds.username, user);
            proptest::prop_assert_eq!(creds.password, pass);
        }
    }
}
