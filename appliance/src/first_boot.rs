//! Reading the relay's configuration at boot, and saying so clearly when it cannot be.
//!
//! The portal writes `chatmail/relay.toml` into /perm of every image it hands out. A device
//! booted from an image that was not personalized (or whose file was damaged) has nothing
//! to run: instead of crash-looping under gokrazy's supervisor, the appliance then prints
//! what is wrong on the console and serves it at the status URL (HTTP and HTTPS, with a
//! throw-away self-signed certificate), and keeps checking the file, so that a
//! configuration copied onto /perm later is picked up without a reboot.
//!
//! On gokrazy (`--gokrazy`) first boot also makes the device's own gokrazy secrets:
//! `/perm/gokr-pw.txt` (the web/update interface's password; gokrazy reads /perm before
//! /etc, from the next boot on) and `/perm/machine-id`. The base image carries neither, so
//! no two devices share them.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use chatmail_shared::RelayConfig;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::paths::Paths;

/// Where people see messages: standard error (gokrazy keeps it in the service's log) and,
/// when given, the device console.
#[derive(Clone, Debug, Default)]
pub struct Console(Option<PathBuf>);

impl Console {
    pub fn new(path: Option<PathBuf>) -> Self {
        Console(path)
    }

    /// Prints one message, prefixed with `chatmail:`.
    pub fn say(&self, message: &str) {
        eprintln!("chatmail: {message}");
        if let Some(path) = &self.0 {
            if let Ok(mut console) = std::fs::OpenOptions::new().append(true).open(path) {
                let _ = writeln!(console, "chatmail: {message}\r");
            }
        }
    }
}

/// What the configuration file holds.
#[derive(Debug)]
pub enum ConfigState {
    Valid(Box<RelayConfig>),
    Missing { path: PathBuf },
    Invalid { path: PathBuf, problem: String },
}

/// Reads and checks the configuration file.
pub fn read_config(path: &Path) -> ConfigState {
    match std::fs::read(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => ConfigState::Missing {
            path: path.to_path_buf(),
        },
        Err(err) => ConfigState::Invalid {
            path: path.to_path_buf(),
            problem: format!("cannot be read: {err}"),
        },
        Ok(bytes) => match String::from_utf8(bytes) {
            Err(_) => ConfigState::Invalid {
                path: path.to_path_buf(),
                problem: "is not UTF-8 text".into(),
            },
            Ok(text) => match RelayConfig::from_toml(&text) {
                Ok(config) => ConfigState::Valid(Box::new(config)),
                Err(err) => ConfigState::Invalid {
                    path: path.to_path_buf(),
                    problem: err.to_string(),
                },
            },
        },
    }
}

/// The status document while the configuration is missing or invalid.
#[derive(Debug, Serialize)]
pub struct ProblemStatus {
    pub format: u32,
    pub version: &'static str,
    /// `config_missing` or `config_invalid`.
    pub state: &'static str,
    pub mail_domain: Option<String>,
    pub config_path: String,
    pub problem: String,
}

impl ProblemStatus {
    pub fn of(state: &ConfigState) -> Option<ProblemStatus> {
        let (kind, path, problem) = match state {
            ConfigState::Valid(_) => return None,
            ConfigState::Missing { path } => (
                "config_missing",
                path,
                format!(
                    "{} does not exist: this device was not started from an image the portal personalized. Download the relay's image from the portal and flash it again.",
                    path.display()
                ),
            ),
            ConfigState::Invalid { path, problem } => (
                "config_invalid",
                path,
                format!(
                    "{} is not a valid relay configuration: {problem}. Download the relay's image from the portal again.",
                    path.display()
                ),
            ),
        };
        Some(ProblemStatus {
            format: crate::web::well_known::STATUS_FORMAT,
            version: env!("CARGO_PKG_VERSION"),
            state: kind,
            mail_domain: None,
            config_path: path.display().to_string(),
            problem,
        })
    }
}

/// Where the problem server listens.
pub struct Listeners {
    pub bind: IpAddr,
    pub http_port: u16,
    pub https_port: u16,
}

/// How often the configuration file is checked again.
const RECHECK: Duration = Duration::from_secs(5);

/// Returns the configuration once it is valid. Until then, says what is wrong on the
/// console and at the status URL, and checks again every few seconds. `Err` only when
/// `shutdown` fires first.
pub async fn wait_for_config(
    path: &Path,
    paths: &Paths,
    listeners: &Listeners,
    console: &Console,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<RelayConfig>> {
    let first = read_config(path);
    let status = match ProblemStatus::of(&first) {
        None => match first {
            ConfigState::Valid(config) => return Ok(Some(*config)),
            _ => unreachable!(),
        },
        Some(status) => status,
    };
    console.say(&format!("NOT RUNNING: {}", status.problem));
    console.say(&format!(
        "the status is at http://<this device>{}",
        crate::web::well_known::STATUS_PATH
    ));
    let current = Arc::new(std::sync::RwLock::new(status));
    let servers = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let router = problem_router(current.clone());
    {
        let addr = SocketAddr::new(listeners.bind, listeners.http_port);
        let router = router.clone();
        let token = servers.clone();
        tasks.spawn(async move {
            if let Err(err) = crate::web::serve_http(addr, router, token).await {
                tracing::warn!("status (HTTP): {err:#}");
            }
        });
    }
    match problem_tls(paths) {
        Ok(tls) => {
            let addr = SocketAddr::new(listeners.bind, listeners.https_port);
            let token = servers.clone();
            tasks.spawn(async move {
                if let Err(err) = crate::web::serve_https(addr, router, tls, token).await {
                    tracing::warn!("status (HTTPS): {err:#}");
                }
            });
        }
        Err(err) => tracing::warn!("no HTTPS status while unconfigured: {err:#}"),
    }
    let mut last_problem = current.read().expect("lock").problem.clone();
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break None,
            _ = tokio::time::sleep(RECHECK) => {}
        }
        let state = read_config(path);
        match ProblemStatus::of(&state) {
            None => {
                if let ConfigState::Valid(config) = state {
                    console.say(&format!(
                        "configuration for {} found; starting",
                        config.mail_domain.as_str()
                    ));
                    break Some(*config);
                }
            }
            Some(status) => {
                if status.problem != last_problem {
                    console.say(&format!("NOT RUNNING: {}", status.problem));
                    last_problem = status.problem.clone();
                }
                *current.write().expect("lock") = status;
            }
        }
    };
    servers.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(result)
}

