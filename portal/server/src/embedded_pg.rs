//! A private PostgreSQL cluster inside the portal's data directory.
//!
//! With no `DATABASE_URL`, the portal needs no database administration at all: it runs
//! the system's own PostgreSQL programs on a cluster it creates on first start, reachable
//! only through a unix socket in a directory nobody else may enter, and stops it on exit.
//! The test harness uses the same code for its throwaway databases.

use std::{
    collections::VecDeque,
    io,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::{Pid, User},
};
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// The role and database the portal uses inside its private cluster.
const ROLE: &str = "portal";
const DATABASE: &str = "portal";
/// Only names the socket file (`.s.PGSQL.5432`); no TCP port is opened.
const SOCKET_PORT: u16 = 5432;
/// Unix socket paths must fit in `sun_path` (108 bytes on Linux, including the NUL).
const MAX_SOCKET_PATH: usize = 100;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error(
        "PostgreSQL's server programs (initdb, postgres) were not found. Install them \
         (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install postgresql-server`) \
         or set DATABASE_URL to use an existing PostgreSQL server"
    )]
    ProgramsMissing,
    #[error(
        "the database in {dir} was created by PostgreSQL {data_version}, but the installed \
         server programs are version {found}; install PostgreSQL {data_version} \
         (Debian/Ubuntu: `apt-get install postgresql-{data_version}`)"
    )]
    VersionMismatch {
        dir: PathBuf,
        data_version: String,
        found: String,
    },
    #[error(
        "PostgreSQL refuses to run as root, so the portal runs it as the user '{user}', who \
         cannot reach {path}; choose a --data-dir that user can enter, such as /var/lib/chatmail-portal"
    )]
    Unreachable { user: String, path: PathBuf },
    #[error(
        "PostgreSQL refuses to run as root and there is no 'postgres' or 'nobody' user to run \
         it as; create a 'postgres' system user"
    )]
    NoUnprivilegedUser,
    #[error("creating the database cluster in {dir} failed: {detail}")]
    Init { dir: PathBuf, detail: String },
    #[error("PostgreSQL did not start: {0}")]
    Start(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedPgError {
    let context = context.into();
    move |source| EmbeddedPgError::Io { context, source }
}

/// The PostgreSQL server programs found on this system.
#[derive(Clone, Debug)]
pub struct PgPrograms {
    pub bin_dir: PathBuf,
    /// Major version, e.g. "15".
    pub major: String,
}

impl PgPrograms {
    /// Finds `initdb` and `postgres`, preferring the major version `wanted` when given (an
    /// existing cluster can only be opened by its own major version).
    pub fn find(wanted: Option<&str>) -> Result<Self, EmbeddedPgError> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        // Debian and Ubuntu keep the server programs off PATH, one directory per version.
        if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
            dirs.extend(entries.flatten().map(|entry| entry.path().join("bin")));
        }
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        Self::find_in(&dirs, wanted)
    }

    /// Like [`PgPrograms::find`], over the given directories only.
    pub fn find_in(dirs: &[PathBuf], wanted: Option<&str>) -> Result<Self, EmbeddedPgError> {
        let mut found: Vec<PgPrograms> = dirs.iter().filter_map(|dir| Self::in_dir(dir)).collect();
        if found.is_empty() {
            return Err(EmbeddedPgError::ProgramsMissing);
        }
        if let Some(wanted) = wanted {
            return found
                .iter()
                .find(|p| p.major == wanted)
                .cloned()
                .ok_or_else(|| EmbeddedPgError::VersionMismatch {
                    dir: PathBuf::new(),
                    data_version: wanted.to_string(),
                    found: found
                        .iter()
                        .map(|p| p.major.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
        }
        found.sort_by_key(|p| p.major.parse::<u32>().unwrap_or(0));
        Ok(found.pop().expect("not empty"))
    }

    fn in_dir(dir: &Path) -> Option<PgPrograms> {
        let postgres = dir.join("postgres");
        if !dir.join("initdb").is_file() || !postgres.is_file() {
            return None;
        }
        let bin_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        // `postgres --version` prints e.g. "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)".
        let output = std::process::Command::new(bin_dir.join("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text.split_whitespace().nth(2)?;
        let major = version.split('.').next()?.to_string();
        Some(PgPrograms { bin_dir, major })
    }
}

/// The unprivileged account PostgreSQL runs as when the portal itself runs as root.
#[derive(Clone, Debug)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

impl RunAs {
    fn needed() -> Result<Option<RunAs>, EmbeddedPgError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        for name in ["postgres", "nobody"] {
            if let Ok(Some(user)) = User::from_name(name) {
                return Ok(Some(RunAs {
                    name: user.name,
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                }));
            }
        }
        Err(EmbeddedPgError::NoUnprivilegedUser)
    }

    /// Whether this user may enter every directory on the way to `path` (ACLs aside).
    fn can_reach(&self, path: &Path) -> Option<PathBuf> {
        for dir in path.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(dir) else {
                continue;
            };
            let mode = meta.permissions().mode();
            let allowed = if meta.uid() == self.uid {
                mode & 0o100 != 0
            } else if meta.gid() == self.gid {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            if !allowed {
                return Some(dir.to_path_buf());
            }
        }
        None
    }

    fn give(&self, path: &Path) -> Result<(), EmbeddedPgError> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).map_err(io_error(format!(
            "cannot hand {} to user {}",
            path.display(),
            self.name
        )))
    }
}

/// The last lines PostgreSQL printed, kept to explain a failed start.
type RecentLog = Arc<Mutex<VecDeque<String>>>;

/// A running private cluster. Call [`EmbeddedPostgres::stop`] to shut it down cleanly;
/// dropping it without doing so asks PostgreSQL for a fast shutdown without waiting.
pub struct EmbeddedPostgres {
    child: Option<Child>,
    socket_dir: PathBuf,
    // Holds a short socket directory under /tmp when the data directory's path is too long.
    _short_socket_dir: Option<tempfile::TempDir>,
    pub programs: PgPrograms,
    /// True when this start created the cluster (first run).
    pub created: bool,
}

impl EmbeddedPostgres {
    /// Starts (and on first use creates) the cluster kept in `cluster_dir`, and makes sure
    /// the portal's database exists. `cluster_dir` is created if needed.
    pub async fn start(cluster_dir: &Path) -> Result<Self, EmbeddedPgError> {
        let cluster_dir = std::path::absolute(cluster_dir).map_err(io_error(format!(
            "bad data directory {}",
            cluster_dir.display()
        )))?;
        let pgdata = cluster_dir.join("pgdata");
        let data_version = std::fs::read_to_string(pgdata.join("PG_VERSION"))
            .ok()
            .map(|v| v.trim().to_string());
        let programs = PgPrograms::find(data_version.as_deref()).map_err(|err| match err {
            EmbeddedPgError::VersionMismatch {
                data_version,
                found,
                ..
            } => EmbeddedPgError::VersionMismatch {
                dir: pgdata.clone(),
                data_version,
                found,
            },
            other => other,
        })?;
        let run_as = RunAs::needed()?;
        if let Some(user) = &run_as {
            if let Some(blocked) = user.can_reach(&pgdata) {
                return Err(EmbeddedPgError::Unreachable {
                    user: user.name.clone(),
                    path: blocked,
                });
            }
        }

        std::fs::create_dir_all(&cluster_dir)
            .map_err(io_error(format!("cannot create {}", cluster_dir.display())))?;
        let created = data_version.is_none();
        if created {
            init_cluster(&programs, &pgdata, run_as.as_ref()).await?;
        }
        stop_orphan(&pgdata).await;

        let (socket_dir, short_socket_dir) = socket_dir_for(&cluster_dir)?;
        if let Some(user) = &run_as {
            user.give(&socket_dir)?;
        }

        let mut command = Command::new(programs.bin_dir.join("postgres"));
        command
            .arg("-D")
            .arg(&pgdata)
            .arg("-k")
            .arg(&socket_dir)
            .args(["-p", &SOCKET_PORT.to_string()])
            // Unix socket only, and only its owner (and root) may connect.
            .args(["-c", "listen_addresses="])
            .args(["-c", "unix_socket_permissions=0700"])
            .args(["-c", "logging_collector=off"])
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: Ctrl-C reaches the portal only, which then closes its
            // connections before it stops PostgreSQL.
            .process_group(0)
            .kill_on_drop(false);
        if let Some(user) = &run_as {
            command.uid(user.uid).gid(user.gid);
        }
        let mut child = command.spawn().map_err(|err| {
            EmbeddedPgError::Start(format!(
                "cannot run {}: {err}",
                programs.bin_dir.join("postgres").display()
            ))
        })?;
        let recent = forward_log(&mut child);

        let mut postgres = EmbeddedPostgres {
            child: Some(child),
            socket_dir,
            _short_socket_dir: short_socket_dir,
            programs,
            created,
        };
        if let Err(err) = postgres.wait_ready(&recent).await {
            postgres.stop().await;
            return Err(err);
        }
        if let Err(err) = postgres.ensure_database().await {
            postgres.stop().await;
            return Err(err);
        }
        Ok(postgres)
    }

    /// Connection settings for the portal's database in this cluster.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options_for(DATABASE)
    }

    /// A `postgres://` URL for this cluster (for tools and child processes); the socket
    /// directory goes into the host part, percent-encoded, as libpq and sqlx read it.
    pub fn url(&self) -> String {
        let mut host = String::new();
        for byte in self.socket_dir.as_os_str().as_encoded_bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(byte) {
                host.push(*byte as char);
            } else {
                host.push_str(&format!("%{byte:02X}"));
            }
        }
        format!("postgres://{ROLE}@{host}:{SOCKET_PORT}/{DATABASE}")
    }

    fn options_for(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(SOCKET_PORT)
            .username(ROLE)
            .database(database)
            .application_name("chatmail-portal")
    }

    async fn wait_ready(&mut self, recent: &RecentLog) -> Result<(), EmbeddedPgError> {
        let options = self.options_for("postgres").disable_statement_logging();
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(conn) = options.connect().await {
                let _ = conn.close().await;
                return Ok(());
            }
            let child = self.child.as_mut().expect("running");
            if let Ok(Some(status)) = child.try_wait() {
                // Let the log forwarder catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(EmbeddedPgError::Start(format!(
                    "the server exited ({status}); it said: {}",
                    last_lines(recent)
                )));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(EmbeddedPgError::Start(format!(
                    "not ready after {} seconds; it said: {}",
                    START_TIMEOUT.as_secs(),
                    last_lines(recent)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ensure_database(&self) -> Result<(), EmbeddedPgError> {
        let mut conn = self
            .options_for("postgres")
            .disable_statement_logging()
            .connect()
            .await
            .map_err(|err| EmbeddedPgError::Start(format!("cannot connect: {err}")))?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DATABASE)
                .fetch_one(&mut conn)
                .await
                .map_err(|err| EmbeddedPgError::Start(format!("cannot list databases: {err}")))?;
        if !exists {
            sqlx::query(&format!("CREATE DATABASE {DATABASE} ENCODING 'UTF8'"))
                .execute(&mut conn)
                .await
                .map_err(|err| EmbeddedPgError::Start(format!("cannot create database: {err}")))?;
        }
        let _ = conn.close().await;
        Ok(())
    }

    /// Fast shutdown: PostgreSQL ends open sessions, writes a checkpoint and exits.
    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    async fn shut_down(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(_) => tracing::info!("private PostgreSQL stopped"),
            Err(_) => {
                tracing::warn!("PostgreSQL did not stop in time; ending it");
                if let Some(pid) = child.id() {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGQUIT);
                }
                let _ = child.wait().await;
            }
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(|child| child.id()) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
        }
    }
}

