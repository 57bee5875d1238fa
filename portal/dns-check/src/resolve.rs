//! The query layer: one question to one server, with a timeout, and nothing hidden.
//!
//! A stub resolver would chase aliases, cache, retry other servers and turn SERVFAIL into
//! an error; the checker needs to see exactly what each server said (response code, AA
//! bit, truncation, TTLs). So every question goes through hickory-net's plain UDP
//! exchange to the chosen address, falls back to TCP when the UDP answer is truncated
//! (RFC 7766), and is bounded by the configured timeout at each step. Answers are turned
//! into the socket-free [`crate::observations`] types right here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsHandle, FirstAnswer};
use hickory_net::NetError;
use hickory_proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Edns, Message, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::config::QueryMode;
use crate::observations::{Answer, Data, Outcome, RType, Rcode, Rr};

/// Flags of one question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// RD: ask a recursive resolver to resolve it.
    pub recursion_desired: bool,
    /// CD: ask a validating resolver not to check DNSSEC.
    pub checking_disabled: bool,
}

impl Flags {
    /// For authoritative servers: no recursion.
    pub const AUTHORITATIVE: Flags = Flags {
        recursion_desired: false,
        checking_disabled: false,
    };
    /// For recursive resolvers, validating as usual.
    pub const RECURSIVE: Flags = Flags {
        recursion_desired: true,
        checking_disabled: false,
    };
    /// For recursive resolvers, with DNSSEC checking disabled.
    pub const RECURSIVE_CD: Flags = Flags {
        recursion_desired: true,
        checking_disabled: true,
    };
}

/// Sends single questions to chosen servers.
#[derive(Clone)]
pub struct Querier {
    /// Owns the background tasks of the exchanges (a tokio `JoinSet` inside): they live
    /// as long as the querier, and end with it.
    provider: TokioRuntimeProvider,
    timeout: Duration,
    edns_payload: u16,
    mode: QueryMode,
    /// Counts the questions asked through this querier, if set.
    asked: Option<Arc<AtomicU64>>,
}

impl Querier {
    /// A querier with this per-step timeout, EDNS payload size and mode.
    pub fn new(timeout: Duration, edns_payload: u16, mode: QueryMode) -> Self {
        Querier {
            provider: TokioRuntimeProvider::default(),
            timeout,
            edns_payload,
            mode,
            asked: None,
        }
    }

    /// The same querier (same sockets' owner, timeout and mode) that also adds one to
    /// `counter` for every question it asks (a TCP retry counts with its UDP question).
    pub fn counting(&self, counter: Arc<AtomicU64>) -> Querier {
        Querier {
            asked: Some(counter),
            ..self.clone()
        }
    }

    /// Parallel or sequential.
    pub fn mode(&self) -> QueryMode {
        self.mode
    }

    /// Asks `server` for `name`/`rtype`. Never takes much longer than twice the timeout
    /// (UDP, then TCP if the UDP answer was truncated).
    pub async fn query(
        &self,
        server: SocketAddr,
        name: &str,
        rtype: RType,
        flags: Flags,
    ) -> Outcome {
        self.query_class(server, name, rtype, flags, DNSClass::IN)
            .await
    }

    /// Asks `server` the CHAOS-class TXT question `name` (`version.bind`, `id.server`):
    /// what software the server runs, for those that say.
    pub async fn query_chaos(&self, server: SocketAddr, name: &str) -> Outcome {
        self.query_class(server, name, RType::Txt, Flags::AUTHORITATIVE, DNSClass::CH)
            .await
    }

