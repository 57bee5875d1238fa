//! Just enough MIME to apply chatmail's rules, without building a message tree.
//!
//! Upstream's filter parses every message fully (research/chatmail.md §1.3); the rules only
//! look at a few header fields, the top-level content type and at most three body parts,
//! so this reads the header section once, finds part boundaries with a SIMD substring
//! search, and decodes a body only when a rule asks for it. It follows the same parsing
//! conventions as upstream's parser where they change a verdict: header names are
//! case-insensitive, media types are compared lower-cased, a multipart needs a `boundary`
//! parameter and at least one delimiter line to have parts, a delimiter is `--boundary` at
//! the start of a line (whatever follows on that line), and `--boundary--` closes.
//!
//! Everything here works on untrusted bytes: no indexing that can panic, no recursion
//! deeper than one level, and a header section that is not `name: value` lines is an
//! error rather than a guess.

use std::borrow::Cow;

use memchr::memmem;

/// A header section that cannot be read as header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// One header field: its name and its raw value (folding kept, leading blanks removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub raw_value: &'a [u8],
}

impl<'a> Field<'a> {
    /// The value unfolded (line breaks removed) and trimmed.
    pub fn value(&self) -> Cow<'a, str> {
        unfold(self.raw_value)
    }
}

/// Unfolds a raw header value: CR and LF are dropped (the blanks after them stay), then
/// surrounding blanks are trimmed. Bytes that are not UTF-8 are replaced.
pub fn unfold(raw: &[u8]) -> Cow<'_, str> {
    if memchr::memchr2(b'\r', b'\n', raw).is_none() {
        return match String::from_utf8_lossy(raw) {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
            Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
        };
    }
    let joined: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    Cow::Owned(String::from_utf8_lossy(&joined).trim().to_string())
}

/// Fields whose meaning the checks depend on, which RFC 5322 and RFC 2045 allow once.
const SINGLE_FIELDS: [&str; 4] = [
    "Content-Type",
    "Content-Transfer-Encoding",
    "From",
    "Sender",
];

/// A header section and the body after it.
#[derive(Debug, Clone)]
pub struct Entity<'a> {
    pub fields: Vec<Field<'a>>,
    pub body: &'a [u8],
}

impl<'a> Entity<'a> {
    /// Splits `raw` at the first empty line and reads the header fields before it. Without
    /// an empty line, everything is header and the body is empty.
    pub fn parse(raw: &'a [u8]) -> Result<Entity<'a>, ParseError> {
        let (head, body) = split_head(raw);
        let fields = parse_fields(head)?;
        // Readers disagree on which of two such fields counts (we read the first, some
        // clients the last), so a message could pass as encrypted and show as clear text.
        for name in SINGLE_FIELDS {
            let count = fields
                .iter()
                .filter(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
                .count();
            if count > 1 {
                return Err(ParseError(
                    "a header field that may appear once appears twice",
                ));
            }
        }
        Ok(Entity { fields, body })
    }

    /// The first field called `name` (ASCII case-insensitive).
    pub fn field(&self, name: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The unfolded, trimmed value of the first field called `name`.
    pub fn value(&self, name: &str) -> Option<Cow<'a, str>> {
        self.field(name).map(Field::value)
    }

    /// The content type; `text/plain` when the field is missing.
    pub fn content_type(&self) -> ContentType {
        match self.value("Content-Type") {
            Some(v) => ContentType::parse(&v),
            None => ContentType::default_text(),
        }
    }

    /// The body with its transfer encoding (base64, quoted-printable) undone. A body that
    /// does not decode gives `None`.
    pub fn decoded_body(&self) -> Option<Cow<'a, [u8]>> {
        let encoding = self
            .value("Content-Transfer-Encoding")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_default();
        match encoding.as_str() {
            "base64" => decode_base64_lenient(self.body).map(Cow::Owned),
            "quoted-printable" => Some(Cow::Owned(decode_quoted_printable(self.body))),
            _ => Some(Cow::Borrowed(self.body)),
        }
    }
}

/// Header section and body: split after the first empty line (CRLF CRLF or LF LF). The
/// header section keeps its last line break; the empty line belongs to neither.
pub fn split_head(raw: &[u8]) -> (&[u8], &[u8]) {
    if raw.starts_with(b"\r\n") {
        return (&[], &raw[2..]);
    }
    if raw.starts_with(b"\n") {
        return (&[], &raw[1..]);
    }
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &raw[from..]) {
        let nl = from + i;
        let rest = &raw[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return (&raw[..nl + 1], &rest[2..]);
        }
        if rest.starts_with(b"\n") {
            return (&raw[..nl + 1], &rest[1..]);
        }
        from = nl + 1;
    }
    (raw, &[])
}

