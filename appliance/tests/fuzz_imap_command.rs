//! Fuzzing the IMAP front's command framer and parser as part of `cargo test`: random
//! mutations of pipelined command streams (literals `{n}` and `{n+}`, quoted strings,
//! lists, IDLE's DONE, overlong lines), fed in random pieces, for a fixed time, through
//! the check of the cargo-fuzz target (`appliance/fuzz/src/imap_command.rs`: no panic, the
//! frames of a naive reference framer over the whole input, every byte accounted for).
//!
//! * `CHATMAIL_FUZZ_SECONDS` — time (default 20).
//! * `CHATMAIL_FUZZ_SEED` — the seed (default: from the clock). The seed is printed, and a
//!   failing input saved under the target directory and named in the failure.

// Both belong to the fuzz crate (its own workspace); included here as modules.
#[allow(dead_code)]
#[path = "../fuzz/src/imap_command.rs"]
mod imap_command;
#[allow(dead_code)]
#[path = "../fuzz/src/runner.rs"]
mod runner;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use imap_command::{check, seeds, SPECIALS};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.gen_range(0..seeds.len())].clone();
    for _ in 0..rng.gen_range(1..6) {
        let at = rng.gen_range(0..=input.len());
        match rng.gen_range(0..7) {
            0 if !input.is_empty() => {
                let i = rng.gen_range(0..input.len());
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => {
                let s = SPECIALS[rng.gen_range(0..SPECIALS.len())];
                input.splice(at..at, s.iter().copied());
            }
            2 if !input.is_empty() => {
                let end = rng.gen_range(at..=input.len());
                input.drain(at..end);
            }
            3 => input.truncate(at),
            4 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                input.splice(at..at, other.iter().copied());
            }
            5 => {
                let n = rng.gen_range(0..1200);
                let b = if rng.gen() { b'x' } else { rng.gen() };
                input.splice(at..at, std::iter::repeat_n(b, n));
            }
            _ => {
                let n = rng.gen_range(0..32);
                let random: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                input.splice(at..at, random);
            }
        }
    }
    input
}

#[test]
fn imap_command_framer() {
    let name = "imap_command";
    let (duration, seed) = runner::settings_from_env();
    eprintln!(
        "{name}: seed {seed} for {duration:?} (to repeat: CHATMAIL_FUZZ_SEED={seed} \
         CHATMAIL_FUZZ_SECONDS={} cargo test -p chatmail-appliance --test fuzz_imap_command)",
        duration.as_secs_f64()
    );
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut inputs = 0u64;
    while start.elapsed() < duration || inputs < seeds.len() as u64 {
        let input = if (inputs as usize) < seeds.len() {
            seeds[inputs as usize].clone()
        } else {
            mutate(&mut rng, &seeds)
        };
        let mut cuts: Vec<usize> = (0..rng.gen_range(0..8))
            .map(|_| rng.gen_range(0..=input.len()))
            .collect();
        cuts.sort();
        inputs += 1;
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(&input, &cuts))) {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{name}-{seed}-{inputs}"));
            let _ = std::fs::write(&path, &input);
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "{name}: input {inputs} failed ({message}), cuts {cuts:?}; saved to {}",
                path.display()
            );
        }
    }
    eprintln!("{name}: {inputs} inputs in {:?}", start.elapsed());
    assert!(inputs > seeds.len() as u64);
}
