//! Local stand-ins for the cloud DNS APIs the portal writes through (Cloudflare,
//! DigitalOcean, Linode, Hetzner Cloud, deSEC, Gandi LiveDNS, Porkbun, Namecheap,
//! OVHcloud), on 127.0.0.1 free ports.
//!
//! Each implements, for the calls the portal makes, the provider's published API (the
//! module of each provider cites the documentation section): its URLs and JSON or XML
//! shapes, its pagination (with a deliberately small page size, so every client must
//! follow pages), its authentication and the error bodies it sends for a wrong key (401),
//! a key without permission (403), an unknown zone (404) and rate limits (429 with its
//! Retry-After or reset header), and the data rules that matter to the portal: TXT
//! quoting and the 255-byte string limit where the API takes presentation form, TTL
//! minimums, and the rule that an alias (CNAME) stands alone at its name.
//!
//! A test controls a mock through [`MockServer`]: seed zones and records, add tokens
//! (read-write or read-only, or accept the tokens of a [`crate::oauth_server`]), queue
//! failures (429, 500) for the next requests, make every write after the first *n* fail
//! (a provider that goes away half-way), and read what the zone holds in presentation
//! form, independently of the portal's own parsing.

pub mod cloudflare;
pub mod desec;
pub mod digitalocean;
pub mod gandi;
pub mod hetzner;
pub mod linode;
pub mod namecheap;
pub mod ovh;
pub mod porkbun;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chatmail_shared::RecordData;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write.
    ReadWrite,
    /// Read only: writes get the provider's 403.
    ReadOnly,
}

/// A failure queued for the next request(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with the provider's rate-limit headers, asking to wait this many seconds.
    RateLimited(u64),
    /// 500 (or the provider's equivalent).
    ServerError,
}

/// A record's data as the mocks keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A or AAAA address text.
    Addr(String),
    /// CNAME target (absolute, no trailing dot).
    Host(String),
    /// MX.
    Mx(u16, String),
    /// TXT character-strings.
    Txt(Vec<String>),
    /// SRV priority, weight, port, target.
    Srv(u16, u16, u16, String),
    /// CAA flags, tag, value.
    Caa(u8, String, String),
    /// Any other type, presentation form.
    Other(String),
}

/// One record in a mock zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// The id the API shows.
    pub id: String,
    /// Owner name, absolute, lowercase, no trailing dot.
    pub name: String,
    /// Type mnemonic.
    pub rtype: String,
    /// TTL.
    pub ttl: u32,
    /// The data.
    pub data: Data,
}

/// Quotes one character-string for presentation form.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
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

/// Splits presentation text into character-strings (quoted with escapes, or bare words).
pub fn strings(text: &str) -> Result<Vec<String>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let quoted = b[i] == b'"';
        if quoted {
            i += 1;
        }
        let mut cur = Vec::new();
        loop {
            if i >= b.len() {
                if quoted {
                    return Err(format!("unterminated string in {text}"));
                }
                break;
            }
            let c = b[i];
            if quoted && c == b'"' {
                i += 1;
                break;
            }
            if !quoted && c.is_ascii_whitespace() {
                break;
            }
            if c == b'\\' {
                if let Some(d) = b
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(u8::is_ascii_digit))
                {
                    let v = (d[0] - b'0') as u32 * 100
                        + (d[1] - b'0') as u32 * 10
                        + (d[2] - b'0') as u32;
                    cur.push(u8::try_from(v).map_err(|_| "bad escape".to_string())?);
                    i += 4;
                } else {
                    cur.push(*b.get(i + 1).ok_or("dangling backslash")?);
                    i += 2;
                }
                continue;
            }
            cur.push(c);
            i += 1;
        }
        out.push(String::from_utf8_lossy(&cur).into_owned());
    }
    Ok(out)
}

fn dot(h: &str) -> String {
    format!("{}.", h.trim_end_matches('.'))
}

