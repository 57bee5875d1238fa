//! `chatmail-appliance expire [--dry-run] [--now UNIX]`: one expiry run from the command
//! line, printing what goes (or would go) and why. It runs while the relay is stopped:
//! the running relay holds the account and push databases open (the daily run inside it
//! does the same job). Maddy's CLI gets the config the relay generates from relay.toml.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chatmail_shared::RelayConfig;

use super::maddy_cli::MaddyCli;
use super::{listing, rules::Policy, Expiry};
use crate::metrics::Metrics;
use crate::paths::{write_atomic, Paths};
use crate::push::Clock;

/// The `expire` subcommand's arguments.
#[derive(clap::Args, Debug)]
pub struct ExpireArgs {
    /// Only list what would go; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Judge ages as if it were this Unix time (default: now).
    #[arg(long)]
    now: Option<u64>,
    /// The relay configuration [default: <perm-dir>/chatmail/relay.toml].
    #[arg(long, env = "CHATMAIL_CONFIG")]
    config: Option<PathBuf>,
    /// The persistent directory (gokrazy's writable partition).
    #[arg(long, env = "CHATMAIL_PERM_DIR", default_value = "/perm")]
    perm_dir: PathBuf,
    /// The volatile directory (a tmpfs), where maddy.conf is written.
    #[arg(long, env = "CHATMAIL_RUN_DIR", default_value = "/run")]
    run_dir: PathBuf,
    /// The Maddy executable.
    #[arg(
        long,
        env = "CHATMAIL_MADDY_BIN",
        default_value = "/usr/local/bin/maddy"
    )]
    maddy: PathBuf,
}

/// Runs the subcommand; the listing goes to stdout, problems to stderr.
pub fn run(args: ExpireArgs) -> ExitCode {
    match execute(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether everything planned was done.
fn execute(args: ExpireArgs) -> anyhow::Result<bool> {
    let paths = Paths::new(
        std::path::absolute(&args.perm_dir)?,
        std::path::absolute(&args.run_dir)?,
    );
    let config_path = args.config.unwrap_or_else(|| paths.default_config_file());
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", config_path.display()))?;
    let config = RelayConfig::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
    let accounts = crate::auth::store::AccountStore::open(&paths.accounts_db())
        .map_err(|e| anyhow::anyhow!("{e} (is the relay still running?)"))?;
    let (push_tokens, _) = crate::push::open(&paths.push_db(), Arc::new(crate::push::SystemClock))
        .map_err(|e| anyhow::anyhow!("{e} (is the relay still running?)"))?;
    // The config the relay's Maddy runs with: the storage block and directories matter
    // here, the listener ports do not.
    std::fs::create_dir_all(paths.maddy_runtime_dir())?;
    let maddy_config =
        crate::maddy::config::render(&config, &paths, &crate::maddy::config::Listeners::default());
    write_atomic(&paths.maddy_config(), maddy_config.as_bytes(), 0o600)?;
    let expiry = Expiry {
        maddy: MaddyCli {
            binary: args.maddy,
            config: paths.maddy_config(),
            state_dir: paths.maddy_state_dir(),
        },
        accounts,
        push_tokens,
        policy: Policy::from_limits(&config.limits),
        metrics: Metrics::new(),
    };
    let now = args.now.unwrap_or_else(|| crate::push::SystemClock.now());
    let report = expiry.run(now, args.dry_run)?;
    print!("{}", listing(&report.plan));
    println!(
        "{} {} accounts and {} messages ({} bytes)",
        if args.dry_run {
            "would remove"
        } else {
            "removed"
        },
        report.plan.accounts.len(),
        report.plan.messages.len(),
        report.plan.message_bytes()
    );
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    Ok(report.errors.is_empty())
}
