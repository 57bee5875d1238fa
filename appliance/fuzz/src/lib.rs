//! Fuzzing chatmail's mail rules and the milter decoder: the checks with their oracles
//! ([`checks`]) and a stable-Rust fuzz loop ([`runner`]). The libFuzzer targets
//! (`fuzz_targets/`, nightly with cargo-fuzz) and the stable runner (`src/bin/stable_fuzz.rs`)
//! use them from here; the workspace's test suite includes both files as modules
//! (`appliance/tests/fuzz_mail_rules.rs`), so `cargo test` fuzzes too.

pub mod checks;
pub mod runner;

pub use checks::{milter_decoder, mime_openpgp};
