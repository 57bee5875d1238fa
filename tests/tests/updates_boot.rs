//! The update sequence against gokrazy itself, in QEMU: the cached amd64 base image boots
//! with a /perm as the portal writes it, and the pieces `publish-release` cuts from the base
//! image are written through the device's real update API in the order the appliance's
//! updater uses (research/gokrazy.md §5.1): root to the inactive partition, `bootonly` with
//! the boot partition armed for a test boot, MBR, reboot. The test boot runs the new root
//! once; `switch` makes it permanent (checked in the boot partition, to save a third
//! emulated boot); across the reboot the relay keeps its /perm (DKIM key, accounts, config).
//! gokrazy's own `POST /update/testboot` is not used: it changes nothing on the command
//! lines gokrazy's packers write (no trailing newline), which an earlier run of this test
//! showed.
//!
//! Not covered here: the appliance inside the guest
//! fetching the release itself (the guest cannot reach a portal on the host over HTTPS or
//! loopback), and a release with a higher version (that needs a second image build).
//!
//! gokrazy serves its update API on TCP only once the device has a password, so /perm
//! carries a known `gokr-pw.txt` and QEMU forwards the API's port (1080 in our instance
//! config); the appliance itself uses gokrazy's unix socket.

use std::{net::SocketAddr, path::Path, time::Duration};

use chatmail_portal::images::base::Manifest as BaseManifest;
use chatmail_portal::updates::publish;
use chatmail_tests::{
    free_port,
    images::{base_images_dir, e2fsprogs, file_sha256, manifest, run, Qemu},
    shared_temp_dir,
    tls_client::{self, Trust},
};

const DOMAIN: &str = "update-boot.example.org";
const PASSWORD: &str = "test-gokrazy-password";
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const STATUS_PATH: &str = "/.well-known/chatmail-relay/status.json";

async fn https(port: u16, method: &str, path: &str) -> Option<tls_client::Response> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let attempt = async {
        let stream = tls_client::connect_tls(addr, DOMAIN, &Trust::Anything, &[b"http/1.1"])
            .await
            .ok()?;
        drop(stream);
        Some(tls_client::https(addr, DOMAIN, &Trust::Anything, method, path).await)
    };
    tokio::time::timeout(Duration::from_secs(20), attempt)
        .await
        .ok()
        .flatten()
}

async fn dkim_key(port: u16) -> Option<String> {
    let response = https(port, "GET", STATUS_PATH).await?;
    (response.status == 200).then(|| {
        response.json()["dkim"]["public_key"]
            .as_str()
            .unwrap()
            .to_string()
    })
}

