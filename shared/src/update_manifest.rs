//! The update manifest: what the portal publishes per channel and target, and what a device
//! checks before it writes a single byte to its inactive root partition.
//!
//! A manifest names one release (version) for one channel and one target and lists the
//! pieces gokrazy's local update API takes (research/gokrazy.md §5.1): the root file system
//! (written to the inactive root partition), the boot partition and the MBR boot code, each
//! with its size and sha256. The portal signs the exact manifest bytes with minisign
//! (research/crates.md §10); the device verifies that signature with the public key from its
//! own config *before* parsing, so nothing an attacker controls reaches the parser unless it
//! was signed.
//!
//! Parsing is strict (size limit, unknown fields, exact piece set, hex digests, piece sizes
//! within the partitions) and the types cannot hold a manifest with a missing piece or a
//! malformed digest. [`check_offer`] holds the policy: wrong channel or target, a
//! downgrade and the same version are all refused.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::signing_key::UpdateSigningKey;

/// Larger manifests are refused unread (a real one is well under 2 KiB).
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024;

/// Larger signature files are refused unread (a minisign signature is about 300 bytes).
pub const MAX_SIGNATURE_BYTES: usize = 2 * 1024;

/// The manifest format this crate reads and writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// gokrazy's boot partition is 100 MiB (research/gokrazy.md §1.2).
pub const MAX_BOOT_BYTES: u64 = 100 * 1024 * 1024;
/// gokrazy's root partitions are 500 MiB each (research/gokrazy.md §1.2).
pub const MAX_ROOT_BYTES: u64 = 500 * 1024 * 1024;
/// gokrazy's update client sends the first 446 bytes of the disk: boot code and disk
/// signature, never the partition entries (research/gokrazy.md §5.1).
pub const MBR_BYTES: u64 = 446;

/// Longest piece URL accepted.
pub const MAX_URL_LEN: usize = 1000;

/// Why a manifest or its signature was refused. `Display` is the log line's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The manifest is larger than [`MAX_MANIFEST_BYTES`].
    #[error(
        "the manifest is {len} bytes or more; at most {MAX_MANIFEST_BYTES} bytes are accepted"
    )]
    TooLarge {
        /// Its size (or how much was read before giving up).
        len: usize,
    },
    /// The signature file is larger than [`MAX_SIGNATURE_BYTES`] or not text.
    #[error("the signature file is not a minisign signature: {0}")]
    SignatureFormat(String),
    /// The signature was made with another key (its key id differs).
    #[error("the manifest is signed with another key (key id {found}, expected {expected})")]
    WrongKey {
        /// Key id in the signature.
        found: String,
        /// Key id of the configured key.
        expected: String,
    },
    /// The signature does not match the manifest bytes (tampered manifest or signature).
    #[error("the signature does not match the manifest: it was changed after signing or signed by someone else")]
    BadSignature,
    /// Not valid JSON, or a field is missing, unknown or of the wrong type.
    #[error("the manifest is malformed: {0}")]
    Malformed(String),
    /// A field has a value outside its rules.
    #[error("the manifest's {field} is invalid: {rule}")]
    Invalid {
        /// The field, e.g. `pieces[0].sha256`.
        field: String,
        /// The rule broken.
        rule: String,
    },
}

impl ManifestError {
    fn invalid(field: impl Into<String>, rule: impl fmt::Display) -> Self {
        ManifestError::Invalid {
            field: field.into(),
            rule: rule.to_string(),
        }
    }
}

