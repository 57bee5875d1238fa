//! Where incoming mail comes from: a DKIM signature of the `From:` domain.
//!
//! Upstream's `verify_origin` (research/chatmail.md §1.3): a `From:` domain that is an IP
//! literal is not checked (relay #895 turned that check off); otherwise at least one
//! DKIM-Signature must verify with `d=` equal to the `From:` domain (strict alignment,
//! case-insensitive). No signature at all is `554 5.7.1 No DKIM signature found`, only
//! failing or unaligned ones `554 5.7.1 No valid DKIM signature found`. Keys are cached
//! (up to 1000 TXT records) and a key is looked up again after a signature with it failed.
//! SPF, DMARC and iprev are not used.
//!
//! Verification uses mail-auth; DNS goes through the resolver given at start (the system's,
//! or a test server). Tests put keys into the cache and never touch a socket.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache,
    Txt as TxtRecord,
};

use super::Reply;

/// How many key records are kept.
const CACHE_SIZE: usize = 1000;

/// Upstream's DNS timeout for key lookups.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Verifies DKIM signatures; cheap to share behind an `Arc`.
pub struct DkimVerifier {
    auth: MessageAuthenticator,
    cache: KeyCache,
}

/// Which DNS server answers key lookups.
#[derive(Debug, Clone, Copy)]
pub enum Dns {
    /// The system's resolvers (`/etc/resolv.conf`).
    System,
    /// One server (UDP and TCP), e.g. a test server on loopback.
    Server(SocketAddr),
}

/// The resolver configuration for `dns` (shared with outbound delivery).
pub fn resolver_config(dns: Dns) -> anyhow::Result<(ResolverConfig, ResolverOpts)> {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(10);
    opts.attempts = 2;
    match dns {
        Dns::System => match mail_auth::hickory_resolver::system_conf::read_system_conf() {
            Ok((config, mut sys_opts)) => {
                sys_opts.timeout = opts.timeout;
                Ok((config, sys_opts))
            }
            // A device whose network gave it no resolver (yet) still runs and reports its
            // status; lookups go to a public resolver meanwhile.
            Err(err) => {
                tracing::warn!("no usable /etc/resolv.conf ({err}); asking 9.9.9.9 instead");
                resolver_config(Dns::Server(SocketAddr::from(([9, 9, 9, 9], 53))))
            }
        },
        Dns::Server(addr) => {
            let connections = [ProtocolConfig::Udp, ProtocolConfig::Tcp]
                .into_iter()
                .map(|protocol| {
                    let mut c = ConnectionConfig::new(protocol);
                    c.port = addr.port();
                    c
                })
                .collect();
            let server = NameServerConfig::new(addr.ip(), true, connections);
            Ok((ResolverConfig::from_parts(None, vec![], vec![server]), opts))
        }
    }
}

impl DkimVerifier {
    /// A verifier asking `dns` for keys.
    pub fn new(dns: Dns) -> anyhow::Result<DkimVerifier> {
        let (config, opts) = resolver_config(dns)?;
        let auth = MessageAuthenticator::new(config, opts)
            .map_err(|e| anyhow::anyhow!("DNS resolver for DKIM: {e}"))?;
        Ok(DkimVerifier {
            auth,
            cache: KeyCache::default(),
        })
    }

    /// A verifier that knows only the keys given (`selector._domainkey.domain` → TXT
    /// value) and has no DNS server: for tests and benchmarks.
    pub fn with_keys<'a>(keys: impl IntoIterator<Item = (&'a str, &'a str)>) -> DkimVerifier {
        let (config, opts) = (ResolverConfig::from_parts(None, vec![], vec![]), {
            let mut o = ResolverOpts::default();
            o.timeout = Duration::from_millis(10);
            o.attempts = 0;
            o
        });
        let auth = MessageAuthenticator::new(config, opts).expect("a resolver without servers");
        let verifier = DkimVerifier {
            auth,
            cache: KeyCache::default(),
        };
        for (name, txt) in keys {
            verifier.pin_key(name, txt);
        }
        verifier
    }

    /// Puts a key record into the cache for good (tests).
    pub fn pin_key(&self, name: &str, txt: &str) {
        let record = match mail_auth::common::verify::DomainKey::parse(txt.as_bytes()) {
            Ok(key) => TxtRecord::DomainKey(std::sync::Arc::new(key)),
            Err(e) => TxtRecord::Error(e),
        };
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let mut map = self.cache.lock();
        map.insert(fqdn.into_boxed_str(), (record, None));
    }

    /// Upstream's `verify_origin` for a message whose `From:` domain is `from_domain`.
    pub async fn verify_origin(&self, message: &[u8], from_domain: &str) -> Result<(), Reply> {
        if from_domain.starts_with('[') {
            return Ok(()); // IP literal: not checked (see the module documentation)
        }
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return Err(Reply::headers_unparsable());
        };
        if parsed.dkim_headers.is_empty() && !parsed.has_dkim_errors {
            return Err(Reply::no_dkim());
        }
        let params = Parameters::new(&parsed).with_txt_cache(&self.cache);
        let results = tokio::time::timeout(LOOKUP_TIMEOUT, self.auth.verify_dkim(params))
            .await
            .unwrap_or_default();
        let aligned = results.iter().any(|r| {
            r.result() == &DkimResult::Pass
                && r.signature()
                    .is_some_and(|s| s.d.eq_ignore_ascii_case(from_domain))
        });
        if aligned {
            return Ok(());
        }
        // Look failing keys up again next time (a rotated key, a fixed record).
        for r in &results {
            if let Some(s) = r.signature() {
                if r.result() != &DkimResult::Pass {
                    self.cache.forget(&format!("{}._domainkey.{}.", s.s, s.d));
                }
            }
        }
        Err(Reply::invalid_dkim())
    }
}

/// A cached key record and when it expires (`None`: pinned).
type CachedKey = (TxtRecord, Option<Instant>);

/// The key cache: bounded, entries expire with their TTL; pinned entries never do.
#[derive(Default)]
struct KeyCache {
    map: Mutex<HashMap<Box<str>, CachedKey>>,
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, CachedKey>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(&self, name: &str) {
        let mut map = self.lock();
        if map.get(name).is_some_and(|(_, until)| until.is_some()) {
            map.remove(name);
        }
    }
}

impl ResolverCache<Box<str>, TxtRecord> for KeyCache {
    fn get<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.lock();
        let (record, until) = map.get(name)?;
        match until {
            Some(t) if *t <= Instant::now() => None,
            _ => Some(record.clone()),
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(name).map(|(r, _)| r)
    }

    fn insert(&self, key: Box<str>, value: TxtRecord, valid_until: Instant) {
        let mut map = self.lock();
        if map.len() >= CACHE_SIZE && !map.contains_key(&key) {
            let now = Instant::now();
            map.retain(|_, (_, until)| until.is_none_or(|t| t > now));
            if map.len() >= CACHE_SIZE {
                // Still full: drop an arbitrary unpinned entry.
                if let Some(k) = map
                    .iter()
                    .find(|(_, (_, until))| until.is_some())
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, (value, Some(valid_until)));
    }
}
