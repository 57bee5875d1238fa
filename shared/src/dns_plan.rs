//! `DnsPlan`: every DNS record a relay needs, with why it needs it.
//!
//! The portal writes these records through a DNS provider and checks them live; the zone
//! file export and the provider code both take them from here, so there is exactly one
//! list. It follows upstream's `cmdeploy dns` output (research/chatmail.md §4): its
//! "required" and "recommended" records with their TTL and exact values, plus a TLSRPT
//! record that upstream does not publish.
//!
//! Records that need facts only the device knows (its DKIM key, its ACME account URL, and
//! its address if the config has none) are [`PlannedValue::Pending`] until those facts are
//! supplied in [`DeviceFacts`].

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::config::RelayConfig;
use crate::device_facts::DeviceFacts;
use crate::domain::{DomainName, MailDomain};
use crate::mta_sts::PolicyId;

/// TTL of every record, as upstream (research/chatmail.md §4).
pub const DEFAULT_TTL: u32 = 3600;

/// The DKIM selector, as upstream (research/chatmail.md §4). The device must sign with it.
pub const DKIM_SELECTOR: &str = "opendkim";

/// MX preference, as upstream (`MX 10 <domain>.`).
pub const MX_PREFERENCE: u16 = 10;

/// SPF policy, as upstream: only the domain's own A/AAAA may send, soft-fail otherwise.
pub const SPF_VALUE: &str = "v=spf1 a ~all";

/// DMARC policy, as upstream: reject, strict DKIM and SPF alignment.
pub const DMARC_VALUE: &str = "v=DMARC1;p=reject;adkim=s;aspf=s";

/// ADSP record value, as upstream (`_adsp._domainkey`). ADSP (RFC 5617) is historic, but
/// upstream still publishes it.
pub const ADSP_VALUE: &str = "dkim=discardable";

/// Whether a relay works without the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Requirement {
    /// The relay does not work (or cannot get a certificate) without it; upstream's
    /// "Required DNS entries".
    Required,
    /// The relay works, but delivery, security or client set-up is worse without it;
    /// upstream's "Recommended DNS entries".
    Recommended,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Requirement::Required => "required",
            Requirement::Recommended => "recommended",
        })
    }
}

/// TXT data as a list of character-strings of at most 255 bytes each (RFC 1035 §3.3).
/// Resolvers and DKIM verifiers concatenate them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxtStrings(Vec<String>);

impl TxtStrings {
    /// Longest single character-string.
    pub const MAX_STRING_LEN: usize = 255;

    /// Splits `text` into strings of at most 255 bytes (at character boundaries), as
    /// upstream does for the DKIM key.
    pub fn split(text: &str) -> Self {
        let mut out = Vec::new();
        let mut rest = text;
        while rest.len() > Self::MAX_STRING_LEN {
            let mut cut = Self::MAX_STRING_LEN;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push(rest[..cut].to_string());
            rest = &rest[cut..];
        }
        out.push(rest.to_string());
        TxtStrings(out)
    }

    /// The strings, each at most 255 bytes.
    pub fn strings(&self) -> &[String] {
        &self.0
    }

    /// The strings joined, i.e. the value a verifier sees.
    pub fn joined(&self) -> String {
        self.0.concat()
    }
}

/// Typed record data. Names are absolute, in ASCII, without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Mail exchanger.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// Host that accepts the mail.
        exchange: String,
    },
    /// Text.
    Txt(TxtStrings),
    /// Alias.
    Cname(String),
    /// Service location (RFC 2782).
    Srv {
        /// Lower is tried first.
        priority: u16,
        /// Share among equal priorities.
        weight: u16,
        /// TCP port.
        port: u16,
        /// Host.
        target: String,
    },
    /// Certification Authority Authorization (RFC 8659).
    Caa {
        /// 0, or 128 for critical.
        flags: u8,
        /// `issue`, `issuewild`, `iodef`.
        tag: String,
        /// The value, e.g. `letsencrypt.org;accounturi=https://…`.
        value: String,
    },
}

impl RecordData {
    /// The record type mnemonic: `A`, `AAAA`, `MX`, `TXT`, `CNAME`, `SRV`, `CAA`.
    pub fn rtype(&self) -> &'static str {
        match self {
            RecordData::A(_) => "A",
            RecordData::Aaaa(_) => "AAAA",
            RecordData::Mx { .. } => "MX",
            RecordData::Txt(_) => "TXT",
            RecordData::Cname(_) => "CNAME",
            RecordData::Srv { .. } => "SRV",
            RecordData::Caa { .. } => "CAA",
        }
    }

    /// The RDATA in zone-file presentation form (RFC 1035 §5.1), with absolute names,
    /// e.g. `10 chat.example.org.` or `"v=spf1 a ~all"`.
    pub fn presentation(&self) -> String {
        match self {
            RecordData::A(a) => a.to_string(),
            RecordData::Aaaa(a) => a.to_string(),
            RecordData::Mx {
                preference,
                exchange,
            } => format!("{preference} {exchange}."),
            RecordData::Txt(t) => t
                .strings()
                .iter()
                .map(|s| quote(s))
                .collect::<Vec<_>>()
                .join(" "),
            RecordData::Cname(target) => format!("{target}."),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => format!("{priority} {weight} {port} {target}."),
            RecordData::Caa { flags, tag, value } => format!("{flags} {tag} {}", quote(value)),
        }
    }
}