/// A release channel. Devices follow one; the portal publishes per channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Releases for everyone (the default).
    #[default]
    Stable,
    /// Releases to try before they go to stable.
    Testing,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 2] = [Channel::Stable, Channel::Testing];

    /// The name in config files, manifests and URLs.
    pub fn id(self) -> &'static str {
        match self {
            Channel::Stable => "stable",
            Channel::Testing => "testing",
        }
    }

    /// Parses a channel name.
    pub fn parse(text: &str) -> Result<Channel, String> {
        Channel::ALL
            .into_iter()
            .find(|c| c.id() == text)
            .ok_or_else(|| format!("must be \"stable\" or \"testing\", got {text:?}"))
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The hardware a release is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UpdateTarget {
    /// x86-64 PCs and virtual machines.
    Amd64,
    /// Raspberry Pi 4 and 5 (arm64).
    Rpi,
}

impl UpdateTarget {
    /// Every target.
    pub const ALL: [UpdateTarget; 2] = [UpdateTarget::Amd64, UpdateTarget::Rpi];

    /// The name in manifests, image file names and URLs.
    pub fn id(self) -> &'static str {
        match self {
            UpdateTarget::Amd64 => "amd64",
            UpdateTarget::Rpi => "rpi",
        }
    }

    /// Parses a target name.
    pub fn parse(text: &str) -> Result<UpdateTarget, String> {
        UpdateTarget::ALL
            .into_iter()
            .find(|t| t.id() == text)
            .ok_or_else(|| format!("must be \"amd64\" or \"rpi\", got {text:?}"))
    }

    /// The target this program was built for, if it is one.
    pub fn of_this_build() -> Option<UpdateTarget> {
        match std::env::consts::ARCH {
            "x86_64" => Some(UpdateTarget::Amd64),
            "aarch64" => Some(UpdateTarget::Rpi),
            _ => None,
        }
    }
}