fn undot(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

impl Data {
    /// The data in presentation form (as PowerDNS and zone files write it).
    pub fn presentation(&self) -> String {
        match self {
            Data::Addr(a) => a.clone(),
            Data::Host(h) => dot(h),
            Data::Mx(p, h) => format!("{p} {}", dot(h)),
            Data::Txt(s) => s.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" "),
            Data::Srv(p, w, port, t) => format!("{p} {w} {port} {}", dot(t)),
            Data::Caa(f, t, v) => format!("{f} {t} {}", quote(v)),
            Data::Other(s) => s.clone(),
        }
    }

    /// Parses presentation form for `rtype` (names must be absolute or end with a dot;
    /// a name without a dot is taken relative to `zone`).
    pub fn parse(rtype: &str, text: &str, zone: &str) -> Result<Data, String> {
        let host = |h: &str| {
            if h == "@" {
                zone.to_string()
            } else if h.ends_with('.') {
                undot(h)
            } else {
                format!("{}.{zone}", h.to_ascii_lowercase())
            }
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let n = |s: &str| {
            s.parse::<u16>()
                .map_err(|_| format!("bad number in {text}"))
        };
        Ok(match rtype {
            "A" => {
                text.trim()
                    .parse::<std::net::Ipv4Addr>()
                    .map_err(|e| e.to_string())?;
                Data::Addr(text.trim().into())
            }
            "AAAA" => {
                let a: std::net::Ipv6Addr = text
                    .trim()
                    .parse()
                    .map_err(|e: std::net::AddrParseError| e.to_string())?;
                Data::Addr(a.to_string())
            }
            "CNAME" if words.len() == 1 => Data::Host(host(words[0])),
            "MX" if words.len() == 2 => Data::Mx(n(words[0])?, host(words[1])),
            "SRV" if words.len() == 4 => {
                Data::Srv(n(words[0])?, n(words[1])?, n(words[2])?, host(words[3]))
            }
            "TXT" => Data::Txt(strings(text)?),
            "CAA" => {
                let s = strings(text)?;
                if s.len() != 3 {
                    return Err(format!("bad CAA {text}"));
                }
                Data::Caa(
                    s[0].parse().map_err(|_| format!("bad CAA flags {text}"))?,
                    s[1].clone(),
                    s[2].clone(),
                )
            }
            "CNAME" | "MX" | "SRV" => return Err(format!("bad {rtype} value {text}")),
            _ => Data::Other(text.trim().to_string()),
        })
    }

    /// From the shared crate's typed data.
    pub fn from_record(d: &RecordData) -> Data {
        match d {
            RecordData::A(a) => Data::Addr(a.to_string()),
            RecordData::Aaaa(a) => Data::Addr(a.to_string()),
            RecordData::Cname(h) => Data::Host(undot(h)),
            RecordData::Mx {
                preference,
                exchange,
            } => Data::Mx(*preference, undot(exchange)),
            RecordData::Txt(t) => Data::Txt(t.strings().to_vec()),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => Data::Srv(*priority, *weight, *port, undot(target)),
            RecordData::Caa { flags, tag, value } => Data::Caa(*flags, tag.clone(), value.clone()),
        }
    }

    /// The TXT text joined (raw-text APIs).
    pub fn joined(&self) -> String {
        match self {
            Data::Txt(s) => s.concat(),
            other => other.presentation(),
        }
    }

    /// A TXT value from raw text, split as the provider would (255-byte strings).
    pub fn txt_raw(text: &str) -> Data {
        let mut out = Vec::new();
        let mut rest = text;
        while rest.len() > 255 {
            let mut cut = 255;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push(rest[..cut].to_string());
            rest = &rest[cut..];
        }
        out.push(rest.to_string());
        Data::Txt(out)
    }
}

/// A zone in a mock.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    /// The API's id for the zone.
    pub id: String,
    /// Its records.
    pub records: Vec<Rec>,
    /// Minimum TTL (deSEC's per-domain minimum; others use their fixed rule).
    pub min_ttl: u32,
}

