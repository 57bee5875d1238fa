//! Personalization: the relay's configuration in an ext4 file system for partition 4
//! (/perm) of a base image, without copying or changing the base image.
//!
//! `mke2fs -d` (e2fsprogs, run as a separate program) builds the file system into a file
//! of exactly the partition's size, holding `chatmail/relay.toml`, where the appliance
//! reads it (appliance/src/paths.rs). Only non-secret settings are in it: the device makes
//! its DKIM key, ACME account and gokrazy password itself at first boot.
//!
//! The personalized image is never written out. It is the base image with this file in
//! place of partition 4; [`Personalized`] records what that changes: its sha256 (from the
//! hash state the base image kept at partition 4), and for the compressed downloads the
//! few chunks that differ from the base image's (typically three of the 1 MiB chunks),
//! compressed once. Everything is kept per (base image, configuration) in a directory named
//! by their hash, so a second download of the same image costs no compression at all.
//! The file system is deterministic (fixed UUID, hash seed and times derived from that
//! hash), so the same configuration always gives the same image and sha256.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use chatmail_shared::config::MAX_CONFIG_BYTES;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::base::{hex, BaseImage};
use super::chunks::{self, CHUNK};

/// Version of the personalization layout; a different one is made again.
const FORMAT: u32 = 1;

/// How many personalized images are kept per target before the oldest are removed.
const KEEP: usize = 200;

/// Where the configuration goes inside /perm (the appliance's default config path).
pub const CONFIG_PATH: &str = "chatmail/relay.toml";

/// Time stamp of every file in the personalized file system (2024-01-01T00:00:00Z):
/// fixed, so that the image depends only on the configuration.
const FS_TIME: u64 = 1_704_067_200;

/// mke2fs's settings, instead of the host's /etc/mke2fs.conf: the same ext4 features on
/// every portal host (those of Debian 12's default, which every kernel since 3.18 mounts
/// and grows online).
const MKE2FS_CONF: &str = "[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384

[fs_types]
\tdefault = {
\t}
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
";

/// Why personalization failed.
#[derive(Debug, thiserror::Error)]
pub enum PersonalizeError {
    #[error(
        "the relay configuration is {len} bytes long; an image holds at most {max} bytes of it"
    )]
    ConfigTooLarge { len: usize, max: usize },
    #[error("mke2fs (e2fsprogs) cannot be run: {0}")]
    Mke2fsMissing(io::Error),
    #[error("mke2fs failed: {0}")]
    Mke2fs(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A changed chunk of the personalized image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangedChunk {
    pub index: usize,
    pub crc: u32,
    pub gz_len: u32,
    pub zst_len: u32,
}

/// What a personalized image is, as stored in `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonalMeta {
    pub format: u32,
    pub base_sha256: String,
    pub config_sha256: String,
    /// sha256 of the personalized raw image.
    pub sha256: String,
    /// Size of the raw image (the base image's).
    pub size: u64,
    /// CRC-32 of the raw image (the gzip trailer's).
    pub crc32: u32,
    /// Exact sizes of the compressed downloads.
    pub gz_size: u64,
    pub zst_size: u64,
    pub changed: Vec<ChangedChunk>,
}

/// A personalized image: the /perm file system and the changed chunks, open for reading.
#[derive(Debug)]
pub struct Personalized {
    pub dir: PathBuf,
    pub meta: PersonalMeta,
    /// The file system for partition 4 (exactly the partition's size).
    pub perm: File,
    /// The changed chunks, compressed, in index order.
    pub gz: File,
    pub zst: File,
}

impl Personalized {
    /// The changed chunk with this index and its offsets in [`Personalized::gz`] and
    /// [`Personalized::zst`].
    pub fn changed_offsets(&self) -> Vec<(usize, u64, u32, u64, u32)> {
        let mut gz = 0u64;
        let mut zst = 0u64;
        self.meta
            .changed
            .iter()
            .map(|c| {
                let entry = (c.index, gz, c.gz_len, zst, c.zst_len);
                gz += u64::from(c.gz_len);
                zst += u64::from(c.zst_len);
                entry
            })
            .collect()
    }
}

/// The mke2fs to run: `PORTAL_MKE2FS` if set, else the first found on PATH or in the
/// sbin directories (which are not on a normal user's PATH on Debian).
pub fn mke2fs_program() -> PathBuf {
    if let Some(path) = std::env::var_os("PORTAL_MKE2FS") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("mke2fs"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("mke2fs"))
}

