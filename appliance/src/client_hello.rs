//! The first bytes of a TLS connection, read only as far as routing needs: the ClientHello's
//! ALPN protocols and server name (SNI).
//!
//! The port-443 multiplexer ([`crate::alpn_mux`]) calls [`parse`] on the bytes a client has
//! sent so far and forwards the same bytes, untouched, to the server it picks. The parser
//! is pure (no I/O), so it is fuzzed and table-tested on its own.
//!
//! A ClientHello may arrive in several TCP segments and may be split across several TLS
//! records (RFC 8446 §5.1 allows fragmenting a handshake message); both are reassembled.
//! Everything the parser reads is bounded by [`MAX_PREREAD`] bytes, the size of nginx's
//! default preread buffer, which upstream's multiplexer uses.

use std::collections::BTreeSet;
use std::fmt;

/// Most bytes looked at before the ClientHello must be complete.
pub const MAX_PREREAD: usize = 16 * 1024;

/// Largest TLS record payload (RFC 8446 §5.1, `TLSPlaintext.length`).
const MAX_RECORD: usize = 1 << 14;
const RECORD_HEADER: usize = 5;
const HANDSHAKE_HEADER: usize = 4;
const CONTENT_TYPE_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXTENSION_SERVER_NAME: u16 = 0;
const EXTENSION_ALPN: u16 = 16;
const SERVER_NAME_TYPE_HOST: u8 = 0;
/// Longest DNS name in text form (RFC 1035 §2.3.4, without the trailing dot).
const MAX_HOST_NAME: usize = 253;

/// What a ClientHello says about where the connection should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    server_name: Option<ServerName>,
    alpn: Vec<ProtocolName>,
}

impl ClientHello {
    /// The host name the client asked for, if it sent one.
    pub fn server_name(&self) -> Option<&ServerName> {
        self.server_name.as_ref()
    }

    /// The ALPN protocols offered, in the client's order of preference (empty without the
    /// extension).
    pub fn alpn(&self) -> &[ProtocolName] {
        &self.alpn
    }

    /// Whether the client offers `protocol` through ALPN.
    pub fn offers(&self, protocol: &[u8]) -> bool {
        self.alpn.iter().any(|p| p.as_bytes() == protocol)
    }
}

/// One ALPN protocol name: 1 to 255 bytes (RFC 7301 §3.1).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProtocolName(Vec<u8>);

