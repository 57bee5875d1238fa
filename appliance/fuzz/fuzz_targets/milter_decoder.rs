//! libFuzzer target: the milter wire-format decoder on arbitrary streams (see src/lib.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatmail_appliance_fuzz::milter_decoder(data));
