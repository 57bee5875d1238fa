//! RFC 2136 dynamic update signed with TSIG (RFC 8945), for self-hosted BIND, Knot and
//! PowerDNS (research/registrars.md §3.1).
//!
//! Everything goes over TCP (a DKIM key makes the messages too large for plain UDP), one
//! connection per call. Messages are built and signed with `hickory-proto` (`TSigner`);
//! the exchange itself is a few lines here rather than hickory-net's client, because the
//! portal must tell a wrong key (the server's TSIG error `BADSIG`/`BADKEY` in an unsigned
//! answer) from a refused update or an unknown zone, which the client hides behind a
//! verification error.
//!
//! * [`DnsProvider::apply`] sends **one** UPDATE message for the whole change list, which
//!   servers apply atomically: `Put` is "delete RRset" then "add" each value, `Remove`
//!   is "delete RRset", `Merge` first asks the server for the RRset (a plain query) and
//!   then deletes the exact records to remove and adds the missing values. Removals come
//!   first in the message. A successful answer must carry a valid TSIG signature.
//! * [`DnsProvider::read`] is a TSIG-signed zone transfer (AXFR); the key needs transfer
//!   permission (Knot: `action: [update, transfer]`; BIND: `allow-transfer { key … }`;
//!   PowerDNS: `TSIG-ALLOW-AXFR` metadata). Without it, [`DnsProvider::read_names`]
//!   falls back to asking each name for each type the portal writes; records of other
//!   types are then not seen.
//! * An RFC 2136 server cannot list zones: [`DnsProvider::list_zones`] returns the
//!   configured zone.
//!
//! Errors: servers say "no" differently (Knot and BIND answer a bad key with NOTAUTH and
//! the TSIG error BADSIG/BADKEY, Knot also uses BADKEY for "key not allowed"; PowerDNS 4.7
//! answers a bad signature with a plain REFUSED or NOTAUTH). So after any refusal the
//! provider asks the zone's SOA once without and once with the key: a signed, verifiable
//! answer means the key is right (→ permission denied), a rejected signature where the
//! unsigned question was answered means a wrong key (→ wrong credentials), no answer for
//! the zone at all means the server does not serve it (→ zone not found); BADTIME → the
//! clocks differ. SERVFAIL, connection failures and timeouts → unreachable (retryable).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chatmail_shared::dns_plan::TxtStrings;
use chatmail_shared::RecordData;
use hickory_proto::op::{Message, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm as HickoryAlgorithm, TsigError};
use hickory_proto::rr::rdata::{A, AAAA, CAA, CNAME, MX, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use crate::error::ProviderError;
use crate::provider::{merge_plan, validate, Change, DnsProvider};
use crate::records::{normalize_name, value_key, ZoneContents, MODELLED_TYPES};

/// TSIG algorithms the portal offers (hickory signs only HMAC-SHA256/384/512).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TsigAlgorithm {
    /// `hmac-sha256`, the usual choice (BIND's `tsig-keygen` default).
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// `hmac-sha512`.
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

impl TsigAlgorithm {
    /// The algorithm's name as servers write it, e.g. `hmac-sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }

    fn hickory(self) -> HickoryAlgorithm {
        match self {
            TsigAlgorithm::HmacSha256 => HickoryAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha512 => HickoryAlgorithm::HmacSha512,
        }
    }
}

impl FromStr for TsigAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
            "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
            other => Err(format!(
                "the TSIG algorithm {other} is not supported; use hmac-sha256 or hmac-sha512"
            )),
        }
    }
}

/// A TSIG key: its name, algorithm and base64 secret, as in `tsig-keygen` output.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Key name, e.g. `portal`.
    pub name: String,
    /// HMAC algorithm.
    pub algorithm: TsigAlgorithm,
    /// The secret, base64.
    pub secret: Zeroizing<String>,
}

