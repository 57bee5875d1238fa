//! Benchmark of the port-443 multiplexer: bulk transfer through it against a direct
//! loopback connection to the same backend, and against Debian's nginx with `ssl_preread`
//! (what upstream chatmail runs on port 443), all in the same run.
//!
//! Each connection opens with a real ClientHello (rustls, ALPN `imap`), which the
//! multiplexer and nginx read to pick the backend, then moves its share of the total in
//! one direction: *download* (backend to client, as IMAP FETCH) or *upload* (client to
//! backend, as SMTP submission). The multiplexer runs on its own two-thread runtime, as in
//! the appliance; the load generator and backend on another; nginx with two workers.
//!
//! Figures are printed, never asserted. Run:
//!
//!     cargo bench -p chatmail-appliance --bench alpn_mux [-- --total-mib 1024 --connections 8 --rounds 3]
//!
//! Without nginx (`appliance/scripts/install-bench-deps.sh` installs it) the nginx column
//! says so and the rest is still measured.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatmail_appliance::alpn_mux::{self, Backends};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const CHUNK: usize = 64 * 1024;
const NGINX: &str = "/usr/sbin/nginx";
const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

#[derive(Clone, Copy, Debug)]
enum Direction {
    Download = 0,
    Upload = 1,
}

struct Settings {
    total: u64,
    connections: u64,
    rounds: usize,
}

fn settings() -> Settings {
    let mut s = Settings {
        total: 1 << 30,
        connections: 8,
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{a} N"))
        };
        match a.as_str() {
            "--total-mib" => s.total = value() << 20,
            "--connections" => s.connections = value().max(1),
            "--rounds" => s.rounds = value().max(1) as usize,
            _ => {} // cargo bench passes --bench
        }
    }
    s
}

fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A ClientHello as a rustls client offering ALPN `imap` sends it.
fn imap_client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"imap".to_vec()];
    let name = "chat.example.org".try_into().expect("a server name");
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut bytes = Vec::new();
    client.write_tls(&mut bytes).expect("write to a Vec");
    bytes
}

/// The backend: reads the ClientHello, a direction byte and a length, then sends or
/// receives that many bytes (an upload ends with a one-byte acknowledgement).
async fn backend(hello_len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut head = vec![0; hello_len + 9];
                stream.read_exact(&mut head).await?;
                let length = u64::from_be_bytes(head[hello_len + 1..].try_into().unwrap());
                if head[hello_len] == Direction::Download as u8 {
                    send(&mut stream, length).await?;
                    stream.shutdown().await?;
                } else {
                    receive(&mut stream, length).await?;
                    stream.write_all(b"k").await?;
                }
                Ok::<_, std::io::Error>(())
            });
        }
    });
    addr
}

async fn send(stream: &mut TcpStream, mut left: u64) -> std::io::Result<()> {
    let chunk = vec![0x5a; CHUNK];
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stream.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}

async fn receive(stream: &mut TcpStream, mut left: u64) -> std::io::Result<()> {
    let mut buffer = vec![0; CHUNK];
    while left > 0 {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left = left.saturating_sub(n as u64);
    }
    Ok(())
}

/// Moves `total` bytes over `connections` parallel connections to `addr`; the elapsed time.
async fn transfer(
    addr: SocketAddr,
    hello: &[u8],
    direction: Direction,
    total: u64,
    connections: u64,
) -> Duration {
    let share = total / connections;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let mut head = hello.to_vec();
        head.push(direction as u8);
        head.extend(share.to_be_bytes());
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            stream.write_all(&head).await?;
            match direction {
                Direction::Download => receive(&mut stream, share).await?,
                Direction::Upload => {
                    send(&mut stream, share).await?;
                    let mut ack = [0u8];
                    stream.read_exact(&mut ack).await?;
                }
            }
            Ok::<_, std::io::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("transfer task")
            .unwrap_or_else(|e| panic!("transfer through {addr}: {e}"));
    }
    started.elapsed()
}

