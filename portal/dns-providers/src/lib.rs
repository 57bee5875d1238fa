//! Writes a relay's DNS records through the group's DNS provider.
//!
//! * [`provider`]: the [`DnsProvider`] interface and its idempotent RRset-level [`Change`]s;
//! * [`records`]: what a zone holds ([`ZoneContents`]) and what the portal owns ([`OwnedValue`]);
//! * [`mod@diff`]: what applying a plan would change, with ownership and conflicts (pure);
//! * [`powerdns`], [`rfc2136`]: providers that can be tested against real servers here;
//! * [`manual`]: zone file and per-record rows for people who edit DNS by hand;
//! * [`mod@detect`]: which provider serves a domain, and whether it offers Domain Connect;
//! * [`credentials`]: provider credentials encrypted at rest;
//! * [`error`]: plain-language failures and the retry policy.
//!
//! A job applying a relay's plan does, each time it runs (also after a crash):
//! `read_names` → [`diff()`] with the stored ownership → store
//! `ownership_after ∪ ownership` → `apply(changes(confirmed))` → store `ownership_after`.

pub mod credentials;
pub mod detect;
pub mod diff;
pub mod error;
pub mod manual;
pub mod powerdns;
pub mod provider;
pub mod records;
pub mod rfc2136;

pub use credentials::{CredentialError, Credentials, Keyring};
pub use detect::{detect, recognise, ConnectWay, DetectError, Detection, KnownProvider, Resolvers};
pub use diff::{diff, Conflict, ConflictKind, Diff, Item};
pub use error::ProviderError;
pub use powerdns::PowerDns;
pub use provider::{Change, DnsProvider};
pub use records::{OtherRecord, OwnedValue, ZoneContents};
pub use rfc2136::{Rfc2136, TsigAlgorithm, TsigKey};
