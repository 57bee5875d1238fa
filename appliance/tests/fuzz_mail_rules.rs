//! Fuzzing as part of `cargo test`: the same checks and oracles as the cargo-fuzz targets
//! (`appliance/fuzz/src/checks.rs`: no panic, and never an accept of malformed input) on
//! random mutations of the message corpus and of milter sessions built from it
//! (`appliance/fuzz/src/runner.rs`), for a fixed time per target, on stable Rust and with
//! the test build of the appliance's library (overflow checks on).
//!
//! * `CHATMAIL_FUZZ_SECONDS` — time per target (default 20).
//! * `CHATMAIL_FUZZ_SEED` — the seed (default: taken from the clock, so every run tries
//!   other inputs). Each test prints its seed; the inputs depend only on it, so a failure
//!   comes back with the same seed and at least the same time. The failing input is also
//!   saved under the target directory and named in the failure.

// Both files belong to the fuzz crate (its own workspace); included here as modules so the
// test suite runs exactly its checks without building that crate.
#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;
#[allow(dead_code)]
#[path = "../fuzz/src/runner.rs"]
mod runner;

use std::path::PathBuf;

fn messages() -> Vec<Vec<u8>> {
    runner::corpus_seeds(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/messages"),
    )
}

fn fuzz(name: &str, check: fn(&[u8]), seeds: &[Vec<u8>]) {
    let (duration, seed) = runner::settings_from_env();
    eprintln!(
        "{name}: seed {seed} for {duration:?} (to repeat: CHATMAIL_FUZZ_SEED={seed} \
         CHATMAIL_FUZZ_SECONDS={} cargo test -p chatmail-appliance --test fuzz_mail_rules {name})",
        duration.as_secs_f64()
    );
    let report = runner::run(name, check, seeds, duration, seed);
    eprintln!("{report}");
    if let Some((_, input)) = &report.failure {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}-{seed}-{}", report.inputs));
        let _ = std::fs::write(&path, input);
        panic!("{report}\ninput saved to {}", path.display());
    }
    assert!(
        report.inputs > seeds.len() as u64,
        "{name}: not one mutated input in {duration:?}"
    );
}

#[test]
fn mime_openpgp() {
    fuzz("mime_openpgp", checks::mime_openpgp, &messages());
}

#[test]
fn milter_decoder() {
    fuzz(
        "milter_decoder",
        checks::milter_decoder,
        &runner::milter_seeds(&messages()),
    );
}