/// A quoted character-string: `"` and `\` escaped, bytes outside printable ASCII as `\DDD`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

/// A complete record, ready for a DNS provider API.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsRecord {
    /// Owner name, absolute, ASCII, without the trailing dot (e.g. `_dmarc.chat.example.org`).
    pub name: String,
    /// Time to live in seconds.
    pub ttl: u32,
    /// Type and data.
    pub data: RecordData,
}

impl DnsRecord {
    /// The owner name with the trailing dot.
    pub fn fqdn(&self) -> String {
        format!("{}.", self.name)
    }

    /// The owner name relative to `zone` (`@` for the apex), or `None` if outside it.
    /// Many provider APIs want this form.
    pub fn relative_name(&self, zone: &DomainName) -> Option<String> {
        relative(&self.name, zone)
    }
}

fn relative(name: &str, zone: &DomainName) -> Option<String> {
    let zone = zone.as_str();
    if name == zone {
        return Some("@".to_string());
    }
    name.strip_suffix(zone)
        .and_then(|prefix| prefix.strip_suffix('.'))
        .map(str::to_string)
}

/// The fact a pending record waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pending {
    /// The config has neither an IPv4 nor an IPv6 address.
    PublicAddress,
    /// The device has not reported its DKIM public key yet.
    DkimPublicKey,
    /// The device has not reported its ACME account URL yet.
    AcmeAccountUrl,
}

impl Pending {
    /// What is missing, in plain words.
    pub fn explanation(self) -> &'static str {
        match self {
            Pending::PublicAddress => "waits for the relay's public IP address",
            Pending::DkimPublicKey => {
                "waits for the signing key the device creates when it first starts"
            }
            Pending::AcmeAccountUrl => {
                "waits for the certificate account the device registers when it first starts"
            }
        }
    }
}

/// A record's value: known, or waiting for a fact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PlannedValue {
    /// Known and publishable.
    Ready(RecordData),
    /// Not publishable yet.
    Pending(Pending),
}

/// What a record is for; fixes its requirement and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// `<domain> A`.
    Ipv4Address,
    /// `<domain> AAAA`.
    Ipv6Address,
    /// `<domain> MX`.
    MailExchanger,
    /// `_mta-sts.<domain> TXT`.
    MtaStsPolicyId,
    /// `mta-sts.<domain> CNAME`.
    MtaStsHost,
    /// `www.<domain> CNAME`.
    WwwAlias,
    /// `opendkim._domainkey.<domain> TXT`.
    Dkim,
    /// `<domain> TXT v=spf1`.
    Spf,
    /// `_dmarc.<domain> TXT`.
    Dmarc,
    /// `<domain> CAA`.
    Caa,
    /// `_adsp._domainkey.<domain> TXT`.
    Adsp,
    /// `_submission._tcp.<domain> SRV` (587).
    SubmissionSrv,
    /// `_submissions._tcp.<domain> SRV` (465).
    SubmissionsSrv,
    /// `_imap._tcp.<domain> SRV` (143).
    ImapSrv,
    /// `_imaps._tcp.<domain> SRV` (993).
    ImapsSrv,
    /// `_smtp._tls.<domain> TXT` (TLSRPT, RFC 8460; not published by upstream).
    TlsReporting,
}

impl Purpose {
    /// Required or recommended, following upstream's split (research/chatmail.md §4).
    pub fn requirement(self) -> Requirement {
        use Purpose::*;
        match self {
            Ipv4Address | Ipv6Address | MailExchanger | MtaStsPolicyId | MtaStsHost | WwwAlias
            | Dkim => Requirement::Required,
            Spf | Dmarc | Caa | Adsp | SubmissionSrv | SubmissionsSrv | ImapSrv | ImapsSrv
            | TlsReporting => Requirement::Recommended,
        }
    }

