//! The harness for workspace-level end-to-end tests.
//!
//! Each helper starts one real service on loopback and stops it again when dropped, also
//! when the test fails: a private PostgreSQL ([`postgres`]), the portal binary as a user
//! runs it ([`portal`]), and headless Chromium driven over WebDriver ([`browser`]).
//! Later suites add DNS servers, Pebble, Maddy and Delta Chat clients beside these.

pub mod appliance;
pub mod browser;
pub mod deltachat;
pub mod images;
pub mod maddy;
pub mod mail_client;
pub mod pebble;
pub mod portal;
pub mod portal_client;
pub mod postgres;
pub mod process;
pub mod push_service;
pub mod test_ca;
pub mod tls_client;
pub mod tls_front;
pub mod workspace;
pub mod zone;

/// Makes the process's HTTP clients usable: reqwest is built without a built-in TLS crypto
/// provider (the workspace uses rustls with ring), so one is installed once per process.
/// Every harness entry point calls this; calling it again does nothing.
pub fn tls_ready() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that no other call in this
/// process has returned.
pub fn free_port() -> u16 {
    chatmail_dns_world::free_port(std::net::Ipv4Addr::LOCALHOST.into())
}

/// A temporary directory that every user may enter (PostgreSQL runs as an unprivileged
/// user when the tests run as root, and must reach its files inside).
pub fn shared_temp_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("chatmail-test.")
        .tempdir()
        .expect("temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temporary directory");
    dir
}
