//! libFuzzer target: the port-443 multiplexer's ClientHello parser (see src/client_hello.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatmail_appliance_fuzz::client_hello(data));
