//! Writes a relay's DNS records through the group's DNS provider.
//!
//! * [`provider`]: the [`DnsProvider`] interface and its idempotent RRset-level [`Change`]s;
//! * [`diff`]: what applying a plan would change, with ownership and conflicts (pure);
//! * [`powerdns`], [`rfc2136`]: providers that can be tested against real servers here;
//! * [`manual`]: zone file and per-record rows for people who edit DNS by hand;
//! * [`detect`]: which provider serves a domain, and whether it offers Domain Connect;
//! * [`credentials`]: provider credentials encrypted at rest.

pub mod diff;
pub mod error;
pub mod provider;
pub mod records;

pub use diff::{diff, Conflict, ConflictKind, Diff, Item};
pub use error::ProviderError;
pub use provider::{Change, DnsProvider};
pub use records::{OtherRecord, OwnedValue, ZoneContents};
