//! Runs Maddy as a child process and keeps it running.
//!
//! Maddy is a separate Go program (GPL-3.0, never linked into ours). It starts only once our
//! auth socket answers, because it asks that socket for the mechanisms while reading its
//! configuration (research/maddy-gochatmail.md B.1, B.10). If it stops on its own it is
//! started again after a growing pause; everything it prints goes into our log. On shutdown
//! it gets SIGTERM (its clean shutdown) and, after a grace period, SIGKILL. Should the
//! appliance itself die, the kernel kills Maddy too (parent-death signal), so a restarted
//! appliance never finds the ports still taken.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::paths::{write_atomic, Paths};

/// How long Maddy may take to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// The first pause before a restart; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);

/// The longest pause before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A run at least this long resets the pause to [`MIN_BACKOFF`].
const STABLE_RUN: Duration = Duration::from_secs(60);

/// What the supervisor needs.
pub struct MaddySupervisor {
    /// The Maddy executable.
    pub binary: PathBuf,
    /// File layout.
    pub paths: Paths,
    /// The generated maddy.conf.
    pub config_text: String,
    /// Turns true once the auth socket accepts connections.
    pub auth_ready: watch::Receiver<bool>,
    /// Counts restarts.
    pub metrics: Metrics,
    /// Notified when the certificate changed: Maddy gets SIGUSR2 (reload).
    pub reload: Arc<Notify>,
    /// Where Maddy's state is reported.
    pub health: Health,
}

impl MaddySupervisor {
    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = MIN_BACKOFF;
        loop {
            // Wait for the auth socket.
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                ready = self.auth_ready.wait_for(|ready| *ready) => {
                    if ready.is_err() {
                        anyhow::bail!("the auth service is gone");
                    }
                }
            }
            write_atomic(
                &self.paths.maddy_config(),
                self.config_text.as_bytes(),
                0o600,
            )?;
            // A Maddy killed with the appliance leaves its unix socket behind, and Maddy
            // refuses to bind over it.
            match std::fs::remove_file(self.paths.store_socket()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("removing Maddy's old socket: {e}"),
            }
            let started = Instant::now();
            let mut child = self.spawn()?;
            let pid = child.id().map(|p| p as i32);
            tracing::info!(pid, "maddy started");
            self.health.set_maddy_running(true);
            let status = loop {
                tokio::select! {
                    status = child.wait() => break Some(status),
                    _ = shutdown.cancelled() => break None,
                    _ = self.reload.notified() => {
                        if let Some(pid) = pid {
                            tracing::info!("asking maddy to reload its certificate");
                            let _ = kill(Pid::from_raw(pid), Signal::SIGUSR2);
                        }
                    }
                }
            };
            self.health.set_maddy_running(false);
            let Some(status) = status else {
                stop(&mut child).await;
                return Ok(());
            };
            match status {
                Ok(status) => tracing::error!(%status, "maddy stopped"),
                Err(e) => tracing::error!("waiting for maddy: {e}"),
            }
            self.metrics.maddy_restarts.inc();
            if started.elapsed() >= STABLE_RUN {
                backoff = MIN_BACKOFF;
            }
            tracing::info!(?backoff, "restarting maddy after a pause");
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn spawn(&self) -> anyhow::Result<Child> {
        let mut command = Command::new(&self.binary);
        command
            .arg("--config")
            .arg(self.paths.maddy_config())
            .arg("run")
            .current_dir(self.paths.maddy_state_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of
        // the parent; it makes the kernel kill Maddy if the appliance dies.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", self.binary.display()))?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward(out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward(err));
        }
        Ok(child)
    }
}

/// Forwards each line Maddy prints into our log.
async fn forward(stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "maddy", "{}", line.trim_end());
    }
}

/// SIGTERM, then SIGKILL to the whole process group after [`STOP_GRACE`].
async fn stop(child: &mut Child) {
    let Some(pid) = child.id() else { return };
    let pid = Pid::from_raw(pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(_) => tracing::info!("maddy stopped"),
        Err(_) => {
            tracing::warn!("maddy did not stop in time; killing it");
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }
}