/// Header fields of a header section: `name:value` lines, continued by lines that start
/// with a blank.
fn parse_fields(head: &[u8]) -> Result<Vec<Field<'_>>, ParseError> {
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos < head.len() {
        let line_start = pos;
        let first = head[pos];
        if first == b' ' || first == b'\t' {
            return Err(ParseError("header section starts with a continuation line"));
        }
        // The field ends before the first line break that is not followed by a blank.
        let mut end = head.len();
        let mut scan = pos;
        while let Some(i) = memchr::memchr(b'\n', &head[scan..]) {
            let nl = scan + i;
            match head.get(nl + 1) {
                Some(b' ') | Some(b'\t') => scan = nl + 1,
                _ => {
                    end = nl + 1;
                    break;
                }
            }
        }
        let field = &head[line_start..end];
        let Some(colon) = memchr::memchr(b':', field) else {
            return Err(ParseError("header line without a colon"));
        };
        let name = &field[..colon];
        if name.contains(&b'\n') {
            return Err(ParseError("header name with a line break"));
        }
        let name = trim_blanks(name);
        let mut value = &field[colon + 1..];
        while let [b' ' | b'\t', rest @ ..] = value {
            value = rest;
        }
        let value = strip_line_end(value);
        fields.push(Field {
            name,
            raw_value: value,
        });
        pos = end;
    }
    Ok(fields)
}

fn trim_blanks(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn strip_line_end(s: &[u8]) -> &[u8] {
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    s.strip_suffix(b"\r").unwrap_or(s)
}

/// A parsed `Content-Type`: the media type lower-cased and the `boundary` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// `type/subtype`, lower-cased.
    pub mime_type: String,
    /// The `boundary` parameter, unquoted.
    pub boundary: Option<String>,
}

impl ContentType {
    fn default_text() -> ContentType {
        ContentType {
            mime_type: "text/plain".into(),
            boundary: None,
        }
    }

    /// Parses a content type value (unfolded).
    pub fn parse(value: &str) -> ContentType {
        let (ty, params) = match value.find(';') {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => (value, ""),
        };
        ContentType {
            mime_type: ty.trim().to_ascii_lowercase(),
            boundary: param(params, "boundary"),
        }
    }

    /// Whether the type is `multipart/*`.
    pub fn is_multipart(&self) -> bool {
        self.mime_type.starts_with("multipart/")
    }
}

/// The value of parameter `name` in `; a=b; c="d"` (quoted strings unescaped).
fn param(params: &str, name: &str) -> Option<String> {
    let bytes = params.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Skip separators and blanks.
        while i < bytes.len() && (bytes[i] == b';' || bytes[i].is_ascii_whitespace()) {
            i += 1;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b';' {
            i += 1;
        }
        let key = params[key_start..i].trim();
        if i >= bytes.len() || bytes[i] == b';' {
            continue;
        }
        i += 1; // '='
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let mut v = String::new();
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                // Push whole characters (the input is a str).
                let ch_len = utf8_len(bytes[i]);
                let end = (i + ch_len).min(bytes.len());
                v.push_str(params.get(i..end).unwrap_or(""));
                i = end;
            }
            i += 1; // closing quote
            v
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b';' {
                i += 1;
            }
            params[start..i].trim().to_string()
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
    }
    None
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// The body parts of a multipart body with `boundary`, at most `limit` of them (callers
/// only need to know whether there are more than a few). Empty if no delimiter line is
/// found.
pub fn split_multipart<'a>(body: &'a [u8], boundary: &str, limit: usize) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    if boundary.is_empty() || limit == 0 {
        return parts;
    }
    let delimiter = [b"--", boundary.as_bytes()].concat();
    let finder = memmem::Finder::new(&delimiter);
    let Some(mut at) = find_at_line_start(&finder, body, 0) else {
        return parts;
    };
    loop {
        let after = at + delimiter.len();
        if body.get(after..after + 2) == Some(b"--") {
            break; // close delimiter
        }
        // The part starts on the line after the delimiter.
        let Some(nl) = memchr::memchr(b'\n', &body[after..]) else {
            break;
        };
        let start = after + nl + 1;
        let next = find_at_line_start(&finder, body, start);
        let end = match next {
            Some(n) => {
                let mut e = n;
                if e > start && body[e - 1] == b'\n' {
                    e -= 1;
                    if e > start && body[e - 1] == b'\r' {
                        e -= 1;
                    }
                }
                e
            }
            None => body.len(),
        };
        parts.push(&body[start..end]);
        if parts.len() >= limit {
            break;
        }
        match next {
            Some(n) => at = n,
            None => break,
        }
    }
    parts
}

