//! Reading a disk image's partition tables: the MBR signature, the primary GPT (header and
//! entry array, both checked against their CRC-32) and the backup GPT at the end, which
//! must describe the same partitions.
//!
//! The portal only ever reads partition tables: it checks that a base image is what its
//! manifest says (start-up) and the tests check that a personalized image still has the
//! same tables. Parsing is kept apart from I/O ([`Gpt::parse`] takes the bytes).

use std::fmt;

/// Bytes per logical sector; gokrazy images always use 512.
pub const SECTOR: u64 = 512;

/// GPT type GUID of the x86-64 root partition (gokrazy sets it for GOARCH=amd64).
pub const ROOT_TYPE_AMD64: &str = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
/// GPT type GUID of the arm64 root partition.
pub const ROOT_TYPE_ARM64: &str = "b921b045-1df0-41c3-af44-4c6f280d3fae";

/// One used GPT entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based.
    pub number: u32,
    /// Lowercase GUID text.
    pub type_guid: String,
    /// Lowercase GUID text.
    pub guid: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub name: String,
}

impl GptPartition {
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }

    pub fn size(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * SECTOR
    }
}

/// A parsed, checked GPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    pub disk_guid: String,
    pub first_usable: u64,
    pub last_usable: u64,
    pub partitions: Vec<GptPartition>,
}

