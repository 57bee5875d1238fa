//! The appliance binary, run as on the device but with every path in a temporary directory
//! and every port a free loopback port.
//!
//! The appliance starts Maddy itself (the binary from [`crate::maddy::binary`]); Maddy
//! gets a parent-death signal, so killing the appliance also ends Maddy, and dropping a
//! [`RunningAppliance`] ends both, also when a test fails.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::process::{wait_for_port, GroupChild};
use crate::tls_client::{self, Response, Trust};

/// The appliance binary: `$CHATMAIL_APPLIANCE_BIN`, or a debug build made once per run.
pub fn binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("CHATMAIL_APPLIANCE_BIN") {
                return PathBuf::from(path);
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(crate::workspace::root())
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "chatmail-appliance",
                    "--bin",
                    "chatmail-appliance",
                ])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the appliance failed");
            crate::workspace::target_dir().join("debug/chatmail-appliance")
        })
        .clone()
}

/// The ports one appliance uses.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub https: u16,
    /// The web server's own HTTPS port, behind the multiplexer on `https`.
    pub web_https: u16,
    pub smtp: u16,
    pub submissions: u16,
    pub submission: u16,
    pub imaps: u16,
    /// IMAP with STARTTLS (the IMAP front only).
    pub imap: u16,
    /// Maddy's plaintext IMAP on loopback behind the IMAP front.
    pub imap_loopback: u16,
    pub metrics: u16,
}

impl Ports {
    fn free() -> Ports {
        Ports {
            http: crate::free_port(),
            https: crate::free_port(),
            web_https: crate::free_port(),
            smtp: crate::free_port(),
            submissions: crate::free_port(),
            submission: crate::free_port(),
            imaps: crate::free_port(),
            imap: crate::free_port(),
            imap_loopback: crate::free_port(),
            metrics: crate::free_port(),
        }
    }
}

/// How to run one appliance. Its directory (perm, run, config) lives as long as this.
pub struct Appliance {
    pub domain: String,
    pub ports: Ports,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    acme: Option<(String, PathBuf)>,
    registration_open: bool,
    resources: [String; 3],
    extra_config: String,
    imap_front: bool,
    soft_open_files: Option<u64>,
    starts: usize,
}

/// Whether appliances serve IMAP through the IMAP front unless a test says otherwise: yes,
/// as on the device; `CHATMAIL_TEST_IMAP_FRONT=0` runs every appliance test with Maddy
/// serving IMAP itself.
fn imap_front_by_default() -> bool {
    !std::env::var("CHATMAIL_TEST_IMAP_FRONT").is_ok_and(|v| v == "0" || v == "false")
}

impl Appliance {
    /// An appliance for `domain` with free ports, registration open, no ACME.
    pub fn new(domain: &str) -> Appliance {
        Appliance {
            domain: domain.to_string(),
            ports: Ports::free(),
            dir: tempfile::Builder::new()
                .prefix("chatmail-appliance.")
                .tempdir()
                .expect("temporary directory"),
            extra_args: Vec::new(),
            env: Vec::new(),
            acme: None,
            registration_open: true,
            // The test machine compiles while testing: do not refuse for load or memory.
            resources: ["1000".into(), "1".into(), "1".into()],
            extra_config: String::new(),
            imap_front: imap_front_by_default(),
            soft_open_files: None,
            starts: 0,
        }
    }

    /// Use the ACME CA at `directory_url`, trusting `tls_root` for its HTTPS.
    pub fn acme(mut self, directory_url: &str, tls_root: &Path) -> Self {
        self.acme = Some((directory_url.to_string(), tls_root.to_path_buf()));
        self
    }

    /// `registration.open` in the relay config.
    pub fn registration_open(mut self, open: bool) -> Self {
        self.registration_open = open;
        self
    }

    /// Resource thresholds for new accounts: maximum load, minimum available memory (MiB),
    /// minimum free disk (MiB).
    pub fn resources(mut self, max_load: f64, min_memory_mb: u64, min_disk_mb: u64) -> Self {
        self.resources = [
            max_load.to_string(),
            min_memory_mb.to_string(),
            min_disk_mb.to_string(),
        ];
        self
    }