    /// One sentence saying why the record exists, for people who are not DNS experts.
    pub fn reason(self) -> &'static str {
        use Purpose::*;
        match self {
            Ipv4Address => "Tells apps and other mail servers the IPv4 address where your relay can be reached.",
            Ipv6Address => "Tells apps and other mail servers the IPv6 address where your relay can be reached.",
            MailExchanger => "Tells other mail servers to deliver messages for addresses at your domain to your relay.",
            MtaStsPolicyId => "Announces that other mail servers must use a verified, encrypted connection when they deliver to your relay.",
            MtaStsHost => "Lets other mail servers fetch your relay's encryption policy from the name mta-sts in front of your domain.",
            WwwAlias => "Lets people who type www in front of your domain still reach your relay's web page.",
            Dkim => "Publishes the key your relay signs outgoing messages with, so receivers can check that they really come from your domain.",
            Spf => "Says that only your relay may send mail for your domain, so receivers do not take its messages for spam.",
            Dmarc => "Tells receivers to refuse messages that pretend to come from your domain but fail the signature and sender checks.",
            Caa => "Allows only your relay's own certificate account to get HTTPS certificates for your domain, so nobody else can.",
            Adsp => "Tells older mail servers that every message from your domain is signed, so unsigned fakes can be discarded.",
            SubmissionSrv => "Helps mail apps find the port for sending messages (587, encrypted after connecting).",
            SubmissionsSrv => "Helps mail apps find the port for sending messages (465, encrypted from the start).",
            ImapSrv => "Helps mail apps find the port for reading messages (143, encrypted after connecting).",
            ImapsSrv => "Helps mail apps find the port for reading messages (993, encrypted from the start).",
            TlsReporting => "Asks other mail servers to report failed encrypted deliveries to your contact address, so certificate problems are noticed early.",
        }
    }
}

/// One planned record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlannedRecord {
    /// What it is for.
    pub purpose: Purpose,
    /// Owner name, absolute, ASCII, without the trailing dot.
    pub name: String,
    /// Time to live in seconds.
    pub ttl: u32,
    /// Required or recommended.
    pub requirement: Requirement,
    /// One sentence a non-expert understands.
    pub reason: &'static str,
    /// The value, or what it waits for.
    pub value: PlannedValue,
}

impl PlannedRecord {
    fn new(purpose: Purpose, name: String, value: PlannedValue) -> Self {
        PlannedRecord {
            purpose,
            name,
            ttl: DEFAULT_TTL,
            requirement: purpose.requirement(),
            reason: purpose.reason(),
            value,
        }
    }

    /// The record type this will be (also while pending).
    pub fn rtype(&self) -> &'static str {
        match &self.value {
            PlannedValue::Ready(d) => d.rtype(),
            PlannedValue::Pending(Pending::PublicAddress) => "A",
            PlannedValue::Pending(Pending::DkimPublicKey) => "TXT",
            PlannedValue::Pending(Pending::AcmeAccountUrl) => "CAA",
        }
    }

    /// The publishable record, unless pending.
    pub fn ready(&self) -> Option<DnsRecord> {
        match &self.value {
            PlannedValue::Ready(data) => Some(DnsRecord {
                name: self.name.clone(),
                ttl: self.ttl,
                data: data.clone(),
            }),
            PlannedValue::Pending(_) => None,
        }
    }

    /// The owner name relative to `zone` (`@` for the apex), or `None` if outside it.
    pub fn relative_name(&self, zone: &DomainName) -> Option<String> {
        relative(&self.name, zone)
    }
}

/// The full record set for one relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPlan {
    domain: MailDomain,
    records: Vec<PlannedRecord>,
}

