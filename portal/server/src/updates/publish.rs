//! `chatmail-portal publish-release`: a base image (from appliance/scripts/build-images.sh)
//! becomes the current release of a channel for its target.
//!
//! The pieces are the ones gokrazy's update API takes (research/gokrazy.md §5.1), cut out
//! of the image by the partition offsets its manifest lists: the MBR boot code (the first
//! 446 bytes: on amd64 it holds the BIOS loader with the boot files' block addresses, so
//! it must match the boot partition), the boot partition's FAT file system, and the root
//! partition's squashfs. The file systems are cut to their own length (FAT: total sectors
//! from its boot sector; squashfs: `bytes_used` from its superblock), because gokrazy
//! builds them sized to content inside larger partitions, and a device should not download
//! hundreds of MiB of padding.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chatmail_shared::update_manifest::{
    self, Channel, Piece, PieceName, Pieces, ReleaseVersion, Sha256Digest, UpdateManifest,
    UpdateTarget, MBR_BYTES,
};
use sha2::{Digest, Sha256};

use super::keys::{self, KeyError};
use crate::images::base::Manifest as BaseManifest;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Image(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("version {new} is not newer than {current}, the current release on {channel} for {target}; devices would refuse it")]
    NotNewer {
        new: String,
        current: String,
        channel: Channel,
        target: UpdateTarget,
    },
    #[error("signing: {0}")]
    Sign(String),
}

/// The three pieces cut from an image: (name, offset, length) in the image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub name: PieceName,
    pub offset: u64,
    pub len: u64,
}

/// Reads the base image's manifest for `target` from `dir` and checks it.
pub fn read_base_manifest(
    dir: &Path,
    target: UpdateTarget,
) -> Result<(BaseManifest, PathBuf), PublishError> {
    let path = dir.join(format!("chatmail-{}.json", target.id()));
    let text = std::fs::read(&path).map_err(|source| PublishError::Io {
        path: path.clone(),
        source,
    })?;
    let manifest: BaseManifest = serde_json::from_slice(&text)
        .map_err(|e| PublishError::Image(format!("{}: {e}", path.display())))?;
    if manifest.target != target.id() {
        return Err(PublishError::Image(format!(
            "{}: the manifest is for target {:?}, not {}",
            path.display(),
            manifest.target,
            target
        )));
    }
    let arch = match target {
        UpdateTarget::Amd64 => "x86_64",
        UpdateTarget::Rpi => "aarch64",
    };
    if manifest.arch != arch {
        return Err(PublishError::Image(format!(
            "{}: the image is for {:?}, target {target} needs {arch}",
            path.display(),
            manifest.arch
        )));
    }
    if manifest.image.is_empty() || manifest.image.contains('/') {
        return Err(PublishError::Image(format!(
            "{}: image name {:?}",
            path.display(),
            manifest.image
        )));
    }
    let image = dir.join(&manifest.image);
    Ok((manifest, image))
}

/// Where the pieces lie in the image.
pub fn cuts(manifest: &BaseManifest, image: &File) -> Result<[Cut; 3], PublishError> {
    let partition = |n: u32| {
        manifest
            .partitions
            .iter()
            .find(|p| p.number == n)
            .ok_or_else(|| PublishError::Image(format!("the manifest lists no partition {n}")))
    };
    let boot = partition(1)?;
    let root = partition(2)?;
    for p in [boot, root] {
        if p.offset
            .checked_add(p.size)
            .is_none_or(|end| end > manifest.size)
            || p.offset < MBR_BYTES
        {
            return Err(PublishError::Image(format!(
                "partition {} (bytes {}+{}) does not lie inside the {}-byte image",
                p.number, p.offset, p.size, manifest.size
            )));
        }
    }
    let read = |offset: u64, len: usize| -> Result<Vec<u8>, PublishError> {
        let mut buf = vec![0u8; len];
        image
            .read_exact_at(&mut buf, offset)
            .map_err(|e| PublishError::Image(format!("reading the image at byte {offset}: {e}")))?;
        Ok(buf)
    };
    let boot_len = fat_len(&read(boot.offset, 512)?)
        .filter(|n| *n > 0 && *n <= boot.size)
        .unwrap_or(boot.size);
    let root_len = squashfs_len(&read(root.offset, 96)?).ok_or_else(|| {
        PublishError::Image("partition 2 does not start with a squashfs file system".into())
    })?;
    if root_len > root.size {
        return Err(PublishError::Image(format!(
            "the squashfs in partition 2 claims {root_len} bytes, more than the partition's {}",
            root.size
        )));
    }
    Ok([
        Cut {
            name: PieceName::Root,
            offset: root.offset,
            len: root_len,
        },
        Cut {
            name: PieceName::Boot,
            offset: boot.offset,
            len: boot_len,
        },
        Cut {
            name: PieceName::Mbr,
            offset: 0,
            len: MBR_BYTES,
        },
    ])
}

