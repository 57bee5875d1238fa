//! IMAP wire framing for the front, without I/O: where a client's command ends (lines,
//! literals `{n}` and LITERAL+ `{n+}`), the tokens of the few commands the front answers
//! itself, and the server's responses as far as the front edits them (capability lists).
//!
//! A literal is announced only at the very end of a line (`{n}` before CRLF): quoted
//! strings cannot hold CR or LF and atoms cannot hold `{`, so this reading is exact. The
//! framer never buffers a literal: it hands literal bytes on in chunks as they arrive, so
//! a 30 MiB APPEND streams through. Bounds: a line longer than [`Limits::max_line`] poisons
//! the framer (the session says BAD and closes: the rest of that line cannot be framed),
//! and a literal announced larger than [`Limits::max_literal`] is refused before its
//! bytes are read (a synchronizing one leaves the session usable, as the client sends
//! nothing without our `+`).

/// Bounds of the framer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line (one segment of a command, between literals), CRLF included.
    pub max_line: usize,
    /// Largest literal accepted.
    pub max_literal: u64,
}

/// A literal announced at the end of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Literal {
    /// Its length in bytes.
    pub len: u64,
    /// `{n}`: the client waits for a continuation request; `{n+}` (LITERAL+): it does not.
    pub sync: bool,
}

/// One framing event of the client's byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One line, with its line ending, and the literal it announces (whose bytes follow as
    /// [`Frame::LiteralData`]).
    Line {
        /// The line, CRLF (or a bare LF) included.
        line: Vec<u8>,
        /// The literal announced at its end.
        literal: Option<Literal>,
    },
    /// The next bytes of the current literal.
    LiteralData(Vec<u8>),
    /// A line announcing a literal above the limit. Nothing of the literal is expected
    /// if it was synchronizing; otherwise the framer is poisoned (its bytes would follow).
    LiteralTooLarge {
        /// The line.
        line: Vec<u8>,
        /// The literal it announced.
        literal: Literal,
    },
    /// A line above the limit; the framer is poisoned.
    LineTooLong {
        /// The line's first bytes (for its tag).
        prefix: Vec<u8>,
    },
}

/// Cuts a client's byte stream into [`Frame`]s.
#[derive(Debug)]
pub struct CommandFramer {
    limits: Limits,
    buf: Vec<u8>,
    /// Bytes of the current literal still to come.
    literal_left: u64,
    /// After an unrecoverable framing error nothing more is framed.
    poisoned: bool,
}

impl CommandFramer {
    /// A framer with `limits`.
    pub fn new(limits: Limits) -> CommandFramer {
        CommandFramer {
            limits,
            buf: Vec::new(),
            literal_left: 0,
            poisoned: false,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if !self.poisoned {
            self.buf.extend_from_slice(data);
        }
    }

    /// Whether a framing error ended the stream.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The session refused the synchronizing literal the last line announced: the
    /// client sends none of its bytes.
    pub fn refuse_literal(&mut self) {
        self.literal_left = 0;
    }

    /// Takes the bytes received but not framed yet (after COMPRESS they are the first
    /// compressed ones).
    pub fn take_unframed(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// The next frame, if the bytes so far hold one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.poisoned {
            return None;
        }
        if self.literal_left > 0 {
            if self.buf.is_empty() {
                return None;
            }
            let n = usize::try_from(self.literal_left)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let chunk: Vec<u8> = self.buf.drain(..n).collect();
            self.literal_left -= n as u64;
            return Some(Frame::LiteralData(chunk));
        }
        let Some(end) = memchr::memchr(b'\n', &self.buf) else {
            if self.buf.len() >= self.limits.max_line {
                return Some(self.too_long());
            }
            return None;
        };
        if end + 1 > self.limits.max_line {
            return Some(self.too_long());
        }
        let line: Vec<u8> = self.buf.drain(..=end).collect();
        let literal = literal_at_end(&line);
        match literal {
            Some(lit) if lit.len > self.limits.max_literal => {
                if !lit.sync {
                    self.poisoned = true;
                    self.buf.clear();
                }
                Some(Frame::LiteralTooLarge { line, literal: lit })
            }
            _ => {
                self.literal_left = literal.map_or(0, |l| l.len);
                Some(Frame::Line { line, literal })
            }
        }
    }

    fn too_long(&mut self) -> Frame {
        self.poisoned = true;
        let prefix = self.buf[..self.buf.len().min(64)].to_vec();
        self.buf.clear();
        Frame::LineTooLong { prefix }
    }
}

