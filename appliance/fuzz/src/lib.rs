//! Fuzzing chatmail's mail rules, the milter decoder and the port-443 ClientHello parser:
//! the checks with their oracles ([`checks`], [`client_hello`]) and a stable-Rust fuzz loop
//! ([`runner`]). The libFuzzer targets (`fuzz_targets/`, nightly with cargo-fuzz) and the
//! stable runner (`src/bin/stable_fuzz.rs`) use them from here; the workspace's test suite
//! includes these files as modules (`appliance/tests/fuzz_mail_rules.rs`,
//! `appliance/tests/fuzz_client_hello.rs`), so `cargo test` fuzzes too.

pub mod checks;
pub mod client_hello;
pub mod runner;

pub use checks::{milter_decoder, mime_openpgp};
pub use client_hello::client_hello;
