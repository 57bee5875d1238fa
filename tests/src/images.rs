//! The image suites' parts: the base images (built by appliance/scripts/build-images.sh,
//! cached between runs), downloads through the portal saved to files with their sha256,
//! reading a disk image's partitions, and booting an image in QEMU.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use reqwest::{header, StatusCode};

use crate::process::GroupChild;

/// The directory with `chatmail-amd64.img` and its manifest, built once per test run (the
/// script returns at once when its inputs did not change). `CHATMAIL_TEST_IMAGES_DIR`
/// names a prepared directory instead.
pub fn base_images_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("CHATMAIL_TEST_IMAGES_DIR") {
            return PathBuf::from(dir);
        }
        let script = crate::workspace::root().join("appliance/scripts/build-images.sh");
        let output = Command::new("bash")
            .arg(&script)
            .args(["--targets", "amd64"])
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run build-images.sh");
        assert!(
            output.status.success(),
            "{} failed; see its output above",
            script.display()
        );
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_string();
        PathBuf::from(dir)
    })
    .clone()
}

/// The base image's manifest (JSON).
pub fn manifest(dir: &Path, target: &str) -> serde_json::Value {
    let text = std::fs::read(dir.join(format!("chatmail-{target}.json"))).expect("manifest");
    serde_json::from_slice(&text).expect("manifest JSON")
}

/// A finished download.
#[derive(Debug)]
pub struct Downloaded {
    pub status: StatusCode,
    pub headers: header::HeaderMap,
    pub path: PathBuf,
    pub len: u64,
    pub sha256: String,
}

