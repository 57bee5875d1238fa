//! A child process in its own process group, ended with the whole group on drop.
//!
//! Every service the appliance suites start (Pebble, the appliance with its Maddy, the
//! Delta Chat driver with its RPC server) runs through this, so a failing test never
//! leaves a process behind.

use std::{
    fs::File,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, killpg, Signal},
    unistd::Pid,
};

/// A running child with its output in a log file.
pub struct GroupChild {
    child: Option<Child>,
    name: String,
    log_path: PathBuf,
}

impl GroupChild {
    /// Starts `command` in a new process group, stdout and stderr into `log_path`.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> GroupChild {
        let log = File::create(log_path).expect("log file");
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        GroupChild {
            child: Some(child),
            name: name.to_string(),
            log_path: log_path.to_path_buf(),
        }
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it has exited (and with what).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }

    /// SIGKILL to the process only (its own children are its business), then reap it.
    pub fn kill_hard(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        child.wait().ok()
    }

    /// SIGTERM, then after `grace` SIGKILL to the whole group; returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = killpg(pid, Signal::SIGKILL);
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = killpg(pid, Signal::SIGKILL);
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`; `check` is called
/// between attempts (to fail early when the server died).
pub async fn wait_for_port(port: u16, timeout: Duration, mut check: impl FnMut()) {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        check();
        assert!(
            Instant::now() < deadline,
            "nothing listened on port {port} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The cache directory the install script uses (`$CHATMAIL_CACHE_DIR`, default
/// `~/.cache/chatmail`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CHATMAIL_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/chatmail")
        })
}

/// The value of `NAME="value"` in a shell script of the workspace (the single place a
/// pinned version is written).
pub fn script_pin(script: &str, name: &str) -> String {
    let path = crate::workspace::root().join(script);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let prefix = format!("{name}=\"");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{} sets no {name}", path.display()))
        .to_string()
}

/// The message for a missing test dependency.
pub const INSTALL_HINT: &str =
    "run appliance/scripts/install-test-deps.sh (it installs Pebble, the Delta Chat RPC server and client, and builds Maddy)";
