//! Optional update checks: if, and only if, the relay's config opts in, ask the portal
//! about once a day whether a newer signed release exists for this device's channel and
//! hardware, and install it through gokrazy's local update API.
//!
//! An update must never be a way in, so every step can refuse, and each refusal is one log
//! line saying why: the manifest must be signed by the key in the relay's config (checked
//! before the manifest is parsed), be for this channel and target, be newer than the running
//! version, and every piece must have exactly the size and sha256 the manifest names. Only
//! then is anything written, in gokrazy's order: the inactive root, the boot partition
//! (keeping the running root active, armed for a one-time test boot of the new root), the
//! MBR boot code, reboot. The new version makes the switch permanent only once it reports healthy
//! ([`pending`]); otherwise the next boot is the old root again.
//!
//! The request names nothing but the channel and target ([`fetch`]); mail keeps flowing
//! during the check and the downloads, which go to /perm, not to memory.

mod fetch;
pub mod gokrazy;
mod pending;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatmail_shared::signing_key::UpdateSigningKey;
use chatmail_shared::update_manifest::{
    self, check_offer, Channel, ReleaseVersion, UpdateTarget, VerifiedManifest, MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
};
use chatmail_shared::web_url::HttpsUrl;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use fetch::{FetchError, Fetcher};
use gokrazy::GokrazyApi;
use pending::{Action, Pending, State};

/// Space on /perm that an update download must leave free.
const PERM_RESERVE: u64 = 256 << 20;

/// Whether an earlier update left a marker to settle.
pub fn has_pending(work_dir: &std::path::Path) -> bool {
    pending::marker_path(work_dir).exists()
}

/// When checks happen. On the device: daily plus up to an hour of jitter, an unreachable
/// portal again after an hour or so. Tests shorten these (flags in `main.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Delay before the first check after start (plus jitter).
    pub first: Duration,
    /// Between checks.
    pub interval: Duration,
    /// After a check that could not reach the portal.
    pub retry: Duration,
    /// Random extra delay, up to this, added to each wait, so that relays do not all ask
    /// at the same moment (and the time of asking says nothing about when the device booted).
    pub jitter: Duration,
    /// How long a new version has to become healthy before the device goes back.
    pub health_window: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            first: Duration::from_secs(10 * 60),
            interval: Duration::from_secs(24 * 60 * 60),
            retry: Duration::from_secs(60 * 60),
            jitter: Duration::from_secs(60 * 60),
            health_window: Duration::from_secs(10 * 60),
        }
    }
}

/// Everything the checker needs.
pub struct UpdateChecker {
    /// `None`: checks are off (a pending update is still settled).
    pub source: Option<Source>,
    /// This device's hardware.
    pub target: UpdateTarget,
    /// The running version.
    pub running: ReleaseVersion,
    /// When to check.
    pub schedule: Schedule,
    /// gokrazy's local update API.
    pub api: GokrazyApi,
    /// `<perm>/chatmail/update`: downloads and the marker.
    pub work_dir: PathBuf,
    /// Whether the relay is healthy (Maddy running, account store readable).
    pub healthy: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// Where releases come from, from the relay's config.
#[derive(Clone)]
pub struct Source {
    /// The portal's base URL.
    pub portal_url: HttpsUrl,
    /// The channel followed.
    pub channel: Channel,
    /// The key manifests must be signed with.
    pub key: UpdateSigningKey,
    /// Makes the requests.
    fetcher: Fetcher,
}

impl Source {
    /// From the config's `[updates]` table; `None` unless it opts in.
    pub fn from_config(
        config: &chatmail_shared::RelayConfig,
        tls: Arc<rustls::ClientConfig>,
    ) -> Option<Source> {
        let u = &config.updates;
        match (u.enabled, &u.portal_url, &u.signing_public_key) {
            (true, Some(url), Some(key)) => Some(Source {
                portal_url: url.clone(),
                channel: u.channel,
                key: key.clone(),
                fetcher: Fetcher::new(tls),
            }),
            _ => None,
        }
    }

    fn manifest_url(&self, target: UpdateTarget) -> Result<url::Url, String> {
        let mut base = self.portal_url.as_url().clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.join(&update_manifest::manifest_path(self.channel, target))
            .map_err(|e| e.to_string())
    }
}

/// How one check ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Nothing to install (or refused): wait the full interval.
    Done,
    /// The portal could not be reached: retry sooner.
    Unreachable,
    /// Installed; the device is rebooting.
    Rebooting,
}

