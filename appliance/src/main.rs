//! `chatmail-appliance`: the relay device's daemons, in one binary.
//!
//! For now it only checks a relay configuration the way the device will read it at boot;
//! the daemons (auth, milter, IMAP front, web, ACME) arrive with the appliance issues.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [command, path] if command == "check-config" => check_config(path),
        _ => {
            eprintln!("usage: chatmail-appliance check-config <relay.toml>");
            ExitCode::from(2)
        }
    }
}

fn check_config(path: &str) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: cannot read {path}: {err}");
            return ExitCode::FAILURE;
        }
    };
    match chatmail_shared::RelayConfig::from_toml(&text) {
        Ok(config) => {
            println!("{path}: valid configuration for {}", config.mail_domain.as_str());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {path}: {err}");
            ExitCode::FAILURE
        }
    }
}