/// Checks that mke2fs runs and supports `-d`, for a clear start-up error.
pub fn check_mke2fs() -> Result<String, PersonalizeError> {
    let out = Command::new(mke2fs_program())
        .arg("-V")
        .output()
        .map_err(PersonalizeError::Mke2fsMissing)?;
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let first = text.lines().next().unwrap_or("").to_string();
    // -d arrived in e2fsprogs 1.43.
    let version = first
        .split_whitespace()
        .nth(1)
        .and_then(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            Some((parts.next()?, parts.next().unwrap_or(0)))
        })
        .unwrap_or((0, 0));
    if version < (1, 43) {
        return Err(PersonalizeError::Mke2fs(format!(
            "{first:?}: e2fsprogs 1.43 or newer is needed (for mke2fs -d)"
        )));
    }
    Ok(first)
}

/// The key of a personalization: base image and configuration.
pub fn key(base: &BaseImage, config_toml: &str) -> (String, String) {
    let config_sha = hex(&Sha256::digest(config_toml.as_bytes()));
    let key = hex(&Sha256::digest(
        format!(
            "chatmail-personalization-{FORMAT}\n{}\n{config_sha}",
            base.manifest.sha256
        )
        .as_bytes(),
    ));
    (key, config_sha)
}

/// The personalized image of `base` for this configuration: loaded if it was made before,
/// made now otherwise. Blocking; run it on a blocking thread.
pub fn personalize(
    base: &BaseImage,
    config_toml: &str,
    root: &Path,
) -> Result<Personalized, PersonalizeError> {
    if config_toml.len() > MAX_CONFIG_BYTES {
        return Err(PersonalizeError::ConfigTooLarge {
            len: config_toml.len(),
            max: MAX_CONFIG_BYTES,
        });
    }
    let (key, config_sha) = key(base, config_toml);
    let target_dir = root.join(base.target.id());
    let dir = target_dir.join(&key);
    if let Some(done) = open(&dir, base)? {
        return Ok(done);
    }
    std::fs::create_dir_all(&target_dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".new-")
        .tempdir_in(&target_dir)?;
    make(base, config_toml, &key, &config_sha, tmp.path())?;
    let tmp = tmp.keep();
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // Made at the same time by another request: theirs is as good as ours.
        Err(_) if dir.join("meta.json").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(err) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(err.into());
        }
    }
    prune(&target_dir, &dir);
    open(&dir, base)?.ok_or_else(|| {
        PersonalizeError::Io(io::Error::other(
            "the personalized image just made cannot be read back",
        ))
    })
}

