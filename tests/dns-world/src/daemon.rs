//! Running a real DNS server binary for a test: found on the system or a clear message
//! naming the Debian package, started in its own process group (killed with the whole
//! group when the handle drops, also when the test panics, and by the kernel if the test
//! process itself dies), on loopback ports that were free a moment before.

use std::fs::File;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The full path of `binary`, or a panic telling which Debian package provides it.
pub fn require(binary: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{binary}` is not installed; these tests need the Debian package `{package}` \
                 (apt-get install {package})"
            )
        })
}

/// A file the Debian package must have installed, or a panic naming it.
pub fn require_file(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "`{path}` is missing; these tests need the Debian package `{package}` \
         (apt-get install {package})"
    );
    p
}

/// A port free for both TCP and UDP on `ip` right now, and never handed out before by this
/// process: the kernel may give a just-closed port to the next `bind(0)`, so two servers of
/// one test could otherwise be told the same port (seen once: Maddy's IMAPS and submission).
pub fn free_port(ip: IpAddr) -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let tcp = TcpListener::bind((ip, 0)).expect("bind a loopback TCP port");
        let port = tcp.local_addr().expect("local address").port();
        if UdpSocket::bind((ip, port)).is_ok()
            && HANDED_OUT
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(port)
        {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

/// Runs `command` and returns its stdout, panicking with its output if it fails.
pub fn run(command: &mut Command) -> String {
    // `output` gives the child an empty stdin unless the caller set one.
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server process in its own process group, its output in a log file.
pub struct Daemon {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl Daemon {
    /// Starts `command` in a new process group; stdout and stderr go to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Daemon {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // The server dies with the thread that started it, so a killed test run
                // leaves nothing behind.
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon {
            child: Some(child),
            name: name.to_string(),
            log: log.to_path_buf(),
        }
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Panics with the log if it has exited.
    pub fn assert_running(&mut self) {
        if !self.running() {
            panic!("{} is not running:\n{}", self.name, self.log());
        }
    }

    /// SIGKILL to the whole group, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asks `server` for the SOA of `zone` over TCP; true on an authoritative answer with it.
pub async fn serves_soa(server: SocketAddr, zone: &str) -> bool {
    let Ok(name) = Name::from_ascii(format!("{}.", zone.trim_end_matches('.'))) else {
        return false;
    };
    let mut msg = Message::query();
    msg.metadata.recursion_desired = false;
    msg.add_query(Query::query(name, RecordType::SOA));
    let Ok(bytes) = msg.to_vec() else {
        return false;
    };
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(server).await?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        s.write_all(&framed).await?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(buf)) => Message::from_vec(&buf).is_ok_and(|m| {
            m.metadata.response_code == ResponseCode::NoError
                && m.metadata.authoritative
                && m.answers.iter().any(|r| r.record_type() == RecordType::SOA)
        }),
        _ => false,
    }
}

/// Polls `ready` every 50 ms until it is true, panicking with the daemon's log when it
/// exits or `timeout` passes.
pub async fn wait_until<F, Fut>(daemon: &mut Daemon, timeout: Duration, what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if ready().await {
            return;
        }
        daemon.assert_running();
        assert!(
            Instant::now() < deadline,
            "{what} not ready after {timeout:?}:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 32 random bytes in base64 (TSIG secrets, API keys).
pub fn random_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    use std::io::Read as _;
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