impl fmt::Display for UpdateTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A release version: semantic versioning without build metadata (which semver ignores
/// when ordering, so two different builds could look like the same release).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReleaseVersion(semver::Version);

impl ReleaseVersion {
    /// Parses `MAJOR.MINOR.PATCH[-PRE]`.
    pub fn parse(text: &str) -> Result<ReleaseVersion, String> {
        if text.len() > 64 {
            return Err("must be at most 64 characters long".into());
        }
        let v = semver::Version::parse(text)
            .map_err(|e| format!("must be a version such as 1.2.3 ({e})"))?;
        if !v.build.is_empty() {
            return Err("must not carry build metadata (+…)".into());
        }
        Ok(ReleaseVersion(v))
    }
}

impl PartialOrd for ReleaseVersion {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ReleaseVersion {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp_precedence(&other.0)
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A sha256 digest (lowercase hex in text).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Parses 64 hex digits (either case).
    pub fn parse(text: &str) -> Result<Sha256Digest, String> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(format!(
                "must be 64 hexadecimal digits, got {} characters",
                text.chars().count()
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let digit = |b: u8| (b as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => out[i] = (h * 16 + l) as u8,
                _ => return Err("must be 64 hexadecimal digits (0-9, a-f)".into()),
            }
        }
        Ok(Sha256Digest(out))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

/// Which update piece, named as gokrazy's update API names its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PieceName {
    /// The root file system (squashfs), written to the inactive root partition.
    Root,
    /// The boot partition (FAT: kernel, firmware, cmdline.txt).
    Boot,
    /// The MBR boot code and disk signature (first 446 bytes of the disk).
    Mbr,
}

impl PieceName {
    /// In the order gokrazy's own updater writes them: root first, because writing the
    /// inactive partition cannot break the running system (research/gokrazy.md §5.1).
    pub const ALL: [PieceName; 3] = [PieceName::Root, PieceName::Boot, PieceName::Mbr];

    /// The name in manifests.
    pub fn id(self) -> &'static str {
        match self {
            PieceName::Root => "root",
            PieceName::Boot => "boot",
            PieceName::Mbr => "mbr",
        }
    }

    fn parse(text: &str) -> Option<PieceName> {
        PieceName::ALL.into_iter().find(|p| p.id() == text)
    }

    /// Which sizes are acceptable.
    fn check_size(self, size: u64) -> Result<(), String> {
        match self {
            PieceName::Mbr if size != MBR_BYTES => {
                Err(format!("must be exactly {MBR_BYTES} bytes, got {size}"))
            }
            PieceName::Boot if size == 0 || size > MAX_BOOT_BYTES => Err(format!(
                "must be between 1 and {MAX_BOOT_BYTES} bytes (the boot partition), got {size}"
            )),
            PieceName::Root if size == 0 || size > MAX_ROOT_BYTES => Err(format!(
                "must be between 1 and {MAX_ROOT_BYTES} bytes (a root partition), got {size}"
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for PieceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One piece: its size, digest and where to get it. `url` is resolved against the
/// manifest's own URL, so a relative `pieces/<sha256>` keeps the portal movable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Which piece.
    pub name: PieceName,
    /// Exact length in bytes.
    pub size: u64,
    /// sha256 of the bytes.
    pub sha256: Sha256Digest,
    /// Relative or absolute URL.
    pub url: String,
}

/// Exactly one of each piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pieces {
    /// The root file system.
    pub root: Piece,
    /// The boot partition.
    pub boot: Piece,
    /// The MBR boot code.
    pub mbr: Piece,
}

impl Pieces {
    /// In write order (root, boot, MBR).
    pub fn in_order(&self) -> [&Piece; 3] {
        [&self.root, &self.boot, &self.mbr]
    }
}

/// A parsed, well-formed manifest. Whether it is *signed* is a separate fact: see
/// [`verify`] and [`VerifiedManifest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateManifest {
    /// The channel it was published on.
    pub channel: Channel,
    /// The hardware it is for.
    pub target: UpdateTarget,
    /// The release's version.
    pub version: ReleaseVersion,
    /// When it was published (Unix seconds).
    pub published_at: i64,
    /// What to write.
    pub pieces: Pieces,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    format: u32,
    channel: String,
    target: String,
    version: String,
    published_at: i64,
    pieces: Vec<RawPiece>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPiece {
    name: String,
    size: u64,
    sha256: String,
    url: String,
}

fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return Err(format!("must be 1 to {MAX_URL_LEN} characters long"));
    }
    if url
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\' || c == '#')
    {
        return Err("must not contain spaces, control characters, backslashes or #".into());
    }
    if let Some((scheme, _)) = url.split_once(':') {
        let scheme_like = scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if scheme_like && !scheme.contains('/') && scheme != "https" && scheme != "http" {
            return Err(format!(
                "must be an http(s) URL or a relative path, not {scheme}:"
            ));
        }
    }
    Ok(())
}

impl UpdateManifest {
    /// Parses manifest bytes strictly. This does not check any signature: call [`verify`]
    /// for bytes that came over the network.
    pub fn parse(bytes: &[u8]) -> Result<UpdateManifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { len: bytes.len() });
        }
        let raw: RawManifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if raw.format != MANIFEST_FORMAT {
            return Err(ManifestError::invalid(
                "format",
                format!(
                    "{} is not supported (this software reads format {MANIFEST_FORMAT})",
                    raw.format
                ),
            ));
        }
        let channel =
            Channel::parse(&raw.channel).map_err(|e| ManifestError::invalid("channel", e))?;
        let target =
            UpdateTarget::parse(&raw.target).map_err(|e| ManifestError::invalid("target", e))?;
        let version = ReleaseVersion::parse(&raw.version)
            .map_err(|e| ManifestError::invalid("version", e))?;
        if raw.published_at < 0 {
            return Err(ManifestError::invalid(
                "published_at",
                "must not be negative",
            ));
        }
        if raw.pieces.len() != PieceName::ALL.len() {
            return Err(ManifestError::invalid(
                "pieces",
                format!(
                    "must list exactly root, boot and mbr, got {} pieces",
                    raw.pieces.len()
                ),
            ));
        }
        let mut found: [Option<Piece>; 3] = [None, None, None];
        for (i, p) in raw.pieces.into_iter().enumerate() {
            let field = |f: &str| format!("pieces[{i}].{f}");
            let name = PieceName::parse(&p.name).ok_or_else(|| {
                ManifestError::invalid(
                    field("name"),
                    format!("must be root, boot or mbr, got {:?}", p.name),
                )
            })?;
            name.check_size(p.size)
                .map_err(|e| ManifestError::invalid(field("size"), e))?;
            let sha256 = Sha256Digest::parse(&p.sha256)
                .map_err(|e| ManifestError::invalid(field("sha256"), e))?;
            check_url(&p.url).map_err(|e| ManifestError::invalid(field("url"), e))?;
            let slot = &mut found[name as usize];
            if slot.is_some() {
                return Err(ManifestError::invalid(
                    field("name"),
                    format!("{name} is listed twice"),
                ));
            }
            *slot = Some(Piece {
                name,
                size: p.size,
                sha256,
                url: p.url,
            });
        }
        let [Some(root), Some(boot), Some(mbr)] = found else {
            unreachable!("three distinct names out of three were found");
        };
        Ok(UpdateManifest {
            channel,
            target,
            version,
            published_at: raw.published_at,
            pieces: Pieces { root, boot, mbr },
        })
    }

    /// The manifest as JSON, the exact bytes that get signed and served.
    pub fn to_json(&self) -> Vec<u8> {
        let raw = RawManifest {
            format: MANIFEST_FORMAT,
            channel: self.channel.id().into(),
            target: self.target.id().into(),
            version: self.version.to_string(),
            published_at: self.published_at,
            pieces: self
                .pieces
                .in_order()
                .into_iter()
                .map(|p| RawPiece {
                    name: p.name.id().into(),
                    size: p.size,
                    sha256: p.sha256.to_hex(),
                    url: p.url.clone(),
                })
                .collect(),
        };
        let mut out = serde_json::to_vec_pretty(&raw).expect("plain data serializes");
        out.push(b'\n');
        out
    }

    /// The text minisign signs as the trusted comment: it names the release, so a
    /// signature shown on its own says what it is for.
    pub fn trusted_comment(&self) -> String {
        format!(
            "chatmail-relay update channel={} target={} version={}",
            self.channel, self.target, self.version
        )
    }
}

