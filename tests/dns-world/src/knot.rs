//! A real Knot DNS (Debian `knot`, 3.2) primary on loopback, for testing the portal's
//! RFC 2136 provider against a second implementation.
//!
//! Each [`Knot`] gets a fresh temporary directory with its configuration, zone files,
//! journal/timer storage, PID file and control socket; it listens on a free port of
//! [`KNOT_IP`]. One TSIG key ([`TSIG_KEY_NAME`], hmac-sha256, random secret) may update
//! every zone and, unless [`KnotOptions::transfer`] is off, transfer it (AXFR). Zone files
//! are written back immediately after each update (`zonefile-sync: 0`), so a restart after
//! a kill serves the same data. Knot sends no NOTIFY (no remotes are configured). The
//! server is killed (whole process group) when the handle drops.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::daemon::{self, Daemon};

/// The loopback address the servers listen on.
pub const KNOT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 32);

/// Name of the TSIG key every zone accepts.
pub const TSIG_KEY_NAME: &str = "portal";

/// Its algorithm.
pub const TSIG_ALGORITHM: &str = "hmac-sha256";

/// What the key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnotOptions {
    /// Allow zone transfers (AXFR) with the key, besides updates.
    pub transfer: bool,
}

impl Default for KnotOptions {
    fn default() -> Self {
        KnotOptions { transfer: true }
    }
}

/// A running Knot DNS server.
pub struct Knot {
    dir: tempfile::TempDir,
    port: u16,
    tsig_secret: String,
    zones: Vec<String>,
    daemon: Option<Daemon>,
}

impl Knot {
    /// Starts Knot serving `zones` (name, zone-file text); the key may update and transfer.
    pub async fn start(zones: &[(&str, &str)]) -> Knot {
        Self::start_with(zones, KnotOptions::default()).await
    }

    /// Starts Knot with `options`. Panics (naming the Debian package) if Knot is missing,
    /// or with the server's log if it does not serve every zone within 20 seconds.
    pub async fn start_with(zones: &[(&str, &str)], options: KnotOptions) -> Knot {
        daemon::require("knotd", "knot");
        daemon::require("knotc", "knot");
        let dir = tempfile::Builder::new()
            .prefix("knot-test-")
            .tempdir()
            .expect("temporary directory");
        std::fs::create_dir(dir.path().join("zones")).expect("zones directory");
        std::fs::create_dir(dir.path().join("db")).expect("storage directory");
        let mut knot = Knot {
            dir,
            port: daemon::free_port(IpAddr::V4(KNOT_IP)),
            tsig_secret: daemon::random_secret(),
            zones: Vec::new(),
            daemon: None,
        };
        for (name, text) in zones {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            std::fs::write(knot.zone_file(&name), text).expect("write zone file");
            knot.zones.push(name);
        }
        knot.write_config(options);
        daemon::run(
            Command::new("knotc")
                .arg("-c")
                .arg(knot.config_path())
                .arg("conf-check"),
        );
        knot.launch().await;
        knot
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("knot.conf")
    }

    fn zone_file(&self, zone: &str) -> PathBuf {
        self.dir.path().join("zones").join(format!("{zone}.zone"))
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("knot.sock")
    }

    fn write_config(&self, options: KnotOptions) {
        let d = self.dir.path().display();
        let actions = if options.transfer {
            "[update, transfer]"
        } else {
            "update"
        };
        let mut conf = format!(
            "server:\n\
             \x20   rundir: \"{d}\"\n\
             \x20   pidfile: \"{d}/knot.pid\"\n\
             \x20   listen: {KNOT_IP}@{port}\n\
             \x20   udp-workers: 1\n\
             \x20   tcp-workers: 1\n\
             \x20   background-workers: 1\n\
             \n\
             control:\n\
             \x20   listen: \"{sock}\"\n\
             \n\
             database:\n\
             \x20   storage: \"{d}/db\"\n\
             \n\
             log:\n\
             \x20 - target: stderr\n\
             \x20   any: info\n\
             \n\
             key:\n\
             \x20 - id: {TSIG_KEY_NAME}\n\
             \x20   algorithm: {TSIG_ALGORITHM}\n\
             \x20   secret: {secret}\n\
             \n\
             acl:\n\
             \x20 - id: portal_acl\n\
             \x20   key: {TSIG_KEY_NAME}\n\
             \x20   action: {actions}\n\
             \n\
             template:\n\
             \x20 - id: default\n\
             \x20   storage: \"{d}/zones\"\n\
             \x20   file: \"%s.zone\"\n\
             \x20   zonefile-sync: 0\n\
             \x20   semantic-checks: off\n\
             \n\
             zone:\n",
            port = self.port,
            sock = self.socket().display(),
            secret = self.tsig_secret,
        );
        for zone in &self.zones {
            conf.push_str(&format!("  - domain: {zone}\n    acl: portal_acl\n"));
        }
        std::fs::write(self.config_path(), conf).expect("write knot.conf");
    }

    async fn launch(&mut self) {
        let mut cmd = Command::new("knotd");
        cmd.arg("-c").arg(self.config_path());
        let mut d = Daemon::spawn("knotd", cmd, &self.dir.path().join("knot.log"));
        let addr = self.dns_addr();
        for zone in self.zones.clone() {
            daemon::wait_until(&mut d, Duration::from_secs(20), "Knot zone", || {
                daemon::serves_soa(addr, &zone)
            })
            .await;
        }
        self.daemon = Some(d);
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knot.log")).unwrap_or_default()
    }

    /// Where it answers DNS (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(KNOT_IP), self.port)
    }

    /// The TSIG secret (base64) of [`TSIG_KEY_NAME`].
    pub fn tsig_secret(&self) -> &str {
        &self.tsig_secret
    }

    /// Runs `knotc` against this server's control socket and returns its output.
    pub fn control(&self, args: &[&str]) -> String {
        daemon::run(
            Command::new("knotc")
                .arg("-c")
                .arg(self.config_path())
                .arg("-s")
                .arg(self.socket())
                .args(args),
        )
    }

    /// The zone file as Knot last wrote it.
    pub fn zone_file_text(&self, zone: &str) -> String {
        std::fs::read_to_string(self.zone_file(zone.trim_end_matches('.'))).unwrap_or_default()
    }

    /// Kills the server (SIGKILL, as a crash); its data stays.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(Daemon::running)
    }

    /// Starts it again on the same port and data, and waits until it serves every zone.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }
}
