//! A real PowerDNS Authoritative server (Debian `pdns-server` + `pdns-backend-sqlite3`,
//! 4.7) on loopback, for testing the portal's PowerDNS-API and RFC 2136 providers.
//!
//! Each [`PowerDns`] gets a fresh temporary directory with its own `pdns.conf`, a new
//! sqlite database made from the package's schema, the HTTP API (`api=yes`, a random API
//! key) and dynamic updates (`dnsupdate=yes`) on free ports of [`PDNS_IP`]. Zones are
//! created with `pdnsutil`, which also imports a TSIG key and allows it to update and
//! transfer each zone. Caches are off, so every answer shows the database as it is.
//! Nothing leaves loopback: no security polling, no NOTIFY (the server is not a primary),
//! no resolver. The server is killed (whole process group) when the handle drops.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::daemon::{self, Daemon};

/// The loopback address the servers listen on.
pub const PDNS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 31);

/// Name of the TSIG key every zone accepts.
pub const TSIG_KEY_NAME: &str = "portal";

/// Its algorithm.
pub const TSIG_ALGORITHM: &str = "hmac-sha256";

const SCHEMA: &str = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";
const BACKEND: &str = "/usr/lib/x86_64-linux-gnu/pdns/libgsqlite3backend.so";

/// A running PowerDNS Authoritative server.
pub struct PowerDns {
    dir: tempfile::TempDir,
    dns_port: u16,
    api_port: u16,
    api_key: String,
    tsig_secret: String,
    zones: Vec<String>,
    daemon: Option<Daemon>,
}