/// The line without its line ending.
pub fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The literal a line announces at its end (`{n}` or `{n+}` right before the line
/// ending), if any. A number too large for `u64` counts as `u64::MAX`, which no limit
/// admits.
pub fn literal_at_end(line: &[u8]) -> Option<Literal> {
    let body = trim_eol(line).strip_suffix(b"}")?;
    let (body, sync) = match body.strip_suffix(b"+") {
        Some(b) => (b, false),
        None => (body, true),
    };
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some(Literal { len, sync })
}

/// The line with its literal announcement turned non-synchronizing (`{n}` → `{n+}`), for
/// a server that advertises LITERAL+ while the front itself has answered the client's
/// continuation request.
pub fn make_non_sync(line: &[u8]) -> Vec<u8> {
    let eol = &line[trim_eol(line).len()..];
    let body = trim_eol(line);
    match body.strip_suffix(b"}") {
        Some(head) if !head.ends_with(b"+") => {
            let mut out = head.to_vec();
            out.extend_from_slice(b"+}");
            out.extend_from_slice(eol);
            out
        }
        _ => line.to_vec(),
    }
}

/// The line without the literal announcement at its end (and without the line ending).
fn strip_literal_marker(line: &[u8]) -> &[u8] {
    let body = trim_eol(line);
    if literal_at_end(line).is_some() {
        if let Some(open) = body.iter().rposition(|&b| b == b'{') {
            return &body[..open];
        }
    }
    body
}

/// Whether `b` may appear in a tag (RFC 3501 `tag`: ASTRING-CHAR except `+`).
fn is_tag_char(b: u8) -> bool {
    is_atom_char(b) && b != b'+' || b == b']'
}

/// RFC 3501 ATOM-CHAR.
fn is_atom_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !b"(){ %*\"\\]".contains(&b)
}

/// The tag and the upper-cased command name at the start of a command's first line.
pub fn command_head(line: &[u8]) -> Option<(String, String)> {
    let body = trim_eol(line);
    let sp = body.iter().position(|&b| b == b' ')?;
    let tag = &body[..sp];
    if tag.is_empty() || !tag.iter().all(|&b| is_tag_char(b)) {
        return None;
    }
    let rest = &body[sp + 1..];
    let end = rest
        .iter()
        .position(|&b| !is_atom_char(b))
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let name = String::from_utf8_lossy(&rest[..end]).to_ascii_uppercase();
    Some((String::from_utf8_lossy(tag).into_owned(), name))
}

/// A piece of a whole command: a line's text (marker and line ending removed) or the
/// bytes of a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text of one line.
    Text(Vec<u8>),
    /// A literal's bytes.
    Literal(Vec<u8>),
}

impl Part {
    /// The part for one received line.
    pub fn of_line(line: &[u8]) -> Part {
        Part::Text(strip_literal_marker(line).to_vec())
    }
}

/// One argument of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An atom (NIL included).
    Atom(String),
    /// A quoted string or a literal.
    String(Vec<u8>),
    /// A parenthesized list.
    List(Vec<Value>),
}

impl Value {
    /// The value as an astring (atom or string), if it is one.
    pub fn as_astring(&self) -> Option<Vec<u8>> {
        match self {
            Value::Atom(a) => Some(a.as_bytes().to_vec()),
            Value::String(s) => Some(s.clone()),
            Value::List(_) => None,
        }
    }

    /// Whether this is the atom NIL.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Atom(a) if a.eq_ignore_ascii_case("NIL"))
    }
}

/// A whole command the front answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The tag.
    pub tag: String,
    /// The command name, upper case.
    pub name: String,
    /// The arguments.
    pub args: Vec<Value>,
}

/// Why a command did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyntaxError(pub &'static str);

