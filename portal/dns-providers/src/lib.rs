//! Writes a relay's DNS records through the group's DNS provider.
//!
//! * [`provider`]: the [`DnsProvider`] interface and its idempotent RRset-level [`Change`]s;
//! * [`records`]: what a zone holds ([`ZoneContents`]) and what the portal owns ([`OwnedValue`]);
//! * [`mod@diff`]: what applying a plan would change, with ownership and conflicts (pure);
//! * [`powerdns`], [`rfc2136`]: providers that can be tested against real servers here;
//! * cloud APIs: [`cloudflare`], [`digitalocean`], [`linode`], [`hetzner`], [`porkbun`],
//!   [`desec`], [`gandi`], [`namecheap`], [`ovh`], sharing [`http`] (errors with the
//!   provider's advice, TTLs, names, TXT quoting), [`record_ops`] (RRset changes as
//!   per-record operations with ids) and [`rrsets`] (for RRset APIs);
//! * [`oauth`]: signing in with Cloudflare, DigitalOcean and Linode (PKCE, state, refresh,
//!   revocation);
//! * [`domain_connect`]: discovery, the relay's template, signed synchronous apply URLs
//!   and the asynchronous (OAuth) flow;
//! * [`guides`]: what the portal tells a person for each way of connecting a provider;
//! * [`manual`]: zone file and per-record rows for people who edit DNS by hand;
//! * [`mod@detect`]: which provider serves a domain, and whether it offers Domain Connect;
//! * [`credentials`]: provider credentials encrypted at rest;
//! * [`error`]: plain-language failures and the retry policy.
//!
//! A job applying a relay's plan does, each time it runs (also after a crash):
//! `read_names` → [`diff()`] with the stored ownership → store
//! `ownership_after ∪ ownership` → `apply(changes(confirmed))` → store `ownership_after`.

pub mod cloudflare;
pub mod credentials;
pub mod desec;
pub mod detect;
pub mod diff;
pub mod digitalocean;
pub mod domain_connect;
pub mod error;
pub mod gandi;
pub mod guides;
pub mod hetzner;
pub mod http;
pub mod linode;
pub mod manual;
pub mod namecheap;
pub mod oauth;
pub mod ovh;
pub mod porkbun;
pub mod powerdns;
pub mod provider;
pub mod record_ops;
pub mod records;
pub mod rfc2136;
pub mod rrsets;

pub use cloudflare::Cloudflare;
pub use credentials::{CredentialError, Credentials, Keyring};
pub use desec::Desec;
pub use detect::{detect, recognise, ConnectWay, DetectError, Detection, KnownProvider, Resolvers};
pub use diff::{diff, Conflict, ConflictKind, Diff, Item};
pub use digitalocean::DigitalOcean;
pub use error::ProviderError;
pub use gandi::Gandi;
pub use hetzner::Hetzner;
pub use linode::Linode;
pub use namecheap::Namecheap;
pub use oauth::{
    CallbackParams, OAuthClient, OAuthClientConfig, OAuthEndpoints, OAuthError, OAuthProvider,
    PendingAuth, TokenSet,
};
pub use ovh::Ovh;
pub use porkbun::Porkbun;
pub use powerdns::PowerDns;
pub use provider::{with_effective_ttls, Change, DnsProvider};
pub use records::{OtherRecord, OwnedValue, ZoneContents};
pub use rfc2136::{Rfc2136, TsigAlgorithm, TsigKey};
