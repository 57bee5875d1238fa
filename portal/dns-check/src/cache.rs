//! What a long-lived [`crate::Checker`] keeps between checks: per mail domain, the zone
//! apex, its name servers with their addresses, and the parent zone's servers.
//!
//! Finding the servers takes two or three dependent rounds of questions to the recursive
//! resolver (the NS records of every name up from the mail domain, then the addresses of
//! the NS host names, then the parent's servers); with them kept, a repeated check asks
//! the zone's servers at once.
//!
//! # Why a kept discovery never makes a check wrong
//!
//! * **Lifetime.** An entry lives at most as long as the shortest TTL among the answers
//!   it was built from (the zone's and the parent's NS records, the name servers'
//!   addresses, the "no such zone" answers for the names below the apex), and never
//!   longer than [`CheckerConfig::discovery_cache_max_age`](crate::CheckerConfig::discovery_cache_max_age)
//!   (5 minutes by default). A check from scratch would get the same answers from the
//!   resolver's cache for that long anyway. A confirmed entry is not extended.
//! * **Confirmation.** Every check still asks the zone's servers everything and the parent
//!   zone's servers where they delegate the zone. The kept discovery is used only if
//!   every server that served the zone properly when it was found (authoritative SOA of
//!   the apex, authoritative answers to every question) still does, and the parent still
//!   names the same servers. Otherwise (a server is gone, refuses, answers lame or
//!   NXDOMAIN for the zone, a referral shows a new zone cut, the registry delegates
//!   elsewhere) the entry is dropped and the check starts over from the resolver within
//!   the same check; its report is the one a fresh check gives, without a word about the
//!   cache.
//! * **Only complete discoveries are kept**: a zone was found, every NS host has an
//!   address, the parent's delegation was read, and at least one server served the zone.
//!   A relay whose DNS is broken is rediscovered on every check, which is when its owner
//!   is fixing it.
//! * The key is the mail domain, so a plan for another domain never sees another's entry;
//!   the network settings are fixed for the checker's life.
//!
//! The cache is a `std::sync::Mutex` around a map, locked only to copy an entry out or to
//! put one in (never across an `.await`), so one checker can serve concurrent checks.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::observations::{Nameserver, Outcome, ServerId};

/// Most entries kept at once; when full, expired entries go, then the one expiring first.
pub const MAX_ENTRIES: usize = 4096;

/// What discovery found for one mail domain: enough to ask the zone's servers, and the
/// parent's, at once in the next check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownServers {
    /// The zone apex.
    pub zone: String,
    /// The zone's NS hosts with their addresses.
    pub nameservers: Vec<Nameserver>,
    /// The zone above the cut.
    pub parent_zone: Option<String>,
    /// The parent zone's servers that are asked for the delegation.
    pub parent_servers: Vec<ServerId>,
    /// The delegation they gave (sorted NS names).
    pub parent_delegation: Option<Vec<String>>,
    /// The servers that served the zone properly when it was found; each must still do
    /// so for the entry to be used.
    pub healthy: Vec<ServerId>,
    /// The resolver's answers from the walk up the tree.
    pub walk: Vec<(String, Outcome)>,
    /// The shortest TTL among the answers the entry is built from, in seconds.
    pub ttl_secs: u32,
}

/// What one check did with the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUse {
    /// Started from a kept discovery, which this check's answers confirmed.
    Kept,
    /// Discovered the zone and servers from the resolver.
    Discovered {
        /// A kept discovery was tried first and did not hold.
        replaced: bool,
        /// What to keep for the next check (`None`: not complete enough to keep).
        known: Option<KnownServers>,
    },
}

/// Counters of a [`crate::Checker`]'s discovery cache, since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Checks run.
    pub checks: u64,
    /// Checks that started from a kept discovery and kept it.
    pub hits: u64,
    /// Checks that found no usable entry (none, or expired) and discovered.
    pub misses: u64,
    /// Of the misses, those whose entry had expired.
    pub expired: u64,
    /// Checks whose kept discovery did not hold and which discovered again.
    pub rediscovered: u64,
    /// Discoveries stored for later checks.
    pub stored: u64,
    /// Questions sent to find zones, name servers, their addresses and the parent's
    /// servers (a check that keeps its cached discovery sends none).
    pub discovery_queries: u64,
    /// Entries held now (an expired one until it is looked up or pruned).
    pub entries: usize,
}

#[derive(Debug)]
struct Entry {
    known: KnownServers,
    expires: Instant,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    stats: CacheStats,
}

/// Kept discoveries by mail domain.
#[derive(Debug)]
pub(crate) struct DiscoveryCache {
    max_age: Duration,
    state: Mutex<State>,
}

