//! Disk images for the relay's device: the base images the portal offers, personalized per
//! relay, streamed in the formats flashing tools take.
//!
//! - [`base`]: loads `chatmail-<target>.img` + manifest from `--images-dir`, refuses a
//!   corrupt or wrong-architecture image at start-up, and keeps its compressed chunks;
//! - [`personalize`]: the relay's configuration as an ext4 /perm (mke2fs -d), and what that
//!   changes in the image;
//! - [`stream`]: the raw image and the `.img.gz`/`.img.zst` downloads from those parts,
//!   with Range;
//! - [`imager`]: the Raspberry Pi Imager repository JSON;
//! - [`quota`]: who may download how often (the group's daily quota, Imager links).

pub mod base;
pub mod chunks;
pub mod gpt;
pub mod imager;
pub mod personalize;
pub mod quota;
pub mod stream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use base::{BaseError, BaseImage};
use personalize::{PersonalizeError, Personalized};

/// The devices images are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// x86-64 PCs and virtual machines.
    Amd64,
    /// Raspberry Pi 4 and 5 (arm64).
    Rpi,
}

impl Target {
    pub const ALL: [Target; 2] = [Target::Rpi, Target::Amd64];

    /// The name in file names and URLs.
    pub fn id(self) -> &'static str {
        match self {
            Target::Amd64 => "amd64",
            Target::Rpi => "rpi",
        }
    }

    pub fn from_id(id: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The CPU architecture of the image's programs.
    pub fn arch(self) -> &'static str {
        match self {
            Target::Amd64 => "x86_64",
            Target::Rpi => "aarch64",
        }
    }

    /// What people call the device.
    pub fn label(self) -> &'static str {
        match self {
            Target::Amd64 => "PC or virtual machine (x86-64)",
            Target::Rpi => "Raspberry Pi 4 or 5",
        }
    }
}

/// Why the images could not be loaded at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error("the images directory {0} cannot be used: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("base image refused: {0}")]
    Base(#[from] BaseError),
    #[error("base images are there, but they cannot be personalized: {0}")]
    Tools(PersonalizeError),
}

/// How many downloads run at once, in all and per group.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub concurrent: usize,
    pub concurrent_per_group: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            concurrent: 8,
            concurrent_per_group: 2,
        }
    }
}

/// The loaded base images and what personalizes and streams them. Cheap to clone.
#[derive(Clone)]
pub struct Images(Arc<Inner>);

struct Inner {
    dir: Option<PathBuf>,
    bases: HashMap<Target, Arc<BaseImage>>,
    personalized_root: PathBuf,
    /// Recently used personalized images.
    recent: Mutex<HashMap<String, Arc<Personalized>>>,
    /// One personalization at a time (each takes well under a second).
    making: Mutex<()>,
    slots: Arc<Semaphore>,
    group_slots: Mutex<HashMap<uuid::Uuid, Arc<Semaphore>>>,
    limits: Limits,
    progress: Mutex<Vec<Arc<Progress>>>,
}

/// How far one download has been sent, for the download page's progress bar.
#[derive(Debug)]
pub struct Progress {
    pub group: uuid::Uuid,
    pub file: String,
    /// Bytes this response sends (the range asked for).
    pub total: u64,
    pub sent: AtomicU64,
    pub done: AtomicBool,
    finished: Mutex<Option<Instant>>,
}

impl Progress {
    /// Counts bytes handed to the network.
    pub fn add(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The response ended (completely or not).
    pub fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
        *self.finished.lock().expect("lock") = Some(Instant::now());
    }
}

/// How long a finished download stays on the page.
const SHOW_FINISHED: Duration = Duration::from_secs(120);

/// How many personalized images stay open in memory.
const RECENT: usize = 64;

impl Images {
    /// No images: the download step says so.
    pub fn none() -> Images {
        Images(Arc::new(Inner {
            dir: None,
            bases: HashMap::new(),
            personalized_root: PathBuf::new(),
            recent: Mutex::default(),
            making: Mutex::default(),
            slots: Arc::new(Semaphore::new(0)),
            group_slots: Mutex::default(),
            limits: Limits::default(),
            progress: Mutex::default(),
        }))
    }

