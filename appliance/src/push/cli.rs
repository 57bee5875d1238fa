//! `chatmail-appliance push-token …`: the device-token store from the command line, for
//! operators and tests, while the relay is stopped (the running relay holds the database;
//! clients set their tokens through IMAP METADATA).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::paths::Paths;

/// What to do with the device tokens.
#[derive(clap::Subcommand, Debug)]
pub enum PushTokenCommand {
    /// Adds a token to an account (or refreshes its time), as SETMETADATA would.
    Add {
        /// The account's address.
        address: String,
        /// The device token.
        token: String,
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Prints the account's valid tokens, one a line.
    List {
        /// The account's address.
        address: String,
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Removes one token of an account.
    Remove {
        /// The account's address.
        address: String,
        /// The device token.
        token: String,
        #[command(flatten)]
        dirs: Dirs,
    },
}

/// Where the relay's state lives.
#[derive(clap::Args, Debug)]
pub struct Dirs {
    /// The persistent directory (gokrazy's writable partition).
    #[arg(long, env = "CHATMAIL_PERM_DIR", default_value = "/perm")]
    perm_dir: PathBuf,
}

impl Dirs {
    fn db(&self) -> PathBuf {
        Paths::new(&self.perm_dir, "/run").push_db()
    }
}

/// Runs `command`; errors go to stderr.
pub fn run(command: PushTokenCommand) -> ExitCode {
    match execute(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: PushTokenCommand) -> anyhow::Result<()> {
    match command {
        PushTokenCommand::Add {
            address,
            token,
            dirs,
        } => open(&dirs.db())?.add(&address, &token)?,
        PushTokenCommand::List { address, dirs } => {
            for token in open(&dirs.db())?.valid(&address)? {
                println!("{token}");
            }
        }
        PushTokenCommand::Remove {
            address,
            token,
            dirs,
        } => {
            if !open(&dirs.db())?.remove(&address, &token)? {
                anyhow::bail!("{address} has no such token");
            }
        }
    }
    Ok(())
}

fn open(db: &Path) -> anyhow::Result<super::tokens::TokenStore> {
    if let Some(dir) = db.parent() {
        // Private, as the relay makes its state directory.
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(super::open(db, Arc::new(super::SystemClock))?.0)
}