async fn init_cluster(
    programs: &PgPrograms,
    pgdata: &Path,
    run_as: Option<&RunAs>,
) -> Result<(), EmbeddedPgError> {
    tracing::info!(dir = %pgdata.display(), version = %programs.major, "creating the private PostgreSQL cluster");
    // A leftover from an interrupted first start holds no data; initdb wants an empty directory.
    if pgdata.exists() {
        std::fs::remove_dir_all(pgdata)
            .map_err(io_error(format!("cannot clear {}", pgdata.display())))?;
    }
    std::fs::create_dir(pgdata).map_err(io_error(format!("cannot create {}", pgdata.display())))?;
    std::fs::set_permissions(pgdata, std::fs::Permissions::from_mode(0o700))
        .map_err(io_error(format!("cannot restrict {}", pgdata.display())))?;
    if let Some(user) = run_as {
        user.give(pgdata)?;
    }
    let mut command = Command::new(programs.bin_dir.join("initdb"));
    command
        .arg("-D")
        .arg(pgdata)
        .args([
            "-U",
            ROLE,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ])
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    let output = command
        .output()
        .await
        .map_err(|err| EmbeddedPgError::Init {
            dir: pgdata.to_path_buf(),
            detail: err.to_string(),
        })?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(pgdata);
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(EmbeddedPgError::Init {
            dir: pgdata.to_path_buf(),
            detail: stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" / "),
        });
    }
    Ok(())
}

