//! `chatmail-portal`: parse the settings, set up logging, run until a signal arrives.
//! A failed start prints one line that says what is wrong and exits with status 1.

use std::process::ExitCode;

use chatmail_portal::{
    config::{Command, Config, LogFormat},
    operator_cli, startup,
};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = Config::parse();
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match config.command.clone() {
        None | Some(Command::Serve) => runtime
            .block_on(startup::run(config))
            .map_err(|err| err.to_string()),
        Some(Command::CreateOperator { email }) => runtime
            .block_on(operator_cli::create_operator(&config, &email))
            .map(|message| println!("{message}"))
            .map_err(|err| err.to_string()),
        Some(Command::ReleaseKey { out }) => operator_cli::release_key(&config, out.as_deref())
            .map(|message| println!("{message}"))
            .map_err(|err| err.to_string()),
        Some(Command::PublishRelease {
            channel,
            target,
            from,
            key,
        }) => runtime
            .block_on(operator_cli::publish_release(
                &config,
                &channel,
                &target,
                from.as_deref(),
                key.as_deref(),
            ))
            .map(|message| println!("{message}"))
            .map_err(|err| err.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
