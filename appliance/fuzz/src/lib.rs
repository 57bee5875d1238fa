//! Fuzzing chatmail's mail rules, the milter decoder, the port-443 ClientHello parser and
//! the IMAP front's command framer: the checks with their oracles ([`checks`],
//! [`client_hello`], [`imap_command`]) and a stable-Rust fuzz loop
//! ([`runner`]). The libFuzzer targets (`fuzz_targets/`, nightly with cargo-fuzz) and the
//! stable runner (`src/bin/stable_fuzz.rs`) use them from here; the workspace's test suite
//! includes these files as modules (`appliance/tests/fuzz_mail_rules.rs`,
//! `appliance/tests/fuzz_client_hello.rs`, `appliance/tests/fuzz_imap_command.rs`), so
//! `cargo test` fuzzes too.

pub mod checks;
pub mod client_hello;
pub mod imap_command;
pub mod runner;

pub use checks::{milter_decoder, mime_openpgp};
pub use client_hello::client_hello;
pub use imap_command::imap_command;
