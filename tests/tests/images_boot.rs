//! An image the portal did not personalize boots in QEMU (software emulation unless
//! CHATMAIL_QEMU_ACCEL=kvm; user networking, the guest reaches only the host's forwards)
//! and says on its console and at its status URL that its configuration is missing.
//!
//! A personalized image, downloaded through the portal's route, booted, growing /perm and
//! reporting its domain, is part of the whole journey (`journey.rs`).

use std::time::Duration;

use chatmail_tests::{
    free_port,
    images::{base_images_dir, Qemu},
    shared_temp_dir,
};

/// How long a boot may take (software emulation of a whole PC).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const STATUS_PATH: &str = "/.well-known/chatmail-relay/status.json";

/// The status document over plain HTTP, whatever its HTTP status. `None` until the guest
/// answers: QEMU accepts on the forwarded port at once and resets the connection while
/// nothing listens in the guest.
async fn http_status(port: u16) -> Option<(u16, serde_json::Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request =
            format!("GET {STATUS_PATH} HTTP/1.0\r\nHost: device\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response);
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        let (_, body) = text.split_once("\r\n\r\n")?;
        let json = serde_json::from_str(body).ok()?;
        Some((code, json))
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn an_image_without_configuration_says_so() {
    let images = base_images_dir();
    let dir = shared_temp_dir();
    // The base image as it is: /perm holds no file system at all.
    let image = dir.path().join("base.img");
    let status = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(images.join("chatmail-amd64.img"))
        .arg(&image)
        .status()
        .unwrap();
    assert!(status.success());
    let http = free_port();
    let mut vm = Qemu::boot(&image, &[(http, 80)], dir.path());
    let (code, status) = vm
        .wait_for(BOOT_TIMEOUT, "the configuration problem over HTTP", || {
            http_status(http)
        })
        .await;
    assert_eq!(code, 503, "{status}");
    assert_eq!(status["state"], "config_missing", "{status}");
    assert!(
        status["problem"]
            .as_str()
            .unwrap()
            .contains("/perm/chatmail/relay.toml"),
        "{status}"
    );
    let console = vm.serial();
    assert!(
        console.contains("chatmail: NOT RUNNING: /perm/chatmail/relay.toml does not exist"),
        "{console}"
    );
}