impl UpdateChecker {
    /// Settles a pending update, then checks on schedule until `token` is cancelled.
    pub async fn run(self, token: CancellationToken) -> anyhow::Result<()> {
        self.settle(&token).await;
        let Some(source) = self.source.clone() else {
            tracing::info!("update checks are off (the relay's config does not opt in)");
            token.cancelled().await;
            return Ok(());
        };
        tracing::info!(
            portal = %source.portal_url,
            channel = %source.channel,
            target = %self.target,
            "update checks are on: about once a day, asking only for the current release of this channel and target"
        );
        let mut wait = self.schedule.first;
        loop {
            wait += self.jitter();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = token.cancelled() => return Ok(()),
            }
            match self.check_once(&source).await {
                Outcome::Done => wait = self.schedule.interval,
                Outcome::Unreachable => wait = self.schedule.retry,
                Outcome::Rebooting => {
                    token.cancelled().await;
                    return Ok(());
                }
            }
        }
    }

    fn jitter(&self) -> Duration {
        let max = self.schedule.jitter.as_millis() as u64;
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::thread_rng().gen_range(0..=max))
    }

    /// One check: fetch, verify, decide, and install if everything holds.
    async fn check_once(&self, source: &Source) -> Outcome {
        let url = match source.manifest_url(self.target) {
            Ok(url) => url,
            Err(e) => {
                tracing::error!("update check refused: the portal URL does not work: {e}");
                return Outcome::Done;
            }
        };
        let signature_url = {
            let mut u = url.clone();
            u.set_path(&format!("{}.minisig", url.path()));
            u
        };
        let fetched = async {
            let manifest = source
                .fetcher
                .bytes(&url, MAX_MANIFEST_BYTES as u64)
                .await?;
            let signature = source
                .fetcher
                .bytes(&signature_url, MAX_SIGNATURE_BYTES as u64)
                .await?;
            Ok::<_, FetchError>((manifest, signature))
        }
        .await;
        let (manifest, signature) = match fetched {
            Ok(pair) => pair,
            Err(FetchError::Unreachable(e)) => {
                tracing::warn!(
                    "update check: the portal is unreachable ({e}); retrying in {}",
                    about(self.schedule.retry)
                );
                return Outcome::Unreachable;
            }
            Err(FetchError::Status { url, status }) if status >= 500 => {
                tracing::warn!(
                    "update check: {url} answered HTTP {status}; retrying in {}",
                    about(self.schedule.retry)
                );
                return Outcome::Unreachable;
            }
            Err(FetchError::Status { url, status: 404 }) => {
                tracing::info!("update check: no release is published at {url} (HTTP 404)");
                return Outcome::Done;
            }
            Err(e) => {
                tracing::error!("update check refused: {e}");
                return Outcome::Done;
            }
        };
        let offer = match update_manifest::verify(&manifest, &signature, &source.key) {
            Ok(offer) => offer,
            Err(e) => {
                tracing::error!("update refused: {e}");
                return Outcome::Done;
            }
        };
        let version = offer.manifest().version.clone();
        match check_offer(&offer, source.channel, self.target, &self.running) {
            Ok(()) => {}
            // The usual answer: nothing newer.
            Err(same @ update_manifest::Refusal::SameVersion { .. }) => {
                tracing::info!("update check: {same}");
                return Outcome::Done;
            }
            Err(refusal) => {
                tracing::warn!("update refused: {refusal}");
                return Outcome::Done;
            }
        }
        if let Some(p) = pending::read(&self.work_dir) {
            if p.state == State::Failed && p.version == version.to_string() {
                tracing::warn!(
                    "update refused: version {version} did not become healthy here before; waiting for a newer release"
                );
                return Outcome::Done;
            }
        }
        tracing::info!(
            "update {version} is available (running {}); downloading it",
            self.running
        );
        match self.install(source, &url, &offer).await {
            Ok(()) => Outcome::Rebooting,
            Err(InstallError::Unreachable(e)) => {
                tracing::warn!(
                    "update {version}: the download failed ({e}); retrying in {}",
                    about(self.schedule.retry)
                );
                Outcome::Unreachable
            }
            Err(InstallError::Refused(e)) => {
                tracing::error!("update {version} refused: {e}");
                Outcome::Done
            }
        }
    }

    async fn install(
        &self,
        source: &Source,
        manifest_url: &url::Url,
        offer: &VerifiedManifest,
    ) -> Result<(), InstallError> {
        let m = offer.manifest();
        let dir = self.work_dir.join("download");
        let _ = tokio::fs::remove_dir_all(&dir).await;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| InstallError::Refused(format!("{}: {e}", dir.display())))?;
        let result = self
            .download_and_write(source, manifest_url, offer, &dir)
            .await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        result?;
        tracing::info!(
            "update {}: written; rebooting into it for a test boot (the previous version comes back unless it reports healthy)",
            m.version
        );
        if let Err(e) = self.api.post("/reboot").await {
            // The partitions are written and the test boot is armed: the next reboot,
            // whatever causes it, tries the new version.
            tracing::error!("update {}: the reboot request failed: {e}", m.version);
        }
        Ok(())
    }

    async fn download_and_write(
        &self,
        source: &Source,
        manifest_url: &url::Url,
        offer: &VerifiedManifest,
        dir: &std::path::Path,
    ) -> Result<(), InstallError> {
        let m = offer.manifest();
        // Mail needs /perm more than an update does: keep a reserve free.
        let needed: u64 = m.pieces.in_order().iter().map(|p| p.size).sum();
        if let Ok(stat) = nix::sys::statvfs::statvfs(dir) {
            let free = stat.blocks_available().saturating_mul(stat.fragment_size());
            if free < needed + PERM_RESERVE {
                return Err(InstallError::Refused(format!(
                    "it needs {} MiB on /perm and {} MiB must stay free for mail, but only {} MiB are free",
                    needed >> 20,
                    PERM_RESERVE >> 20,
                    free >> 20
                )));
            }
        }
        let mut files = Vec::new();
        for piece in m.pieces.in_order() {
            let url = manifest_url
                .join(&piece.url)
                .map_err(|e| InstallError::Refused(format!("{} piece URL: {e}", piece.name)))?;
            HttpsUrl::parse(url.as_str()).map_err(|e| {
                InstallError::Refused(format!("{} piece URL {url}: {e}", piece.name))
            })?;
            let path = dir.join(format!("{}.img", piece.name));
            match source.fetcher.to_file(&url, piece.size, &path).await {
                Ok(digest) if digest == piece.sha256.0 => {}
                Ok(digest) => {
                    return Err(InstallError::Refused(format!(
                        "the {} piece's sha256 is {}, the signed manifest says {}",
                        piece.name,
                        update_manifest::Sha256Digest(digest),
                        piece.sha256
                    )))
                }
                Err(FetchError::Unreachable(e)) => return Err(InstallError::Unreachable(e)),
                Err(e) => return Err(InstallError::Refused(e.to_string())),
            }
            files.push((piece, path));
        }
        tracing::info!(
            "update {}: every piece matches the signed manifest; writing it through gokrazy",
            m.version
        );
        let api_err = |e: String| InstallError::Refused(format!("gokrazy's update API: {e}"));
        let features = self.api.features().await.map_err(api_err)?;
        if !features.split(',').any(|f| f.trim() == "updatehash") {
            return Err(InstallError::Refused(format!(
                "this gokrazy does not confirm what it writes (features: {features:?})"
            )));
        }
        // The test boot: the boot partition is armed here, in place, because gokrazy's
        // `POST /update/testboot` cannot add its flag to the command lines its packers write
        // (see `update_manifest::arm_test_boot`). gokrazy's `bootonly` then points `root=` at
        // the running root, so the next boot starts from the known-good root, whose init
        // switches into the new one for that boot only.
        let (armed_path, armed_hex) = {
            let (_, boot) = files
                .iter()
                .find(|(p, _)| p.name == update_manifest::PieceName::Boot)
                .expect("every manifest has a boot piece");
            let from = boot.clone();
            let to = dir.join("boot-armed.img");
            let to_c = to.clone();
            let hex = tokio::task::spawn_blocking(move || -> Result<String, String> {
                let mut bytes = std::fs::read(&from).map_err(|e| e.to_string())?;
                update_manifest::arm_test_boot(&mut bytes).map_err(|e| e.to_string())?;
                std::fs::write(&to_c, &bytes).map_err(|e| e.to_string())?;
                use sha2::Digest as _;
                Ok(update_manifest::Sha256Digest(sha2::Sha256::digest(&bytes).into()).to_hex())
            })
            .await
            .map_err(|e| InstallError::Refused(e.to_string()))?
            .map_err(|e| InstallError::Refused(format!("the boot piece: {e}")))?;
            (to, hex)
        };
        let marker = Pending {
            version: m.version.to_string(),
            from: self.running.to_string(),
            state: State::Trying,
            starts: 0,
        };
        for (piece, path) in &files {
            let (target, path, expected) = match piece.name {
                update_manifest::PieceName::Root => ("root", path, piece.sha256.to_hex()),
                update_manifest::PieceName::Boot => {
                    // From here on a reboot test-boots the new root, which needs the marker.
                    pending::write(&self.work_dir, &marker).map_err(|e| {
                        InstallError::Refused(format!("cannot write the update marker: {e}"))
                    })?;
                    ("bootonly", &armed_path, armed_hex.clone())
                }
                update_manifest::PieceName::Mbr => ("mbr", path, piece.sha256.to_hex()),
            };
            let written = self
                .api
                .put(target, path)
                .await
                .and_then(|answer| check_written(piece.name, &answer, &expected));
            if let Err(e) = written {
                if piece.name != update_manifest::PieceName::Root {
                    let _ = pending::clear(&self.work_dir);
                }
                return Err(InstallError::Refused(format!("gokrazy's update API: {e}")));
            }
        }
        Ok(())
    }

    /// Handles the marker an earlier update left (see [`pending`]).
    async fn settle(&self, token: &CancellationToken) {
        let running = self.running.to_string();
        match pending::decide(pending::read(&self.work_dir), &running) {
            Action::Nothing => {}
            Action::RolledBack(mut p) => {
                if p.state == State::Trying {
                    tracing::error!(
                        "update to {} did not complete: the device is back on {running}; that version will not be tried again",
                        p.version
                    );
                    p.state = State::Failed;
                    if let Err(e) = pending::write(&self.work_dir, &p) {
                        tracing::warn!("cannot record the failed update: {e}");
                    }
                }
            }
            Action::GiveUp(mut p) => {
                tracing::error!(
                    "update to {running} keeps restarting ({} starts); going back to {}",
                    p.starts,
                    p.from
                );
                p.state = State::Failed;
                let _ = pending::write(&self.work_dir, &p);
                self.reboot_back(&p).await;
            }
            Action::Confirm(mut p) => {
                p.starts += 1;
                let _ = pending::write(&self.work_dir, &p);
                tracing::info!(
                    "update to {running} (from {}): waiting up to {} s for the relay to report healthy",
                    p.from,
                    self.schedule.health_window.as_secs()
                );
                let deadline = tokio::time::Instant::now() + self.schedule.health_window;
                loop {
                    if (self.healthy)() {
                        match self.api.post("/update/switch").await {
                            Ok(_) => {
                                tracing::info!(
                                    "update to {running} is healthy; it is now the version this device boots"
                                );
                                let _ = pending::clear(&self.work_dir);
                            }
                            Err(e) => tracing::error!(
                                "update to {running} is healthy, but making it permanent failed: {e}; the next reboot goes back to {}",
                                p.from
                            ),
                        }
                        return;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        tracing::error!(
                            "update to {running} did not report healthy within {} s; going back to {}",
                            self.schedule.health_window.as_secs(),
                            p.from
                        );
                        p.state = State::Failed;
                        let _ = pending::write(&self.work_dir, &p);
                        self.reboot_back(&p).await;
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = token.cancelled() => return,
                    }
                }
            }
        }
    }

    async fn reboot_back(&self, p: &Pending) {
        if let Err(e) = self.api.post("/reboot").await {
            tracing::error!("cannot reboot back to {}: {e}", p.from);
        }
    }
}