    async fn query_class(
        &self,
        server: SocketAddr,
        name: &str,
        rtype: RType,
        flags: Flags,
        class: DNSClass,
    ) -> Outcome {
        if let Some(counter) = &self.asked {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let qname = match Name::from_ascii(format!("{}.", name.trim_end_matches('.'))) {
            Ok(n) => n,
            Err(e) => return Outcome::Malformed(format!("bad name {name}: {e}")),
        };
        let request = self.request(qname, rtype, flags, class);
        let start = Instant::now();
        let udp = match self.udp(server, request.clone()).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        if !udp.metadata.truncation {
            return Outcome::Answer(convert(&udp, false, start));
        }
        match self.tcp(server, request).await {
            Ok(r) => Outcome::Answer(convert(&r, true, start)),
            Err(Outcome::Timeout) => Outcome::Truncated("no answer over TCP in time".into()),
            Err(Outcome::Unreachable(e))
            | Err(Outcome::Malformed(e))
            | Err(Outcome::Truncated(e)) => Outcome::Truncated(e),
            Err(Outcome::Answer(_)) => unreachable!("errors are never answers"),
        }
    }

    fn request(&self, qname: Name, rtype: RType, flags: Flags, class: DNSClass) -> DnsRequest {
        let mut message = Message::query();
        let mut query = Query::query(qname, record_type(rtype));
        query.set_query_class(class);
        message.add_query(query);
        message.metadata.recursion_desired = flags.recursion_desired;
        message.metadata.checking_disabled = flags.checking_disabled;
        let mut edns = Edns::new();
        edns.set_max_payload(self.edns_payload);
        message.set_edns(edns);
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = flags.recursion_desired;
        options.edns_payload_len = self.edns_payload;
        DnsRequest::new(message, options)
    }

    async fn udp(&self, server: SocketAddr, request: DnsRequest) -> Result<DnsResponse, Outcome> {
        let exchange = UdpClientStream::builder(server, self.provider.clone())
            .with_timeout(Some(self.timeout))
            .exchange();
        let send = exchange.send(request).first_answer();
        match tokio::time::timeout(self.timeout, send).await {
            Err(_) => Err(Outcome::Timeout),
            Ok(Err(e)) => Err(net_error(e)),
            Ok(Ok(r)) => Ok(r),
        }
    }

    async fn tcp(&self, server: SocketAddr, request: DnsRequest) -> Result<DnsResponse, Outcome> {
        let attempt = async {
            let exchange =
                TcpClientStream::exchange(server, None, self.timeout, None, self.provider.clone())
                    .await?;
            exchange.send(request).first_answer().await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Err(_) => Err(Outcome::Timeout),
            Ok(Err(e)) => Err(net_error(e)),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

fn net_error(e: NetError) -> Outcome {
    match e {
        NetError::Timeout => Outcome::Timeout,
        NetError::Proto(p) => Outcome::Malformed(p.to_string()),
        other => Outcome::Unreachable(other.to_string()),
    }
}

/// Runs independent futures together (parallel mode) or one after another (sequential).
pub async fn run_all<F: std::future::Future>(mode: QueryMode, futures: Vec<F>) -> Vec<F::Output> {
    match mode {
        QueryMode::Parallel => join_all(futures).await,
        QueryMode::Sequential => {
            let mut out = Vec::with_capacity(futures.len());
            for f in futures {
                out.push(f.await);
            }
            out
        }
    }
}

/// Runs two independent futures together or one after the other. Both are boxed: the
/// chains of a check are large state machines, and keeping them on the heap keeps the
/// caller's stack small (tokio worker threads have 2 MiB).
pub async fn run_both<A: std::future::Future, B: std::future::Future>(
    mode: QueryMode,
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let (a, b) = (Box::pin(a), Box::pin(b));
    match mode {
        QueryMode::Parallel => futures::join!(a, b),
        QueryMode::Sequential => {
            let a = a.await;
            (a, b.await)
        }
    }
}

fn record_type(t: RType) -> RecordType {
    match t {
        RType::A => RecordType::A,
        RType::Aaaa => RecordType::AAAA,
        RType::Mx => RecordType::MX,
        RType::Txt => RecordType::TXT,
        RType::Cname => RecordType::CNAME,
        RType::Srv => RecordType::SRV,
        RType::Caa => RecordType::CAA,
        RType::Ns => RecordType::NS,
        RType::Soa => RecordType::SOA,
        RType::Ptr => RecordType::PTR,
    }
}

fn name_str(n: &Name) -> String {
    let s = n.to_ascii().to_ascii_lowercase();
    s.strip_suffix('.').unwrap_or(&s).to_string()
}

fn rcode(c: ResponseCode) -> Rcode {
    match c {
        ResponseCode::NoError => Rcode::NoError,
        ResponseCode::NXDomain => Rcode::NxDomain,
        ResponseCode::ServFail => Rcode::ServFail,
        ResponseCode::Refused => Rcode::Refused,
        ResponseCode::NotImp => Rcode::NotImp,
        ResponseCode::FormErr => Rcode::FormErr,
        other => Rcode::Other(u16::from(other)),
    }
}

/// Converts one hickory record (`None` for EDNS OPT and DNSSEC records).
pub fn convert_record(r: &Record) -> Option<Rr> {
    let data = match &r.data {
        RData::A(a) => Data::A(a.0),
        RData::AAAA(a) => Data::Aaaa(a.0),
        RData::MX(mx) => Data::Mx {
            preference: mx.preference,
            exchange: name_str(&mx.exchange),
        },
        RData::TXT(t) => Data::Txt(
            t.txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        RData::CNAME(c) => Data::Cname(name_str(&c.0)),
        RData::SRV(s) => Data::Srv {
            priority: s.priority,
            weight: s.weight,
            port: s.port,
            target: name_str(&s.target),
        },
        RData::CAA(c) => Data::Caa {
            flags: c.flags(),
            tag: c.tag.to_ascii_lowercase(),
            value: String::from_utf8_lossy(&c.value).into_owned(),
        },
        RData::NS(n) => Data::Ns(name_str(&n.0)),
        RData::SOA(s) => Data::Soa {
            mname: name_str(&s.mname),
            serial: s.serial,
            minimum: s.minimum,
        },
        RData::PTR(p) => Data::Ptr(name_str(&p.0)),
        RData::OPT(_) => return None,
        other => Data::Other(format!("{} {}", other.record_type(), other)),
    };
    Some(Rr {
        name: name_str(&r.name),
        ttl: r.ttl,
        data,
    })
}

fn convert(r: &DnsResponse, via_tcp: bool, start: Instant) -> Answer {
    let section = |records: &[Record]| records.iter().filter_map(convert_record).collect();
    Answer {
        rcode: rcode(r.metadata.response_code),
        authoritative: r.metadata.authoritative,
        via_tcp,
        answers: section(&r.answers),
        authority: section(&r.authorities),
        additional: section(&r.additionals),
        elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}
