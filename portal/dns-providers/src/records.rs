//! The records a zone holds, as the diff and the providers see them.
//!
//! Records of the types a relay uses are `chatmail_shared`'s provider-neutral
//! [`DnsRecord`]; everything else in a zone (NS, TLSA, HTTPS, …) is kept as an
//! [`OtherRecord`] in presentation form, because an alias (CNAME) may not sit beside *any*
//! other data and the diff must see what would be in its way. [`OwnedValue`] is what the
//! portal remembers (in PostgreSQL) about the values it wrote.
//!
//! Values are compared through [`value_key`]: host names case-insensitively and without the
//! trailing dot, TXT by the joined text (how it is split into 255-byte strings does not
//! matter to verifiers). The presentation parser here reads what PowerDNS returns and what
//! [`RecordData::presentation`] writes.

use std::net::{Ipv4Addr, Ipv6Addr};

use chatmail_shared::dns_plan::TxtStrings;
use chatmail_shared::{DnsRecord, RecordData};
use serde::{Deserialize, Serialize};

/// The record types the portal writes (and models as [`RecordData`]).
pub const MODELLED_TYPES: [&str; 7] = ["A", "AAAA", "MX", "TXT", "CNAME", "SRV", "CAA"];

/// DNSSEC bookkeeping that a signer maintains beside every name; never "in the way".
const SIGNER_TYPES: [&str; 4] = ["RRSIG", "NSEC", "NSEC3", "TYPE65534"];

/// A record of a type the portal does not write, in presentation form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OtherRecord {
    /// Owner name, absolute, lowercase, without the trailing dot.
    pub name: String,
    /// Time to live in seconds.
    pub ttl: u32,
    /// Type mnemonic, e.g. `NS`, `TLSA`, `HTTPS`, `TYPE65`.
    pub rtype: String,
    /// RDATA in presentation form.
    pub value: String,
}

/// Everything a provider returned for a zone, except its SOA.
///
/// NS records (at the apex and at delegations) are in [`ZoneContents::other`]; so are all
/// other types the portal does not write. DNSSEC signatures and denial records are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneContents {
    /// Records of the types in [`MODELLED_TYPES`].
    pub records: Vec<DnsRecord>,
    /// Records of any other type.
    pub other: Vec<OtherRecord>,
}

impl From<Vec<DnsRecord>> for ZoneContents {
    fn from(records: Vec<DnsRecord>) -> Self {
        ZoneContents {
            records,
            other: Vec::new(),
        }
    }
}

impl ZoneContents {
    /// Adds a record given in presentation form (as PowerDNS and zone files have it):
    /// modelled types are parsed into [`RecordData`] (an unparsable value is kept as an
    /// [`OtherRecord`] so it is still seen), SOA and DNSSEC bookkeeping are skipped.
    pub fn push_presentation(&mut self, name: &str, ttl: u32, rtype: &str, value: &str) {
        let name = normalize_name(name);
        let rtype = rtype.to_ascii_uppercase();
        if rtype == "SOA" || SIGNER_TYPES.contains(&rtype.as_str()) {
            return;
        }
        if MODELLED_TYPES.contains(&rtype.as_str()) {
            if let Ok(data) = parse_rdata(&rtype, value) {
                self.records.push(DnsRecord { name, ttl, data });
                return;
            }
        }
        self.other.push(OtherRecord {
            name,
            ttl,
            rtype,
            value: value.to_string(),
        });
    }

    /// Only the records owned by one of `names` (compared case-insensitively).
    pub fn only_names(&self, names: &[String]) -> ZoneContents {
        let names: Vec<String> = names.iter().map(|n| normalize_name(n)).collect();
        ZoneContents {
            records: self
                .records
                .iter()
                .filter(|r| names.contains(&normalize_name(&r.name)))
                .cloned()
                .collect(),
            other: self
                .other
                .iter()
                .filter(|r| names.contains(&normalize_name(&r.name)))
                .cloned()
                .collect(),
        }
    }

    /// The records at `name` of type `rtype` (any type the zone may hold).
    pub fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        let name = normalize_name(name);
        let mut out: Vec<String> = self
            .records
            .iter()
            .filter(|r| normalize_name(&r.name) == name && r.data.rtype() == rtype)
            .map(|r| r.data.presentation())
            .chain(
                self.other
                    .iter()
                    .filter(|r| r.name == name && r.rtype == rtype)
                    .map(|r| r.value.clone()),
            )
            .collect();
        out.sort();
        out
    }
}

/// One value the portal wrote earlier (the portal keeps these in PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OwnedValue {
    /// Owner name, absolute, without the trailing dot.
    pub name: String,
    /// Type mnemonic.
    pub rtype: String,
    /// The value in presentation form ([`RecordData::presentation`]).
    pub value: String,
}

impl OwnedValue {
    /// The owned value for a record the portal wrote.
    pub fn of(record: &DnsRecord) -> Self {
        OwnedValue {
            name: normalize_name(&record.name),
            rtype: record.data.rtype().to_string(),
            value: record.data.presentation(),
        }
    }

