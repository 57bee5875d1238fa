//! Base images: loading `chatmail-<target>.img` with its manifest from the images
//! directory, and refusing anything that is not exactly what the manifest promises.
//!
//! At start-up every image is hashed in full (a corrupt or truncated file is refused), its
//! partition tables are read and compared with the manifest, and the root partition's type
//! must match the target's architecture (an arm64 image offered as amd64 is refused). The
//! hash of everything before partition 4 is kept, so that the sha256 of a personalized
//! image costs only the bytes of its /perm partition.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chunks::{self, ChunkCache, CHUNK};
use super::gpt::{self, Gpt, GptPartition, ROOT_TYPE_AMD64, ROOT_TYPE_ARM64};
use super::Target;

/// The manifest `appliance/scripts/build-images.sh` writes beside each image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub target: String,
    pub arch: String,
    pub version: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub build_timestamp: String,
    pub image: String,
    pub size: u64,
    pub sha256: String,
    pub sector_size: u64,
    #[serde(default)]
    pub disk_guid: String,
    pub partitions: Vec<ManifestPartition>,
    #[serde(default)]
    pub inputs: std::collections::BTreeMap<String, String>,
}

/// One partition as the manifest lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestPartition {
    pub number: u32,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub role: String,
    pub type_guid: String,
    pub guid: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub offset: u64,
    pub size: u64,
}

/// Why a base image is refused.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: the manifest cannot be read: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Mismatch { path: PathBuf, message: String },
    #[error("{path}: the partition table is damaged: {message}")]
    PartitionTable { path: PathBuf, message: String },
    #[error(
        "{path}: the image is corrupt: its sha256 is {actual}, the manifest says {expected}. \
         Rebuild it with appliance/scripts/build-images.sh or copy it again."
    )]
    Corrupt {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "{path}: wrong architecture for target {target}: the root partition is for {found}, \
         the target needs {wanted}"
    )]
    WrongArchitecture {
        path: PathBuf,
        target: &'static str,
        found: String,
        wanted: &'static str,
    },
}

/// A verified base image, open for reading.
#[derive(Debug)]
pub struct BaseImage {
    pub target: Target,
    pub manifest: Manifest,
    pub path: PathBuf,
    pub file: File,
    pub size: u64,
    /// The /perm partition (number 4): offset and length in bytes.
    pub perm_offset: u64,
    pub perm_len: u64,
    /// sha256 state after every byte before [`BaseImage::perm_offset`].
    pub prefix_hash: Sha256,
    /// The partition tables as read.
    pub gpt: Gpt,
    /// The compressed chunks.
    pub chunks: ChunkCache,
}

fn arch_of_root_type(type_guid: &str) -> &'static str {
    match type_guid {
        ROOT_TYPE_AMD64 => "x86_64",
        ROOT_TYPE_ARM64 => "aarch64",
        _ => "an unknown architecture",
    }
}

