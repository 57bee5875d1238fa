//! The one definition of a relay shared by the portal and the appliance.
//!
//! The portal writes a [`RelayConfig`] into a device image, plans and checks the relay's
//! DNS records ([`DnsPlan`]) and previews its web pages; the device reads the same config
//! and serves the same pages, autoconfig file and MTA-STS policy. Keeping all of it here
//! means the two sides cannot drift apart. No network or async runtime: this crate also
//! builds for `wasm32-unknown-unknown`, for the portal's browser side.
//!
//! Upstream facts (chatmail relay) are cited from `research/chatmail.md` by section.

pub mod autoconfig;
pub mod config;
pub mod device_facts;
pub mod dns_plan;
pub mod dns_report;
pub mod domain;
pub mod email;
pub mod mta_sts;
pub mod pages;
pub mod probe_report;
pub mod public_address;
pub mod qr;
pub mod relay_status;
pub mod signing_key;
pub mod update_manifest;
pub mod web_url;
pub mod zone_file;

pub use config::{ConfigError, RelayConfig};
pub use device_facts::{AcmeAccountUrl, DeviceFacts, DkimPublicKey};
pub use dns_plan::{DnsPlan, DnsRecord, PlannedRecord, PlannedValue, RecordData, Requirement};
pub use domain::{DomainError, DomainName, MailDomain};
pub use email::EmailAddress;