/// What every mock shares: zones, tokens, queued failures, the request log.
#[derive(Default)]
pub struct Core {
    /// Zones by name.
    pub zones: BTreeMap<String, Zone>,
    next: u64,
    tokens: BTreeMap<String, Access>,
    external: Option<Arc<dyn Fn(&str) -> Option<Access> + Send + Sync>>,
    faults: VecDeque<Fault>,
    writes_left: Option<usize>,
    /// `METHOD path?query` of every request, in order.
    pub log: Vec<String>,
    /// The page size lists are cut to.
    pub page_size: usize,
    /// Free-form per-mock settings (e.g. Namecheap's allowed client IP).
    pub settings: BTreeMap<String, String>,
}

/// The result of checking a request's credentials.
pub enum Auth {
    /// May read and write.
    ReadWrite,
    /// May only read.
    ReadOnly,
    /// Unknown, malformed or revoked.
    Invalid,
}

impl Core {
    /// A fresh id.
    pub fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// The access `token` has.
    pub fn auth(&self, token: Option<&str>) -> Auth {
        let Some(t) = token else {
            return Auth::Invalid;
        };
        let access = self
            .tokens
            .get(t)
            .copied()
            .or_else(|| self.external.as_ref().and_then(|f| f(t)));
        match access {
            Some(Access::ReadWrite) => Auth::ReadWrite,
            Some(Access::ReadOnly) => Auth::ReadOnly,
            None => Auth::Invalid,
        }
    }

    /// Whether a write may go through (else the mock answers 500, as a dying server).
    pub fn write_allowed(&mut self) -> bool {
        match self.writes_left.as_mut() {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    /// The zone named `name`, if any.
    pub fn zone(&mut self, name: &str) -> Option<&mut Zone> {
        self.zones.get_mut(&undot(name))
    }

    /// Checks that no CNAME shares its name with other data.
    pub fn alias_rule(records: &[Rec]) -> Result<(), String> {
        for r in records.iter().filter(|r| r.rtype == "CNAME") {
            if records
                .iter()
                .any(|o| o.name == r.name && !(o.rtype == "CNAME" && o.id == r.id))
            {
                return Err(format!(
                    "a CNAME record at {} cannot exist beside other records",
                    r.name
                ));
            }
        }
        Ok(())
    }
}

/// A request as the provider modules see it.
pub struct Req {
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// The raw query.
    pub raw_query: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// The server's own base URL (`http://127.0.0.1:port`).
    pub base: String,
}

impl Req {
    /// A query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The Bearer token.
    pub fn bearer(&self) -> Option<&str> {
        self.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("bad JSON body: {e}"))
    }

    /// Path segments after `prefix`.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }
}

/// A provider's behaviour.
pub trait Api: Send + 'static {
    /// The answer for a queued fault.
    fn fault(&self, fault: Fault) -> Response;
    /// Whether the request writes (for [`MockServer::fail_writes_after`]).
    fn is_write(&self, req: &Req) -> bool {
        req.method != Method::GET
    }
    /// Handles one request.
    fn handle(&mut self, core: &mut Core, req: &Req) -> Response;
}

struct Inner {
    core: Core,
    api: Box<dyn Api>,
}