fn open(dir: &Path, base: &BaseImage) -> Result<Option<Personalized>, PersonalizeError> {
    let meta: PersonalMeta = match std::fs::read(dir.join("meta.json")) {
        Ok(text) => match serde_json::from_slice(&text) {
            Ok(meta) => meta,
            Err(_) => return Ok(None),
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    if meta.format != FORMAT || meta.base_sha256 != base.manifest.sha256 || meta.size != base.size {
        return Ok(None);
    }
    let perm = File::open(dir.join("perm.img"))?;
    if perm.metadata()?.len() != base.perm_len {
        return Ok(None);
    }
    // Touch the directory so that pruning keeps what is in use.
    let _ = File::open(dir).and_then(|d| d.set_modified(SystemTime::now()));
    Ok(Some(Personalized {
        dir: dir.to_path_buf(),
        meta,
        perm,
        gz: File::open(dir.join("gz.bin"))?,
        zst: File::open(dir.join("zst.bin"))?,
    }))
}

/// Builds everything in `out`.
fn make(
    base: &BaseImage,
    config_toml: &str,
    key: &str,
    config_sha: &str,
    out: &Path,
) -> Result<(), PersonalizeError> {
    // The files for /perm.
    let source = out.join("source");
    let chatmail = source.join("chatmail");
    std::fs::create_dir_all(&chatmail)?;
    let config_path = source.join(CONFIG_PATH);
    std::fs::write(&config_path, config_toml)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o600))?;
    std::fs::set_permissions(&chatmail, std::fs::Permissions::from_mode(0o700))?;
    let fixed = SystemTime::UNIX_EPOCH + Duration::from_secs(FS_TIME);
    for path in [&config_path, &chatmail, &source] {
        File::open(path)?.set_modified(fixed)?;
    }

    // The file system, exactly as large as partition 4.
    let perm_path = out.join("perm.img");
    File::create(&perm_path)?.set_len(base.perm_len)?;
    let uuid = format!(
        "{}-{}-4{}-8{}-{}",
        &key[0..8],
        &key[8..12],
        &key[13..16],
        &key[17..20],
        &key[20..32]
    );
    let blocks = base.perm_len / 4096;
    let conf = out.join("mke2fs.conf");
    std::fs::write(&conf, MKE2FS_CONF)?;
    let output = Command::new(mke2fs_program())
        .args([
            "-q", "-F", "-T", "default", "-t", "ext4", "-b", "4096", "-m", "0",
        ])
        .args(["-L", "perm"])
        .args(["-U", &uuid])
        .arg("-E")
        .arg(format!("root_owner=0:0,hash_seed={uuid}"))
        .arg("-d")
        .arg(&source)
        .arg(&perm_path)
        .arg(blocks.to_string())
        .env("E2FSPROGS_FAKE_TIME", FS_TIME.to_string())
        .env("MKE2FS_CONFIG", &conf)
        .output()
        .map_err(PersonalizeError::Mke2fsMissing)?;
    if !output.status.success() {
        return Err(PersonalizeError::Mke2fs(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    std::fs::remove_dir_all(&source)?;
    std::fs::remove_file(&conf)?;

    let perm = File::open(&perm_path)?;
    let meta = changed_chunks(base, &perm, config_sha, out)?;
    std::fs::write(
        out.join("meta.json"),
        serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?,
    )?;
    Ok(())
}

/// Walks the chunks that overlap partition 4: hashes the personalized bytes, and compresses
/// the chunks that differ from the base image's.
fn changed_chunks(
    base: &BaseImage,
    perm: &File,
    config_sha: &str,
    out: &Path,
) -> Result<PersonalMeta, PersonalizeError> {
    let size = base.size;
    let perm_start = base.perm_offset;
    let perm_end = perm_start + base.perm_len;
    let count = chunks::chunk_count(size);
    let first = (perm_start / CHUNK) as usize;
    let last = ((perm_end - 1) / CHUNK) as usize;
    let mut hasher = base.prefix_hash.clone();
    let mut gz = BufWriter::new(File::create(out.join("gz.bin"))?);
    let mut zst = BufWriter::new(File::create(out.join("zst.bin"))?);
    let mut changed = Vec::new();
    let mut data = vec![0u8; CHUNK as usize];
    let mut base_data = vec![0u8; CHUNK as usize];
    for i in first..=last {
        let start = i as u64 * CHUNK;
        let len = (size - start).min(CHUNK) as usize;
        let chunk = &mut data[..len];
        // Base bytes first, then the file system over the part inside partition 4.
        let inside_start = start.max(perm_start);
        let inside_end = (start + len as u64).min(perm_end);
        if start < perm_start || start + (len as u64) > perm_end {
            base.file.read_exact_at(chunk, start)?;
        }
        let a = (inside_start - start) as usize;
        let b = (inside_end - start) as usize;
        perm.read_exact_at(&mut chunk[a..b], inside_start - perm_start)?;
        hasher.update(&chunk[a..b]);

        let info = &base.chunks.index.chunks[i];
        let unchanged = if info.zero {
            chunks::is_zero(chunk)
        } else {
            let base_chunk = chunks::read_chunk(&base.file, size, i, &mut base_data)?;
            base_chunk == &chunk[..]
        };
        if unchanged {
            continue;
        }
        let compressed = chunks::compress(chunk, i + 1 == count)?;
        gz.write_all(&compressed.gz)?;
        zst.write_all(&compressed.zst)?;
        changed.push(ChangedChunk {
            index: i,
            crc: compressed.crc,
            gz_len: compressed.gz.len() as u32,
            zst_len: compressed.zst.len() as u32,
        });
    }
    // The rest of the image after partition 4 (the backup GPT).
    let mut rest = vec![0u8; (size - perm_end) as usize];
    base.file.read_exact_at(&mut rest, perm_end)?;
    hasher.update(&rest);
    gz.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    zst.into_inner().map_err(|e| e.into_error())?.sync_all()?;

    let index = &base.chunks.index.chunks;
    let mut crc_parts = Vec::with_capacity(count);
    let mut gz_size = (chunks::GZIP_HEADER.len() + 8) as u64;
    let mut zst_size = 0u64;
    let mut next_changed = changed.iter().peekable();
    for (i, info) in index.iter().enumerate() {
        let len = (size - i as u64 * CHUNK).min(CHUNK);
        match next_changed.peek() {
            Some(c) if c.index == i => {
                crc_parts.push((c.crc, len));
                gz_size += u64::from(c.gz_len);
                zst_size += u64::from(c.zst_len);
                next_changed.next();
            }
            _ => {
                crc_parts.push((info.crc, len));
                gz_size += u64::from(info.gz_len);
                zst_size += u64::from(info.zst_len);
            }
        }
    }
    Ok(PersonalMeta {
        format: FORMAT,
        base_sha256: base.manifest.sha256.clone(),
        config_sha256: config_sha.to_string(),
        sha256: hex(&hasher.finalize()),
        size,
        crc32: chunks::combine_crc(crc_parts.into_iter()),
        gz_size,
        zst_size,
        changed,
    })
}

/// Removes the oldest personalized images beyond [`KEEP`] (never `keep`).
fn prune(target_dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(target_dir) else {
        return;
    };
    let mut dirs: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, e.path()))
        })
        .collect();
    if dirs.len() <= KEEP {
        return;
    }
    dirs.sort();
    let excess = dirs.len() - KEEP;
    for (_, path) in dirs.into_iter().take(excess) {
        if path != keep {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}