impl TsigKey {
    /// A key from its parts.
    pub fn new(name: &str, algorithm: TsigAlgorithm, secret: &str) -> Self {
        TsigKey {
            name: name.to_string(),
            algorithm,
            secret: Zeroizing::new(secret.trim().to_string()),
        }
    }
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// Default wait for each network step.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Allowed clock difference for TSIG (RFC 8945 recommends 300 s).
const FUDGE: u16 = 300;

/// A primary server that accepts TSIG-signed updates for one zone.
pub struct Rfc2136 {
    server: SocketAddr,
    zone: String,
    signer: TSigner,
    label: String,
    timeout: Duration,
}

impl std::fmt::Debug for Rfc2136 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136")
            .field("server", &self.server)
            .field("zone", &self.zone)
            .field("key", &self.signer.signer_name().to_ascii())
            .finish()
    }
}

impl Rfc2136 {
    /// A provider for `zone` on the primary at `server`, signing with `key`.
    pub fn new(server: SocketAddr, zone: &str, key: TsigKey) -> Result<Self, ProviderError> {
        let secret = Zeroizing::new(
            STANDARD
                .decode(key.secret.as_bytes())
                .map_err(|_| ProviderError::Other("the TSIG secret is not valid base64".into()))?,
        );
        let name = Name::from_ascii(format!("{}.", normalize_name(&key.name)))
            .map_err(|_| ProviderError::Other("the TSIG key name is not a valid name".into()))?;
        let signer = TSigner::new(secret.to_vec(), key.algorithm.hickory(), name, FUDGE)
            .map_err(|e| ProviderError::Other(format!("TSIG set-up failed: {e}")))?;
        let zone = normalize_name(zone);
        Ok(Rfc2136 {
            label: format!("DNS server {server} (zone {zone}, RFC 2136)"),
            server,
            zone,
            signer,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Waits at most `timeout` for each network step (connect, send, each answer).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn check_zone(&self, zone: &str) -> Result<(), ProviderError> {
        if normalize_name(zone) == self.zone {
            Ok(())
        } else {
            Err(ProviderError::ZoneNotFound {
                domain: normalize_name(zone),
            })
        }
    }

    async fn connect(&self) -> Result<Conn, ProviderError> {
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(self.server))
            .await
            .map_err(|_| ProviderError::Unreachable("no answer in time".into()))?
            .map_err(|e| ProviderError::Unreachable(e.kind().to_string()))?;
        Ok(Conn {
            stream,
            timeout: self.timeout,
        })
    }

    /// Asks for one RRset (unsigned, no recursion), returning the records owned by `name`
    /// of type `rtype`, or a CNAME there.
    async fn query(
        &self,
        conn: &mut Conn,
        name: &Name,
        rtype: RecordType,
    ) -> Result<Vec<Record>, ProviderError> {
        let mut msg = Message::query();
        msg.metadata.recursion_desired = false;
        msg.add_query(Query::query(name.clone(), rtype));
        conn.send(&encode(&msg)?).await?;
        let answer = conn.recv_answer(msg.metadata.id).await?;
        let resp = decode(&answer)?;
        match resp.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            ResponseCode::Refused => return Err(ProviderError::permission_denied()),
            ResponseCode::NotAuth => {
                return Err(ProviderError::ZoneNotFound {
                    domain: self.zone.clone(),
                })
            }
            ResponseCode::ServFail => {
                return Err(ProviderError::Unreachable(
                    "the server could not answer (SERVFAIL)".into(),
                ))
            }
            other => return Err(ProviderError::Other(format!("the server answered {other}"))),
        }
        if !resp.metadata.authoritative {
            return Err(ProviderError::ZoneNotFound {
                domain: self.zone.clone(),
            });
        }
        Ok(resp
            .answers
            .into_iter()
            .filter(|r| {
                r.name == *name
                    && (r.record_type() == rtype || r.record_type() == RecordType::CNAME)
            })
            .collect())
    }

    async fn axfr(&self) -> Result<ZoneContents, ProviderError> {
        let mut conn = self.connect().await?;
        let zone = zone_name(&self.zone)?;
        let mut msg = Message::query();
        msg.metadata.recursion_desired = false;
        msg.add_query(Query::query(zone, RecordType::AXFR));
        let mut verifier = msg
            .finalize(&self.signer, now())
            .map_err(|e| ProviderError::Other(format!("signing failed: {e}")))?;
        conn.send(&encode(&msg)?).await?;
        let mut out = ZoneContents::default();
        let mut soas = 0;
        let mut first = true;
        while soas < 2 {
            let bytes = conn.recv_answer(msg.metadata.id).await?;
            let resp = decode(&bytes)?;
            if is_refusal(&resp) {
                return Err(if first {
                    self.explain_refusal(&resp).await
                } else {
                    ProviderError::Other("the zone transfer stopped half-way".into())
                });
            }
            match resp.metadata.response_code {
                ResponseCode::NoError => {}
                ResponseCode::ServFail => {
                    return Err(ProviderError::Unreachable(
                        "the server could not send the zone (SERVFAIL)".into(),
                    ))
                }
                other => {
                    return Err(ProviderError::Other(format!(
                        "the zone transfer was answered with {other}"
                    )))
                }
            }
            if resp.signature().is_some() {
                if let Some(v) = verifier.as_mut() {
                    v.verify(&bytes)
                        .map_err(|_| ProviderError::wrong_credentials())?;
                }
            } else if first {
                return Err(ProviderError::Other(
                    "the server's zone transfer was not signed with the key".into(),
                ));
            }
            if first && resp.answers.first().map(|r| r.record_type()) != Some(RecordType::SOA) {
                return Err(ProviderError::Other(
                    "the zone transfer did not start with the zone's SOA record".into(),
                ));
            }
            first = false;
            for r in &resp.answers {
                if r.record_type() == RecordType::SOA {
                    soas += 1;
                    continue;
                }
                push_record(&mut out, r);
            }
            if resp.answers.is_empty() {
                return Err(ProviderError::Other(
                    "the zone transfer ended without its closing SOA record".into(),
                ));
            }
        }
        Ok(out)
    }

    /// Reads `names` one question at a time (fallback without transfer permission).
    async fn read_by_query(&self, names: &[String]) -> Result<ZoneContents, ProviderError> {
        let mut conn = self.connect().await?;
        let mut out = ZoneContents::default();
        let mut seen: Vec<Record> = Vec::new();
        for name in names {
            let n = normalize_name(name);
            if !crate::provider::in_zone(&n, &self.zone) {
                continue;
            }
            let qname = host_name(&n)?;
            for t in MODELLED_TYPES {
                let rtype = record_type(t)?;
                for r in self.query(&mut conn, &qname, rtype).await? {
                    if !seen.contains(&r) {
                        push_record(&mut out, &r);
                        seen.push(r);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One TCP connection to the server.
struct Conn {
    stream: TcpStream,
    timeout: Duration,
}

impl Conn {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), ProviderError> {
        let len = u16::try_from(bytes.len()).map_err(|_| {
            ProviderError::Rejected("the change is too large for one message".into())
        })?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(bytes);
        tokio::time::timeout(self.timeout, self.stream.write_all(&framed))
            .await
            .map_err(|_| ProviderError::Unreachable("no answer in time".into()))?
            .map_err(|e| ProviderError::Unreachable(e.kind().to_string()))
    }

    /// The next message with this id (skipping stray ones).
    async fn recv_answer(&mut self, id: u16) -> Result<Vec<u8>, ProviderError> {
        loop {
            let bytes = tokio::time::timeout(self.timeout, async {
                let mut len = [0u8; 2];
                self.stream.read_exact(&mut len).await?;
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                self.stream.read_exact(&mut buf).await?;
                Ok::<_, std::io::Error>(buf)
            })
            .await
            .map_err(|_| ProviderError::Unreachable("no answer in time".into()))?
            .map_err(|e| {
                ProviderError::Unreachable(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "the server closed the connection".into()
                } else {
                    e.kind().to_string()
                })
            })?;
            if bytes.len() >= 2 && u16::from_be_bytes([bytes[0], bytes[1]]) == id {
                return Ok(bytes);
            }
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn encode(msg: &Message) -> Result<Vec<u8>, ProviderError> {
    msg.to_vec()
        .map_err(|e| ProviderError::Other(format!("could not build the DNS message: {e}")))
}

fn decode(bytes: &[u8]) -> Result<Message, ProviderError> {
    Message::from_vec(bytes)
        .map_err(|e| ProviderError::Other(format!("unreadable answer from the server: {e}")))
}

/// Whether the server said no to a signed request: REFUSED, NOTAUTH, or a TSIG error.
/// Servers differ in how they say "wrong key" (Knot and BIND: NOTAUTH with BADSIG/BADKEY;
/// PowerDNS 4.7: a plain REFUSED or NOTAUTH) and "this key may not do that" (Knot:
/// BADKEY, others: REFUSED), so [`Rfc2136::explain_refusal`] asks again to tell them apart.
fn is_refusal(resp: &Message) -> bool {
    matches!(
        resp.metadata.response_code,
        ResponseCode::Refused | ResponseCode::NotAuth
    ) || resp.signature().is_some_and(|s| s.data.error.is_some())
}

/// What a signed SOA question says about the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyProbe {
    /// The server signed its answer with the key: the key is right.
    Good,
    /// The server rejected the signature or the key name.
    Bad,
    /// The server says the clocks differ too much.
    BadTime,
    /// The server does not look at signatures on questions.
    Unknown,
}

impl Rfc2136 {
    /// Tells a wrong key from a refused permission and from a zone the server does not
    /// serve, after the server said no: asks for the zone's SOA once without and once with
    /// the key.
    async fn explain_refusal(&self, refusal: &Message) -> ProviderError {
        let tsig_error = refusal.signature().and_then(|s| s.data.error);
        if tsig_error == Some(TsigError::BadTime) {
            return clock_error();
        }
        let (served, probe) = match self.probe().await {
            Ok(found) => found,
            Err(e) => return e,
        };
        match probe {
            KeyProbe::Bad => return ProviderError::wrong_credentials(),
            KeyProbe::BadTime => return clock_error(),
            KeyProbe::Good => {}
            KeyProbe::Unknown => {
                if matches!(
                    tsig_error,
                    Some(TsigError::BadSig) | Some(TsigError::BadKey)
                ) {
                    return ProviderError::wrong_credentials();
                }
            }
        }
        if !served {
            return ProviderError::ZoneNotFound {
                domain: self.zone.clone(),
            };
        }
        ProviderError::permission_denied()
    }

    /// Whether the server serves the zone (unsigned SOA question), and what it makes of
    /// the key (signed SOA question).
    async fn probe(&self) -> Result<(bool, KeyProbe), ProviderError> {
        let mut conn = self.connect().await?;
        let zone = zone_name(&self.zone)?;
        let soa_question = || {
            let mut msg = Message::query();
            msg.metadata.recursion_desired = false;
            msg.add_query(Query::query(zone.clone(), RecordType::SOA));
            msg
        };
        let plain = soa_question();
        conn.send(&encode(&plain)?).await?;
        let answer = decode(&conn.recv_answer(plain.metadata.id).await?)?;
        let served = answer.metadata.response_code == ResponseCode::NoError
            && answer.metadata.authoritative
            && answer
                .answers
                .iter()
                .any(|r| r.record_type() == RecordType::SOA);

        let mut signed = soa_question();
        let verifier = signed
            .finalize(&self.signer, now())
            .map_err(|e| ProviderError::Other(format!("signing failed: {e}")))?;
        conn.send(&encode(&signed)?).await?;
        let bytes = conn.recv_answer(signed.metadata.id).await?;
        let resp = decode(&bytes)?;
        let probe = match resp.signature().map(|s| s.data.error) {
            Some(Some(TsigError::BadTime)) => KeyProbe::BadTime,
            Some(Some(_)) => KeyProbe::Bad,
            Some(None) => match verifier {
                Some(mut v) => {
                    if v.verify(&bytes).is_ok() {
                        KeyProbe::Good
                    } else {
                        KeyProbe::Bad
                    }
                }
                None => KeyProbe::Bad,
            },
            None => {
                let refused = matches!(
                    resp.metadata.response_code,
                    ResponseCode::Refused | ResponseCode::NotAuth
                );
                if served && refused {
                    KeyProbe::Bad
                } else {
                    KeyProbe::Unknown
                }
            }
        };
        Ok((served, probe))
    }
}

fn clock_error() -> ProviderError {
    ProviderError::Other(
        "the clocks of the portal and the DNS server differ by more than five minutes".into(),
    )
}

fn zone_name(zone: &str) -> Result<Name, ProviderError> {
    host_name(zone)
}

fn host_name(name: &str) -> Result<Name, ProviderError> {
    let n = normalize_name(name);
    if n.is_empty() {
        return Ok(Name::root());
    }
    Name::from_ascii(format!("{n}."))
        .map_err(|_| ProviderError::Rejected(format!("{name} is not a valid DNS name")))
}

fn record_type(rtype: &str) -> Result<RecordType, ProviderError> {
    let up = rtype.to_ascii_uppercase();
    if let Some(num) = up.strip_prefix("TYPE").and_then(|n| n.parse::<u16>().ok()) {
        return Ok(RecordType::from(num));
    }
    RecordType::from_str(&up)
        .map_err(|_| ProviderError::Rejected(format!("unknown record type {rtype}")))
}

/// The wire form of a provider-neutral value.
fn to_rdata(data: &RecordData) -> Result<RData, ProviderError> {
    Ok(match data {
        RecordData::A(a) => RData::A(A(*a)),
        RecordData::Aaaa(a) => RData::AAAA(AAAA(*a)),
        RecordData::Mx {
            preference,
            exchange,
        } => RData::MX(MX::new(*preference, host_name(exchange)?)),
        RecordData::Txt(t) => RData::TXT(TXT::new(t.strings().to_vec())),
        RecordData::Cname(target) => RData::CNAME(CNAME(host_name(target)?)),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, host_name(target)?)),
        RecordData::Caa { flags, tag, value } => {
            let mut caa = CAA::new_issue(false, None, Vec::new());
            caa.issuer_critical = flags & 0x80 != 0;
            caa.reserved_flags = flags & 0x7f;
            caa.tag = tag.clone();
            caa.value = value.as_bytes().to_vec();
            RData::CAA(caa)
        }
    })
}

/// The provider-neutral value of a record, for the types the portal writes.
fn from_rdata(data: &RData) -> Option<RecordData> {
    let host = |n: &Name| normalize_name(&n.to_ascii());
    Some(match data {
        RData::A(a) => RecordData::A(a.0),
        RData::AAAA(a) => RecordData::Aaaa(a.0),
        RData::MX(mx) => RecordData::Mx {
            preference: mx.preference,
            exchange: host(&mx.exchange),
        },
        RData::TXT(t) => {
            let joined: String = t
                .txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            RecordData::Txt(TxtStrings::split(&joined))
        }
        RData::CNAME(c) => RecordData::Cname(host(&c.0)),
        RData::SRV(s) => RecordData::Srv {
            priority: s.priority,
            weight: s.weight,
            port: s.port,
            target: host(&s.target),
        },
        RData::CAA(c) => RecordData::Caa {
            flags: c.flags(),
            tag: c.tag.clone(),
            value: String::from_utf8_lossy(&c.value).into_owned(),
        },
        _ => return None,
    })
}

fn push_record(out: &mut ZoneContents, r: &Record) {
    let name = normalize_name(&r.name.to_ascii());
    let rtype = r.record_type();
    if rtype == RecordType::SOA {
        return;
    }
    match from_rdata(&r.data) {
        Some(data) => out.records.push(chatmail_shared::DnsRecord {
            name,
            ttl: r.ttl,
            data,
        }),
        None => out.push_presentation(&name, r.ttl, &rtype.to_string(), &r.data.to_string()),
    }
}

fn with_class(mut r: Record, class: DNSClass) -> Record {
    r.dns_class = class;
    r
}

#[async_trait]
impl DnsProvider for Rfc2136 {
    fn name(&self) -> &str {
        &self.label
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        Ok(vec![self.zone.clone()])
    }

    async fn read(&self, zone: &str) -> Result<ZoneContents, ProviderError> {
        self.check_zone(zone)?;
        self.axfr().await
    }

    async fn read_names(
        &self,
        zone: &str,
        names: &[String],
    ) -> Result<ZoneContents, ProviderError> {
        self.check_zone(zone)?;
        match self.axfr().await {
            Ok(all) => Ok(all.only_names(names)),
            Err(ProviderError::PermissionDenied { .. }) => self.read_by_query(names).await,
            Err(e) => Err(e),
        }
    }

    async fn apply(&self, zone: &str, changes: &[Change]) -> Result<(), ProviderError> {
        self.check_zone(zone)?;
        validate(zone, changes)?;
        if changes.is_empty() {
            return Ok(());
        }
        let mut conn = self.connect().await?;
        let mut deletes: Vec<Record> = Vec::new();
        let mut adds: Vec<Record> = Vec::new();
        for change in changes {
            let name = host_name(change.name())?;
            let rtype = record_type(change.rtype())?;
            match change {
                Change::Remove { .. } => {
                    deletes.push(with_class(Record::update0(name, 0, rtype), DNSClass::ANY));
                }
                Change::Put { ttl, values, .. } => {
                    deletes.push(with_class(
                        Record::update0(name.clone(), 0, rtype),
                        DNSClass::ANY,
                    ));
                    for v in values {
                        adds.push(Record::from_rdata(name.clone(), *ttl, to_rdata(v)?));
                    }
                }
                Change::Merge {
                    ttl, add, remove, ..
                } => {
                    let current = self.query(&mut conn, &name, rtype).await?;
                    let keyed: Vec<(String, Record)> = current
                        .into_iter()
                        .filter(|r| r.record_type() == rtype)
                        .map(|r| {
                            let key = from_rdata(&r.data)
                                .map(|d| value_key(&d))
                                .unwrap_or_else(|| r.data.to_string());
                            (key, r)
                        })
                        .collect();
                    let existing_ttl = keyed.first().map(|(_, r)| r.ttl);
                    let remove_keys: Vec<String> = remove.iter().map(value_key).collect();
                    for (_, r) in keyed.iter().filter(|(k, _)| remove_keys.contains(k)) {
                        let mut d = r.clone();
                        d.ttl = 0;
                        deletes.push(with_class(d, DNSClass::NONE));
                    }
                    let (kept, added) = merge_plan(keyed, add, remove);
                    let ttl = match existing_ttl {
                        Some(t) if !kept.is_empty() => t,
                        _ => *ttl,
                    };
                    for v in added {
                        adds.push(Record::from_rdata(name.clone(), ttl, to_rdata(&v)?));
                    }
                }
            }
        }
        let mut msg = Message::query();
        msg.metadata.op_code = OpCode::Update;
        msg.metadata.recursion_desired = false;
        let mut zq = Query::new();
        zq.set_name(zone_name(&self.zone)?)
            .set_query_class(DNSClass::IN)
            .set_query_type(RecordType::SOA);
        msg.add_zone(zq);
        msg.add_updates(deletes.into_iter().chain(adds));
        let verifier = msg
            .finalize(&self.signer, now())
            .map_err(|e| ProviderError::Other(format!("signing failed: {e}")))?;
        conn.send(&encode(&msg)?).await?;
        let bytes = conn.recv_answer(msg.metadata.id).await?;
        let resp = decode(&bytes)?;
        if is_refusal(&resp) {
            return Err(self.explain_refusal(&resp).await);
        }
        match resp.metadata.response_code {
            ResponseCode::NoError => {}
            ResponseCode::NotImp => {
                return Err(ProviderError::Rejected(
                    "the server does not accept dynamic updates (RFC 2136); enable them for this \
                     zone"
                        .into(),
                ))
            }
            ResponseCode::NotZone => {
                return Err(ProviderError::Rejected(format!(
                    "a record lies outside the zone {}",
                    self.zone
                )))
            }
            ResponseCode::FormErr => {
                return Err(ProviderError::Rejected(
                    "the server did not understand the update (FORMERR)".into(),
                ))
            }
            ResponseCode::ServFail => {
                return Err(ProviderError::Unreachable(
                    "the server could not apply the update (SERVFAIL)".into(),
                ))
            }
            other => {
                return Err(ProviderError::Rejected(format!(
                    "the server answered {other}"
                )))
            }
        }
        // Only a signed success is believed.
        match (resp.signature(), verifier) {
            (Some(_), Some(mut v)) => {
                v.verify(&bytes)
                    .map_err(|_| ProviderError::wrong_credentials())?;
                Ok(())
            }
            _ => Err(ProviderError::Other(
                "the server's answer was not signed with the key, so the portal cannot trust it"
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::parse_rdata;

    #[test]
    fn algorithms_parse() {
        assert_eq!(
            "HMAC-SHA256.".parse::<TsigAlgorithm>(),
            Ok(TsigAlgorithm::HmacSha256)
        );
        assert_eq!(
            "hmac-sha512".parse::<TsigAlgorithm>(),
            Ok(TsigAlgorithm::HmacSha512)
        );
        assert!("hmac-md5".parse::<TsigAlgorithm>().is_err());
    }

    #[test]
    fn values_roundtrip_through_the_wire_form() {
        for (t, v) in [
            ("A", "192.0.2.1"),
            ("AAAA", "2001:db8::1"),
            ("MX", "10 chat.example.org."),
            ("CNAME", "chat.example.org."),
            ("SRV", "0 1 587 chat.example.org."),
            (
                "CAA",
                "128 issue \"letsencrypt.org;accounturi=https://a.example/1\"",
            ),
            ("TXT", "\"v=spf1 a ~all\""),
        ] {
            let data = parse_rdata(t, v).unwrap();
            let back = from_rdata(&to_rdata(&data).unwrap()).unwrap();
            assert_eq!(value_key(&back), value_key(&data), "{t} {v}");
        }
        let long = RecordData::Txt(TxtStrings::split(&"x".repeat(400)));
        let RData::TXT(t) = to_rdata(&long).unwrap() else {
            panic!()
        };
        assert_eq!(t.txt_data.len(), 2);
    }

    #[test]
    fn keys_are_checked_and_hidden() {
        let key = TsigKey::new("portal", TsigAlgorithm::HmacSha256, "not base64!");
        assert!(Rfc2136::new("127.0.0.1:53".parse().unwrap(), "example.org", key).is_err());
        let key = TsigKey::new("portal", TsigAlgorithm::HmacSha256, "c2VjcmV0c2VjcmV0");
        assert!(!format!("{key:?}").contains("c2VjcmV0"));
        let p = Rfc2136::new("127.0.0.1:53".parse().unwrap(), "Example.org.", key).unwrap();
        assert!(!format!("{p:?}").contains("c2VjcmV0"));
        assert_eq!(p.zone, "example.org");
        assert!(record_type("TYPE65").is_ok());
        assert!(record_type("HTTPS").is_ok());
    }
}