/// nginx with the stream module, `ssl_preread` and an ALPN map, on a loopback port.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(backend: SocketAddr) -> Result<Nginx, String> {
        if !Path::new(NGINX).exists() || !Path::new(NGINX_STREAM_MODULE).exists() {
            return Err(format!(
                "{NGINX} or {NGINX_STREAM_MODULE} missing; install with \
                 appliance/scripts/install-bench-deps.sh"
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let path = |name: &str| -> PathBuf { dir.path().join(name) };
        let config = format!(
            "load_module {NGINX_STREAM_MODULE};\n\
             daemon off;\n\
             worker_processes 2;\n\
             pid {pid};\n\
             error_log {log} warn;\n\
             events {{ worker_connections 1024; }}\n\
             stream {{\n\
             \x20   map $ssl_preread_alpn_protocols $backend {{\n\
             \x20       default {backend};\n\
             \x20       ~\\bimap\\b {backend};\n\
             \x20   }}\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port};\n\
             \x20       ssl_preread on;\n\
             \x20       proxy_pass $backend;\n\
             \x20   }}\n\
             }}\n",
            pid = path("nginx.pid").display(),
            log = path("error.log").display(),
        );
        std::fs::write(path("nginx.conf"), config).map_err(|e| e.to_string())?;
        let log = path("error.log");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(&log)
            .arg("-c")
            .arg(path("nginx.conf"))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("{NGINX}: {e}"))?;
        let mut nginx = Nginx {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("nginx exited ({status}): {log}"));
            }
            if Instant::now() > deadline {
                return Err("nginx did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    fn version() -> String {
        Command::new(NGINX)
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

fn main() {
    let s = settings();
    let hello = imap_client_hello();
    let load = runtime("load");
    let mux_runtime = runtime("mux");
    let backend = load.block_on(backend(hello.len()));
    let stop = CancellationToken::new();
    let mux = mux_runtime.block_on(async {
        let listeners = chatmail_appliance::listen::bind([127, 0, 0, 1].into(), 0, "port 443")
            .await
            .expect("bind");
        let addr = listeners[0].local_addr().expect("address");
        let backends = Backends {
            imap: Some(backend),
            submission: backend,
            web: backend,
        };
        tokio::spawn(alpn_mux::serve(
            listeners,
            backends,
            alpn_mux::PREREAD_TIMEOUT,
            stop.clone(),
        ));
        addr
    });
    let nginx = Nginx::start(backend);
    println!(
        "port-443 multiplexer: {} MiB per direction over {} connections, best of {} rounds",
        s.total >> 20,
        s.connections,
        s.rounds
    );
    match &nginx {
        Ok(_) => println!("nginx: {} with ssl_preread", Nginx::version()),
        Err(e) => println!("nginx: not measured ({e})"),
    }
    let nginx_addr = nginx
        .as_ref()
        .ok()
        .map(|n| SocketAddr::from(([127, 0, 0, 1], n.port)));
    for direction in [Direction::Download, Direction::Upload] {
        let run = |addr: SocketAddr| {
            load.block_on(transfer(addr, &hello, direction, s.total, s.connections))
        };
        let (mut direct, mut muxed, mut nginxed) = (Duration::MAX, Duration::MAX, Duration::MAX);
        // Interleaved, so that a busy moment on the machine hits all three alike.
        for _ in 0..s.rounds {
            direct = direct.min(run(backend));
            muxed = muxed.min(run(mux));
            if let Some(addr) = nginx_addr {
                nginxed = nginxed.min(run(addr));
            }
        }
        let (d, m) = (mb_per_s(s.total, direct), mb_per_s(s.total, muxed));
        print!(
            "{direction:?}: direct {d:.0} MB/s, multiplexer {m:.0} MB/s ({:.2}x direct)",
            m / d
        );
        if nginx_addr.is_some() {
            let n = mb_per_s(s.total, nginxed);
            print!(", nginx {n:.0} MB/s (multiplexer {:.2}x nginx)", m / n);
        }
        println!();
    }
    stop.cancel();
    drop(nginx);
}
