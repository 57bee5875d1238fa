//! The fuzz targets on stable Rust, for machines without nightly/cargo-fuzz: the loop in
//! `src/runner.rs` over the corpus seeds, each target for a fixed time. A failure (a
//! panic, or a broken invariant: an accept of malformed input) is reported with its seed
//! and the input saved to `target/fuzz-crashes/`, and the runner exits non-zero.
//!
//!     cargo run --release --no-default-features --bin stable-fuzz -- --seconds 60 [--seed N]
//!
//! The test suite runs the same loop for a shorter time (`appliance/tests/fuzz_mail_rules.rs`).

use std::path::PathBuf;
use std::time::Duration;

use chatmail_appliance_fuzz::{checks, client_hello, imap_command, runner};

fn main() {
    let mut seconds = 30.0;
    let mut seed = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).expect("--seed N"),
            other => panic!("unknown argument {other}"),
        }
    }
    // Keep panics quiet: a failure is reported once, with the input saved.
    std::panic::set_hook(Box::new(|_| {}));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let messages = runner::corpus_seeds(&root.join("../../tests/corpus/messages"));
    let milter = runner::milter_seeds(&messages);
    let hellos = client_hello::seeds();
    // The target's first byte says where to cut the stream.
    let commands: Vec<Vec<u8>> = imap_command::seeds()
        .into_iter()
        .map(|s| [vec![7u8], s].concat())
        .collect();
    let duration = Duration::from_secs_f64(seconds);
    let mut ok = true;
    for (name, check, seeds) in [
        ("mime_openpgp", checks::mime_openpgp as fn(&[u8]), &messages),
        ("milter_decoder", checks::milter_decoder, &milter),
        ("client_hello", client_hello::client_hello, &hellos),
        ("imap_command", imap_command::imap_command, &commands),
    ] {
        let report = runner::run(name, check, seeds, duration, seed);
        println!("{report}");
        if let Some((_, input)) = &report.failure {
            let dir = root.join("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{name}-{seed}-{}", report.inputs));
            let _ = std::fs::write(&path, input);
            eprintln!("  input saved to {}", path.display());
            ok = false;
        }
    }
    std::process::exit(if ok { 0 } else { 1 });
}
