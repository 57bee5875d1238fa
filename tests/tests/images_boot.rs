//! The image a group takes home, end to end: the amd64 base image (built by
//! appliance/scripts/build-images.sh, cached between runs) is personalized through the
//! portal's download route and booted in QEMU (software emulation unless
//! CHATMAIL_QEMU_ACCEL=kvm; user networking, the guest reaches only the host's forwards).
//! The appliance comes up, grows /perm to the larger disk, and its status endpoint reports
//! the personalized domain. An image the portal did not personalize boots too, and says on
//! its console and at its status URL that its configuration is missing.

use std::{net::SocketAddr, time::Duration};

use chatmail_tests::{
    free_port,
    images::{base_images_dir, download, manifest, Qemu},
    portal::PortalCommand,
    portal_client::PortalClient,
    postgres::TestPostgres,
    shared_temp_dir,
    tls_client::{self, Trust},
};
use reqwest::StatusCode;

const PASSWORD: &str = "correct horse battery";
const DOMAIN: &str = "boot-test.example.org";
/// How long a boot may take (software emulation of a whole PC).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const STATUS_PATH: &str = "/.well-known/chatmail-relay/status.json";

/// One virtual machine at a time: emulation needs both cores.
static ONE_VM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The status document over HTTPS (certificate not checked: the device serves its
/// placeholder until ACME succeeds, which it cannot here).
async fn https_status(port: u16) -> Option<serde_json::Value> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let attempt = async {
        let stream = tls_client::connect_tls(addr, DOMAIN, &Trust::Anything, &[b"http/1.1"])
            .await
            .ok()?;
        drop(stream);
        let response = tls_client::https(addr, DOMAIN, &Trust::Anything, "GET", STATUS_PATH).await;
        (response.status == 200).then(|| response.json())
    };
    tokio::time::timeout(Duration::from_secs(20), attempt)
        .await
        .ok()
        .flatten()
}

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
async fn a_personalized_image_boots_and_reports_its_domain() {
    let images = base_images_dir();
    let base_size = manifest(&images, "amd64")["size"].as_u64().unwrap();
    let postgres = TestPostgres::start().await;
    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(postgres.url())
        .arg("--images-dir")
        .arg(images.to_string_lossy().to_string())
        .start()
        .await;
    let client = PortalClient::new(portal.base_url());
    client.sign_up("alice@example.org", PASSWORD).await;
    let group = client.create_group("Family").await;
    let posted = client
        .submit(
            &format!("/groups/{group}/setup/domain"),
            &[("kind", "own"), ("domain", DOMAIN)],
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);

    // The raw image, through the download route.
    let image = dir.path().join("relay.img");
    let got = download(
        &client.http,
        &client.url(&format!("/groups/{group}/download/amd64.img")),
        &[],
        &image,
        false,
        None,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.len, base_size);

    // A disk twice the image's size: the device grows /perm into the rest.
    let disk = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    disk.set_len(base_size * 2).unwrap();
    drop(disk);

    let _one = ONE_VM.lock().await;
    let https = free_port();
    let mut vm = Qemu::boot(&image, &[(https, 443)], dir.path());
    let status = vm
        .wait_for(BOOT_TIMEOUT, "the relay's status over HTTPS", || {
            https_status(https)
        })
        .await;
    assert_eq!(status["mail_domain"], DOMAIN, "{status}");
    assert!(
        status["dkim"]["txt"]
            .as_str()
            .unwrap()
            .starts_with("v=DKIM1"),
        "{status}"
    );
    let console = vm.serial();
    assert!(
        console.contains(&format!("chatmail: relay {DOMAIN}: starting")),
        "{console}"
    );
    assert!(console.contains("chatmail: grew /perm from"), "{console}");
    assert!(portal.stop().await.success());
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
    let _one = ONE_VM.lock().await;
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
