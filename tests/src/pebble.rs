//! Pebble, Let's Encrypt's test ACME CA, from Debian's `pebble` package, with
//! `pebble-challtestsrv` as its DNS server.
//!
//! Pebble validates HTTP-01 challenges by connecting to the name being certified on the
//! port its config calls `httpPort`, so that port is set to the appliance's HTTP port.
//! Names are resolved by pebble-challtestsrv, which answers every A query with 127.0.0.1
//! and, with IPv6 turned off, no AAAA. Pebble's own HTTPS certificate is made here, by a
//! throwaway CA (Debian's package ships none); the CA that signs the certificates Pebble
//! issues is made by Pebble at every start and is fetched from its management port.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::process::{wait_for_port, GroupChild, INSTALL_HINT};
use crate::tls_client::{self, Trust};

const PEBBLE: &str = "/usr/bin/pebble";
const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

pub struct Pebble {
    // Dropped in this order: Pebble first, then its DNS server.
    pebble: GroupChild,
    challtestsrv: GroupChild,
    acme_port: u16,
    management_port: u16,
    tls_root_pem: String,
    tls_root_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pebble {
    /// Starts Pebble validating HTTP-01 on `http_port`.
    pub async fn start(http_port: u16) -> Pebble {
        for program in [PEBBLE, CHALLTESTSRV] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: {INSTALL_HINT}"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("chatmail-pebble.")
            .tempdir()
            .expect("temporary directory");
        let (root_pem, cert_pem, key_pem) = pebble_tls_certificates();
        let tls_root_path = dir.path().join("pebble-tls-root.pem");
        std::fs::write(&tls_root_path, &root_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();

        let dns_port = crate::free_port();
        let challtest_management = crate::free_port();
        let mut command = Command::new(CHALLTESTSRV);
        command.args([
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            &format!("127.0.0.1:{dns_port}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{challtest_management}"),
        ]);
        let mut challtestsrv = GroupChild::spawn(
            "pebble-challtestsrv",
            command,
            &dir.path().join("challtestsrv.log"),
        );
        wait_for_port(challtest_management, Duration::from_secs(30), || {
            challtestsrv.assert_running()
        })
        .await;

        let acme_port = crate::free_port();
        let management_port = crate::free_port();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": http_port,
                "tlsPort": crate::free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut command = Command::new(PEBBLE);
        command
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns_port}"))
            // No artificial validation delay, no random nonce rejections: the tests
            // exercise the appliance, not its patience.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0");
        let mut pebble = GroupChild::spawn("pebble", command, &dir.path().join("pebble.log"));
        wait_for_port(acme_port, Duration::from_secs(30), || {
            pebble.assert_running()
        })
        .await;
        wait_for_port(management_port, Duration::from_secs(30), || {
            pebble.assert_running()
        })
        .await;
        Pebble {
            pebble,
            challtestsrv,
            acme_port,
            management_port,
            tls_root_pem: root_pem,
            tls_root_path,
            _dir: dir,
        }
    }

    /// The ACME directory URL.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    /// The ACME port on 127.0.0.1 (for forwarding it into a guest).
    pub fn acme_port(&self) -> u16 {
        self.acme_port
    }

    /// The root that Pebble's own HTTPS certificate chains to, as PEM.
    pub fn tls_root_pem(&self) -> &str {
        &self.tls_root_pem
    }

    /// The root that Pebble's own HTTPS certificate chains to (for ACME clients).
    pub fn tls_root_path(&self) -> &Path {
        &self.tls_root_path
    }

    /// The root of the certificates Pebble issues, fetched from its management API.
    pub async fn issuing_root_pem(&self) -> String {
        let addr: SocketAddr = ([127, 0, 0, 1], self.management_port).into();
        let response = tls_client::https(
            addr,
            "127.0.0.1",
            &Trust::pem(&self.tls_root_pem),
            "GET",
            "/roots/0",
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.text());
        response.text()
    }

    /// What Pebble and its DNS server logged.
    pub fn log(&self) -> String {
        format!(
            "--- pebble ---\n{}\n--- pebble-challtestsrv ---\n{}",
            self.pebble.log(),
            self.challtestsrv.log()
        )
    }
}

/// A throwaway CA and a certificate signed by it, as PEM: (root, certificate, key). The
/// names cover loopback and the address at which a QEMU guest reaches host services.
fn pebble_tls_certificates() -> (String, String, String) {
    crate::test_ca::certificate_for(
        "chatmail tests: Pebble TLS root",
        &["127.0.0.1", "localhost", crate::images::HOST_SERVICES_IP],
    )
}