/// GETs `url` into `path` (appending when `append`), hashing what arrives; stops after
/// `limit` bytes when given (an interrupted download: the connection is dropped).
pub async fn download(
    http: &reqwest::Client,
    url: &str,
    headers: &[(header::HeaderName, String)],
    path: &Path,
    append: bool,
    limit: Option<u64>,
) -> Downloaded {
    let mut request = http.get(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut response = request.send().await.expect("download request");
    let status = response.status();
    let response_headers = response.headers().clone();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(path)
        .expect("download file");
    let mut len = 0u64;
    while let Some(chunk) = response.chunk().await.expect("download body") {
        let take = match limit {
            Some(limit) => (limit - len).min(chunk.len() as u64) as usize,
            None => chunk.len(),
        };
        file.write_all(&chunk[..take]).expect("write download");
        len += take as u64;
        if limit.is_some_and(|l| len >= l) {
            break;
        }
    }
    drop(response);
    file.flush().expect("flush");
    Downloaded {
        status,
        headers: response_headers,
        path: path.to_path_buf(),
        len,
        sha256: file_sha256(path),
    }
}

/// sha256 of a file, as lowercase hex (by `sha256sum`, independent of the portal's code).
pub fn file_sha256(path: &Path) -> String {
    let out = run("sha256sum", &[&path.to_string_lossy()]);
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Whether two files hold the same bytes in `offset..offset + len`.
pub fn same_bytes(a: &Path, b: &Path, offset: u64, len: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let fa = std::fs::File::open(a).expect("open");
    let fb = std::fs::File::open(b).expect("open");
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut pos = offset;
    while pos < offset + len {
        let n = ((offset + len - pos) as usize).min(ba.len());
        fa.read_exact_at(&mut ba[..n], pos).expect("read");
        fb.read_exact_at(&mut bb[..n], pos).expect("read");
        if ba[..n] != bb[..n] {
            return false;
        }
        pos += n as u64;
    }
    true
}

/// Runs a program and returns its standard output; panics with its error output.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// A program from e2fsprogs, also where sbin is not on PATH.
pub fn e2fsprogs(name: &str) -> String {
    for dir in ["/usr/sbin", "/sbin"] {
        let path = format!("{dir}/{name}");
        if Path::new(&path).exists() {
            return path;
        }
    }
    name.to_string()
}

/// The address at which a guest reaches the host services of
/// [`Qemu::boot_with_host_services`].
pub const HOST_SERVICES_IP: &str = "10.0.2.100";

/// How much of the serial console a failure shows.
const SERIAL_TAIL_LINES: usize = 80;

/// A virtual machine booted from a disk image: x86-64, user networking with host port
/// forwards, the serial console in a log file.
pub struct Qemu {
    child: GroupChild,
    serial: PathBuf,
}

/// How QEMU runs: (accelerator, CPU model, virtual CPUs). Software emulation (TCG,
/// `-cpu max`) with ONE virtual CPU unless `CHATMAIL_QEMU_ACCEL=kvm` (then `-cpu host`,
/// two). Under multi-threaded TCG a second CPU can run kernel code while the kernel patches
/// it (jump labels through int3): seen as "Oops: int3" in `ktime_get_update_offsets_now`
/// and a panic during boot, once in a few boots on a loaded machine.
pub fn qemu_accel() -> (&'static str, &'static str, &'static str) {
    match std::env::var("CHATMAIL_QEMU_ACCEL").as_deref() {
        Ok("kvm") => ("kvm", "host", "2"),
        _ => ("tcg", "max", "1"),
    }
}

impl Qemu {
    /// Boots `image` (written to by the guest). `forwards` are (host port, guest port) on
    /// 127.0.0.1. The guest can reach nothing but these forwards (`restrict=on`).
    pub fn boot(image: &Path, forwards: &[(u16, u16)], log_dir: &Path) -> Qemu {
        Qemu::boot_with_host_services(image, forwards, &[], log_dir)
    }

    /// As [`Qemu::boot`], and the guest may also connect to [`HOST_SERVICES_IP`] on each
    /// (guest port, host port) of `services`, which reaches 127.0.0.1:<host port> here
    /// (a `guestfwd` running socat per connection; nothing else outside is reachable).
    pub fn boot_with_host_services(
        image: &Path,
        forwards: &[(u16, u16)],
        services: &[(u16, u16)],
        log_dir: &Path,
    ) -> Qemu {
        let serial = log_dir.join("serial.log");
        let (accel, cpu, cpus) = qemu_accel();
        let mut netdev = "user,id=net0,restrict=on".to_string();
        for (host, guest) in forwards {
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
        }
        for (guest, host) in services {
            netdev.push_str(&format!(
                ",guestfwd=tcp:{HOST_SERVICES_IP}:{guest}-cmd:socat - TCP:127.0.0.1:{host}"
            ));
        }
        let mut command = Command::new("qemu-system-x86_64");
        command
            .args(["-machine", &format!("q35,accel={accel}")])
            .args(["-cpu", cpu, "-smp", cpus, "-m", "1024"])
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", image.display()))
            .args(["-netdev", &netdev])
            .args(["-device", "virtio-net-pci,netdev=net0"])
            .args(["-display", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()));
        let child = GroupChild::spawn("qemu", command, &log_dir.join("qemu.log"));
        Qemu { child, serial }
    }

    /// Everything the guest printed on its serial console so far.
    pub fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).to_string()
    }

    /// The console's last lines: where a failure shows (CI keeps only the start of long
    /// output, and the kernel's boot messages alone fill that).
    pub fn serial_tail(&self) -> String {
        let serial = self.serial();
        let lines: Vec<&str> = serial.lines().collect();
        lines[lines.len().saturating_sub(SERIAL_TAIL_LINES)..].join("\n")
    }

    /// Whether QEMU has stopped (with `-no-reboot`, a guest that reboots by a reset ends it).
    pub fn exited(&mut self) -> bool {
        self.child.exited().is_some()
    }

    /// Panics with the console if QEMU has stopped.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.exited() {
            panic!(
                "QEMU stopped ({status}):\n{}\n--- end of the serial console ---\n{}",
                self.child.log(),
                self.serial_tail()
            );
        }
    }

    /// Waits until `check` returns a value, at most `timeout`; on timeout panics with the
    /// serial console.
    pub async fn wait_for<T, F, Fut>(&mut self, timeout: Duration, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            if let Some(value) = check().await {
                // Boot times are printed, never asserted (they depend on the machine).
                eprintln!("{what}: after {:.1} s", started.elapsed().as_secs_f64());
                return value;
            }
            self.assert_running();
            if Instant::now() > deadline {
                panic!(
                    "{what}: not within {timeout:?}\n--- end of the serial console ---\n{}",
                    self.serial_tail()
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// Writes `files` (path inside /perm, contents) into the ext4 file system at byte
/// `perm_offset` of `image`, with debugfs from e2fsprogs, as someone with the flashed card
/// in a reader would add them. Parent directories must exist.
pub fn add_to_perm(image: &Path, perm_offset: u64, files: &[(&str, &[u8])], scratch: &Path) {
    let target = format!("{}?offset={perm_offset}", image.display());
    for (i, (dest, contents)) in files.iter().enumerate() {
        let source = scratch.join(format!("perm-file-{i}"));
        std::fs::write(&source, contents).expect("write a file for /perm");
        run(
            &e2fsprogs("debugfs"),
            &[
                "-w",
                "-R",
                &format!("write {} {dest}", source.display()),
                &target,
            ],
        );
        // debugfs reports failures on stderr only: read the file back.
        let back = run(
            &e2fsprogs("debugfs"),
            &["-R", &format!("cat {dest}"), &target],
        );
        assert_eq!(back.as_bytes(), *contents, "{dest} in /perm");
    }
}