    /// The key its value compares by (see [`value_key`]); values that do not parse compare
    /// by their text.
    pub fn key(&self) -> String {
        parse_rdata(&self.rtype, &self.value)
            .map(|d| value_key(&d))
            .unwrap_or_else(|_| self.value.clone())
    }
}

/// Lowercase, without the trailing dot.
pub fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// What a value compares by: host names lowercase without the trailing dot, TXT as the
/// joined text, CAA with its tag lowercase.
pub fn value_key(data: &RecordData) -> String {
    match data {
        RecordData::A(a) => a.to_string(),
        RecordData::Aaaa(a) => a.to_string(),
        RecordData::Mx {
            preference,
            exchange,
        } => format!("{preference} {}", normalize_name(exchange)),
        RecordData::Txt(t) => t.joined(),
        RecordData::Cname(target) => normalize_name(target),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => format!("{priority} {weight} {port} {}", normalize_name(target)),
        RecordData::Caa { flags, tag, value } => {
            format!("{flags} {} {value}", tag.to_ascii_lowercase())
        }
    }
}

/// A value for people: the presentation form, except TXT, which is shown as its joined text
/// in quotes (a DKIM key split into two strings reads as one).
pub fn display_value(data: &RecordData) -> String {
    match data {
        RecordData::Txt(t) => format!("\"{}\"", t.joined()),
        other => other.presentation(),
    }
}

/// Parses RDATA in presentation form (RFC 1035 §5.1) for one of the [`MODELLED_TYPES`].
/// Names must be absolute (a trailing dot is accepted and removed).
pub fn parse_rdata(rtype: &str, text: &str) -> Result<RecordData, String> {
    let tokens = tokenize(text)?;
    let plain = |i: usize| -> Result<String, String> {
        let t = tokens
            .get(i)
            .ok_or_else(|| format!("{rtype} value `{text}` is too short"))?;
        String::from_utf8(t.clone()).map_err(|_| format!("{rtype} value `{text}` is not text"))
    };
    let number = |i: usize| -> Result<u16, String> {
        plain(i)?
            .parse::<u16>()
            .map_err(|_| format!("{rtype} value `{text}` has a bad number"))
    };
    let host = |i: usize| -> Result<String, String> {
        let h = plain(i)?;
        Ok(if h == "." {
            String::new()
        } else {
            h.strip_suffix('.').unwrap_or(&h).to_string()
        })
    };
    let count = |n: usize| -> Result<(), String> {
        if tokens.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{rtype} value `{text}` has {} parts, expected {n}",
                tokens.len()
            ))
        }
    };
    match rtype.to_ascii_uppercase().as_str() {
        "A" => {
            count(1)?;
            plain(0)?
                .parse::<Ipv4Addr>()
                .map(RecordData::A)
                .map_err(|e| format!("bad IPv4 address `{text}`: {e}"))
        }
        "AAAA" => {
            count(1)?;
            plain(0)?
                .parse::<Ipv6Addr>()
                .map(RecordData::Aaaa)
                .map_err(|e| format!("bad IPv6 address `{text}`: {e}"))
        }
        "MX" => {
            count(2)?;
            Ok(RecordData::Mx {
                preference: number(0)?,
                exchange: host(1)?,
            })
        }
        "CNAME" => {
            count(1)?;
            Ok(RecordData::Cname(host(0)?))
        }
        "SRV" => {
            count(4)?;
            Ok(RecordData::Srv {
                priority: number(0)?,
                weight: number(1)?,
                port: number(2)?,
                target: host(3)?,
            })
        }
        "CAA" => {
            count(3)?;
            let flags = plain(0)?
                .parse::<u8>()
                .map_err(|_| format!("CAA value `{text}` has bad flags"))?;
            Ok(RecordData::Caa {
                flags,
                tag: plain(1)?,
                value: String::from_utf8_lossy(&tokens[2]).into_owned(),
            })
        }
        "TXT" => {
            if tokens.is_empty() {
                return Err("empty TXT value".into());
            }
            let joined: String = tokens
                .iter()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .collect();
            Ok(RecordData::Txt(TxtStrings::split(&joined)))
        }
        other => Err(format!("record type {other} is not one the portal writes")),
    }
}