fn problem_router(current: Arc<std::sync::RwLock<ProblemStatus>>) -> Router {
    let status = {
        let current = current.clone();
        move || {
            let current = current.clone();
            async move {
                let body = serde_json::to_string(&*current.read().expect("lock"))
                    .unwrap_or_else(|_| "{}".into());
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                    body,
                )
                    .into_response()
            }
        }
    };
    let page = move || {
        let current = current.clone();
        async move {
            let problem = current.read().expect("lock").problem.clone();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("This chatmail relay is not running.\n\n{problem}\n"),
            )
                .into_response()
        }
    };
    Router::new()
        .route(crate::web::well_known::STATUS_PATH, get(status))
        .fallback(get(page))
}

/// A throw-away self-signed certificate, in the volatile directory.
fn problem_tls(paths: &Paths) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert, key) = crate::tls::placeholder_pem("unconfigured.invalid")?;
    let dir = paths.runtime_dir();
    std::fs::create_dir_all(&dir)?;
    let cert_path = dir.join("unconfigured-cert.pem");
    let key_path = dir.join("unconfigured-key.pem");
    crate::paths::write_atomic(&cert_path, cert.as_bytes(), 0o600)?;
    crate::paths::write_atomic(&key_path, key.as_bytes(), 0o600)?;
    let certified = crate::tls::load_certified_key(&cert_path, &key_path)?;
    Ok(crate::tls::server_config(crate::tls::CertResolver::new(
        certified,
    )))
}

/// gokrazy's per-device secrets on /perm, made once: the web/update interface password
/// (effective from the next boot) and the machine id.
pub fn ensure_gokrazy_files(perm: &Path, console: &Console) -> anyhow::Result<()> {
    use rand::RngCore;
    let password = perm.join("gokr-pw.txt");
    if !password.exists() {
        let mut bytes = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut bytes);
        use base64::Engine;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        crate::paths::write_atomic(&password, format!("{text}\n").as_bytes(), 0o600)?;
        console.say(&format!(
            "made this device's gokrazy password ({}); the gokrazy web interface (port 1080) uses it from the next boot on",
            password.display()
        ));
    }
    let machine_id = perm.join("machine-id");
    if !machine_id.exists() {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        crate::paths::write_atomic(&machine_id, format!("{hex}\n").as_bytes(), 0o444)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        assert!(matches!(read_config(&path), ConfigState::Missing { .. }));
        std::fs::write(&path, "schema_version = 1\n").unwrap();
        let state = read_config(&path);
        let status = ProblemStatus::of(&state).unwrap();
        assert_eq!(status.state, "config_invalid");
        assert!(status.problem.contains("mail_domain"), "{}", status.problem);
        std::fs::write(
            &path,
            "schema_version = 1\nmail_domain = \"relay.example.org\"\n",
        )
        .unwrap();
        assert!(matches!(read_config(&path), ConfigState::Valid(_)));
    }

    #[test]
    fn gokrazy_files_are_made_once() {
        let dir = tempfile::tempdir().unwrap();
        ensure_gokrazy_files(dir.path(), &Console::default()).unwrap();
        let first = std::fs::read_to_string(dir.path().join("gokr-pw.txt")).unwrap();
        assert!(first.trim().len() >= 20);
        ensure_gokrazy_files(dir.path(), &Console::default()).unwrap();
        let second = std::fs::read_to_string(dir.path().join("gokr-pw.txt")).unwrap();
        assert_eq!(first, second);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("machine-id"))
                .unwrap()
                .trim()
                .len(),
            32
        );
    }

    #[tokio::test]
    async fn serves_the_problem_until_the_config_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("perm"), dir.path().join("run"));
        let path = dir.path().join("relay.toml");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let listeners = Listeners {
            bind: "127.0.0.1".parse().unwrap(),
            http_port: port,
            https_port: 0,
        };
        let token = CancellationToken::new();
        let task = {
            let path = path.clone();
            tokio::spawn(async move {
                wait_for_config(&path, &paths, &listeners, &Console::default(), token).await
            })
        };
        // The status answers 503 with the problem.
        let mut body = String::new();
        for _ in 0..50 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                s.write_all(
                    format!(
                        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        crate::web::well_known::STATUS_PATH
                    )
                    .as_bytes(),
                )
                .await
                .unwrap();
                s.read_to_string(&mut body).await.unwrap();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(body.starts_with("HTTP/1.1 503"), "{body}");
        assert!(body.contains("\"state\":\"config_missing\""), "{body}");
        std::fs::write(
            &path,
            "schema_version = 1\nmail_domain = \"relay.example.org\"\n",
        )
        .unwrap();
        let config = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(config.mail_domain.as_str(), "relay.example.org");
    }
}