/// A FAT file system's length from its boot sector: total sectors × bytes per sector.
fn fat_len(sector: &[u8]) -> Option<u64> {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xAA] {
        return None;
    }
    let bytes_per_sector = u64::from(u16::from_le_bytes([sector[11], sector[12]]));
    if !bytes_per_sector.is_power_of_two() || !(512..=4096).contains(&bytes_per_sector) {
        return None;
    }
    let small = u64::from(u16::from_le_bytes([sector[19], sector[20]]));
    let large = u64::from(u32::from_le_bytes([
        sector[32], sector[33], sector[34], sector[35],
    ]));
    let sectors = if small != 0 { small } else { large };
    Some(sectors * bytes_per_sector)
}

/// A squashfs's length: `bytes_used` (superblock offset 40), rounded up to 4 KiB as
/// squashfs tools pad it.
fn squashfs_len(superblock: &[u8]) -> Option<u64> {
    if superblock.len() < 48 || &superblock[..4] != b"hsqs" {
        return None;
    }
    let used = u64::from_le_bytes(superblock[40..48].try_into().ok()?);
    Some(used.div_ceil(4096) * 4096)
}

/// sha256 of the whole file (the base manifest promises it).
fn file_sha256(path: &Path) -> io::Result<String> {
    let mut file = io::BufReader::with_capacity(4 << 20, File::open(path)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Sha256Digest(hasher.finalize().into()).to_hex())
}

/// Copies `len` bytes at `offset` of `image` into the pieces directory, named by their
/// sha256 (written to a temporary name first, so a crash leaves no wrong piece).
fn store_piece(image: &mut File, cut: &Cut, pieces: &Path) -> Result<Sha256Digest, PublishError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PublishError::Io { path, source }
    };
    let tmp = pieces.join(format!(".{}.{}.tmp", cut.name, std::process::id()));
    let mut out = File::create(&tmp).map_err(io_err(&tmp))?;
    image
        .seek(SeekFrom::Start(cut.offset))
        .map_err(io_err(&tmp))?;
    let mut hasher = Sha256::new();
    let mut left = cut.len;
    let mut buf = vec![0u8; 4 << 20];
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        image.read_exact(&mut buf[..want]).map_err(io_err(&tmp))?;
        hasher.update(&buf[..want]);
        out.write_all(&buf[..want]).map_err(io_err(&tmp))?;
        left -= want as u64;
    }
    out.sync_all().map_err(io_err(&tmp))?;
    let digest = Sha256Digest(hasher.finalize().into());
    let path = pieces.join(digest.to_hex());
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(digest)
}

/// What was published.
#[derive(Debug)]
pub struct Published {
    pub manifest: UpdateManifest,
    pub manifest_bytes: Vec<u8>,
    pub signature: String,
}

