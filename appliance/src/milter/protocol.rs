//! The milter wire format (Sendmail milter protocol, version 6), and nothing else.
//!
//! A packet is a 32-bit big-endian length (covering the command byte and the data), one
//! command byte and the data (research/crates.md, Appendix A). [`Framer`] cuts packets out
//! of a byte stream, [`decode`] turns one into a [`Command`], and [`Response::encode`]
//! writes our answers. Nothing here does I/O or knows chatmail's rules, so the decoder is
//! fuzzed on its own: every input either decodes or is an error; nothing panics, and
//! packets longer than [`MAX_PACKET`] are refused before anything is buffered.

/// The protocol version we speak (what Maddy and Postfix send).
pub const VERSION: u32 = 6;

/// The largest packet accepted: a body chunk is at most 64 KiB (1 MiB with
/// `SMFIP_MDS_1M`); everything else is far smaller.
pub const MAX_PACKET: usize = 1024 * 1024 + 64;

/// Protocol flags (which steps the MTA may skip or not wait for).
pub mod flags {
    pub const NO_CONNECT: u32 = 0x01;
    pub const NO_HELO: u32 = 0x02;
    pub const NO_MAIL: u32 = 0x04;
    pub const NO_RCPT: u32 = 0x08;
    pub const NO_BODY: u32 = 0x10;
    pub const NO_HEADERS: u32 = 0x20;
    pub const NO_EOH: u32 = 0x40;
    pub const NR_HEADER: u32 = 0x80;
    pub const NO_UNKNOWN: u32 = 0x100;
    pub const NO_DATA: u32 = 0x200;
    pub const SKIP: u32 = 0x400;
    pub const NR_CONNECT: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_DATA: u32 = 0x10000;
    pub const NR_UNKNOWN: u32 = 0x20000;
    pub const NR_EOH: u32 = 0x40000;
    pub const NR_BODY: u32 = 0x80000;
}