impl ProtocolName {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ProtocolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// A host name from SNI: 1 to 253 bytes of letters, digits, `-`, `_` and `.`, lower-cased,
/// without the trailing dot of the fully qualified form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerName(String);

impl ServerName {
    fn parse(bytes: &[u8]) -> Option<ServerName> {
        let bytes = bytes.strip_suffix(b".").unwrap_or(bytes);
        let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        if bytes.is_empty() || bytes.len() > MAX_HOST_NAME || !bytes.iter().all(allowed) {
            return None;
        }
        Some(ServerName(
            String::from_utf8_lossy(bytes).to_ascii_lowercase(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The answer for the bytes seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A well-formed start of a ClientHello; more bytes are needed.
    Incomplete,
    /// The whole ClientHello.
    Complete(ClientHello),
}

/// Why the bytes are not (the start of) a ClientHello this parser accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The first byte of a record is not the handshake content type: not TLS (or an
    /// SSL 2.0 hello, which no current client sends).
    #[error("not a TLS handshake record (content type {0:#04x})")]
    NotHandshake(u8),
    /// The record's major version is not 3 (SSL 3.0 and every TLS version).
    #[error("record version {0}.{1} is not TLS")]
    NotTlsVersion(u8, u8),
    /// A record longer than TLS allows.
    #[error("a record of {0} bytes is longer than TLS allows")]
    RecordTooLong(usize),
    /// The first handshake message is not a ClientHello.
    #[error("handshake message type {0} is not a ClientHello")]
    NotClientHello(u8),
    /// The ClientHello would not fit into [`MAX_PREREAD`] bytes.
    #[error("a ClientHello of {0} bytes is longer than {MAX_PREREAD} bytes")]
    HelloTooLong(usize),
    /// [`MAX_PREREAD`] bytes came without a complete ClientHello (many tiny records).
    #[error("no complete ClientHello in {MAX_PREREAD} bytes")]
    PrereadFull,
    /// A field does not follow the TLS encoding.
    #[error("malformed ClientHello: {0}")]
    Malformed(Field),
}

/// The part of a ClientHello that is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Field {
    #[error("empty handshake record")]
    EmptyRecord,
    #[error("truncated before its end")]
    Truncated,
    #[error("session id longer than 32 bytes")]
    SessionId,
    #[error("cipher suite list")]
    CipherSuites,
    #[error("compression method list")]
    CompressionMethods,
    #[error("extension list")]
    Extensions,
    #[error("extension {0} appears twice")]
    DuplicateExtension(u16),
    #[error("server name (SNI)")]
    ServerName,
    #[error("ALPN protocol list")]
    Alpn,
}

impl From<Field> for HelloError {
    fn from(field: Field) -> Self {
        HelloError::Malformed(field)
    }
}

/// Reads the ClientHello at the start of `bytes` (what a client has sent so far).
///
/// `Ok(Parsed::Incomplete)` means "read more and call again with all bytes"; the answer
/// for a prefix never contradicts the answer for the whole, except that
/// [`HelloError::PrereadFull`] ends the wait at [`MAX_PREREAD`] bytes.
pub fn parse(bytes: &[u8]) -> Result<Parsed, HelloError> {
    let bytes = &bytes[..bytes.len().min(MAX_PREREAD)];
    let mut handshake = Vec::new();
    let mut rest = bytes;
    while rest.len() >= RECORD_HEADER {
        let (header, after) = rest.split_at(RECORD_HEADER);
        if header[0] != CONTENT_TYPE_HANDSHAKE {
            return Err(HelloError::NotHandshake(header[0]));
        }
        if header[1] != 3 {
            return Err(HelloError::NotTlsVersion(header[1], header[2]));
        }
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if length > MAX_RECORD {
            return Err(HelloError::RecordTooLong(length));
        }
        if length == 0 {
            return Err(Field::EmptyRecord.into());
        }
        let Some(fragment) = after.get(..length) else {
            break;
        };
        handshake.extend_from_slice(fragment);
        rest = &after[length..];
        if let Some(hello) = client_hello_body(&handshake)? {
            return parse_body(hello).map(Parsed::Complete);
        }
    }
    // A first byte alone already tells TLS from anything else.
    if let Some(&first) = rest.first() {
        if handshake.is_empty() && first != CONTENT_TYPE_HANDSHAKE {
            return Err(HelloError::NotHandshake(first));
        }
    }
    if bytes.len() >= MAX_PREREAD {
        return Err(HelloError::PrereadFull);
    }
    Ok(Parsed::Incomplete)
}

/// The ClientHello body once the reassembled handshake bytes hold all of it.
fn client_hello_body(handshake: &[u8]) -> Result<Option<&[u8]>, HelloError> {
    let Some(header) = handshake.get(..HANDSHAKE_HEADER) else {
        return Ok(None);
    };
    if header[0] != HANDSHAKE_CLIENT_HELLO {
        return Err(HelloError::NotClientHello(header[0]));
    }
    let length = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
    // Even in a single record, the hello and two headers must fit the preread buffer.
    if length + HANDSHAKE_HEADER + RECORD_HEADER > MAX_PREREAD {
        return Err(HelloError::HelloTooLong(length));
    }
    Ok(handshake.get(HANDSHAKE_HEADER..HANDSHAKE_HEADER + length))
}

/// The ClientHello body (RFC 8446 §4.1.2, and the TLS 1.2 form of RFC 5246 §7.4.1.2).
fn parse_body(body: &[u8]) -> Result<ClientHello, HelloError> {
    let mut r = Reader(body);
    r.take(2)?; // legacy_version
    r.take(32)?; // random
    if r.vec8()?.0.len() > 32 {
        return Err(Field::SessionId.into());
    }
    let suites = r.vec16()?;
    if suites.0.len() < 2 || suites.0.len() % 2 != 0 {
        return Err(Field::CipherSuites.into());
    }
    if r.vec8()?.0.is_empty() {
        return Err(Field::CompressionMethods.into());
    }
    let mut hello = ClientHello {
        server_name: None,
        alpn: Vec::new(),
    };
    // Hellos without extensions exist (old TLS 1.2 clients): no SNI, no ALPN.
    if r.0.is_empty() {
        return Ok(hello);
    }
    let mut extensions = r.vec16().map_err(|_| Field::Extensions)?;
    if !r.0.is_empty() {
        return Err(Field::Extensions.into());
    }
    let mut seen = BTreeSet::new();
    while !extensions.0.is_empty() {
        let kind = extensions.u16().map_err(|_| Field::Extensions)?;
        let data = extensions.vec16().map_err(|_| Field::Extensions)?;
        if !seen.insert(kind) {
            return Err(Field::DuplicateExtension(kind).into());
        }
        match kind {
            EXTENSION_SERVER_NAME => hello.server_name = Some(parse_server_name(data)?),
            EXTENSION_ALPN => hello.alpn = parse_alpn(data)?,
            _ => {}
        }
    }
    Ok(hello)
}

/// `server_name` (RFC 6066 §3): a list whose first entry is the host name. What follows
/// it is not read: other name types have no agreed encoding (rustls and nginx stop there
/// too).
fn parse_server_name(mut data: Reader<'_>) -> Result<ServerName, Field> {
    let mut list = data.vec16().map_err(|_| Field::ServerName)?;
    if !data.0.is_empty() || list.u8().map_err(|_| Field::ServerName)? != SERVER_NAME_TYPE_HOST {
        return Err(Field::ServerName);
    }
    let host = list.vec16().map_err(|_| Field::ServerName)?;
    ServerName::parse(host.0).ok_or(Field::ServerName)
}

/// `application_layer_protocol_negotiation` (RFC 7301 §3.1): a non-empty list of
/// non-empty names.
fn parse_alpn(mut data: Reader<'_>) -> Result<Vec<ProtocolName>, Field> {
    let mut list = data.vec16().map_err(|_| Field::Alpn)?;
    if !data.0.is_empty() || list.0.is_empty() {
        return Err(Field::Alpn);
    }
    let mut names = Vec::new();
    while !list.0.is_empty() {
        let name = list.vec8().map_err(|_| Field::Alpn)?;
        if name.0.is_empty() {
            return Err(Field::Alpn);
        }
        names.push(ProtocolName(name.0.to_vec()));
    }
    Ok(names)
}

/// A cursor over TLS's length-prefixed encoding; every read checks the bounds.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Field> {
        if self.0.len() < n {
            return Err(Field::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Field> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Field> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Result<Reader<'a>, Field> {
        let n = self.u8()?;
        self.take(usize::from(n)).map(Reader)
    }

    fn vec16(&mut self) -> Result<Reader<'a>, Field> {
        let n = self.u16()?;
        self.take(usize::from(n)).map(Reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Extensions as (type, data).
    type Extensions = Vec<(u16, Vec<u8>)>;

    /// A ClientHello body with the given extensions.
    fn body(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend([7; 32]);
        b.push(0); // session id
        b.extend([0, 2, 0x13, 0x01]); // one cipher suite
        b.extend([1, 0]); // null compression
        let mut ext = Vec::new();
        for (kind, data) in extensions {
            ext.extend(kind.to_be_bytes());
            ext.extend((data.len() as u16).to_be_bytes());
            ext.extend(data);
        }
        b.extend((ext.len() as u16).to_be_bytes());
        b.extend(ext);
        b
    }

    fn handshake(body: &[u8]) -> Vec<u8> {
        let mut h = vec![HANDSHAKE_CLIENT_HELLO];
        h.extend(&(body.len() as u32).to_be_bytes()[1..]);
        h.extend(body);
        h
    }

    /// `handshake` split into records of at most `size` bytes.
    fn records(handshake: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in handshake.chunks(size) {
            out.extend([CONTENT_TYPE_HANDSHAKE, 3, 1]);
            out.extend((chunk.len() as u16).to_be_bytes());
            out.extend(chunk);
        }
        out
    }

    fn alpn(names: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for n in names {
            list.push(n.len() as u8);
            list.extend(*n);
        }
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend(list);
        d
    }

    fn sni(name: &[u8]) -> Vec<u8> {
        let mut entry = vec![SERVER_NAME_TYPE_HOST];
        entry.extend((name.len() as u16).to_be_bytes());
        entry.extend(name);
        let mut d = (entry.len() as u16).to_be_bytes().to_vec();
        d.extend(entry);
        d
    }

    fn complete(bytes: &[u8]) -> ClientHello {
        match parse(bytes) {
            Ok(Parsed::Complete(hello)) => hello,
            other => panic!("expected a complete hello, got {other:?}"),
        }
    }

    #[test]
    fn alpn_and_sni_in_one_record_or_many() {
        let hs = handshake(&body(&[
            (EXTENSION_SERVER_NAME, sni(b"Chat.Example.ORG")),
            (EXTENSION_ALPN, alpn(&[b"imap", b"smtp"])),
        ]));
        for size in [1, 3, 64, MAX_RECORD] {
            let hello = complete(&records(&hs, size));
            assert_eq!(hello.server_name().unwrap().as_str(), "chat.example.org");
            assert!(hello.offers(b"imap") && hello.offers(b"smtp"));
            assert!(!hello.offers(b"http/1.1"));
        }
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let bytes = records(&handshake(&body(&[(EXTENSION_ALPN, alpn(&[b"smtp"]))])), 10);
        for end in 0..bytes.len() {
            assert_eq!(parse(&bytes[..end]), Ok(Parsed::Incomplete), "at {end}");
        }
        assert!(complete(&bytes).offers(b"smtp"));
    }

    #[test]
    fn without_extensions_there_is_no_alpn_or_sni() {
        let mut b = body(&[]);
        b.truncate(b.len() - 2); // no extensions block at all
        let hello = complete(&records(&handshake(&b), MAX_RECORD));
        assert!(hello.alpn().is_empty() && hello.server_name().is_none());
    }

    #[test]
    fn non_tls_is_recognised_from_the_first_byte() {
        assert_eq!(parse(b"G"), Err(HelloError::NotHandshake(b'G')));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n"),
            Err(HelloError::NotHandshake(b'G'))
        );
        assert_eq!(
            parse(&[22, 2, 0, 0, 1, 0]),
            Err(HelloError::NotTlsVersion(2, 0))
        );
    }

    #[test]
    fn bad_lengths_and_fields_are_refused() {
        let too_long = [22, 3, 1, 0x40, 0x01];
        assert_eq!(parse(&too_long), Err(HelloError::RecordTooLong(0x4001)));
        assert_eq!(
            parse(&[22, 3, 1, 0, 0]),
            Err(HelloError::Malformed(Field::EmptyRecord))
        );
        // A handshake announcing 1 MiB.
        assert_eq!(
            parse(&[22, 3, 1, 0, 4, 1, 0x10, 0, 0]),
            Err(HelloError::HelloTooLong(0x100000))
        );
        // A ServerHello.
        assert_eq!(
            parse(&[22, 3, 3, 0, 4, 2, 0, 0, 0]),
            Err(HelloError::NotClientHello(2))
        );
        let cases: [(Extensions, Field); 6] = [
            (vec![(EXTENSION_ALPN, alpn(&[b""]))], Field::Alpn),
            (vec![(EXTENSION_ALPN, vec![0, 0])], Field::Alpn),
            (
                vec![(EXTENSION_SERVER_NAME, sni(b"bad name"))],
                Field::ServerName,
            ),
            (vec![(EXTENSION_SERVER_NAME, vec![])], Field::ServerName),
            (vec![(5, vec![]), (5, vec![])], Field::DuplicateExtension(5)),
            (vec![(EXTENSION_ALPN, vec![0, 9, 4])], Field::Alpn),
        ];
        for (extensions, field) in cases {
            let bytes = records(&handshake(&body(&extensions)), MAX_RECORD);
            assert_eq!(parse(&bytes), Err(HelloError::Malformed(field)));
        }
    }

    #[test]
    fn tiny_records_cannot_outgrow_the_preread_buffer() {
        // 1-byte records cost 6 bytes each: a 4 KiB hello needs about 24 KiB.
        let hs = handshake(&body(&[(1000, vec![0; 4000])]));
        let bytes = records(&hs, 1);
        assert_eq!(parse(&bytes), Err(HelloError::PrereadFull));
        assert_eq!(parse(&bytes[..MAX_PREREAD - 1]), Ok(Parsed::Incomplete));
    }
}
