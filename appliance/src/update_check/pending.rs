//! The marker on /perm that carries an update across its reboot, and what each boot does
//! with it.
//!
//! gokrazy's test boot (research/gokrazy.md §5.1, `gokrazy.go` `maybeSwitchToInactive`)
//! runs the newly written root partition for exactly one boot: the old init chroots into
//! the inactive partition and rewrites the flag so that the boot after that is the old root
//! again, unless someone calls `POST /update/switch` meanwhile. So:
//!
//! - before rebooting, the updater writes `{version, from, state: trying}` here;
//! - the new version, finding its own version in the marker, waits for its health (Maddy
//!   running, account store readable) and then makes the switch permanent;
//! - if health does not come within the window, or the new version keeps restarting, it
//!   reboots, and gokrazy boots the old root;
//! - the old version, finding the marker with someone else's version, knows the update
//!   failed, logs it, and remembers not to try that version again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How far an update got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Written and test-booted; the new version has not confirmed yet.
    Trying,
    /// The new version did not become healthy; the device went back.
    Failed,
}

/// The marker's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The version being installed.
    pub version: String,
    /// The version it replaces.
    pub from: String,
    /// How far it got.
    pub state: State,
    /// How often the new version has started under this marker.
    #[serde(default)]
    pub starts: u32,
}

/// Where the marker lives.
pub fn marker_path(work_dir: &Path) -> PathBuf {
    work_dir.join("pending.json")
}

/// Reads the marker; a missing or unreadable one is `None` (an unreadable one is logged).
pub fn read(work_dir: &Path) -> Option<Pending> {
    let path = marker_path(work_dir);
    let bytes = std::fs::read(&path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(
                "update marker {} is unreadable, ignoring it: {e}",
                path.display()
            );
            None
        }
    }
}

/// Writes the marker atomically.
pub fn write(work_dir: &Path, pending: &Pending) -> std::io::Result<()> {
    std::fs::create_dir_all(work_dir)?;
    let bytes = serde_json::to_vec_pretty(pending).expect("plain data");
    crate::paths::write_atomic(&marker_path(work_dir), &bytes, 0o600)
}

/// Removes the marker.
pub fn clear(work_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(marker_path(work_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What this boot must do about the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No marker.
    Nothing,
    /// We are the new version on trial: confirm once healthy, or go back.
    Confirm(Pending),
    /// We are the new version but have restarted too often: go back now.
    GiveUp(Pending),
    /// We are the old version again: the update failed; do not try that version again.
    RolledBack(Pending),
}

/// A new version that restarts this often under the marker is taken as broken.
pub const MAX_STARTS: u32 = 5;

/// Decides from the marker and the running version.
pub fn decide(marker: Option<Pending>, running: &str) -> Action {
    let Some(p) = marker else {
        return Action::Nothing;
    };
    match p.state {
        State::Trying if p.version == running && p.starts >= MAX_STARTS => Action::GiveUp(p),
        State::Trying if p.version == running => Action::Confirm(p),
        // Back on the old root (or a marker that outlived its purpose).
        _ => Action::RolledBack(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trying(version: &str, starts: u32) -> Pending {
        Pending {
            version: version.into(),
            from: "0.1.0".into(),
            state: State::Trying,
            starts,
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "0.2.0"), Action::Nothing);
        assert!(matches!(
            decide(Some(trying("0.2.0", 0)), "0.2.0"),
            Action::Confirm(_)
        ));
        assert!(matches!(
            decide(Some(trying("0.2.0", MAX_STARTS)), "0.2.0"),
            Action::GiveUp(_)
        ));
        assert!(matches!(
            decide(Some(trying("0.2.0", 1)), "0.1.0"),
            Action::RolledBack(_)
        ));
        let mut failed = trying("0.2.0", 1);
        failed.state = State::Failed;
        assert!(matches!(
            decide(Some(failed), "0.1.0"),
            Action::RolledBack(_)
        ));
    }

    #[test]
    fn marker_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        write(dir.path(), &trying("0.2.0", 2)).unwrap();
        assert_eq!(read(dir.path()), Some(trying("0.2.0", 2)));
        clear(dir.path()).unwrap();
        clear(dir.path()).unwrap();
        assert_eq!(read(dir.path()), None);
    }
}