/// Splits presentation text into character-strings: quoted (with `\"`, `\\` and `\DDD`
/// escapes) or bare words.
fn tokenize(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let quoted = b == b'"';
        if quoted {
            i += 1;
        }
        let mut token = Vec::new();
        loop {
            if i >= bytes.len() {
                if quoted {
                    return Err(format!("unterminated quoted string in `{text}`"));
                }
                break;
            }
            let c = bytes[i];
            if quoted && c == b'"' {
                i += 1;
                break;
            }
            if !quoted && c.is_ascii_whitespace() {
                break;
            }
            if c == b'\\' {
                let digits = bytes.get(i + 1..i + 4);
                match digits {
                    Some(d) if d.iter().all(u8::is_ascii_digit) => {
                        let v = (d[0] - b'0') as u32 * 100
                            + (d[1] - b'0') as u32 * 10
                            + (d[2] - b'0') as u32;
                        let v = u8::try_from(v).map_err(|_| format!("bad escape in `{text}`"))?;
                        token.push(v);
                        i += 4;
                    }
                    _ => {
                        let next = *bytes
                            .get(i + 1)
                            .ok_or_else(|| format!("dangling backslash in `{text}`"))?;
                        token.push(next);
                        i += 2;
                    }
                }
                continue;
            }
            token.push(c);
            i += 1;
        }
        out.push(token);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: RecordData) {
        let text = data.presentation();
        let back = parse_rdata(data.rtype(), &text).unwrap();
        assert_eq!(value_key(&back), value_key(&data), "{text}");
    }

    #[test]
    fn presentation_roundtrips() {
        roundtrip(RecordData::A(Ipv4Addr::new(192, 0, 2, 1)));
        roundtrip(RecordData::Aaaa("2001:db8::1".parse().unwrap()));
        roundtrip(RecordData::Mx {
            preference: 10,
            exchange: "chat.example.org".into(),
        });
        roundtrip(RecordData::Cname("chat.example.org".into()));
        roundtrip(RecordData::Srv {
            priority: 0,
            weight: 1,
            port: 587,
            target: "chat.example.org".into(),
        });
        roundtrip(RecordData::Caa {
            flags: 0,
            tag: "issue".into(),
            value: "letsencrypt.org;accounturi=https://acme.example/acct/1".into(),
        });
        roundtrip(RecordData::Txt(TxtStrings::split(
            "v=DKIM1; k=rsa; p=\"quoted\" back\\slash é",
        )));
        roundtrip(RecordData::Txt(TxtStrings::split(&"k".repeat(600))));
    }

    #[test]
    fn txt_chunks_join() {
        let d = parse_rdata("TXT", r#""v=DKIM1; " "p=abc" "def""#).unwrap();
        assert_eq!(value_key(&d), "v=DKIM1; p=abcdef");
        let bare = parse_rdata("TXT", "hello").unwrap();
        assert_eq!(value_key(&bare), "hello");
        let esc = parse_rdata("TXT", r#""a\"b\\c\065\195\169""#).unwrap();
        assert_eq!(value_key(&esc), "a\"b\\cAé");
    }

    #[test]
    fn names_compare_case_insensitively() {
        let a = parse_rdata("MX", "10 Chat.Example.ORG.").unwrap();
        let b = parse_rdata("MX", "10 chat.example.org").unwrap();
        assert_eq!(value_key(&a), value_key(&b));
        assert_eq!(
            value_key(&parse_rdata("MX", "0 .").unwrap()),
            "0 ",
            "null MX"
        );
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse_rdata("A", "300.1.1.1").is_err());
        assert!(parse_rdata("MX", "10").is_err());
        assert!(parse_rdata("TXT", "\"open").is_err());
        assert!(parse_rdata("NS", "ns1.example.org.").is_err());
        assert!(parse_rdata("TXT", r#""\999""#).is_err());
    }

    #[test]
    fn contents_sort_types() {
        let mut z = ZoneContents::default();
        z.push_presentation("Example.org.", 3600, "SOA", "ns1. h. 1 2 3 4 5");
        z.push_presentation("example.org.", 3600, "NS", "ns1.example.org.");
        z.push_presentation("example.org.", 3600, "mx", "10 mail.example.org.");
        z.push_presentation("www.example.org.", 3600, "RRSIG", "CNAME 8 3 …");
        z.push_presentation("www.example.org.", 3600, "HTTPS", "1 . alpn=h2");
        assert_eq!(z.records.len(), 1);
        assert_eq!(z.records[0].name, "example.org");
        assert_eq!(z.other.len(), 2);
        assert_eq!(z.values("example.org", "NS"), ["ns1.example.org."]);
        assert_eq!(z.values("example.org", "MX"), ["10 mail.example.org."]);
        let only = z.only_names(&["www.example.org".into()]);
        assert_eq!(only.records.len(), 0);
        assert_eq!(only.other.len(), 1);
    }

    #[test]
    fn owned_value_keys() {
        let r = DnsRecord {
            name: "Chat.Example.org".into(),
            ttl: 3600,
            data: RecordData::Mx {
                preference: 10,
                exchange: "chat.example.org".into(),
            },
        };
        let o = OwnedValue::of(&r);
        assert_eq!(o.name, "chat.example.org");
        assert_eq!(o.key(), "10 chat.example.org");
        let odd = OwnedValue {
            name: "x".into(),
            rtype: "TLSA".into(),
            value: "3 1 1 ab".into(),
        };
        assert_eq!(odd.key(), "3 1 1 ab");
    }
}