/// A command from the MTA. Byte strings borrow from the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `O`: the MTA's version, offered actions and protocol flags.
    OptNeg {
        version: u32,
        actions: u32,
        protocol: u32,
    },
    /// `D`: macros for the stage named by `stage` (a command byte).
    Macro {
        stage: u8,
        pairs: Vec<(&'a [u8], &'a [u8])>,
    },
    /// `C`: the client's host name, address family and address.
    Connect {
        hostname: &'a [u8],
        family: u8,
        port: Option<u16>,
        address: Option<&'a [u8]>,
    },
    /// `H`: the HELO/EHLO name.
    Helo(&'a [u8]),
    /// `M`: the sender (`<addr>`) and ESMTP arguments.
    Mail(Vec<&'a [u8]>),
    /// `R`: a recipient (`<addr>`) and ESMTP arguments.
    Rcpt(Vec<&'a [u8]>),
    /// `T`: DATA started.
    Data,
    /// `L`: one header field.
    Header { name: &'a [u8], value: &'a [u8] },
    /// `N`: end of the header fields.
    EndOfHeaders,
    /// `B`: a piece of the body.
    Body(&'a [u8]),
    /// `E`: end of the message.
    EndOfMessage,
    /// `A`: forget the current message.
    Abort,
    /// `Q`: close the connection.
    Quit,
    /// `K`: forget the connection; another one follows on the same socket.
    QuitNewConnection,
    /// `U`: an SMTP command the MTA did not know.
    Unknown(&'a [u8]),
}

/// A packet that is not valid milter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The length prefix is 0 or larger than [`MAX_PACKET`].
    BadLength(u32),
    /// An unknown command byte.
    UnknownCommand(u8),
    /// The data does not have the command's shape.
    Malformed(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::BadLength(n) => write!(f, "packet length {n} out of range"),
            DecodeError::UnknownCommand(c) => write!(f, "unknown command byte 0x{c:02x}"),
            DecodeError::Malformed(what) => write!(f, "malformed packet: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Cuts packets out of a growing buffer.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    start: usize,
}

impl Framer {
    /// Adds bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete packet as (command byte, data), `Ok(None)` if more bytes are
    /// needed, or an error for a length that cannot be valid (the stream is then lost).
    pub fn next_packet(&mut self) -> Result<Option<(u8, &[u8])>, DecodeError> {
        let pending = &self.buf[self.start..];
        let Some(len_bytes) = pending.get(..4) else {
            self.compact();
            return Ok(None);
        };
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        if len == 0 || len as usize > MAX_PACKET {
            return Err(DecodeError::BadLength(len));
        }
        let total = 4 + len as usize;
        if pending.len() < total {
            self.compact();
            return Ok(None);
        }
        let begin = self.start;
        self.start += total;
        let packet = &self.buf[begin + 4..begin + total];
        Ok(Some((packet[0], &packet[1..])))
    }

    /// Bytes buffered but not yet returned.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// Decodes one packet.
pub fn decode(code: u8, data: &[u8]) -> Result<Command<'_>, DecodeError> {
    Ok(match code {
        b'O' => {
            if data.len() < 12 {
                return Err(DecodeError::Malformed("OPTNEG shorter than 12 bytes"));
            }
            let word =
                |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            Command::OptNeg {
                version: word(0),
                actions: word(4),
                protocol: word(8),
            }
        }
        b'D' => {
            let Some((&stage, rest)) = data.split_first() else {
                return Err(DecodeError::Malformed("MACRO without a stage"));
            };
            let strings = c_strings(rest)?;
            if strings.len() % 2 != 0 {
                return Err(DecodeError::Malformed(
                    "MACRO with an odd number of strings",
                ));
            }
            Command::Macro {
                stage,
                pairs: strings.chunks(2).map(|p| (p[0], p[1])).collect(),
            }
        }
        b'C' => {
            let (hostname, rest) = c_string(data)?;
            let Some((&family, rest)) = rest.split_first() else {
                return Err(DecodeError::Malformed("CONNECT without a family"));
            };
            match family {
                b'U' => Command::Connect {
                    hostname,
                    family: b'U',
                    port: None,
                    address: Some(c_string(rest)?.0),
                },
                b'4' | b'6' => {
                    let Some(port) = rest.get(..2) else {
                        return Err(DecodeError::Malformed("CONNECT without a port"));
                    };
                    let port = u16::from_be_bytes([port[0], port[1]]);
                    Command::Connect {
                        hostname,
                        family,
                        port: Some(port),
                        address: Some(c_string(&rest[2..])?.0),
                    }
                }
                b'L' => Command::Connect {
                    hostname,
                    family,
                    port: None,
                    address: None,
                },
                _ => return Err(DecodeError::Malformed("CONNECT with an unknown family")),
            }
        }
        b'H' => Command::Helo(c_string(data)?.0),
        b'M' => Command::Mail(non_empty_args(data, "MAIL without a sender")?),
        b'R' => Command::Rcpt(non_empty_args(data, "RCPT without a recipient")?),
        b'T' => Command::Data,
        b'L' => {
            let (name, rest) = c_string(data)?;
            let (value, rest) = c_string(rest)?;
            if !rest.is_empty() {
                return Err(DecodeError::Malformed("HEADER with trailing data"));
            }
            Command::Header { name, value }
        }
        b'N' => Command::EndOfHeaders,
        b'B' => Command::Body(data),
        b'E' => Command::EndOfMessage,
        b'A' => Command::Abort,
        b'Q' => Command::Quit,
        b'K' => Command::QuitNewConnection,
        b'U' => Command::Unknown(c_string(data)?.0),
        other => return Err(DecodeError::UnknownCommand(other)),
    })
}

/// One NUL-terminated string and the rest.
fn c_string(data: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    match memchr::memchr(0, data) {
        Some(i) => Ok((&data[..i], &data[i + 1..])),
        None => Err(DecodeError::Malformed("string without NUL")),
    }
}

/// Consecutive NUL-terminated strings to the end of the data.
fn c_strings(mut data: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (s, rest) = c_string(data)?;
        out.push(s);
        data = rest;
    }
    Ok(out)
}

fn non_empty_args<'a>(data: &'a [u8], what: &'static str) -> Result<Vec<&'a [u8]>, DecodeError> {
    let args = c_strings(data)?;
    if args.is_empty() {
        return Err(DecodeError::Malformed(what));
    }
    Ok(args)
}

/// An answer to the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `O`: our version, the actions we use, the protocol flags we want.
    OptNeg {
        version: u32,
        actions: u32,
        protocol: u32,
    },
    /// `c`: go on.
    Continue,
    /// `a`: accept the message; no more steps for it.
    Accept,
    /// `r`: reject (5xx).
    Reject,
    /// `t`: reject temporarily (4xx).
    TempFail,
    /// `y`: reject with this reply (`code` 4xx or 5xx, text after the code).
    ReplyCode { code: u16, text: String },
}

impl Response {
    /// Appends the packet to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut packet = |code: u8, data: &[u8]| {
            out.extend_from_slice(&(1 + data.len() as u32).to_be_bytes());
            out.push(code);
            out.extend_from_slice(data);
        };
        match self {
            Response::OptNeg {
                version,
                actions,
                protocol,
            } => {
                let mut data = [0u8; 12];
                data[..4].copy_from_slice(&version.to_be_bytes());
                data[4..8].copy_from_slice(&actions.to_be_bytes());
                data[8..].copy_from_slice(&protocol.to_be_bytes());
                packet(b'O', &data);
            }
            Response::Continue => packet(b'c', &[]),
            Response::Accept => packet(b'a', &[]),
            Response::Reject => packet(b'r', &[]),
            Response::TempFail => packet(b't', &[]),
            Response::ReplyCode { code, text } => {
                // libmilter's format: "xyz text", '%' doubled, NUL-terminated; no line
                // breaks inside.
                let code = (*code).clamp(400, 599);
                let mut data = format!("{code} ").into_bytes();
                for b in text.bytes() {
                    match b {
                        b'%' => data.extend_from_slice(b"%%"),
                        b'\r' | b'\n' | 0 => data.push(b' '),
                        _ => data.push(b),
                    }
                }
                data.push(0);
                packet(b'y', &data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(code: u8, data: &[u8]) -> Vec<u8> {
        let mut v = (1 + data.len() as u32).to_be_bytes().to_vec();
        v.push(code);
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn framing_across_reads() {
        let mut stream = frame(b'O', &[0, 0, 0, 6, 0, 0, 0, 0x21, 0, 0, 0, 0]);
        stream.extend(frame(b'M', b"<a@b>\0SMTPUTF8\0"));
        let mut framer = Framer::default();
        let mut seen = Vec::new();
        for byte in stream {
            framer.extend(&[byte]);
            while let Some((code, data)) = framer.next_packet().unwrap() {
                seen.push(format!("{:?}", decode(code, data).unwrap()));
            }
        }
        assert_eq!(seen.len(), 2);
        assert!(seen[0].contains("OptNeg { version: 6, actions: 33, protocol: 0 }"));
        assert!(seen[1].contains("Mail"));
        assert_eq!(framer.pending(), 0);
    }

    #[test]
    fn lengths_are_bounded() {
        let mut framer = Framer::default();
        framer.extend(&[0xFF, 0xFF, 0xFF, 0xFF, b'B']);
        assert!(matches!(
            framer.next_packet(),
            Err(DecodeError::BadLength(_))
        ));
        let mut framer = Framer::default();
        framer.extend(&[0, 0, 0, 0]);
        assert!(framer.next_packet().is_err());
    }

    #[test]
    fn commands() {
        assert_eq!(
            decode(b'L', b"Subject\0hello\0").unwrap(),
            Command::Header {
                name: b"Subject",
                value: b"hello"
            }
        );
        assert_eq!(
            decode(b'C', b"mx.example\x004\x00\x19127.0.0.1\0").unwrap(),
            Command::Connect {
                hostname: b"mx.example",
                family: b'4',
                port: Some(25),
                address: Some(b"127.0.0.1"),
            }
        );
        assert_eq!(
            decode(b'D', b"Mi\0ABC\0auth_authen\0u@x\0").unwrap(),
            Command::Macro {
                stage: b'M',
                pairs: vec![(&b"i"[..], &b"ABC"[..]), (&b"auth_authen"[..], &b"u@x"[..])]
            }
        );
        assert!(decode(b'L', b"Subject\0no-nul").is_err());
        assert!(decode(b'M', b"").is_err());
        assert!(decode(b'O', b"short").is_err());
        assert!(decode(b'z', b"").is_err());
        assert!(decode(b'D', b"Modd\0").is_err());
    }

    #[test]
    fn reply_code_encoding() {
        let mut out = Vec::new();
        Response::ReplyCode {
            code: 523,
            text: "100% wrong\r\n".into(),
        }
        .encode(&mut out);
        assert_eq!(&out[4..], b"y523 100%% wrong  \0");
        assert_eq!(
            u32::from_be_bytes(out[..4].try_into().unwrap()) as usize,
            out.len() - 4
        );
    }
}