impl BaseImage {
    /// Loads and verifies `chatmail-<target>.img` and its manifest from `dir`, and opens
    /// (or builds) its chunk cache under `cache_root`. `Ok(None)` when the target has no
    /// image there at all.
    pub fn load(dir: &Path, target: Target, cache_root: &Path) -> Result<Option<Self>, BaseError> {
        let manifest_path = dir.join(format!("chatmail-{}.json", target.id()));
        let text = match std::fs::read(&manifest_path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(BaseError::Io {
                    path: manifest_path,
                    source,
                })
            }
        };
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|err| BaseError::Manifest {
                path: manifest_path.clone(),
                message: err.to_string(),
            })?;
        let mismatch = |message: String| BaseError::Mismatch {
            path: manifest_path.clone(),
            message,
        };
        if manifest.format != 1 {
            return Err(mismatch(format!(
                "manifest format {} is not supported (1 is)",
                manifest.format
            )));
        }
        if manifest.target != target.id() {
            return Err(mismatch(format!(
                "the manifest is for target {:?}, the file name says {}",
                manifest.target,
                target.id()
            )));
        }
        if manifest.arch != target.arch() {
            return Err(BaseError::WrongArchitecture {
                path: manifest_path,
                target: target.id(),
                found: manifest.arch.clone(),
                wanted: target.arch(),
            });
        }
        if manifest.sector_size != gpt::SECTOR {
            return Err(mismatch(format!(
                "sector size {} (only 512 is supported)",
                manifest.sector_size
            )));
        }
        if manifest.image.contains('/') || manifest.image.is_empty() {
            return Err(mismatch(format!("image name {:?}", manifest.image)));
        }

        let path = dir.join(&manifest.image);
        let io_err = |source| BaseError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        if size != manifest.size {
            return Err(BaseError::Mismatch {
                path: path.clone(),
                message: format!(
                    "the image has {size} bytes, the manifest says {}; it is truncated or not the image the manifest describes",
                    manifest.size
                ),
            });
        }
        let table = gpt::read(&file).map_err(|err| BaseError::PartitionTable {
            path: path.clone(),
            message: err.to_string(),
        })?;
        check_partitions(&path, target, &manifest, &table)?;
        let perm = table.partition(4).expect("checked above").clone();
        if perm.offset() % CHUNK != 0 {
            return Err(BaseError::Mismatch {
                path: path.clone(),
                message: format!(
                    "partition 4 starts at byte {}, not on a 1 MiB boundary",
                    perm.offset()
                ),
            });
        }

        // The whole image, hashed once; the state before /perm is kept.
        let (prefix_hash, actual) = hash_with_prefix(&file, perm.offset()).map_err(io_err)?;
        if !actual.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(BaseError::Corrupt {
                path,
                expected: manifest.sha256.clone(),
                actual,
            });
        }
        let chunks = chunks::open_or_build(cache_root, &file, size, &actual).map_err(|source| {
            BaseError::Io {
                path: cache_root.join(&actual),
                source,
            }
        })?;
        tracing::info!(
            target = target.id(),
            version = %manifest.version,
            size,
            sha256 = %actual,
            "base image ready"
        );
        Ok(Some(BaseImage {
            target,
            perm_offset: perm.offset(),
            perm_len: perm.size(),
            manifest,
            path,
            file,
            size,
            prefix_hash,
            gpt: table,
            chunks,
        }))
    }

    /// The /perm partition's entry.
    pub fn perm_partition(&self) -> &GptPartition {
        self.gpt.partition(4).expect("verified at load")
    }
}

/// The partition tables must hold gokrazy's four partitions exactly as the manifest lists
/// them, with the root type of the target's architecture.
fn check_partitions(
    path: &Path,
    target: Target,
    manifest: &Manifest,
    table: &Gpt,
) -> Result<(), BaseError> {
    let mismatch = |message: String| BaseError::Mismatch {
        path: path.to_path_buf(),
        message,
    };
    if table.partitions.len() != 4 || (1..=4).any(|n| table.partition(n).is_none()) {
        return Err(mismatch(format!(
            "a gokrazy image has partitions 1–4; this one has {:?}",
            table
                .partitions
                .iter()
                .map(|p| p.number)
                .collect::<Vec<_>>()
        )));
    }
    let root = table.partition(2).expect("checked");
    let found = arch_of_root_type(&root.type_guid);
    if found != target.arch() {
        return Err(BaseError::WrongArchitecture {
            path: path.to_path_buf(),
            target: target.id(),
            found: found.to_string(),
            wanted: target.arch(),
        });
    }
    if manifest.partitions.len() != table.partitions.len() {
        return Err(mismatch(format!(
            "the manifest lists {} partitions, the image has {}",
            manifest.partitions.len(),
            table.partitions.len()
        )));
    }
    for m in &manifest.partitions {
        let Some(p) = table.partition(m.number) else {
            return Err(mismatch(format!(
                "partition {} of the manifest is not in the image",
                m.number
            )));
        };
        let same = p.first_lba == m.first_lba
            && p.last_lba == m.last_lba
            && p.offset() == m.offset
            && p.size() == m.size
            && p.type_guid.eq_ignore_ascii_case(&m.type_guid)
            && p.guid.eq_ignore_ascii_case(&m.guid);
        if !same {
            return Err(mismatch(format!(
                "partition {} differs from the manifest (image: LBA {}–{}, type {}; manifest: LBA {}–{}, type {})",
                m.number, p.first_lba, p.last_lba, p.type_guid, m.first_lba, m.last_lba, m.type_guid
            )));
        }
    }
    Ok(())
}

/// sha256 of the whole file, and the hasher state after `prefix` bytes.
fn hash_with_prefix(file: &File, prefix: u64) -> io::Result<(Sha256, String)> {
    let mut reader = io::BufReader::with_capacity(4 << 20, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut remaining = prefix;
    while remaining > 0 {
        let want = remaining.min(buf.len() as u64) as usize;
        reader.read_exact(&mut buf[..want])?;
        hasher.update(&buf[..want]);
        remaining -= want as u64;
    }
    let prefix_state = hasher.clone();
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok((prefix_state, hex(&hasher.finalize())))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