/// Parses a whole command from its parts (the first part is the line with tag and name).
pub fn parse_command(parts: &[Part]) -> Result<Command, SyntaxError> {
    let mut tokens = Tokens::new(parts);
    let tag = match tokens.next()? {
        Some(Token::Atom(t)) if !t.is_empty() && t.bytes().all(is_tag_char) => t,
        _ => return Err(SyntaxError("missing tag")),
    };
    let name = match tokens.next()? {
        Some(Token::Atom(n)) => n.to_ascii_uppercase(),
        _ => return Err(SyntaxError("missing command")),
    };
    let mut stack: Vec<Vec<Value>> = vec![Vec::new()];
    while let Some(token) = tokens.next()? {
        match token {
            Token::Open => {
                if stack.len() > 8 {
                    return Err(SyntaxError("lists nested too deep"));
                }
                stack.push(Vec::new());
            }
            Token::Close => {
                if stack.len() < 2 {
                    return Err(SyntaxError("unbalanced parenthesis"));
                }
                let list = stack.pop().expect("checked");
                stack.last_mut().expect("checked").push(Value::List(list));
            }
            Token::Atom(a) => stack.last_mut().expect("never empty").push(Value::Atom(a)),
            Token::String(s) => stack
                .last_mut()
                .expect("never empty")
                .push(Value::String(s)),
        }
    }
    if stack.len() != 1 {
        return Err(SyntaxError("unbalanced parenthesis"));
    }
    Ok(Command {
        tag,
        name,
        args: stack.pop().expect("one left"),
    })
}

enum Token {
    Open,
    Close,
    Atom(String),
    String(Vec<u8>),
}

struct Tokens<'a> {
    parts: &'a [Part],
    part: usize,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn new(parts: &'a [Part]) -> Self {
        Tokens {
            parts,
            part: 0,
            pos: 0,
        }
    }

    fn next(&mut self) -> Result<Option<Token>, SyntaxError> {
        loop {
            let Some(part) = self.parts.get(self.part) else {
                return Ok(None);
            };
            match part {
                Part::Literal(bytes) => {
                    self.part += 1;
                    self.pos = 0;
                    return Ok(Some(Token::String(bytes.clone())));
                }
                Part::Text(text) => {
                    while text.get(self.pos) == Some(&b' ') {
                        self.pos += 1;
                    }
                    let Some(&b) = text.get(self.pos) else {
                        self.part += 1;
                        self.pos = 0;
                        continue;
                    };
                    return match b {
                        b'(' => {
                            self.pos += 1;
                            Ok(Some(Token::Open))
                        }
                        b')' => {
                            self.pos += 1;
                            Ok(Some(Token::Close))
                        }
                        b'"' => self.quoted(text).map(Some),
                        _ => {
                            let start = self.pos;
                            while text
                                .get(self.pos)
                                .is_some_and(|&c| c != b' ' && c != b'(' && c != b')' && c != b'"')
                            {
                                self.pos += 1;
                            }
                            let atom = &text[start..self.pos];
                            // A list-wildcard or `]` is fine in mailbox names and entries;
                            // controls and 8-bit bytes are not.
                            if !atom.iter().all(|c| (0x21..0x7f).contains(c)) {
                                return Err(SyntaxError("invalid character"));
                            }
                            Ok(Some(Token::Atom(
                                String::from_utf8_lossy(atom).into_owned(),
                            )))
                        }
                    };
                }
            }
        }
    }

    fn quoted(&mut self, text: &[u8]) -> Result<Token, SyntaxError> {
        let mut out = Vec::new();
        let mut i = self.pos + 1;
        loop {
            match text.get(i) {
                None => return Err(SyntaxError("unterminated quoted string")),
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(Token::String(out));
                }
                Some(b'\\') => match text.get(i + 1) {
                    Some(&c @ (b'"' | b'\\')) => {
                        out.push(c);
                        i += 2;
                    }
                    _ => return Err(SyntaxError("invalid escape in quoted string")),
                },
                Some(&c) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
    }
}

/// Writes `value` as an IMAP string: quoted when short and plain, else a literal.
pub fn imap_string(value: &[u8]) -> Vec<u8> {
    if value.len() <= 1024 && value.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        let mut out = Vec::with_capacity(value.len() + 2);
        out.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    } else {
        let mut out = format!("{{{}}}\r\n", value.len()).into_bytes();
        out.extend_from_slice(value);
        out
    }
}

/// What the front does to the server's capability lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilityEdit {
    /// Removed (compared case-insensitively; an entry ending in `=` removes every
    /// capability with that prefix).
    pub hide: Vec<String>,
    /// Appended unless present.
    pub add: Vec<String>,
}

