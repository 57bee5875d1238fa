//! A relay updates itself, in QEMU: the cached amd64 base image boots as release N with a
//! /perm that opts in to update checks against a local portal; once the group's relay has
//! an account, the operator publishes release N+1 with `publish-release`, and the relay
//! alone finds it, verifies it, writes it through gokrazy's update API, reboots into it for
//! a test boot, reports healthy and makes it permanent, keeping its /perm (DKIM key,
//! accounts, config).
//!
//! Release N+1 is the base image with its release file (`/etc/chatmail/release`, which the
//! appliance reports and compares) naming the next version: the root file system stores
//! small files uncompressed, so the version is replaced in place by one of the same length.
//!
//! The guest reaches the portal as `https://10.0.2.100/` (a QEMU guestfwd to a TLS front
//! with a test CA in front of the portal's HTTP port); /perm carries that CA and shorter
//! check intervals in `chatmail/extra-args`, which the image's launcher passes on.

use std::{net::SocketAddr, path::Path, time::Duration};

use chatmail_portal::images::base::Manifest as BaseManifest;
use chatmail_portal::updates::keys;
use chatmail_tests::{
    free_port,
    images::{base_images_dir, e2fsprogs, file_sha256, manifest, run, Qemu, HOST_SERVICES_IP},
    portal::{portal_cli, PortalCommand},
    postgres::TestPostgres,
    shared_temp_dir, test_ca,
    tls_client::{self, Trust},
    tls_front::TlsFront,
};

const DOMAIN: &str = "update-boot.example.org";
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

/// The relay's (release, DKIM public key), once it answers.
async fn release_and_key(port: u16) -> Option<(String, String)> {
    let response = https(port, "GET", STATUS_PATH).await?;
    if response.status != 200 {
        return None;
    }
    let status = response.json();
    Some((
        status["version"].as_str()?.to_string(),
        status["dkim"]["public_key"].as_str()?.to_string(),
    ))
}

/// The next release for a base image version `MAJOR.MINOR.PATCH+KEY`: (running release,
/// next version with the same length, build metadata kept or shortened to fit).
fn next_version(base: &str) -> (String, String) {
    let (release, key) = base.split_once('+').expect("the build script's +key");
    let mut parts: Vec<u64> = release.split('.').map(|p| p.parse().unwrap()).collect();
    parts[2] += 1;
    let next = format!("{}.{}.{}", parts[0], parts[1], parts[2]);
    let key = &key[..key.len() - (next.len() - release.len())];
    let next = format!("{next}+{key}");
    assert_eq!(next.len(), base.len());
    (release.to_string(), next)
}

