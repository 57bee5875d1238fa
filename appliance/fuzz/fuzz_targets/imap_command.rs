//! libFuzzer target: the IMAP front's command framer and parser (see src/imap_command.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatmail_appliance_fuzz::imap_command(data));