/// Cuts, stores and signs a release of the base image in `images_dir` for `target`.
/// `current` is the channel's current version, if any: the new one must be newer.
pub fn prepare(
    images_dir: &Path,
    channel: Channel,
    target: UpdateTarget,
    key_file: &Path,
    releases_dir: &Path,
    current: Option<&str>,
    now_unix: i64,
) -> Result<Published, PublishError> {
    // The key first: a missing or readable key should not cost a full image hash.
    let key = keys::load(key_file)?;
    let (base, image_path) = read_base_manifest(images_dir, target)?;
    // The build script appends `+<input hash>`; releases are ordered by the version alone
    // (the appliance reports its crate version), so a rebuild is not a new release.
    let release = base
        .version
        .split_once('+')
        .map_or(base.version.as_str(), |(v, _)| v);
    let version = ReleaseVersion::parse(release).map_err(|e| {
        PublishError::Image(format!("the base image's version {:?} {e}", base.version))
    })?;
    if let Some(current) = current.and_then(|c| ReleaseVersion::parse(c).ok()) {
        if version <= current {
            return Err(PublishError::NotNewer {
                new: version.to_string(),
                current: current.to_string(),
                channel,
                target,
            });
        }
    }
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PublishError::Io { path, source }
    };
    let size = std::fs::metadata(&image_path)
        .map_err(io_err(&image_path))?
        .len();
    if size != base.size {
        return Err(PublishError::Image(format!(
            "{}: {size} bytes, the manifest says {}",
            image_path.display(),
            base.size
        )));
    }
    let actual = file_sha256(&image_path).map_err(io_err(&image_path))?;
    if !actual.eq_ignore_ascii_case(&base.sha256) {
        return Err(PublishError::Image(format!(
            "{}: sha256 {actual}, the manifest says {}; rebuild or copy the image again",
            image_path.display(),
            base.sha256
        )));
    }
    let mut image = File::open(&image_path).map_err(io_err(&image_path))?;
    let cuts = cuts(&base, &image)?;
    let pieces_dir = super::pieces_dir(releases_dir);
    std::fs::create_dir_all(&pieces_dir).map_err(io_err(&pieces_dir))?;
    let mut stored = Vec::new();
    for cut in &cuts {
        let digest = store_piece(&mut image, cut, &pieces_dir)?;
        stored.push(Piece {
            name: cut.name,
            size: cut.len,
            sha256: digest,
            url: format!("pieces/{}", digest.to_hex()),
        });
    }
    let [root, boot, mbr]: [Piece; 3] = stored.try_into().expect("three cuts");
    let manifest = UpdateManifest {
        channel,
        target,
        version,
        published_at: now_unix,
        pieces: Pieces { root, boot, mbr },
    };
    let manifest_bytes = manifest.to_json();
    // The manifest must read back exactly as devices will read it.
    UpdateManifest::parse(&manifest_bytes)
        .map_err(|e| PublishError::Sign(format!("the manifest does not parse back: {e}")))?;
    let signature = sign(&key, &manifest, &manifest_bytes)?;
    Ok(Published {
        manifest,
        manifest_bytes,
        signature,
    })
}

/// Signs `bytes` (the JSON of `manifest`) with `key` and checks that devices accept the
/// signature.
pub fn sign(
    key: &keys::SigningKey,
    manifest: &UpdateManifest,
    bytes: &[u8],
) -> Result<String, PublishError> {
    let signature = minisign::sign(
        Some(&key.public),
        &key.secret,
        bytes,
        Some(&manifest.trusted_comment()),
        Some("chatmail-portal update manifest signature"),
    )
    .map_err(|e| PublishError::Sign(e.to_string()))?
    .into_string();
    let device_key = chatmail_shared::signing_key::UpdateSigningKey::parse(&key.public.to_base64())
        .map_err(|e| PublishError::Sign(format!("the public key: {e}")))?;
    update_manifest::verify(bytes, signature.as_bytes(), &device_key)
        .map_err(|e| PublishError::Sign(format!("devices would refuse the signature: {e}")))?;
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_system_lengths() {
        let mut fat = vec![0u8; 512];
        fat[11..13].copy_from_slice(&512u16.to_le_bytes());
        fat[19..21].copy_from_slice(&1000u16.to_le_bytes());
        fat[510] = 0x55;
        fat[511] = 0xAA;
        assert_eq!(fat_len(&fat), Some(512_000));
        fat[19..21].copy_from_slice(&0u16.to_le_bytes());
        fat[32..36].copy_from_slice(&70_000u32.to_le_bytes());
        assert_eq!(fat_len(&fat), Some(70_000 * 512));
        fat[511] = 0;
        assert_eq!(fat_len(&fat), None);

        let mut sq = vec![0u8; 96];
        sq[..4].copy_from_slice(b"hsqs");
        sq[40..48].copy_from_slice(&5000u64.to_le_bytes());
        assert_eq!(squashfs_len(&sq), Some(8192));
        sq[0] = b'x';
        assert_eq!(squashfs_len(&sq), None);
    }
}