/// A wait for people: "1 second", "5 minutes" (plus the jitter), "24 hours".
fn about(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        0..120 => (s, "second"),
        120..7200 => (s / 60, "minute"),
        _ => (s / 3600, "hour"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn check_written(
    name: update_manifest::PieceName,
    answer: &str,
    expected: &str,
) -> Result<(), String> {
    let answer = answer.trim();
    if answer.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(format!(
            "gokrazy wrote a {name} piece with sha256 {answer:?}, {expected} was sent; not switching to it"
        ))
    }
}

#[derive(Debug)]
enum InstallError {
    Unreachable(String),
    Refused(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for gokrazy's update API that answers 200 to everything and records
    /// "METHOD path" (the real handlers: gokrazy `update.go`, research/gokrazy.md §5.1).
    async fn fake_api() -> (
        GokrazyApi,
        Arc<std::sync::Mutex<Vec<String>>>,
        tempfile::TempDir,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = calls.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = head.lines().next().unwrap_or("").to_string();
                let call = line
                    .rsplit_once(' ')
                    .map(|(c, _)| c.to_string())
                    .unwrap_or(line);
                seen.lock().unwrap().push(call);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gokr-pw.txt"), "pw").unwrap();
        let api = GokrazyApi::new(
            gokrazy::Endpoint::Tcp(addr.to_string()),
            vec![dir.path().join("gokr-pw.txt")],
        );
        (api, calls, dir)
    }

    fn checker(api: GokrazyApi, work_dir: &std::path::Path, healthy: bool) -> UpdateChecker {
        UpdateChecker {
            source: None,
            target: UpdateTarget::Amd64,
            running: ReleaseVersion::parse("0.2.0").unwrap(),
            schedule: Schedule {
                health_window: Duration::ZERO,
                ..Schedule::default()
            },
            api,
            work_dir: work_dir.to_path_buf(),
            healthy: Arc::new(move || healthy),
        }
    }

    fn trying(work_dir: &std::path::Path, starts: u32) {
        pending::write(
            work_dir,
            &Pending {
                version: "0.2.0".into(),
                from: "0.1.0".into(),
                state: State::Trying,
                starts,
            },
        )
        .unwrap();
    }

    #[tokio::test]
    async fn an_unhealthy_new_version_reboots_into_the_old_one() {
        let (api, calls, dir) = fake_api().await;
        trying(dir.path(), 0);
        checker(api, dir.path(), false)
            .settle(&CancellationToken::new())
            .await;
        assert_eq!(*calls.lock().unwrap(), ["POST /reboot"]);
        let marker = pending::read(dir.path()).unwrap();
        assert_eq!(marker.state, State::Failed);
        // Back on the old version, the failure is remembered and nothing is called.
        let (api, calls, _api_dir) = fake_api().await;
        let mut old = checker(api, dir.path(), true);
        old.running = ReleaseVersion::parse("0.1.0").unwrap();
        old.settle(&CancellationToken::new()).await;
        assert!(calls.lock().unwrap().is_empty());
        assert_eq!(pending::read(dir.path()).unwrap().state, State::Failed);
    }

    #[tokio::test]
    async fn a_new_version_that_keeps_restarting_goes_back() {
        let (api, calls, dir) = fake_api().await;
        trying(dir.path(), pending::MAX_STARTS);
        checker(api, dir.path(), true)
            .settle(&CancellationToken::new())
            .await;
        assert_eq!(*calls.lock().unwrap(), ["POST /reboot"]);
        assert_eq!(pending::read(dir.path()).unwrap().state, State::Failed);
    }

    #[tokio::test]
    async fn a_healthy_new_version_switches_for_good() {
        let (api, calls, dir) = fake_api().await;
        trying(dir.path(), 1);
        checker(api, dir.path(), true)
            .settle(&CancellationToken::new())
            .await;
        assert_eq!(*calls.lock().unwrap(), ["POST /update/switch"]);
        assert_eq!(pending::read(dir.path()), None);
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(about(Duration::from_secs(1)), "1 second");
        assert_eq!(about(Duration::from_secs(3600)), "60 minutes");
        assert_eq!(about(Duration::from_secs(86_400)), "24 hours");
    }

    #[test]
    fn manifest_urls() {
        let source = |url: &str| Source {
            portal_url: HttpsUrl::parse(url).unwrap(),
            channel: Channel::Testing,
            key: UpdateSigningKey::parse(
                "RWQBAgMEBQYHCAkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ",
            )
            .unwrap(),
            fetcher: Fetcher::new(Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            )),
        };
        for (base, want) in [
            (
                "https://portal.example.org",
                "https://portal.example.org/updates/testing/rpi/manifest.json",
            ),
            (
                "https://portal.example.org/sub/?x=1",
                "https://portal.example.org/sub/updates/testing/rpi/manifest.json",
            ),
            (
                "https://portal.example.org/sub",
                "https://portal.example.org/sub/updates/testing/rpi/manifest.json",
            ),
        ] {
            let url = source(base).manifest_url(UpdateTarget::Rpi).unwrap();
            assert_eq!(url.as_str(), want);
        }
    }
}