/// What is wrong with a partition table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GptError {
    #[error("the image is too small to hold a partition table ({0} bytes)")]
    TooSmall(u64),
    #[error("the boot sector has no 0x55AA signature")]
    NoMbrSignature,
    #[error("the {0} GPT header is missing (no \"EFI PART\" signature)")]
    NoHeader(&'static str),
    #[error("the {0} GPT header's checksum is wrong")]
    HeaderChecksum(&'static str),
    #[error("the {0} GPT's partition entries do not match their checksum")]
    EntriesChecksum(&'static str),
    #[error("the {0} GPT header is malformed: {1}")]
    Malformed(&'static str, String),
    #[error("the backup GPT differs from the primary one")]
    BackupDiffers,
}

fn guid_text(b: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The sectors a GPT needs: LBA 0–33 at the start and the last 33 at the end.
pub struct GptSectors<'a> {
    /// LBA 0 to 33 (34 sectors).
    pub head: &'a [u8],
    /// The last 33 sectors.
    pub tail: &'a [u8],
    /// Size of the whole disk image in bytes.
    pub disk_size: u64,
}

/// How many bytes [`GptSectors::head`] and [`GptSectors::tail`] hold.
pub const HEAD_BYTES: usize = 34 * SECTOR as usize;
pub const TAIL_BYTES: usize = 33 * SECTOR as usize;

impl Gpt {
    /// Parses and checks both GPTs.
    pub fn parse(sectors: &GptSectors<'_>) -> Result<Gpt, GptError> {
        if sectors.disk_size < (HEAD_BYTES + TAIL_BYTES) as u64
            || sectors.head.len() < HEAD_BYTES
            || sectors.tail.len() < TAIL_BYTES
        {
            return Err(GptError::TooSmall(sectors.disk_size));
        }
        if sectors.head[510..512] != [0x55, 0xAA] {
            return Err(GptError::NoMbrSignature);
        }
        let last_lba = sectors.disk_size / SECTOR - 1;
        let primary = parse_one(
            "primary",
            &sectors.head[512..1024],
            &sectors.head[1024..HEAD_BYTES],
            1,
            last_lba,
        )?;
        let backup = parse_one(
            "backup",
            &sectors.tail[TAIL_BYTES - 512..],
            &sectors.tail[..TAIL_BYTES - 512],
            last_lba,
            1,
        )?;
        if primary != backup {
            return Err(GptError::BackupDiffers);
        }
        Ok(primary)
    }

    /// The partition with this 1-based number.
    pub fn partition(&self, number: u32) -> Option<&GptPartition> {
        self.partitions.iter().find(|p| p.number == number)
    }
}

fn parse_one(
    which: &'static str,
    header: &[u8],
    entries: &[u8],
    expect_current: u64,
    expect_backup: u64,
) -> Result<Gpt, GptError> {
    if &header[0..8] != b"EFI PART" {
        return Err(GptError::NoHeader(which));
    }
    let size = u32_at(header, 12) as usize;
    if !(92..=512).contains(&size) {
        return Err(GptError::Malformed(which, format!("header size {size}")));
    }
    let mut copy = header[..size].to_vec();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy) != u32_at(header, 16) {
        return Err(GptError::HeaderChecksum(which));
    }
    let current = u64_at(header, 24);
    let backup = u64_at(header, 32);
    if current != expect_current || backup != expect_backup {
        return Err(GptError::Malformed(
            which,
            format!("it says it is at LBA {current} with its copy at {backup}"),
        ));
    }
    let count = u32_at(header, 80) as usize;
    let entry_size = u32_at(header, 84) as usize;
    if entry_size < 128 || count * entry_size != entries.len() {
        return Err(GptError::Malformed(
            which,
            format!("{count} entries of {entry_size} bytes"),
        ));
    }
    if crc32fast::hash(entries) != u32_at(header, 88) {
        return Err(GptError::EntriesChecksum(which));
    }
    let mut partitions = Vec::new();
    for (i, e) in entries.chunks(entry_size).enumerate() {
        if e[0..16].iter().all(|b| *b == 0) {
            continue;
        }
        let name: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|c| *c != 0)
            .collect();
        partitions.push(GptPartition {
            number: i as u32 + 1,
            type_guid: guid_text(&e[0..16]),
            guid: guid_text(&e[16..32]),
            first_lba: u64_at(e, 32),
            last_lba: u64_at(e, 40),
            name: String::from_utf16_lossy(&name),
        });
    }
    Ok(Gpt {
        disk_guid: guid_text(&header[56..72]),
        first_usable: u64_at(header, 40),
        last_usable: u64_at(header, 48),
        partitions,
    })
}

/// Reads and parses the partition tables of an image file.
pub fn read(file: &std::fs::File) -> Result<Gpt, ReadError> {
    use std::os::unix::fs::FileExt;
    let size = file.metadata().map_err(ReadError::Io)?.len();
    if size < (HEAD_BYTES + TAIL_BYTES) as u64 {
        return Err(ReadError::Gpt(GptError::TooSmall(size)));
    }
    let mut head = vec![0; HEAD_BYTES];
    let mut tail = vec![0; TAIL_BYTES];
    file.read_exact_at(&mut head, 0).map_err(ReadError::Io)?;
    file.read_exact_at(&mut tail, size - TAIL_BYTES as u64)
        .map_err(ReadError::Io)?;
    Gpt::parse(&GptSectors {
        head: &head,
        tail: &tail,
        disk_size: size,
    })
    .map_err(ReadError::Gpt)
}

/// Reading failed, or the tables are wrong.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    Gpt(GptError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(err) => write!(f, "cannot read the partition table: {err}"),
            ReadError::Gpt(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for ReadError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny disk with one partition, built by hand.
    fn disk(sectors: u64) -> Vec<u8> {
        let mut d = vec![0u8; (sectors * SECTOR) as usize];
        d[510] = 0x55;
        d[511] = 0xAA;
        let mut entries = vec![0u8; 128 * 128];
        entries[0..16].copy_from_slice(&[0x11; 16]);
        entries[16..32].copy_from_slice(&[0x22; 16]);
        entries[32..40].copy_from_slice(&34u64.to_le_bytes());
        entries[40..48].copy_from_slice(&(sectors - 34).to_le_bytes());
        let crc = crc32fast::hash(&entries);
        let header = |current: u64, backup: u64, start: u64| {
            let mut h = vec![0u8; 92];
            h[0..8].copy_from_slice(b"EFI PART");
            h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
            h[12..16].copy_from_slice(&92u32.to_le_bytes());
            h[24..32].copy_from_slice(&current.to_le_bytes());
            h[32..40].copy_from_slice(&backup.to_le_bytes());
            h[40..48].copy_from_slice(&34u64.to_le_bytes());
            h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
            h[72..80].copy_from_slice(&start.to_le_bytes());
            h[80..84].copy_from_slice(&128u32.to_le_bytes());
            h[84..88].copy_from_slice(&128u32.to_le_bytes());
            h[88..92].copy_from_slice(&crc.to_le_bytes());
            let c = crc32fast::hash(&h);
            h[16..20].copy_from_slice(&c.to_le_bytes());
            h
        };
        let last = sectors - 1;
        d[512..604].copy_from_slice(&header(1, last, 2));
        d[1024..1024 + entries.len()].copy_from_slice(&entries);
        let b = ((last - 32) * SECTOR) as usize;
        d[b..b + entries.len()].copy_from_slice(&entries);
        let h = (last * SECTOR) as usize;
        d[h..h + 92].copy_from_slice(&header(last, 1, last - 32));
        d
    }

    fn parse(d: &[u8]) -> Result<Gpt, GptError> {
        Gpt::parse(&GptSectors {
            head: &d[..HEAD_BYTES],
            tail: &d[d.len() - TAIL_BYTES..],
            disk_size: d.len() as u64,
        })
    }

    #[test]
    fn reads_a_good_table() {
        let d = disk(200);
        let gpt = parse(&d).unwrap();
        assert_eq!(gpt.partitions.len(), 1);
        assert_eq!(gpt.partitions[0].first_lba, 34);
        assert_eq!(gpt.partitions[0].size(), (200 - 34 - 34 + 1) * SECTOR);
    }

    #[test]
    fn refuses_damage() {
        let mut d = disk(200);
        d[1024 + 40] ^= 1;
        assert_eq!(parse(&d), Err(GptError::EntriesChecksum("primary")));
        let mut d = disk(200);
        d[512 + 48] ^= 1;
        assert_eq!(parse(&d), Err(GptError::HeaderChecksum("primary")));
        let mut d = disk(200);
        d[511] = 0;
        assert_eq!(parse(&d), Err(GptError::NoMbrSignature));
        let mut d = disk(200);
        let len = d.len();
        d[len - 512] = b'X';
        assert_eq!(parse(&d), Err(GptError::NoHeader("backup")));
    }
}