/// A manifest whose signature was checked against the configured key. Only [`verify`]
/// makes one, so code that writes partitions can demand this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedManifest(UpdateManifest);

impl VerifiedManifest {
    /// The manifest.
    pub fn manifest(&self) -> &UpdateManifest {
        &self.0
    }
}

/// Checks `signature` (a `.minisig` file's text) over the exact `manifest` bytes with
/// `key`, then parses them. Only prehashed (`ED`) signatures are accepted, as minisign
/// has made by default since 0.10.
pub fn verify(
    manifest: &[u8],
    signature: &[u8],
    key: &UpdateSigningKey,
) -> Result<VerifiedManifest, ManifestError> {
    if manifest.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            len: manifest.len(),
        });
    }
    if signature.len() > MAX_SIGNATURE_BYTES {
        return Err(ManifestError::SignatureFormat(format!(
            "it is {} bytes long; at most {MAX_SIGNATURE_BYTES} are accepted",
            signature.len()
        )));
    }
    let text = std::str::from_utf8(signature)
        .map_err(|_| ManifestError::SignatureFormat("it is not text".into()))?;
    let sig = minisign_verify::Signature::decode(text)
        .map_err(|e| ManifestError::SignatureFormat(e.to_string()))?;
    let public = minisign_verify::PublicKey::from_base64(key.as_str())
        .map_err(|e| ManifestError::SignatureFormat(format!("the configured key: {e}")))?;
    match public.verify(manifest, &sig, false) {
        Ok(()) => {}
        Err(minisign_verify::Error::UnexpectedKeyId) => {
            return Err(ManifestError::WrongKey {
                found: signature_key_id(text).unwrap_or_else(|| "unknown".into()),
                expected: key.key_id_hex(),
            })
        }
        Err(minisign_verify::Error::UnexpectedAlgorithm) => {
            return Err(ManifestError::SignatureFormat(
                "legacy (non-prehashed) signatures are not accepted".into(),
            ))
        }
        Err(_) => return Err(ManifestError::BadSignature),
    }
    Ok(VerifiedManifest(UpdateManifest::parse(manifest)?))
}

/// The key id a signature names, as minisign prints it (for the log line).
fn signature_key_id(text: &str) -> Option<String> {
    use base64::Engine as _;
    let line = text.lines().nth(1)?.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()?;
    let id = bytes.get(2..10)?;
    Some(id.iter().rev().map(|b| format!("{b:02X}")).collect())
}

