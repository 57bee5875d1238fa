//! Fuzzing the port-443 multiplexer's ClientHello parser as part of `cargo test`: the check
//! and oracles of the cargo-fuzz target (`appliance/fuzz/src/client_hello.rs`: no panic,
//! never a different reading than rustls's, never a prefix judged differently from the
//! whole) on random mutations of real ClientHellos, with the stable loop of
//! `appliance/fuzz/src/runner.rs`, for a fixed time.
//!
//! * `CHATMAIL_FUZZ_SECONDS` — time (default 20).
//! * `CHATMAIL_FUZZ_SEED` — the seed (default: from the clock). The seed is printed, and a
//!   failing input saved under the target directory and named in the failure.

// Both files belong to the fuzz crate (its own workspace); included here as modules.
#[allow(dead_code)]
#[path = "../fuzz/src/client_hello.rs"]
mod checks;
#[allow(dead_code)]
#[path = "../fuzz/src/runner.rs"]
mod runner;

use std::path::PathBuf;

#[test]
fn client_hello() {
    let name = "client_hello";
    let (duration, seed) = runner::settings_from_env();
    eprintln!(
        "{name}: seed {seed} for {duration:?} (to repeat: CHATMAIL_FUZZ_SEED={seed} \
         CHATMAIL_FUZZ_SECONDS={} cargo test -p chatmail-appliance --test fuzz_client_hello)",
        duration.as_secs_f64()
    );
    let seeds = checks::seeds();
    let report = runner::run(name, checks::client_hello, &seeds, duration, seed);
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