/// Writes release N+1 (image and manifest) into `dir`.
fn make_next_release(base_dir: &Path, base: &BaseManifest, next: &str, dir: &Path) {
    use std::os::unix::fs::FileExt;
    std::fs::create_dir_all(dir).unwrap();
    let image = dir.join(&base.image);
    run(
        "cp",
        &[
            "--sparse=always",
            &base_dir.join(&base.image).to_string_lossy(),
            &image.to_string_lossy(),
        ],
    );
    let root = base.partitions.iter().find(|p| p.number == 2).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .unwrap();
    // The squashfs superblock's bytes_used (offset 40) bounds the search.
    let mut superblock = [0u8; 96];
    file.read_exact_at(&mut superblock, root.offset).unwrap();
    let used = u64::from_le_bytes(superblock[40..48].try_into().unwrap());
    let mut squashfs = vec![0u8; used as usize];
    file.read_exact_at(&mut squashfs, root.offset).unwrap();
    let old = format!("{}\n", base.version);
    let found: Vec<usize> = squashfs
        .windows(old.len())
        .enumerate()
        .filter(|(_, w)| *w == old.as_bytes())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "the release file, stored once and uncompressed, in the root file system"
    );
    file.write_all_at(
        format!("{next}\n").as_bytes(),
        root.offset + found[0] as u64,
    )
    .unwrap();
    drop(file);

    let mut json = manifest(base_dir, "amd64");
    json["version"] = next.into();
    json["sha256"] = file_sha256(&image).into();
    std::fs::write(
        dir.join("chatmail-amd64.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
}

/// Waits until the guest has rebooted: with `-no-reboot` a reset ends QEMU and the disk is
/// booted anew by `boot`; a kexec reboot keeps QEMU running.
async fn rebooted(mut vm: Qemu, timeout: Duration, boot: impl Fn() -> Qemu) -> Qemu {
    let started = std::time::Instant::now();
    while started.elapsed() < timeout {
        if vm.exited() {
            eprintln!("reboot: after {:.1} s", started.elapsed().as_secs_f64());
            return boot();
        }
        if vm.serial().matches("Run /gokrazy/init").count() >= 2 {
            return vm;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the guest did not reboot into the update:\n{}", vm.serial());
}

#[tokio::test]
async fn a_relay_updates_itself_from_the_portal_and_keeps_its_perm() {
    chatmail_tests::tls_ready();
    let images = base_images_dir();
    let base: BaseManifest = serde_json::from_value(manifest(&images, "amd64")).unwrap();
    let dir = shared_temp_dir();
    let (running, next) = next_version(&base.version);
    let next_release = next.split_once('+').unwrap().0.to_string();
    make_next_release(&images, &base, &next, &dir.path().join("next"));

    // The portal with its release key; nothing published yet.
    let postgres = TestPostgres::start().await;
    let data = dir.path().join("data");
    let db = postgres.url();
    let key_dir = dir.path().join("keys");
    let (ok, out) = portal_cli(
        &data,
        &db,
        &["release-key", "--out", key_dir.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{out}");
    let public = out
        .lines()
        .find(|l| l.starts_with("RW") && l.len() == 56)
        .unwrap_or_else(|| panic!("no public key printed:\n{out}"))
        .to_string();
    let portal = PortalCommand::new(&data, dir.path())
        .database_url(db.clone())
        .arg(format!("--dns-resolver=127.0.0.1:{}", free_port()))
        .arg(format!("--release-public-key={public}"))
        .start()
        .await;
    let portal_port: u16 = portal
        .base_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("the portal's port");
    let (ca, cert, key) =
        test_ca::certificate_for("chatmail tests: update portal", &[HOST_SERVICES_IP]);
    let front = TlsFront::start(portal_port, &cert, &key).await;

    // The device: release N, with /perm as the portal writes it plus the test settings.
    let image = dir.path().join("relay.img");
    run(
        "cp",
        &[
            "--sparse=always",
            &images.join(&base.image).to_string_lossy(),
            &image.to_string_lossy(),
        ],
    );
    let perm = base.partitions.iter().find(|p| p.number == 4).unwrap();
    let source = dir.path().join("perm");
    std::fs::create_dir_all(source.join("chatmail")).unwrap();
    std::fs::write(
        source.join("chatmail/relay.toml"),
        format!(
            "schema_version = 1\nmail_domain = \"{DOMAIN}\"\n\n[updates]\nenabled = true\n\
             portal_url = \"https://{HOST_SERVICES_IP}/\"\nsigning_public_key = \"{public}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(source.join("chatmail/update-ca.pem"), &ca).unwrap();
    std::fs::write(
        source.join("chatmail/extra-args"),
        "# test network: the portal's CA, and checks every few seconds\n\
         --update-extra-root=/perm/chatmail/update-ca.pem\n\
         --update-check-first-secs=0\n\
         --update-check-interval-secs=10\n\
         --update-check-retry-secs=10\n\
         --update-check-jitter-secs=0\n",
    )
    .unwrap();
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
    // A disk larger than the image: the device grows /perm and keeps the download there.
    let disk = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    disk.set_len(base.size + (2 << 30)).unwrap();
    drop(disk);

    let (https_port, imaps_port) = (free_port(), free_port());
    let forwards = [(https_port, 443), (imaps_port, 993)];
    let services = [(443, front.port)];
    let imaps: SocketAddr = ([127, 0, 0, 1], imaps_port).into();
    let boot = || Qemu::boot_with_host_services(&image, &forwards, &services, dir.path());
    let mut vm = boot();
    let (version, dkim) = vm
        .wait_for(BOOT_TIMEOUT, "the relay's status", || {
            release_and_key(https_port)
        })
        .await;
    assert_eq!(
        version, running,
        "release N reports the image's release file"
    );
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
    // The relay has been asking already, and found nothing to install.
    assert!(
        !front.request_heads().is_empty(),
        "the relay did not check for updates:\n{}",
        vm.serial()
    );

    // The operator publishes N+1; the relay installs it by itself.
    let secret = key_dir.join(keys::SECRET_FILE);
    let (ok, out) = portal_cli(
        &data,
        &db,
        &[
            "publish-release",
            "--channel",
            "stable",
            "--target",
            "amd64",
            "--from",
            dir.path().join("next").to_str().unwrap(),
            "--key",
            secret.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{out}");
    let mut vm = rebooted(vm, BOOT_TIMEOUT, boot).await;

    // The test boot runs N+1 with the same /perm.
    let (version, again) = vm
        .wait_for(
            BOOT_TIMEOUT,
            "the relay's status on release N+1",
            || async {
                release_and_key(https_port)
                    .await
                    .filter(|(v, _)| *v == next_release)
            },
        )
        .await;
    assert_eq!(version, next_release);
    assert_eq!(again, dkim, "/perm lost the DKIM key");
    // The account is still there: another password is refused (a lost account would be
    // made anew by that login), its own password works.
    let wrong = vm
        .wait_for(BOOT_TIMEOUT, "IMAP on release N+1", || async {
            let reply = tls_client::imap_login(imaps, &email, "not-the-password-1").await;
            reply.starts_with("a1 ").then_some(reply)
        })
        .await;
    assert!(!wrong.starts_with("a1 OK"), "{wrong}");
    let login = tls_client::imap_login(imaps, &email, &password).await;
    assert!(login.starts_with("a1 OK"), "{login}");

    // Healthy, so the relay made N+1 permanent: `root=` points at partition 3
    // (PARTNROFF=2 from partition 1) in cmdline.txt and the systemd-boot entry.
    let boot_partition = base.partitions.iter().find(|p| p.number == 1).unwrap();
    let boot_text = || {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0u8; boot_partition.size as usize];
        std::fs::File::open(&image)
            .unwrap()
            .read_exact_at(&mut bytes, boot_partition.offset)
            .unwrap();
        String::from_utf8_lossy(&bytes).to_string()
    };
    vm.wait_for(BOOT_TIMEOUT, "the switch to release N+1", || async {
        let text = boot_text();
        (text.matches("/PARTNROFF=2").count() == 2 && !text.contains("/PARTNROFF=1")).then_some(())
    })
    .await;

    // What the relay sent: plain GETs of the release files, with nothing that identifies it.
    let heads = front.request_heads();
    let mut fetched = Vec::new();
    for head in &heads {
        let mut lines = head.lines();
        let request = lines.next().unwrap_or_default();
        assert!(
            request.starts_with("GET /updates/stable/amd64/") && request.ends_with(" HTTP/1.1"),
            "{head}"
        );
        fetched.push(request.split(' ').nth(1).unwrap().to_string());
        for field in lines {
            let (name, value) = field.split_once(':').unwrap_or((field, ""));
            match name.to_ascii_lowercase().as_str() {
                "host" => assert_eq!(value.trim(), HOST_SERVICES_IP, "{head}"),
                "user-agent" => assert_eq!(value.trim(), "chatmail-relay", "{head}"),
                other => panic!("the update check sent a {other} header:\n{head}"),
            }
        }
    }
    for piece in ["manifest.json", "manifest.json.minisig"] {
        assert!(
            fetched.iter().any(|p| p.ends_with(piece)),
            "{piece} never fetched: {fetched:?}"
        );
    }
    eprintln!("update requests: {fetched:?}");
    vm.assert_running();
}