fn find_at_line_start(finder: &memmem::Finder<'_>, hay: &[u8], mut from: usize) -> Option<usize> {
    while from <= hay.len() {
        let i = from + finder.find(&hay[from..])?;
        if i == 0 || hay[i - 1] == b'\n' {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// An entity's parts if it is a multipart with parts; `None` otherwise.
pub fn parts<'a>(entity: &Entity<'a>, limit: usize) -> Option<Vec<&'a [u8]>> {
    let ct = entity.content_type();
    if !ct.is_multipart() {
        return None;
    }
    let boundary = ct.boundary?;
    let parts = split_multipart(entity.body, &boundary, limit);
    (!parts.is_empty()).then_some(parts)
}

/// Base64 as mail writers produce it: line breaks and blanks ignored, padding optional.
fn decode_base64_lenient(body: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(clean).ok()
}

/// Quoted-printable: `=XX` escapes and soft line breaks; anything malformed is kept as is.
fn decode_quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b == b'=' {
            match (body.get(i + 1), body.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(&h), Some(&l)) => {
                    if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_unfold_and_are_case_insensitive() {
        let raw = b"From: a@b.example\r\nContent-Type: multipart/mixed;\r\n boundary=\"xyz\"\r\nX-Empty:\r\n\r\nbody";
        let e = Entity::parse(raw).unwrap();
        assert_eq!(e.value("from").unwrap(), "a@b.example");
        assert_eq!(e.value("x-empty").unwrap(), "");
        let ct = e.content_type();
        assert_eq!(ct.mime_type, "multipart/mixed");
        assert_eq!(ct.boundary.as_deref(), Some("xyz"));
        assert_eq!(e.body, b"body");
    }

    #[test]
    fn a_second_content_type_or_from_is_an_error() {
        for raw in [
            &b"From: a@b.example\r\nContent-Type: multipart/encrypted; boundary=x\r\ncontent-type: text/plain\r\n\r\nhello"[..],
            b"From: a@b.example\r\nFROM: c@d.example\r\n\r\nhello",
            b"Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\n\r\nhello",
        ] {
            assert!(Entity::parse(raw).is_err(), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn header_without_colon_is_an_error() {
        assert!(Entity::parse(b"From a@b\r\n\r\nx").is_err());
        assert!(Entity::parse(b" folded\r\n\r\nx").is_err());
    }

    #[test]
    fn no_empty_line_means_no_body() {
        let e = Entity::parse(b"Subject: x").unwrap();
        assert_eq!(e.body, b"");
        assert_eq!(e.value("subject").unwrap(), "x");
    }

    #[test]
    fn multipart_parts() {
        let body = b"preamble\r\n--b\r\nA: 1\r\n\r\none\r\n--b trailing\r\n\r\ntwo\r\n--b--\r\nepilogue\r\n--b\r\nnot a part";
        let parts = split_multipart(body, "b", 10);
        assert_eq!(parts, vec![&b"A: 1\r\n\r\none"[..], &b"\r\ntwo"[..]]);
        // Delimiters must start a line.
        assert!(split_multipart(b"x--b\r\nno", "b", 10).is_empty());
        // Without a close delimiter the last part runs to the end.
        assert_eq!(split_multipart(b"--b\r\nrest", "b", 10), vec![&b"rest"[..]]);
        assert_eq!(
            split_multipart(b"--b\r\n1\r\n--b\r\n2\r\n--b\r\n3", "b", 2).len(),
            2
        );
    }

    #[test]
    fn params() {
        assert_eq!(
            param(" charset=utf-8; Boundary=\"a\\\"b\"", "boundary").as_deref(),
            Some("a\"b")
        );
        assert_eq!(
            param("x; boundary=abc ", "boundary").as_deref(),
            Some("abc")
        );
        assert_eq!(param("boundary", "boundary"), None);
        assert_eq!(
            param("boundary=\"unterminated", "boundary").as_deref(),
            Some("unterminated")
        );
    }

    #[test]
    fn transfer_encodings() {
        let e = Entity::parse(b"Content-Transfer-Encoding: base64\r\n\r\nVmVy\r\nc2lvbjogMQ==\r\n")
            .unwrap();
        assert_eq!(&*e.decoded_body().unwrap(), b"Version: 1");
        let e =
            Entity::parse(b"Content-Transfer-Encoding: Quoted-Printable\r\n\r\nVersion=3A =\r\n1")
                .unwrap();
        assert_eq!(&*e.decoded_body().unwrap(), b"Version: 1");
    }
}