/// A PostgreSQL left running by a portal that was killed holds the cluster's lock. The
/// portal's own data-directory lock guarantees no live portal uses it, so stop it.
async fn stop_orphan(pgdata: &Path) {
    let Ok(pid_file) = std::fs::read_to_string(pgdata.join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = pid_file
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    else {
        return;
    };
    let is_postgres = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmd| String::from_utf8_lossy(&cmd).contains("postgres"))
        .unwrap_or(false);
    if !is_postgres {
        return; // stale file; PostgreSQL removes it itself
    }
    tracing::warn!(
        pid,
        "stopping a PostgreSQL left running by an earlier portal"
    );
    let pid = Pid::from_raw(pid);
    let _ = kill(pid, Signal::SIGINT);
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    while kill(pid, None).is_ok() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn socket_dir_for(
    cluster_dir: &Path,
) -> Result<(PathBuf, Option<tempfile::TempDir>), EmbeddedPgError> {
    let preferred = cluster_dir.join("socket");
    let socket_file_len = preferred.as_os_str().len() + "/.s.PGSQL.5432".len();
    let (dir, temp) = if socket_file_len <= MAX_SOCKET_PATH {
        std::fs::create_dir_all(&preferred)
            .map_err(io_error(format!("cannot create {}", preferred.display())))?;
        (preferred, None)
    } else {
        let temp = tempfile::Builder::new()
            .prefix("chatmail-portal-pg.")
            .tempdir()
            .map_err(io_error(
                "cannot create a socket directory under the temporary directory",
            ))?;
        (temp.path().to_path_buf(), Some(temp))
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_error(format!("cannot restrict {}", dir.display())))?;
    Ok((dir, temp))
}

/// Forwards PostgreSQL's log lines into ours and keeps the last few.
fn forward_log(child: &mut Child) -> RecentLog {
    let recent: RecentLog = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(stderr) = child.stderr.take() {
        let recent = recent.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("FATAL") || line.contains("PANIC") || line.contains("ERROR") {
                    tracing::warn!(target: "postgres", "{line}");
                } else {
                    tracing::debug!(target: "postgres", "{line}");
                }
                let mut recent = recent.lock().expect("log buffer");
                if recent.len() == 8 {
                    recent.pop_front();
                }
                recent.push_back(line);
            }
        });
    }
    recent
}

fn last_lines(recent: &RecentLog) -> String {
    let recent = recent.lock().expect("log buffer");
    if recent.is_empty() {
        "nothing".to_string()
    } else {
        recent.iter().cloned().collect::<Vec<_>>().join(" / ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_name_the_package_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let err = PgPrograms::find_in(&[empty.path().to_path_buf()], None).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
    }

    #[test]
    fn the_installed_version_is_found_and_a_missing_one_explained() {
        let programs = PgPrograms::find(None).expect("the test machine has PostgreSQL");
        assert!(programs.major.parse::<u32>().unwrap() >= 12);
        let err = PgPrograms::find(Some("7")).unwrap_err();
        assert!(
            err.to_string().contains("apt-get install postgresql-7"),
            "{err}"
        );
    }

    #[test]
    fn socket_paths_stay_short() {
        let long = PathBuf::from(format!("/tmp/{}", "d".repeat(120)));
        let (dir, temp) = socket_dir_for(&long).unwrap();
        assert!(
            temp.is_some(),
            "a long data directory gets a short socket directory"
        );
        assert!(dir.as_os_str().len() + "/.s.PGSQL.5432".len() <= MAX_SOCKET_PATH);
    }
}