/// A running mock.
pub struct MockServer {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A JSON answer.
pub fn json_response(status: u16, body: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Adds a header to a response.
pub fn with_header(mut resp: Response, name: &'static str, value: String) -> Response {
    resp.headers_mut()
        .insert(name, HeaderValue::from_str(&value).unwrap());
    resp
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl MockServer {
    /// Starts a mock of `api` with page size `page_size`.
    pub async fn start(api: Box<dyn Api>, page_size: usize) -> MockServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let core = Core {
            page_size,
            ..Default::default()
        };
        let inner = Arc::new(Mutex::new(Inner { core, api }));
        let state = inner.clone();
        let base = format!("http://{addr}");
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                let base = base.clone();
                async move {
                    let raw_query = uri.query().unwrap_or("").to_string();
                    let query: Vec<(String, String)> =
                        serde_urlencoded::from_str(&raw_query).unwrap_or_default();
                    let req = Req {
                        method,
                        path: uri.path().to_string(),
                        query,
                        raw_query,
                        headers,
                        body,
                        base,
                    };
                    let mut g = state.lock().unwrap();
                    let Inner { core, api } = &mut *g;
                    core.log.push(format!(
                        "{} {}{}",
                        req.method,
                        req.path,
                        if req.raw_query.is_empty() {
                            String::new()
                        } else {
                            format!("?{}", req.raw_query)
                        }
                    ));
                    if let Some(f) = core.faults.pop_front() {
                        return api.fault(f);
                    }
                    if api.is_write(&req) && !core.write_allowed() {
                        return api.fault(Fault::ServerError);
                    }
                    api.handle(core, &req)
                }
            },
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        MockServer { addr, inner, task }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `f` on the shared state.
    pub fn with<T>(&self, f: impl FnOnce(&mut Core) -> T) -> T {
        f(&mut self.inner.lock().unwrap().core)
    }

    /// Adds a token.
    pub fn add_token(&self, token: &str, access: Access) {
        self.with(|c| c.tokens.insert(token.to_string(), access));
    }

    /// Also accepts tokens `check` knows (e.g. an OAuth server's access tokens).
    pub fn accept_tokens(&self, check: Arc<dyn Fn(&str) -> Option<Access> + Send + Sync>) {
        self.with(|c| c.external = Some(check));
    }

    /// Adds an empty zone.
    pub fn add_zone(&self, name: &str) {
        self.with(|c| {
            let id = (1000 + c.id()).to_string();
            c.zones.insert(
                undot(name),
                Zone {
                    id,
                    records: Vec::new(),
                    min_ttl: 3600,
                },
            );
        });
    }

    /// Adds a record (any type, presentation form; names relative to the zone or `@`).
    pub fn seed(&self, zone: &str, name: &str, ttl: u32, rtype: &str, value: &str) {
        let zone = undot(zone);
        let abs = if name == "@" {
            zone.clone()
        } else {
            format!("{}.{zone}", name.to_ascii_lowercase())
        };
        let data = Data::parse(rtype, value, &zone).unwrap();
        self.with(|c| {
            let id = c.id().to_string();
            c.zone(&zone).expect("zone").records.push(Rec {
                id,
                name: abs,
                rtype: rtype.to_string(),
                ttl,
                data,
            });
        });
    }

    /// Adds records in zone-file lines (`name ttl IN type value`, names relative).
    pub fn seed_zone_text(&self, zone: &str, text: &str) {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let mut parts = line.splitn(5, char::is_whitespace);
            let (Some(name), Some(ttl), Some(_class), Some(rtype), Some(value)) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                panic!("bad seed line {line}");
            };
            self.seed(zone, name, ttl.parse().unwrap(), rtype, value.trim());
        }
    }

