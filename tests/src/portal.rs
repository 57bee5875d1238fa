//! The portal binary, started the way a person starts it, on a free loopback port.

use std::{
    fs::File,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

/// Settings the portal reads from the environment; cleared so the caller's shell cannot
/// leak into a test.
const PORTAL_ENV: &[&str] = &[
    "DATABASE_URL",
    "LISTEN_ADDR",
    "PUBLIC_BASE_URL",
    "PORTAL_DATA_DIR",
    "PORTAL_SITE_ROOT",
    "PORTAL_LOG_FORMAT",
];

/// How to start one portal process.
#[derive(Clone, Debug)]
pub struct PortalCommand {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub port: u16,
    /// Run as this (uid, gid) instead of the test's own user.
    pub run_as: Option<(u32, u32)>,
    pub log_dir: PathBuf,
    /// More command-line options for the portal.
    pub extra_args: Vec<String>,
    /// Probe relay devices (off unless a test asks: a test relay's addresses are made up,
    /// and tests never leave loopback).
    pub device_probes: bool,
}

impl PortalCommand {
    pub fn new(data_dir: &Path, log_dir: &Path) -> PortalCommand {
        PortalCommand {
            data_dir: data_dir.to_path_buf(),
            database_url: None,
            port: crate::free_port(),
            run_as: None,
            log_dir: log_dir.to_path_buf(),
            extra_args: Vec::new(),
            device_probes: false,
        }
    }

    /// Lets the portal probe relay devices (their addresses must be on loopback).
    pub fn device_probes(mut self) -> Self {
        self.device_probes = true;
        self
    }

    /// Adds a command-line option for the portal.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.run_as = Some((uid, gid));
        self
    }

    fn command(&self, log_name: &str) -> (Command, PathBuf) {
        let log_path = self.log_dir.join(log_name);
        let log = File::create(&log_path).expect("portal log file");
        let mut command = Command::new(crate::workspace::portal_binary());
        for name in PORTAL_ENV {
            command.env_remove(name);
        }
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg(format!("--device-probes={}", self.device_probes))
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0);
        if let Some(url) = &self.database_url {
            command.env("DATABASE_URL", url);
        }
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        (command, log_path)
    }

    /// Starts the portal and waits until `/healthz` answers 200.
    pub async fn start(&self) -> RunningPortal {
        crate::tls_ready();
        let (mut command, log_path) = self.command(&format!("portal-{}.log", self.port));
        let child = command.spawn().expect("start the portal binary");
        let mut portal = RunningPortal {
            child: Some(child),
            base_url: format!("http://127.0.0.1:{}", self.port),
            log_path,
            pid_file: self.data_dir.join("postgres/pgdata/postmaster.pid"),
        };
        portal.wait_healthy(Duration::from_secs(90)).await;
        portal
    }

    /// Makes `email` a community operator with the portal's command line (as the person
    /// running the portal does), using `data_dir` for the lock (the running portal holds
    /// its own). Returns what the command printed.
    pub fn create_operator(&self, data_dir: &Path, email: &str, password: &str) -> String {
        let mut command = self.clone();
        command.data_dir = data_dir.to_path_buf();
        let (mut command, log_path) = command.command("create-operator.log");
        command
            .arg("create-operator")
            .arg("--email")
            .arg(email)
            .env("PORTAL_OPERATOR_PASSWORD", password);
        let status = command.status().expect("run create-operator");
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        assert!(status.success(), "create-operator failed:\n{output}");
        output
    }

    /// Runs a portal that is expected to fail at start-up; returns its exit status and
    /// everything it printed.
    pub fn run_to_failure(&self, timeout: Duration) -> (ExitStatus, String) {
        let (mut command, log_path) = self.command("failed-start.log");
        let mut child = command.spawn().expect("start the portal binary");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the portal") {
                let output = std::fs::read_to_string(&log_path).unwrap_or_default();
                return (status, output);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let output = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("the portal kept running for {timeout:?} instead of failing; it printed:\n{output}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A portal process that answered its health check.
pub struct RunningPortal {
    child: Option<Child>,
    base_url: String,
    log_path: PathBuf,
    /// The private PostgreSQL's pid file, to clean up after a portal that had to be killed.
    pid_file: PathBuf,
}

impl RunningPortal {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Everything the portal has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn wait_healthy(&mut self, timeout: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(response) = client.get(self.url("/healthz")).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            let exited = match self.child.as_mut() {
                Some(child) => !matches!(child.try_wait(), Ok(None)),
                None => true,
            };
            if exited {
                panic!("the portal exited before it was healthy:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!(
                    "the portal was not healthy after {timeout:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the portal at once (SIGKILL), as a crash or a power cut would.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Stops the portal as a service manager does (SIGTERM) and returns its exit status.
    pub async fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid_file = self.pid_file.clone();
        tokio::task::spawn_blocking(move || {
            terminate(&mut child, &pid_file, Duration::from_secs(40))
        })
        .await
        .expect("stop the portal")
    }
}

impl Drop for RunningPortal {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, &self.pid_file, Duration::from_secs(40));
        }
    }
}

/// SIGTERM, then SIGKILL for the whole process group if it does not end in time, and an
/// immediate shutdown for the private PostgreSQL the killed portal could not stop.
fn terminate(child: &mut Child, pid_file: &Path, grace: Duration) -> ExitStatus {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
            let status = child.wait().expect("reap the portal");
            let postgres_pid = std::fs::read_to_string(pid_file).ok().and_then(|text| {
                text.lines()
                    .next()
                    .and_then(|l| l.trim().parse::<i32>().ok())
            });
            if let Some(postgres_pid) = postgres_pid {
                let _ = kill(Pid::from_raw(postgres_pid), Signal::SIGQUIT);
            }
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one portal subcommand (e.g. `release-key`, `publish-release`) as an operator would,
/// with only the given database and data directory (no inherited portal settings).
/// Returns whether it succeeded and everything it printed.
pub fn portal_cli(
    data_dir: &Path,
    database_url: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String) {
    let mut command = Command::new(crate::workspace::portal_binary());
    for name in [
        "DATABASE_URL",
        "PORTAL_DATA_DIR",
        "PORTAL_IMAGES_DIR",
        "PORTAL_RELEASES_DIR",
        "PORTAL_RELEASE_KEY_PASSWORD",
    ] {
        command.env_remove(name);
    }
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("DATABASE_URL", database_url);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run the portal command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