impl CapabilityEdit {
    /// The edited list of space-separated capabilities.
    pub fn apply(&self, list: &str) -> String {
        let hidden = |cap: &str| {
            self.hide.iter().any(|h| {
                if h.ends_with('=') {
                    cap.len() >= h.len()
                        && cap.as_bytes()[..h.len()].eq_ignore_ascii_case(h.as_bytes())
                } else {
                    cap.eq_ignore_ascii_case(h)
                }
            })
        };
        let mut caps: Vec<&str> = list
            .split(' ')
            .filter(|c| !c.is_empty() && !hidden(c))
            .collect();
        for add in &self.add {
            if !caps.iter().any(|c| c.eq_ignore_ascii_case(add)) {
                caps.push(add);
            }
        }
        caps.join(" ")
    }

    /// The response line (line ending included) with its capability list edited, if it
    /// carries one: `* CAPABILITY …` or a `[CAPABILITY …]` response code.
    pub fn edit_line(&self, line: &[u8]) -> Option<Vec<u8>> {
        let body = trim_eol(line);
        let eol = &line[body.len()..];
        let text = std::str::from_utf8(body).ok()?;
        if body.len() > 12 && body[..12].eq_ignore_ascii_case(b"* CAPABILITY") {
            // The first 12 bytes are ASCII, so byte 12 starts a character.
            let list = text[12..].trim_start();
            let mut out = format!("* CAPABILITY {}", self.apply(list)).into_bytes();
            out.extend_from_slice(eol);
            return Some(out);
        }
        let upper = text.to_ascii_uppercase();
        let start = upper.find("[CAPABILITY ")?;
        let list_start = start + "[CAPABILITY ".len();
        let end = list_start + text[list_start..].find(']')?;
        let mut out = format!(
            "{}[CAPABILITY {}]{}",
            &text[..start],
            self.apply(&text[list_start..end]),
            &text[end + 1..]
        )
        .into_bytes();
        out.extend_from_slice(eol);
        Some(out)
    }
}

/// One line of the server's responses, as far as the front needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseStart<'a> {
    /// `+ …`: a continuation request.
    Continuation,
    /// `* …`: untagged data or status.
    Untagged,
    /// `<tag> OK|NO|BAD …`.
    Tagged {
        /// The tag.
        tag: &'a [u8],
        /// Whether the status is OK.
        ok: bool,
    },
}