    /// Loads every base image found in `dir` (blocking: hashes each image in full, and
    /// builds its chunk cache the first time).
    pub fn load(dir: &Path, limits: Limits) -> Result<Images, ImagesError> {
        let meta = std::fs::metadata(dir).map_err(|e| ImagesError::Dir(dir.to_path_buf(), e))?;
        if !meta.is_dir() {
            return Err(ImagesError::Dir(
                dir.to_path_buf(),
                std::io::Error::other("not a directory"),
            ));
        }
        let cache_root = dir.join("cache");
        let personalized_root = dir.join("personalized");
        for d in [&cache_root, &personalized_root] {
            std::fs::create_dir_all(d).map_err(|e| ImagesError::Dir(d.clone(), e))?;
        }
        let mut bases = HashMap::new();
        for target in Target::ALL {
            if let Some(base) = BaseImage::load(dir, target, &cache_root)? {
                bases.insert(target, Arc::new(base));
            }
        }
        if bases.is_empty() {
            tracing::warn!(dir = %dir.display(), "no base images (chatmail-<target>.img with .json) in the images directory");
        } else {
            let version = personalize::check_mke2fs().map_err(ImagesError::Tools)?;
            tracing::info!(%version, "personalizing with mke2fs");
        }
        Ok(Images(Arc::new(Inner {
            dir: Some(dir.to_path_buf()),
            bases,
            personalized_root,
            recent: Mutex::default(),
            making: Mutex::default(),
            slots: Arc::new(Semaphore::new(limits.concurrent)),
            group_slots: Mutex::default(),
            limits,
            progress: Mutex::default(),
        })))
    }

    /// The images directory, if one is configured.
    pub fn dir(&self) -> Option<&Path> {
        self.0.dir.as_deref()
    }

    /// The base image of a target.
    pub fn base(&self, target: Target) -> Option<Arc<BaseImage>> {
        self.0.bases.get(&target).cloned()
    }

    /// Targets with a base image, in display order.
    pub fn targets(&self) -> Vec<Target> {
        Target::ALL
            .into_iter()
            .filter(|t| self.0.bases.contains_key(t))
            .collect()
    }

    /// The personalized image of `target` for a configuration (made if needed).
    pub async fn personalized(
        &self,
        target: Target,
        config_toml: &str,
    ) -> Result<(Arc<BaseImage>, Arc<Personalized>), PersonalizeError> {
        let base = self
            .base(target)
            .ok_or_else(|| PersonalizeError::Io(std::io::Error::other("no base image")))?;
        let (key, _) = personalize::key(&base, config_toml);
        if let Some(found) = self.0.recent.lock().expect("lock").get(&key).cloned() {
            return Ok((base, found));
        }
        let this = self.clone();
        let config = config_toml.to_string();
        let base_c = base.clone();
        let made = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = this.0.making.lock().expect("lock");
            personalize::personalize(&base_c, &config, &this.0.personalized_root)
        })
        .await
        .map_err(|e| PersonalizeError::Io(std::io::Error::other(e.to_string())))??;
        let made = Arc::new(made);
        let mut recent = self.0.recent.lock().expect("lock");
        if recent.len() >= RECENT {
            recent.clear();
        }
        recent.insert(key, made.clone());
        Ok((base, made))
    }

    /// A download slot, for the whole portal and for the group; `None` when either is full.
    pub fn try_slot(
        &self,
        group: uuid::Uuid,
    ) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let group_sem = {
            let mut map = self.0.group_slots.lock().expect("lock");
            map.retain(|_, s| s.available_permits() < self.0.limits.concurrent_per_group);
            map.entry(group)
                .or_insert_with(|| Arc::new(Semaphore::new(self.0.limits.concurrent_per_group)))
                .clone()
        };
        let group_permit = group_sem.try_acquire_owned().ok()?;
        let permit = self.0.slots.clone().try_acquire_owned().ok()?;
        Some((permit, group_permit))
    }

    /// Starts tracking a download's progress.
    pub fn track(&self, group: uuid::Uuid, file: String, total: u64) -> Arc<Progress> {
        let progress = Arc::new(Progress {
            group,
            file,
            total,
            sent: AtomicU64::new(0),
            done: AtomicBool::new(false),
            finished: Mutex::new(None),
        });
        let mut all = self.0.progress.lock().expect("lock");
        all.retain(|p| {
            p.finished
                .lock()
                .expect("lock")
                .is_none_or(|at| at.elapsed() < SHOW_FINISHED)
        });
        all.push(progress.clone());
        progress
    }

    /// The group's downloads now running or recently finished: (file, sent, total, done).
    pub fn progress_of(&self, group: uuid::Uuid) -> Vec<(String, u64, u64, bool)> {
        self.0
            .progress
            .lock()
            .expect("lock")
            .iter()
            .filter(|p| p.group == group)
            .filter(|p| {
                p.finished
                    .lock()
                    .expect("lock")
                    .is_none_or(|at| at.elapsed() < SHOW_FINISHED)
            })
            .map(|p| {
                (
                    p.file.clone(),
                    p.sent.load(Ordering::Relaxed),
                    p.total,
                    p.done.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}