    /// The zone's records as (name, type, ttl, presentation), in the mock's order.
    pub fn records(&self, zone: &str) -> Vec<(String, String, u32, String)> {
        self.with(|c| {
            c.zone(zone)
                .map(|z| {
                    z.records
                        .iter()
                        .map(|r| {
                            (
                                r.name.clone(),
                                r.rtype.clone(),
                                r.ttl,
                                r.data.presentation(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Queues failures for the next requests.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.with(|c| c.faults.extend(faults.iter().copied()));
    }

    /// Lets `n` more writes through, then fails every write (500) until
    /// [`MockServer::heal`].
    pub fn fail_writes_after(&self, n: usize) {
        self.with(|c| c.writes_left = Some(n));
    }

    /// Lets writes through again.
    pub fn heal(&self) {
        self.with(|c| c.writes_left = None);
    }

    /// The request log.
    pub fn log(&self) -> Vec<String> {
        self.with(|c| c.log.clone())
    }

    /// Sets a per-mock setting.
    pub fn set(&self, key: &str, value: &str) {
        self.with(|c| c.settings.insert(key.to_string(), value.to_string()));
    }
}

/// One page of `items` (1-based `page`, `per_page` capped at the mock's page size).
pub fn page<T: Clone>(items: &[T], page: usize, per_page: usize, cap: usize) -> (Vec<T>, usize) {
    let per = per_page.clamp(1, cap.max(1));
    let pages = items.len().div_ceil(per).max(1);
    let start = (page.max(1) - 1) * per;
    (items.iter().skip(start).take(per).cloned().collect(), pages)
}

/// An RRset as RRset APIs show it: name, type, TTL, values in presentation form.
pub type RrSet = (String, String, u32, Vec<String>);

impl Zone {
    /// The records grouped into RRsets, in first-seen order.
    pub fn rrsets(&self) -> Vec<RrSet> {
        let mut out: Vec<RrSet> = Vec::new();
        for r in &self.records {
            match out
                .iter_mut()
                .find(|(n, t, _, _)| *n == r.name && *t == r.rtype)
            {
                Some(set) => set.3.push(r.data.presentation()),
                None => out.push((
                    r.name.clone(),
                    r.rtype.clone(),
                    r.ttl,
                    vec![r.data.presentation()],
                )),
            }
        }
        out
    }

    /// Whether an RRset exists.
    pub fn has_rrset(&self, name: &str, rtype: &str) -> bool {
        self.records
            .iter()
            .any(|r| r.name == name && r.rtype == rtype)
    }

    /// Replaces (or creates, or with no values deletes) an RRset, keeping the alias rule;
    /// on error nothing changes.
    pub fn set_rrset(
        &mut self,
        name: &str,
        rtype: &str,
        ttl: u32,
        values: Vec<Data>,
        first_id: &mut u64,
    ) -> Result<(), String> {
        let mut next: Vec<Rec> = self
            .records
            .iter()
            .filter(|r| !(r.name == name && r.rtype == rtype))
            .cloned()
            .collect();
        for d in values {
            *first_id += 1;
            next.push(Rec {
                id: first_id.to_string(),
                name: name.to_string(),
                rtype: rtype.to_string(),
                ttl,
                data: d,
            });
        }
        Core::alias_rule(&next)?;
        self.records = next;
        Ok(())
    }
}

/// Values in presentation form for an RRset API: parsed, with TXT strings of at most
/// 255 bytes (longer ones are refused, as PowerDNS-style APIs do).
pub fn parse_values(rtype: &str, values: &[String], zone: &str) -> Result<Vec<Data>, String> {
    let mut out = Vec::new();
    for v in values {
        let d = Data::parse(rtype, v, zone)?;
        if let Data::Txt(strings) = &d {
            if let Some(long) = strings.iter().find(|s| s.len() > 255) {
                return Err(format!(
                    "TXT character-string of {} bytes; each must be at most 255 bytes",
                    long.len()
                ));
            }
            if !v.trim_start().starts_with('"') {
                return Err(format!("TXT value {v} must be quoted"));
            }
        }
        if out.contains(&d) {
            return Err(format!("duplicate value {v}"));
        }
        out.push(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation_roundtrip() {
        let d = Data::parse("TXT", r#""a\"b" "c\\d""#, "x.org").unwrap();
        assert_eq!(d, Data::Txt(vec!["a\"b".into(), "c\\d".into()]));
        assert_eq!(Data::parse("TXT", &d.presentation(), "x.org").unwrap(), d);
        assert_eq!(
            Data::parse("MX", "10 mail", "x.org").unwrap(),
            Data::Mx(10, "mail.x.org".into())
        );
        assert_eq!(page(&[1, 2, 3, 4, 5], 2, 100, 2), (vec![3, 4], 3));
    }
}