impl DnsPlan {
    /// Plans every record for `config`, using whatever the device has reported so far.
    ///
    /// Order: required records first, then recommended ones, each in upstream's order
    /// (research/chatmail.md §4); TLSRPT last. TLSRPT is left out when the config has no
    /// `privacy.contact_mail`, because its reports need an address outside the relay (a
    /// chatmail relay refuses the unencrypted report mails).
    pub fn new(config: &RelayConfig, facts: &DeviceFacts) -> Self {
        use Purpose::*;
        let d = config.mail_domain.as_str();
        let sub = |prefix: &str| format!("{prefix}.{d}");
        let ready = PlannedValue::Ready;
        let txt = |s: &str| ready(RecordData::Txt(TxtStrings::split(s)));
        let srv = |port: u16| {
            ready(RecordData::Srv {
                priority: 0,
                weight: 1,
                port,
                target: d.to_string(),
            })
        };
        let mut records = Vec::new();
        let mut push =
            |purpose, name, value| records.push(PlannedRecord::new(purpose, name, value));

        // Required (research/chatmail.md §4, "Required DNS entries").
        match (config.addresses.ipv4, config.addresses.ipv6) {
            (None, None) => push(
                Ipv4Address,
                d.to_string(),
                PlannedValue::Pending(Pending::PublicAddress),
            ),
            (v4, v6) => {
                if let Some(a) = v4 {
                    push(Ipv4Address, d.to_string(), ready(RecordData::A(a)));
                }
                if let Some(a) = v6 {
                    push(Ipv6Address, d.to_string(), ready(RecordData::Aaaa(a)));
                }
            }
        }
        push(
            MailExchanger,
            d.to_string(),
            ready(RecordData::Mx {
                preference: MX_PREFERENCE,
                exchange: d.to_string(),
            }),
        );
        push(
            MtaStsPolicyId,
            sub("_mta-sts"),
            txt(&PolicyId::for_domain(&config.mail_domain).txt_value()),
        );
        push(
            MtaStsHost,
            sub("mta-sts"),
            ready(RecordData::Cname(d.to_string())),
        );
        push(
            WwwAlias,
            sub("www"),
            ready(RecordData::Cname(d.to_string())),
        );
        push(
            Dkim,
            sub(&format!("{DKIM_SELECTOR}._domainkey")),
            match &facts.dkim_public_key {
                Some(key) => txt(&key.txt_value()),
                None => PlannedValue::Pending(Pending::DkimPublicKey),
            },
        );

        // Recommended (research/chatmail.md §4, "Recommended DNS entries").
        push(Spf, d.to_string(), txt(SPF_VALUE));
        push(Dmarc, sub("_dmarc"), txt(DMARC_VALUE));
        push(
            Caa,
            d.to_string(),
            match &facts.acme_account_url {
                Some(url) => ready(RecordData::Caa {
                    flags: 0,
                    tag: "issue".to_string(),
                    value: format!("{};accounturi={}", config.acme.caa_issuer, url),
                }),
                None => PlannedValue::Pending(Pending::AcmeAccountUrl),
            },
        );
        push(Adsp, sub("_adsp._domainkey"), txt(ADSP_VALUE));
        push(SubmissionSrv, sub("_submission._tcp"), srv(587));
        push(SubmissionsSrv, sub("_submissions._tcp"), srv(465));
        push(ImapSrv, sub("_imap._tcp"), srv(143));
        push(ImapsSrv, sub("_imaps._tcp"), srv(993));

        // Beyond upstream: SMTP TLS reporting (RFC 8460).
        if let Some(contact) = &config.privacy.contact_mail {
            push(
                TlsReporting,
                sub("_smtp._tls"),
                txt(&format!("v=TLSRPTv1; rua=mailto:{contact}")),
            );
        }
        DnsPlan {
            domain: config.mail_domain.clone(),
            records,
        }
    }

    /// The mail domain the plan is for.
    pub fn domain(&self) -> &MailDomain {
        &self.domain
    }

    /// Every planned record, ready or pending.
    pub fn records(&self) -> &[PlannedRecord] {
        &self.records
    }

    /// The records that can be published now, as provider-neutral structs.
    pub fn ready_records(&self) -> Vec<DnsRecord> {
        self.records
            .iter()
            .filter_map(PlannedRecord::ready)
            .collect()
    }

    /// The records still waiting for a fact.
    pub fn pending_records(&self) -> impl Iterator<Item = &PlannedRecord> {
        self.records
            .iter()
            .filter(|r| matches!(r.value, PlannedValue::Pending(_)))
    }

    /// Whether nothing is pending.
    pub fn is_complete(&self) -> bool {
        self.pending_records().next().is_none()
    }

    /// The first record for `purpose`.
    pub fn get(&self, purpose: Purpose) -> Option<&PlannedRecord> {
        self.records.iter().find(|r| r.purpose == purpose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_split_at_255() {
        let s = "x".repeat(600);
        let t = TxtStrings::split(&s);
        assert_eq!(
            t.strings().iter().map(String::len).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        assert_eq!(t.joined(), s);
        assert_eq!(TxtStrings::split("").strings(), [""]);
        let multibyte = "é".repeat(200);
        let t = TxtStrings::split(&multibyte);
        assert!(t.strings().iter().all(|p| p.len() <= 255));
        assert_eq!(t.joined(), multibyte);
    }

    #[test]
    fn presentation_quotes_and_escapes() {
        let t = RecordData::Txt(TxtStrings::split("a\"b\\c\u{1}é"));
        assert_eq!(t.presentation(), r#""a\"b\\c\001\195\169""#);
    }

    #[test]
    fn relative_names() {
        let zone = DomainName::parse("example.org").unwrap();
        let r = DnsRecord {
            name: "_dmarc.chat.example.org".into(),
            ttl: 1,
            data: RecordData::Cname("x.example".into()),
        };
        assert_eq!(r.relative_name(&zone).as_deref(), Some("_dmarc.chat"));
        let apex = DnsRecord {
            name: "example.org".into(),
            ..r.clone()
        };
        assert_eq!(apex.relative_name(&zone).as_deref(), Some("@"));
        let outside = DnsRecord {
            name: "badexample.org".into(),
            ..r
        };
        assert_eq!(outside.relative_name(&zone), None);
    }
}
