//! Personalizing and streaming a real base image (at least 1 GiB): what one download costs
//! the portal.
//!
//!   cargo bench -p chatmail-portal --bench images
//!
//! Uses `chatmail-amd64.img` from `CHATMAIL_BENCH_IMAGES_DIR` (default
//! `~/.cache/chatmail/images`, where appliance/scripts/build-images.sh puts it). Serves the
//! downloads over HTTP on loopback with the portal's own streaming code; `curl` is the
//! client, in its own process, so the CPU time measured (getrusage of this process) is the
//! portal side only.
//!
//! Compared in the same run:
//! - `.img.gz` from the cached chunks (the portal's way) against gzip (same library, same
//!   level) of the whole personalized image, in CPU seconds per download;
//! - the raw `.img` download's throughput against reading the base image file, twice: the
//!   portal's body stream consumed in this process (each byte copied into a buffer, as a
//!   read copies the file's bytes), and the whole download over loopback HTTP to curl,
//!   where the kernel's TCP copies and the client share this machine's two cores.
//!
//! Prints the numbers; fails only when something does not work, never on timing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chatmail_portal::images::{
    stream::{self, Format},
    Images, Limits, Target,
};

/// CPU seconds (user + system) of this process, or of its finished children.
fn cpu_seconds(who: i32) -> f64 {
    let mut usage = std::mem::MaybeUninit::<nix::libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        nix::libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    let t = |tv: nix::libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn self_cpu() -> f64 {
    cpu_seconds(nix::libc::RUSAGE_SELF)
}

fn children_cpu() -> f64 {
    cpu_seconds(nix::libc::RUSAGE_CHILDREN)
}

struct Served {
    images: Images,
    config: String,
}

async fn serve(State(s): State<Arc<Served>>, Path(format): Path<String>) -> Response {
    let format = Format::from_suffix(&format).expect("format");
    let (base, personal) = s
        .images
        .personalized(Target::Amd64, &s.config)
        .await
        .expect("personalized");
    let sources = stream::Sources::open(&base, &personal).expect("sources");
    let download = stream::layout(&base, &personal, &sources, format);
    stream::respond(
        stream::Serve {
            download,
            format,
            etag: "\"bench\"".into(),
            filename: "bench.img".into(),
            guard: Box::new(()),
            progress: None,
        },
        &HeaderMap::new(),
        false,
    )
}

/// Downloads `url` with curl into /dev/null: (bytes, wall seconds, portal CPU seconds).
async fn curl(url: &str) -> (u64, f64, f64) {
    let cpu = self_cpu();
    let started = Instant::now();
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{size_download}", url])
        .output()
        .await
        .expect("run curl");
    let wall = started.elapsed().as_secs_f64();
    let cpu = self_cpu() - cpu;
    assert!(output.status.success(), "curl failed");
    let bytes = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("curl's byte count");
    (bytes, wall, cpu)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = std::env::var_os("CHATMAIL_BENCH_IMAGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/chatmail/images")
        });
    let image = dir.join("chatmail-amd64.img");
    let Ok(meta) = std::fs::metadata(&image) else {
        eprintln!(
            "no base image at {}: build it with appliance/scripts/build-images.sh --targets amd64",
            image.display()
        );
        std::process::exit(1);
    };
    let size = meta.len();
    assert!(size >= 1 << 30, "the base image must be at least 1 GiB");
    println!(
        "base image: {} ({} bytes, {:.2} GiB)",
        image.display(),
        size,
        size as f64 / (1u64 << 30) as f64
    );

    let started = Instant::now();
    let cpu = self_cpu();
    let images = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || Images::load(&dir, Limits::default())
    })
    .await
    .unwrap()
    .expect("load the base images");
    println!(
        "start-up (verify sha256 of the whole image; chunk cache built only the first time): {:.2} s wall, {:.2} s CPU",
        started.elapsed().as_secs_f64(),
        self_cpu() - cpu
    );

    // A configuration no earlier run personalized: the first download pays for mke2fs.
    let domain = format!(
        "bench-{}-{}.example.org",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let config = chatmail_shared::RelayConfig::new(
        chatmail_shared::MailDomain::parse(&domain).expect("domain"),
    )
    .to_toml()
    .expect("config");
    let (cpu, children, wall) = (self_cpu(), children_cpu(), Instant::now());
    let (_, personal) = images
        .personalized(Target::Amd64, &config)
        .await
        .expect("personalize");
    let personalize_cpu = (self_cpu() - cpu) + (children_cpu() - children);
    println!(
        "personalize (once per configuration; mke2fs + hashing /perm + {} changed chunks compressed): {:.3} s CPU, {:.3} s wall",
        personal.meta.changed.len(),
        personalize_cpu,
        wall.elapsed().as_secs_f64()
    );

    let state = Arc::new(Served {
        images: images.clone(),
        config: config.clone(),
    });
    let app = Router::new()
        .route("/{format}", get(serve))
        .route_service(
            "/base/plain.img",
            tower_http::services::ServeFile::new(&image),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = |format: Format| format!("http://{addr}/{}", format.suffix());

    // Warm the page cache for a fair comparison of the raw paths.
    let read_base = || {
        let started = Instant::now();
        let file = std::fs::File::open(&image).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        use std::io::Read;
        let mut reader = &file;
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        (total, started.elapsed().as_secs_f64())
    };
    read_base();

    // .img.gz from the cached chunks, three times.
    let mut gz_runs = Vec::new();
    for _ in 0..3 {
        let (bytes, wall, cpu) = curl(&url(Format::ImgGz)).await;
        assert_eq!(bytes, personal.meta.gz_size);
        gz_runs.push((wall, cpu));
    }
    let gz_cpu = gz_runs.iter().map(|r| r.1).sum::<f64>() / gz_runs.len() as f64;
    let gz_wall = gz_runs.iter().map(|r| r.0).sum::<f64>() / gz_runs.len() as f64;
    println!(
        ".img.gz, cached chunks ({:.1} MiB sent): {:.3} s CPU per download, {:.2} s wall (mean of {})",
        mib(personal.meta.gz_size),
        gz_cpu,
        gz_wall,
        gz_runs.len()
    );

    // gzip of the whole personalized image (same library and level, no network at all:
    // a lower bound of what compressing per download would cost).
    let download = {
        let (base, personal) = images.personalized(Target::Amd64, &config).await.unwrap();
        let sources = stream::Sources::open(&base, &personal).unwrap();
        stream::layout(&base, &personal, &sources, Format::Img)
    };
    let (cpu, wall) = (self_cpu(), Instant::now());
    let compressed = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(
            Counter(0),
            flate2::Compression::new(chatmail_portal::images::chunks::GZIP_LEVEL),
        );
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        while pos < download.len() {
            let n = download.read_at(pos, &mut buf).unwrap();
            encoder.write_all(&buf[..n]).unwrap();
            pos += n as u64;
        }
        encoder.finish().unwrap().0
    })
    .await
    .unwrap();
    let whole_cpu = self_cpu() - cpu;
    println!(
        "gzip -{} of the whole personalized image ({:.1} MiB out): {:.3} s CPU per download, {:.2} s wall",
        chatmail_portal::images::chunks::GZIP_LEVEL,
        mib(compressed),
        whole_cpu,
        wall.elapsed().as_secs_f64()
    );
    println!(
        "CPU ratio, whole gzip / cached chunks: {:.0}x (goal: at least 100x)",
        whole_cpu / gz_cpu.max(1e-6)
    );
    println!(
        "CPU ratio for a configuration's first download (personalization included): {:.0}x",
        whole_cpu / (gz_cpu + personalize_cpu).max(1e-6)
    );

    // Raw, in this process: the portal's body stream (mapping, page touching, the channel
    // to the async side), every byte copied into a buffer, against reading the file.
    let mut in_process = Vec::new();
    for _ in 0..3 {
        let download = {
            let (base, personal) = images.personalized(Target::Amd64, &config).await.unwrap();
            let sources = stream::Sources::open(&base, &personal).unwrap();
            stream::layout(&base, &personal, &sources, Format::Img)
        };
        let len = download.len();
        let started = Instant::now();
        let mut body = stream::body(download, 0, len, Box::new(()), None);
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        use http_body_util::BodyExt;
        while let Some(frame) = body.frame().await {
            let data = frame.expect("body").into_data().expect("data");
            for part in data.chunks(buf.len()) {
                buf[..part.len()].copy_from_slice(part);
            }
            total += data.len() as u64;
        }
        assert_eq!(total, size);
        std::hint::black_box(&buf);
        in_process.push(started.elapsed().as_secs_f64());
    }
    let stream_rate = mib(size) / in_process.iter().copied().fold(f64::MAX, f64::min);
    let read_rate = mib(size) / (0..3).map(|_| read_base().1).fold(f64::MAX, f64::min);
    println!(
        ".img raw stream in this process: {:.0} MiB/s; reading the base file: {:.0} MiB/s; ratio {:.2} (goal: at least 0.8)",
        stream_rate,
        read_rate,
        stream_rate / read_rate
    );

    // Raw over HTTP: the download's throughput against reading the base file.
    let mut raw = Vec::new();
    let mut reads = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..3 {
        let (bytes, wall, cpu) = curl(&url(Format::Img)).await;
        assert_eq!(bytes, size);
        raw.push((wall, cpu));
        reads.push(read_base().1);
        let (bytes, wall, _) = curl(&format!("http://{addr}/base/plain.img")).await;
        assert_eq!(bytes, size);
        plain.push(wall);
    }
    let raw_wall = raw.iter().map(|r| r.0).fold(f64::MAX, f64::min);
    let read_wall = reads.iter().copied().fold(f64::MAX, f64::min);
    let raw_rate = mib(size) / raw_wall;
    let read_rate = mib(size) / read_wall;
    println!(
        ".img raw download over loopback HTTP to curl: {:.0} MiB/s ({:.3} s CPU per download); reading the base file: {:.0} MiB/s; ratio {:.2}",
        raw_rate,
        raw.iter().map(|r| r.1).sum::<f64>() / raw.len() as f64,
        read_rate,
        raw_rate / read_rate
    );
    let plain_rate = mib(size) / plain.iter().copied().fold(f64::MAX, f64::min);
    println!(
        "for comparison, the unchanged base file served over the same HTTP stack (tower-http ServeFile): {:.0} MiB/s; raw download / that: {:.2}",
        plain_rate,
        raw_rate / plain_rate
    );
    let _ = Duration::ZERO;
}

/// A sink that counts bytes.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