/// Boots (again) after a reboot request: with `-no-reboot` a reset ends QEMU and the disk
/// is booted anew; a kexec reboot keeps QEMU running.
async fn rebooted(vm: Qemu, image: &Path, forwards: &[(u16, u16)], dir: &Path) -> Qemu {
    let mut vm = vm;
    for _ in 0..120 {
        if vm.exited() {
            return Qemu::boot(image, forwards, dir);
        }
        if vm.serial().matches("Run /gokrazy/init").count() >= 2 {
            return vm;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the guest did not reboot:\n{}", vm.serial());
}

#[tokio::test]
async fn gokrazy_takes_the_update_sequence_and_perm_survives() {
    chatmail_tests::tls_ready();
    let images = base_images_dir();
    let base: BaseManifest = serde_json::from_value(manifest(&images, "amd64")).unwrap();
    let dir = shared_temp_dir();
    let image = dir.path().join("relay.img");
    run(
        "cp",
        &[
            "--sparse=always",
            &images.join(&base.image).to_string_lossy(),
            &image.to_string_lossy(),
        ],
    );

    // /perm as the portal writes it (the relay's config), plus gokrazy's password.
    let perm = base.partitions.iter().find(|p| p.number == 4).unwrap();
    let source = dir.path().join("perm");
    std::fs::create_dir_all(source.join("chatmail")).unwrap();
    std::fs::write(
        source.join("chatmail/relay.toml"),
        format!("schema_version = 1\nmail_domain = \"{DOMAIN}\"\n"),
    )
    .unwrap();
    std::fs::write(source.join("gokr-pw.txt"), PASSWORD).unwrap();
    run(
        &e2fsprogs("mke2fs"),
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            "4096",
            "-m",
            "0",
            "-L",
            "perm",
            "-E",
            &format!("offset={},root_owner=0:0", perm.offset),
            "-d",
            &source.to_string_lossy(),
            &image.to_string_lossy(),
            &(perm.size / 4096).to_string(),
        ],
    );

    // The pieces, cut as publish-release cuts them.
    let file = std::fs::File::open(images.join(&base.image)).unwrap();
    let cuts = publish::cuts(&base, &file).unwrap();
    let mut pieces = Vec::new();
    for cut in &cuts {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0u8; cut.len as usize];
        file.read_exact_at(&mut bytes, cut.offset).unwrap();
        // The boot piece armed for the test boot, as the relay's updater arms it.
        if cut.name.id() == "boot" {
            assert_eq!(
                chatmail_shared::update_manifest::arm_test_boot(&mut bytes),
                Ok(2),
                "cmdline.txt and the systemd-boot entry"
            );
        }
        let path = dir.path().join(format!("{}.img", cut.name));
        std::fs::write(&path, &bytes).unwrap();
        pieces.push((cut.name, file_sha256(&path), bytes));
    }

    // A disk larger than the image: the device grows /perm, so that it has room for accounts.
    let disk = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    disk.set_len(base.size + (2 << 30)).unwrap();
    drop(disk);

    let (https_port, api_port, imaps_port) = (free_port(), free_port(), free_port());
    let forwards = [(https_port, 443), (api_port, 1080), (imaps_port, 993)];
    let imaps: SocketAddr = ([127, 0, 0, 1], imaps_port).into();
    let mut vm = Qemu::boot(&image, &forwards, dir.path());
    let key = vm
        .wait_for(BOOT_TIMEOUT, "the relay's status", || dkim_key(https_port))
        .await;
    // Right after boot the emulated machine may be too loaded to take accounts: ask again.
    let account = vm
        .wait_for(BOOT_TIMEOUT, "a new account", || async {
            let response = https(https_port, "POST", "/new").await?;
            (response.status == 200).then(|| response.json())
        })
        .await;
    let (email, password) = (
        account["email"].as_str().unwrap().to_string(),
        account["password"].as_str().unwrap().to_string(),
    );
    let login = tls_client::imap_login(imaps, &email, &password).await;
    assert!(login.starts_with("a1 OK"), "{login}");

    let api = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Vec<u8>| {
        api.request(method, format!("http://127.0.0.1:{api_port}{path}"))
            .basic_auth("gokrazy", Some(PASSWORD))
            .body(body)
            .send()
    };
    let features = call(reqwest::Method::GET, "/update/features", Vec::new())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(features.contains("updatehash"), "{features}");
    for (name, sha256, bytes) in &pieces {
        let target = match name.id() {
            "boot" => "bootonly",
            other => other,
        };
        let answer = call(
            reqwest::Method::PUT,
            &format!("/update/{target}"),
            bytes.clone(),
        )
        .await
        .unwrap();
        assert_eq!(answer.status(), 200, "{target}");
        assert_eq!(answer.text().await.unwrap(), *sha256, "{target}");
    }
    let _ = call(reqwest::Method::POST, "/reboot", Vec::new()).await;

    // The test boot: the old root's init switches into the newly written one, once.
    let mut vm = rebooted(vm, &image, &forwards, dir.path()).await;
    let again = vm
        .wait_for(BOOT_TIMEOUT, "the relay's status on the test boot", || {
            dkim_key(https_port)
        })
        .await;
    assert_eq!(again, key, "/perm lost the DKIM key");
    assert!(
        vm.serial().contains("switching to inactive root partition"),
        "{}",
        vm.serial()
    );
    // The account is still there: another password is refused (a lost account would be
    // made anew by that login), its own password works.
    let wrong = vm
        .wait_for(BOOT_TIMEOUT, "IMAP on the test boot", || async {
            let reply = tls_client::imap_login(imaps, &email, "not-the-password-1").await;
            reply.starts_with("a1 ").then_some(reply)
        })
        .await;
    assert!(!wrong.starts_with("a1 OK"), "{wrong}");
    let login = tls_client::imap_login(imaps, &email, &password).await;
    assert!(login.starts_with("a1 OK"), "{login}");

    // Healthy: the switch points `root=` at partition 3 (PARTNROFF=2 from partition 1) in
    // the boot partition's cmdline.txt and systemd-boot entry, so every later boot runs it.
    let boot = base.partitions.iter().find(|p| p.number == 1).unwrap();
    let boot_text = |image: &Path| {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0u8; boot.size as usize];
        std::fs::File::open(image)
            .unwrap()
            .read_exact_at(&mut bytes, boot.offset)
            .unwrap();
        String::from_utf8_lossy(&bytes).to_string()
    };
    let before = boot_text(&image);
    assert!(
        before.contains("/PARTNROFF=1 "),
        "the test boot kept root= on partition 2"
    );
    assert!(before.contains("gokrazy.switch_on_boot=1"));
    let made = call(reqwest::Method::POST, "/update/switch", Vec::new())
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    let after = boot_text(&image);
    assert_eq!(
        after.matches("/PARTNROFF=2").count(),
        2,
        "cmdline.txt and gokrazy.conf"
    );
    assert!(!after.contains("/PARTNROFF=1"));
    vm.assert_running();
}
