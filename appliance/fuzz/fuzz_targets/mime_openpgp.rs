//! libFuzzer target: chatmail's encryption rules on arbitrary messages (see src/lib.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatmail_appliance_fuzz::mime_openpgp(data));