/// Classifies the first line of one server response.
pub fn response_start(line: &[u8]) -> ResponseStart<'_> {
    let body = trim_eol(line);
    if body.starts_with(b"+") {
        return ResponseStart::Continuation;
    }
    if body.starts_with(b"* ") || body == b"*" {
        return ResponseStart::Untagged;
    }
    let sp = body.iter().position(|&b| b == b' ').unwrap_or(body.len());
    let status = &body[(sp + 1).min(body.len())..];
    let ok = status.len() >= 2
        && status[..2].eq_ignore_ascii_case(b"OK")
        && (status.len() == 2 || status[2] == b' ');
    ResponseStart::Tagged {
        tag: &body[..sp],
        ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_line: 100,
        max_literal: 1000,
    };

    fn frames(input: &[u8]) -> Vec<Frame> {
        let mut framer = CommandFramer::new(LIMITS);
        framer.push(input);
        std::iter::from_fn(|| framer.next_frame()).collect()
    }

    #[test]
    fn lines_and_literals() {
        let got = frames(b"a1 NOOP\r\na2 APPEND INBOX {5}\r\nhello\r\na3 X {3+}\r\nab");
        assert_eq!(
            got,
            vec![
                Frame::Line {
                    line: b"a1 NOOP\r\n".to_vec(),
                    literal: None
                },
                Frame::Line {
                    line: b"a2 APPEND INBOX {5}\r\n".to_vec(),
                    literal: Some(Literal { len: 5, sync: true })
                },
                Frame::LiteralData(b"hello".to_vec()),
                Frame::Line {
                    line: b"\r\n".to_vec(),
                    literal: None
                },
                Frame::Line {
                    line: b"a3 X {3+}\r\n".to_vec(),
                    literal: Some(Literal {
                        len: 3,
                        sync: false
                    })
                },
                Frame::LiteralData(b"ab".to_vec()),
            ]
        );
    }

    #[test]
    fn literal_bytes_are_not_lines() {
        // A literal holding CRLF and a fake announcement is data, whole.
        let got = frames(b"a {9}\r\nx {2}\r\nyy\r\n");
        assert_eq!(got[1], Frame::LiteralData(b"x {2}\r\nyy".to_vec()));
        assert_eq!(
            got[2],
            Frame::Line {
                line: b"\r\n".to_vec(),
                literal: None
            }
        );
    }

    #[test]
    fn bounds() {
        let long = [b'a'; 200];
        assert!(matches!(frames(&long)[0], Frame::LineTooLong { .. }));
        let got = frames(b"a APPEND X {99999}\r\nb NOOP\r\n");
        assert!(matches!(got[0], Frame::LiteralTooLarge { .. }));
        // Synchronizing: the client sends nothing, the session goes on.
        assert!(matches!(got[1], Frame::Line { .. }));
        let got = frames(b"a APPEND X {99999+}\r\nb NOOP\r\n");
        assert_eq!(got.len(), 1);
        let got = frames(b"a X {99999999999999999999999}\r\n");
        assert!(matches!(got[0], Frame::LiteralTooLarge { .. }));
    }

    #[test]
    fn announcements() {
        assert_eq!(
            literal_at_end(b"a {0}\r\n"),
            Some(Literal { len: 0, sync: true })
        );
        assert_eq!(literal_at_end(b"a \"{5}\"\r\n"), None);
        assert_eq!(literal_at_end(b"a {}\r\n"), None);
        assert_eq!(literal_at_end(b"a {+}\r\n"), None);
        assert_eq!(make_non_sync(b"a APPEND X {5}\r\n"), b"a APPEND X {5+}\r\n");
        assert_eq!(
            make_non_sync(b"a APPEND X {5+}\r\n"),
            b"a APPEND X {5+}\r\n"
        );
    }

    #[test]
    fn heads_and_commands() {
        assert_eq!(
            command_head(b"a1 uid fetch 1:* FLAGS\r\n"),
            Some(("a1".into(), "UID".into()))
        );
        assert_eq!(command_head(b"DONE\r\n"), None);
        assert_eq!(command_head(b"+ x\r\n"), None);
        let parts = [
            Part::of_line(b"t SETMETADATA \"INBOX\" (/private/devicetoken {3}\r\n"),
            Part::Literal(b"a\"b".to_vec()),
            Part::of_line(b")\r\n"),
        ];
        let cmd = parse_command(&parts).unwrap();
        assert_eq!(cmd.name, "SETMETADATA");
        assert_eq!(
            cmd.args,
            vec![
                Value::String(b"INBOX".to_vec()),
                Value::List(vec![
                    Value::Atom("/private/devicetoken".into()),
                    Value::String(b"a\"b".to_vec())
                ])
            ]
        );
        let cmd = parse_command(&[Part::of_line(b"x ID (\"name\" \"a\\\"b\") NIL\r\n")]).unwrap();
        assert_eq!(cmd.args.len(), 2);
        assert!(cmd.args[1].is_nil());
        assert!(parse_command(&[Part::of_line(b"x GETMETADATA (\r\n")]).is_err());
        assert!(parse_command(&[Part::of_line(b"x GETMETADATA \"a\r\n")]).is_err());
    }

    #[test]
    fn capability_edits() {
        let edit = CapabilityEdit {
            hide: vec!["COMPRESS=".into(), "STARTTLS".into()],
            add: vec!["METADATA".into(), "IDLE".into()],
        };
        assert_eq!(
            edit.edit_line(b"* CAPABILITY IMAP4rev1 COMPRESS=DEFLATE IDLE\r\n")
                .unwrap(),
            b"* CAPABILITY IMAP4rev1 IDLE METADATA\r\n"
        );
        assert_eq!(
            edit.edit_line(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")
                .unwrap(),
            b"* OK [CAPABILITY IMAP4rev1 METADATA IDLE] ready\r\n"
        );
        assert_eq!(edit.edit_line(b"a OK LOGIN done\r\n"), None);
        assert_eq!(imap_string(b"a\"b"), b"\"a\\\"b\"");
        assert_eq!(imap_string(b"a\nb"), b"{3}\r\na\nb");
    }

    #[test]
    fn responses() {
        assert_eq!(response_start(b"+ idling\r\n"), ResponseStart::Continuation);
        assert_eq!(response_start(b"* 3 EXISTS\r\n"), ResponseStart::Untagged);
        assert_eq!(
            response_start(b"a1 OK done\r\n"),
            ResponseStart::Tagged {
                tag: b"a1",
                ok: true
            }
        );
        assert_eq!(
            response_start(b"a1 NO bad\r\n"),
            ResponseStart::Tagged {
                tag: b"a1",
                ok: false
            }
        );
    }
}