    /// More relay configuration (TOML), appended to relay.toml after the `[registration]`
    /// and `[acme]` tables, e.g. a `[limits]` table.
    pub fn config(mut self, toml: &str) -> Self {
        self.extra_config.push_str(toml);
        self.extra_config.push('\n');
        self
    }

    /// Serve IMAP (993, and 143 with STARTTLS) through the IMAP front, Maddy behind it on
    /// loopback.
    pub fn imap_front(mut self, on: bool) -> Self {
        self.imap_front = on;
        self
    }

    /// Starts the appliance with this soft limit on open files (through util-linux's
    /// `prlimit`, which then runs it in its place), as a service manager may leave it.
    pub fn soft_open_files(mut self, limit: u64) -> Self {
        self.soft_open_files = Some(limit);
        self
    }

    /// An extra command-line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// An environment variable for the appliance process.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_string(), value.into()));
        self
    }

    /// The persistent directory (`/perm` on the device).
    pub fn perm_dir(&self) -> PathBuf {
        self.dir.path().join("perm")
    }

    /// The volatile directory (`/run` on the device).
    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The test's scratch directory.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    fn write_config(&self) -> PathBuf {
        let mut toml = format!(
            "schema_version = 1\nmail_domain = \"{}\"\n\n[registration]\nopen = {}\n",
            self.domain, self.registration_open
        );
        if let Some((url, _)) = &self.acme {
            toml.push_str(&format!("\n[acme]\ndirectory_url = \"{url}\"\n"));
        }
        if !self.extra_config.is_empty() {
            toml.push('\n');
            toml.push_str(&self.extra_config);
        }
        let path = self.dir.path().join("relay.toml");
        std::fs::write(&path, toml).expect("write relay.toml");
        path
    }

    /// Starts the appliance and waits until its web server, metrics and Maddy's IMAP
    /// listener accept connections.
    pub async fn start(&mut self) -> RunningAppliance {
        let config = self.write_config();
        let maddy = crate::maddy::binary();
        let p = self.ports;
        let mut command = match self.soft_open_files {
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--nofile={limit}:")).arg(binary());
                command
            }
            None => Command::new(binary()),
        };
        command
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--perm-dir")
            .arg(self.perm_dir())
            .arg("--run-dir")
            .arg(self.run_dir())
            .arg("--maddy")
            .arg(&maddy)
            .args(["--bind", "127.0.0.1"])
            .args(["--http-port", &p.http.to_string()])
            .args(["--https-port", &p.https.to_string()])
            .args(["--web-https-port", &p.web_https.to_string()])
            .args(["--smtp-port", &p.smtp.to_string()])
            .args(["--submissions-port", &p.submissions.to_string()])
            .args(["--submission-port", &p.submission.to_string()])
            .args(["--imaps-port", &p.imaps.to_string()])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", p.metrics)])
            .arg(format!("--max-load-1m={}", self.resources[0]))
            .arg(format!("--min-available-memory-mb={}", self.resources[1]))
            .arg(format!("--min-free-disk-mb={}", self.resources[2]))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        for name in [
            "CHATMAIL_CONFIG",
            "CHATMAIL_PERM_DIR",
            "CHATMAIL_RUN_DIR",
            "CHATMAIL_MADDY_BIN",
            "CHATMAIL_BIND",
            "CHATMAIL_METRICS_LISTEN",
            "CHATMAIL_ACME_EXTRA_ROOT",
            "CHATMAIL_TEST_CRASH_POINT",
        ] {
            command.env_remove(name);
        }
        match &self.acme {
            Some((_, root)) => {
                command.arg("--acme-extra-root").arg(root);
            }
            None => {
                command.arg("--no-acme");
            }
        }
        command.arg(format!("--imap-front={}", self.imap_front));
        if self.imap_front {
            command
                .args(["--imap-port", &p.imap.to_string()])
                .args(["--imap-loopback-port", &p.imap_loopback.to_string()]);
        }
        command.args(&self.extra_args);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        self.starts += 1;
        let log_path = self
            .dir
            .path()
            .join(format!("appliance-{}.log", self.starts));
        let mut child = GroupChild::spawn("chatmail-appliance", command, &log_path);
        let mut ports = vec![p.https, p.metrics, p.imaps, p.submissions];
        if self.imap_front {
            // The front listens at once; Maddy behind it a little later.
            ports.extend([p.imap, p.imap_loopback]);
        }
        for port in ports {
            let limit = Duration::from_secs(120);
            let waited = tokio::time::timeout(
                limit,
                wait_for_port(port, limit * 2, || child.assert_running()),
            )
            .await;
            assert!(
                waited.is_ok(),
                "nothing listened on port {port} after {limit:?}; appliance log:\n{}",
                child.log()
            );
        }
        RunningAppliance {
            child,
            domain: self.domain.clone(),
            ports: p,
        }
    }
}