impl PowerDns {
    /// Starts a server with no zones. Panics (naming the Debian package) if PowerDNS or
    /// sqlite3 is missing, or with the server's log if it does not come up.
    pub async fn start() -> PowerDns {
        daemon::require("pdns_server", "pdns-server");
        daemon::require("pdnsutil", "pdns-server");
        daemon::require("sqlite3", "sqlite3");
        daemon::require_file(SCHEMA, "pdns-backend-sqlite3");
        if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            daemon::require_file(BACKEND, "pdns-backend-sqlite3");
        }
        let dir = tempfile::Builder::new()
            .prefix("pdns-test-")
            .tempdir()
            .expect("temporary directory");
        let db = dir.path().join("pdns.sqlite3");
        let schema = std::fs::File::open(SCHEMA).expect("schema");
        daemon::run(Command::new("sqlite3").arg(&db).stdin(schema));
        let mut server = PowerDns {
            dir,
            dns_port: daemon::free_port(IpAddr::V4(PDNS_IP)),
            api_port: daemon::free_port(IpAddr::V4(PDNS_IP)),
            api_key: daemon::random_secret(),
            tsig_secret: daemon::random_secret(),
            zones: Vec::new(),
            daemon: None,
        };
        server.write_config();
        daemon::run(server.pdnsutil_cmd().args([
            "import-tsig-key",
            TSIG_KEY_NAME,
            TSIG_ALGORITHM,
            &server.tsig_secret,
        ]));
        server.launch(true).await;
        server
    }

    /// Runs `pdnsutil` on this server's configuration (e.g. `["import-tsig-key", …]`) and
    /// returns its output; panics if it fails.
    pub fn pdnsutil(&self, args: &[&str]) -> String {
        daemon::run(self.pdnsutil_cmd().args(args))
    }

    fn pdnsutil_cmd(&self) -> Command {
        let mut c = Command::new("pdnsutil");
        c.arg(format!("--config-dir={}", self.dir.path().display()));
        c
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let conf = format!(
            "launch=gsqlite3\n\
             gsqlite3-database={d}/pdns.sqlite3\n\
             local-address={PDNS_IP}:{dns}\n\
             api=yes\n\
             api-key={key}\n\
             webserver=yes\n\
             webserver-address={PDNS_IP}\n\
             webserver-port={api}\n\
             webserver-allow-from=127.0.0.0/8\n\
             dnsupdate=yes\n\
             allow-dnsupdate-from=127.0.0.0/8\n\
             disable-axfr=no\n\
             allow-axfr-ips=127.0.0.0/8\n\
             security-poll-suffix=\n\
             query-cache-ttl=0\n\
             cache-ttl=0\n\
             negquery-cache-ttl=0\n\
             zone-cache-refresh-interval=0\n\
             socket-dir={d}\n\
             guardian=no\n\
             daemon=no\n\
             disable-syslog=yes\n\
             loglevel=5\n\
             distributor-threads=1\n\
             receiver-threads=1\n",
            dns = self.dns_port,
            key = self.api_key,
            api = self.api_port,
        );
        std::fs::write(self.dir.path().join("pdns.conf"), conf).expect("write pdns.conf");
    }

    /// Starts the process; with `new_ports`, a port taken by another process meanwhile is
    /// replaced by a fresh one.
    async fn launch(&mut self, new_ports: bool) {
        for attempt in 0..5 {
            if new_ports && attempt > 0 {
                self.dns_port = daemon::free_port(IpAddr::V4(PDNS_IP));
                self.api_port = daemon::free_port(IpAddr::V4(PDNS_IP));
            }
            self.write_config();
            let mut cmd = Command::new("pdns_server");
            cmd.arg(format!("--config-dir={}", self.dir.path().display()));
            let mut d = Daemon::spawn("pdns_server", cmd, &self.log_path());
            let dns = self.dns_addr();
            let api = SocketAddr::new(IpAddr::V4(PDNS_IP), self.api_port);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let mut up = false;
            while std::time::Instant::now() < deadline {
                if !d.running() {
                    break;
                }
                let dns_up = tokio::net::TcpStream::connect(dns).await.is_ok();
                let api_up = tokio::net::TcpStream::connect(api).await.is_ok()
                    && d.log()
                        .contains(&format!("Listening for HTTP requests on {api}"));
                if dns_up && api_up {
                    up = true;
                    break;
                }
                if d.log().contains("Listening on HTTP socket failed") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if up {
                self.daemon = Some(d);
                return;
            }
            let log = d.log();
            d.kill();
            let port_taken = log.contains("Address already in use");
            if !(new_ports && port_taken) || attempt == 4 {
                panic!("PowerDNS did not start:\n{log}");
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pdns.log")
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where it answers DNS (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(PDNS_IP), self.dns_port)
    }

    /// Base URL of the HTTP API, e.g. `http://127.0.0.31:40123` (the API is under `/api/v1`).
    pub fn api_url(&self) -> String {
        format!("http://{PDNS_IP}:{}", self.api_port)
    }

    /// The API key.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The TSIG secret (base64) of [`TSIG_KEY_NAME`].
    pub fn tsig_secret(&self) -> &str {
        &self.tsig_secret
    }

    /// The zones created so far.
    pub fn zones(&self) -> &[String] {
        &self.zones
    }

    /// Creates (or replaces the contents of) `zone` from zone-file `text`, and lets the
    /// TSIG key update and transfer it. Use [`minimal_zone`] for an empty zone.
    pub fn load_zone(&mut self, zone: &str, text: &str) {
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        let file = self.dir.path().join(format!("{zone}.zone"));
        std::fs::write(&file, text).expect("write zone file");
        daemon::run(self.pdnsutil_cmd().args(["load-zone", &zone]).arg(&file));
        for (kind, value) in [
            ("TSIG-ALLOW-DNSUPDATE", TSIG_KEY_NAME),
            ("TSIG-ALLOW-AXFR", TSIG_KEY_NAME),
            ("ALLOW-DNSUPDATE-FROM", "127.0.0.0/8"),
            ("SOA-EDIT-DNSUPDATE", "INCREASE"),
        ] {
            daemon::run(self.pdnsutil_cmd().args(["set-meta", &zone, kind, value]));
        }
        if !self.zones.contains(&zone) {
            self.zones.push(zone);
        }
    }

    /// Creates an empty `zone` (SOA, NS `ns1.<zone>` with its address).
    pub fn create_zone(&mut self, zone: &str) {
        let text = minimal_zone(zone, PDNS_IP);
        self.load_zone(zone, &text);
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

    /// Starts it again on the same ports and data (after [`PowerDns::stop`]), and waits
    /// until it serves every zone.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch(false).await;
        let zones = self.zones.clone();
        let addr = self.dns_addr();
        if let Some(d) = self.daemon.as_mut() {
            for zone in zones {
                daemon::wait_until(d, Duration::from_secs(20), "PowerDNS zone", || {
                    daemon::serves_soa(addr, &zone)
                })
                .await;
            }
        }
    }
}

/// An empty zone: SOA, one NS `ns1.<zone>` and its address `ns_ip`.
pub fn minimal_zone(zone: &str, ns_ip: Ipv4Addr) -> String {
    let zone = zone.trim_end_matches('.');
    format!(
        "$ORIGIN {zone}.\n\
         $TTL 3600\n\
         @ 3600 IN SOA ns1.{zone}. hostmaster.{zone}. 1 7200 3600 1209600 3600\n\
         @ 3600 IN NS ns1.{zone}.\n\
         ns1 3600 IN A {ns_ip}\n"
    )
}