impl DiscoveryCache {
    /// A cache keeping entries at most `max_age` (zero: keeps nothing).
    pub(crate) fn new(max_age: Duration) -> Self {
        DiscoveryCache {
            max_age,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data behind (every
        // update is a single insert, remove or counter step).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live entry for `domain`, if any; counts the check.
    pub(crate) fn get(&self, domain: &str) -> Option<KnownServers> {
        let now = Instant::now();
        let mut state = self.lock();
        state.stats.checks += 1;
        match state.entries.get(domain) {
            Some(e) if e.expires > now => Some(e.known.clone()),
            Some(_) => {
                state.entries.remove(domain);
                state.stats.misses += 1;
                state.stats.expired += 1;
                None
            }
            None => {
                state.stats.misses += 1;
                None
            }
        }
    }

    /// Records what a check did: keeps, replaces or drops the entry for `domain`.
    pub(crate) fn record(&self, domain: &str, used: &CacheUse, discovery_queries: u64) {
        let now = Instant::now();
        let mut state = self.lock();
        state.stats.discovery_queries += discovery_queries;
        match used {
            CacheUse::Kept => state.stats.hits += 1,
            CacheUse::Discovered { replaced, known } => {
                if *replaced {
                    state.stats.rediscovered += 1;
                    state.entries.remove(domain);
                }
                let life = known
                    .as_ref()
                    .map(|k| Duration::from_secs(u64::from(k.ttl_secs)).min(self.max_age))
                    .unwrap_or_default();
                if let (Some(known), false) = (known, life.is_zero()) {
                    if state.entries.len() >= MAX_ENTRIES {
                        state.entries.retain(|_, e| e.expires > now);
                    }
                    if state.entries.len() >= MAX_ENTRIES && !state.entries.contains_key(domain) {
                        let first = state
                            .entries
                            .iter()
                            .min_by_key(|(_, e)| e.expires)
                            .map(|(k, _)| k.clone());
                        if let Some(first) = first {
                            state.entries.remove(&first);
                        }
                    }
                    state.entries.insert(
                        domain.to_string(),
                        Entry {
                            known: known.clone(),
                            expires: now + life,
                        },
                    );
                    state.stats.stored += 1;
                }
            }
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            entries: state.entries.len(),
            ..state.stats
        }
    }

    /// How long the entry for `domain` has left, if there is a live one.
    pub(crate) fn expires_in(&self, domain: &str) -> Option<Duration> {
        let now = Instant::now();
        let state = self.lock();
        state
            .entries
            .get(domain)
            .and_then(|e| e.expires.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    pub(crate) fn forget(&self, domain: &str) {
        self.lock().entries.remove(domain);
    }

    pub(crate) fn clear(&self) {
        self.lock().entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(ttl_secs: u32) -> KnownServers {
        KnownServers {
            zone: "example.org".into(),
            nameservers: Vec::new(),
            parent_zone: None,
            parent_servers: Vec::new(),
            parent_delegation: None,
            healthy: Vec::new(),
            walk: Vec::new(),
            ttl_secs,
        }
    }

    fn discovered(ttl_secs: u32) -> CacheUse {
        CacheUse::Discovered {
            replaced: false,
            known: Some(known(ttl_secs)),
        }
    }

    #[test]
    fn lifetime_is_the_smaller_of_ttl_and_cap() {
        let cache = DiscoveryCache::new(Duration::from_secs(300));
        cache.record("a.example", &discovered(60), 3);
        cache.record("b.example", &discovered(86400), 3);
        let a = cache.expires_in("a.example").unwrap();
        let b = cache.expires_in("b.example").unwrap();
        assert!(
            a <= Duration::from_secs(60) && a > Duration::from_secs(50),
            "{a:?}"
        );
        assert!(
            b <= Duration::from_secs(300) && b > Duration::from_secs(290),
            "{b:?}"
        );
        assert_eq!(cache.stats().stored, 2);
        assert_eq!(cache.stats().discovery_queries, 6);
    }

    #[test]
    fn zero_ttl_or_zero_cap_keeps_nothing() {
        let cache = DiscoveryCache::new(Duration::from_secs(300));
        cache.record("a.example", &discovered(0), 1);
        assert_eq!(cache.get("a.example"), None);
        let off = DiscoveryCache::new(Duration::ZERO);
        off.record("a.example", &discovered(3600), 1);
        assert_eq!(off.get("a.example"), None);
        assert_eq!(off.stats().stored, 0);
        assert_eq!(off.stats().misses, 1);
    }

    #[test]
    fn expired_entry_is_a_miss() {
        let cache = DiscoveryCache::new(Duration::from_millis(1));
        cache.record("a.example", &discovered(3600), 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(cache.get("a.example"), None);
        let s = cache.stats();
        assert_eq!((s.checks, s.misses, s.expired, s.entries), (1, 1, 1, 0));
    }

    #[test]
    fn failed_confirmation_drops_the_entry() {
        let cache = DiscoveryCache::new(Duration::from_secs(300));
        cache.record("a.example", &discovered(3600), 1);
        assert!(cache.get("a.example").is_some());
        cache.record(
            "a.example",
            &CacheUse::Discovered {
                replaced: true,
                known: None,
            },
            4,
        );
        assert_eq!(cache.expires_in("a.example"), None);
        let s = cache.stats();
        assert_eq!((s.checks, s.rediscovered, s.entries), (1, 1, 0));
    }

    #[test]
    fn full_cache_makes_room() {
        let cache = DiscoveryCache::new(Duration::from_secs(300));
        for i in 0..MAX_ENTRIES + 10 {
            cache.record(&format!("d{i}.example"), &discovered(3600), 0);
        }
        assert_eq!(cache.stats().entries, MAX_ENTRIES);
        assert!(cache
            .expires_in(&format!("d{}.example", MAX_ENTRIES + 9))
            .is_some());
    }
}