/// A started appliance.
pub struct RunningAppliance {
    child: GroupChild,
    pub domain: String,
    pub ports: Ports,
}

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

impl RunningAppliance {
    /// Everything the appliance (and Maddy, through it) logged so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// The appliance's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid().expect("the appliance was started")
    }

    /// SIGKILL, as a power cut would: no clean-up runs.
    pub fn kill_hard(&mut self) {
        self.child.kill_hard();
    }

    /// SIGTERM and wait for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.child
            .terminate(Duration::from_secs(60))
            .expect("the appliance was running")
    }

    /// Panics with the log if the appliance has exited.
    pub fn assert_running(&mut self) {
        self.child.assert_running();
    }

    /// An HTTPS request to the appliance's web server for `host`.
    pub async fn https(&self, host: &str, trust: &Trust, method: &str, path: &str) -> Response {
        tls_client::https(local(self.ports.https), host, trust, method, path).await
    }

    /// A plain HTTP request to port "80".
    pub async fn http(&self, host: &str, method: &str, path: &str) -> Response {
        tls_client::http(local(self.ports.http), host, method, path).await
    }

    /// `POST /new`, certificate not checked.
    pub async fn new_account(&self) -> Response {
        self.https(&self.domain.clone(), &Trust::Anything, "POST", "/new")
            .await
    }

    /// `POST /new`, expecting success: (address, password).
    pub async fn new_account_ok(&self) -> (String, String) {
        let response = self.new_account().await;
        assert_eq!(response.status, 200, "POST /new: {}", response.text());
        let json = response.json();
        (
            json["email"].as_str().expect("email").to_string(),
            json["password"].as_str().expect("password").to_string(),
        )
    }

    /// IMAP LOGIN through Maddy; the tagged reply.
    pub async fn imap_login(&self, user: &str, password: &str) -> String {
        tls_client::imap_login(local(self.ports.imaps), user, password).await
    }

    /// SMTP AUTH PLAIN through Maddy's submission port; the reply line.
    pub async fn smtp_auth(&self, user: &str, password: &str) -> String {
        tls_client::smtp_auth(local(self.ports.submissions), user, password).await
    }

    /// The OpenMetrics text.
    pub async fn metrics(&self) -> String {
        let response =
            tls_client::http(local(self.ports.metrics), "127.0.0.1", "GET", "/metrics").await;
        assert_eq!(response.status, 200);
        response.text()
    }

    /// The value of one metric line (`name` including labels), if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// The status document.
    pub async fn status(&self) -> serde_json::Value {
        let response = self
            .https(
                &self.domain.clone(),
                &Trust::Anything,
                "GET",
                "/.well-known/chatmail-relay/status.json",
            )
            .await;
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    }

    /// Polls `probe` until it returns `Some`, or panics with the appliance log after
    /// `limit` (a guard against hangs; no test passes or fails on timing).
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not after {limit:?}; appliance log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