/// Why a verified release is not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Published for another channel (a manifest moved between URLs).
    #[error("the manifest is for channel {found}, this device follows {wanted}")]
    WrongChannel {
        /// In the manifest.
        found: Channel,
        /// Configured.
        wanted: Channel,
    },
    /// Built for other hardware.
    #[error("the manifest is for target {found}, this device is {wanted}")]
    WrongTarget {
        /// In the manifest.
        found: UpdateTarget,
        /// This device.
        wanted: UpdateTarget,
    },
    /// Older than what runs.
    #[error(
        "version {offered} is older than the running version {running}: downgrades are refused"
    )]
    Downgrade {
        /// In the manifest.
        offered: ReleaseVersion,
        /// Running.
        running: ReleaseVersion,
    },
    /// What already runs.
    #[error("version {offered} is the running version: nothing to do")]
    SameVersion {
        /// In the manifest (= running).
        offered: ReleaseVersion,
    },
}

/// Whether a verified release should be installed on a device running `running` that
/// follows `channel` on `target`.
pub fn check_offer(
    offer: &VerifiedManifest,
    channel: Channel,
    target: UpdateTarget,
    running: &ReleaseVersion,
) -> Result<(), Refusal> {
    let m = offer.manifest();
    if m.channel != channel {
        return Err(Refusal::WrongChannel {
            found: m.channel,
            wanted: channel,
        });
    }
    if m.target != target {
        return Err(Refusal::WrongTarget {
            found: m.target,
            wanted: target,
        });
    }
    match m.version.cmp(running) {
        std::cmp::Ordering::Greater => Ok(()),
        std::cmp::Ordering::Equal => Err(Refusal::SameVersion {
            offered: m.version.clone(),
        }),
        std::cmp::Ordering::Less => Err(Refusal::Downgrade {
            offered: m.version.clone(),
            running: running.clone(),
        }),
    }
}

/// The flag gokrazy's init looks for in `cmdline.txt` to boot the inactive root once
/// (gokrazy `gokrazy.go` `maybeSwitchToInactive`, research/gokrazy.md §5.1).
pub const TRY_BOOT_INACTIVE: &[u8] = b" gokrazy.try_boot_inactive=1";

/// Why a boot partition cannot be armed for a test boot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    /// No kernel command line with gokrazy's padding was found.
    #[error(
        "the boot partition holds no gokrazy kernel command line with room for the test-boot flag"
    )]
    NoCmdline,
}

/// Arms a boot partition image (a FAT file system as gokrazy's packer writes it) for a
/// one-time test boot of the inactive root, by writing [`TRY_BOOT_INACTIVE`] into the space
/// padding of each kernel command line in place (`cmdline.txt` and systemd-boot's
/// `loader/entries/gokrazy.conf`). Returns how many were armed.
///
/// gokrazy's own `POST /update/testboot` appends the flag before a newline, but its
/// packers write `cmdline.txt` without one, so that call changes nothing (seen in QEMU,
/// tests/tests/updates_boot.rs). Editing in place keeps every file at its offset and length,
/// so the BIOS loader's block addresses (in the MBR) stay valid.
pub fn arm_test_boot(boot: &mut [u8]) -> Result<usize, ArmError> {
    const MARK: &[u8] = b"init=/gokrazy/init";
    // gokrazy pads the command line with 64 spaces for exactly such in-place edits.
    const PADDING: usize = 64;
    const MAX_CMDLINE: usize = 4096;
    let mut armed = 0;
    let mut from = 0;
    while let Some(found) = find(&boot[from..], MARK) {
        let start = from + found;
        let end = (start + MAX_CMDLINE).min(boot.len());
        let window = &boot[start..end];
        let padding = (0..window.len().saturating_sub(PADDING))
            .find(|&i| window[i] != b' ' && window[i + 1..=i + PADDING].iter().all(|&b| b == b' '));
        if let Some(i) = padding {
            let at = start + i + 1;
            boot[at..at + TRY_BOOT_INACTIVE.len()].copy_from_slice(TRY_BOOT_INACTIVE);
            armed += 1;
        }
        from = start + MARK.len();
    }
    if armed == 0 {
        return Err(ArmError::NoCmdline);
    }
    Ok(armed)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The path below the portal's base URL where a channel's manifest for a target lives;
/// the signature is at the same path plus `.minisig`.
pub fn manifest_path(channel: Channel, target: UpdateTarget) -> String {
    format!("updates/{}/{}/manifest.json", channel.id(), target.id())
}

#[cfg(test)]
mod tests;
