//! Growing /perm to fill the disk, once, at boot.
//!
//! The portal's images are small (a few hundred MiB of /perm); the card or disk they are
//! flashed to is usually far larger, and nothing in gokrazy grows partition 4
//! (research/gokrazy.md §2). So at boot, when partition 4 ends well before the disk does,
//! the appliance:
//!
//! 1. moves the backup GPT to the disk's real end and extends partition 4 up to it
//!    (primary and backup tables rewritten with new checksums; the hybrid MBR, which only
//!    covers the boot partition, stays as it is);
//! 2. tells the kernel the partition's new size (`BLKPG_RESIZE_PARTITION`, allowed while
//!    the partition is mounted);
//! 3. grows the mounted ext4 file system (`EXT4_IOC_RESIZE_FS`, the kernel's online
//!    resize, which is what `resize2fs` uses for a mounted file system).
//!
//! The table arithmetic ([`plan`]) is separate from the device I/O and tested on its own.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

const SECTOR: u64 = 512;
/// Partition 4 is grown only when the disk has at least this much more room.
const MIN_GAIN: u64 = 16 * 1024 * 1024;

/// What was done.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Partition 4 already fills the disk.
    AlreadyFull,
    /// Grown from `from` to `to` bytes.
    Grown { from: u64, to: u64 },
}

/// New partition tables: the first 34 sectors and the last 33.
#[derive(Debug)]
pub struct Plan {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    /// Partition 4's first and new last LBA.
    pub first_lba: u64,
    pub old_last_lba: u64,
    pub new_last_lba: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Plans the growth from the disk's first 34 sectors. `Ok(None)` when there is nothing to
/// gain; `Err` when the table is not a gokrazy GPT this can safely change.
pub fn plan(head: &[u8], disk_sectors: u64) -> Result<Option<Plan>, String> {
    if head.len() < 34 * SECTOR as usize {
        return Err("short read of the partition table".into());
    }
    let header = &head[512..1024];
    if &header[0..8] != b"EFI PART" {
        return Err("no GPT on the boot disk".into());
    }
    let size = u32_at(header, 12) as usize;
    if size != 92 {
        return Err(format!("unexpected GPT header size {size}"));
    }
    let mut check = header[..92].to_vec();
    check[16..20].fill(0);
    if crc32fast::hash(&check) != u32_at(header, 16) {
        return Err("the GPT header's checksum is wrong".into());
    }
    let count = u32_at(header, 80) as usize;
    let entry_size = u32_at(header, 84) as usize;
    if count != 128 || entry_size != 128 || u64_at(header, 72) != 2 {
        return Err("the GPT does not have gokrazy's layout (128 entries at LBA 2)".into());
    }
    let entries = &head[1024..1024 + count * entry_size];
    if crc32fast::hash(entries) != u32_at(header, 88) {
        return Err("the GPT entries' checksum is wrong".into());
    }
    let e4 = &entries[3 * entry_size..4 * entry_size];
    if e4[0..16].iter().all(|b| *b == 0) {
        return Err("there is no partition 4".into());
    }
    // Partition 4 must be the last partition on the disk.
    for (i, e) in entries.chunks(entry_size).enumerate() {
        if i != 3 && !e[0..16].iter().all(|b| *b == 0) && u64_at(e, 40) > u64_at(e4, 40) {
            return Err(format!("partition {} lies after partition 4", i + 1));
        }
    }
    let first = u64_at(e4, 32);
    let old_last = u64_at(e4, 40);
    let last_lba = disk_sectors - 1;
    let new_last = last_lba - 33;
    if new_last <= old_last || (new_last - old_last) * SECTOR < MIN_GAIN {
        return Ok(None);
    }

    let mut new_entries = entries.to_vec();
    new_entries[3 * entry_size + 40..3 * entry_size + 48].copy_from_slice(&new_last.to_le_bytes());
    let entries_crc = crc32fast::hash(&new_entries);
    let make_header = |current: u64, backup: u64, entries_at: u64| {
        let mut h = header[..92].to_vec();
        h[24..32].copy_from_slice(&current.to_le_bytes());
        h[32..40].copy_from_slice(&backup.to_le_bytes());
        h[48..56].copy_from_slice(&new_last.to_le_bytes());
        h[72..80].copy_from_slice(&entries_at.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        h[16..20].fill(0);
        let crc = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        let mut sector = vec![0u8; SECTOR as usize];
        sector[..92].copy_from_slice(&h);
        sector
    };
    let mut new_head = head[..34 * SECTOR as usize].to_vec();
    new_head[512..1024].copy_from_slice(&make_header(1, last_lba, 2));
    new_head[1024..1024 + new_entries.len()].copy_from_slice(&new_entries);
    let mut tail = new_entries.clone();
    tail.extend_from_slice(&make_header(last_lba, 1, last_lba - 32));
    Ok(Some(Plan {
        head: new_head,
        tail,
        first_lba: first,
        old_last_lba: old_last,
        new_last_lba: new_last,
    }))
}

/// The block device mounted at `mount_point` (from /proc/self/mountinfo): its sysfs
/// directory.
fn mounted_device(mount_point: &Path) -> Result<PathBuf, String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let wanted = mount_point.to_string_lossy();
    let majmin = info
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields.len() > 4 && fields[4] == wanted).then(|| fields[2].to_string())
        })
        .next_back()
        .ok_or_else(|| format!("{wanted} is not a mount point"))?;
    let dir = PathBuf::from(format!("/sys/dev/block/{majmin}"));
    std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn read_number(path: &Path) -> Result<u64, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `struct blkpg_partition` (linux/blkpg.h).
#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: i32,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: i32,
    flags: i32,
    datalen: i32,
    data: *mut BlkpgPartition,
}

const BLKPG: u64 = 0x1269;
const BLKPG_RESIZE_PARTITION: i32 = 3;
/// `_IOW('f', 16, __u64)`.
const EXT4_IOC_RESIZE_FS: u64 = 0x4008_6610;

fn ioctl_failed(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Grows partition 4 (mounted at `perm`) and its ext4 file system to the end of the disk.
pub fn grow(perm: &Path) -> Result<Outcome, String> {
    let part_dir = mounted_device(perm)?;
    let number = read_number(&part_dir.join("partition"))
        .map_err(|_| format!("{} is not a partition", perm.display()))?;
    if number != 4 {
        return Err(format!(
            "{} is partition {number}, not gokrazy's partition 4",
            perm.display()
        ));
    }
    let disk_dir = part_dir
        .parent()
        .ok_or("no parent disk in sysfs")?
        .to_path_buf();
    let disk_name = disk_dir
        .file_name()
        .ok_or("no disk name")?
        .to_string_lossy()
        .to_string();
    let disk_sectors = read_number(&disk_dir.join("size"))?;
    let disk_path = PathBuf::from(format!("/dev/{disk_name}"));
    let disk: File = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk_path)
        .map_err(|e| format!("{}: {e}", disk_path.display()))?;
    let mut head = vec![0u8; 34 * SECTOR as usize];
    disk.read_exact_at(&mut head, 0)
        .map_err(|e| format!("reading {}: {e}", disk_path.display()))?;
    let Some(plan) = plan(&head, disk_sectors)? else {
        return Ok(Outcome::AlreadyFull);
    };
    let old_bytes = (plan.old_last_lba + 1 - plan.first_lba) * SECTOR;
    let new_bytes = (plan.new_last_lba + 1 - plan.first_lba) * SECTOR;

    // 1. The tables: the backup at the end first, then the primary.
    disk.write_all_at(&plan.tail, (disk_sectors - 33) * SECTOR)
        .and_then(|_| disk.sync_all())
        .and_then(|_| disk.write_all_at(&plan.head[512..], SECTOR))
        .and_then(|_| disk.sync_all())
        .map_err(|e| format!("writing the partition table: {e}"))?;

    // 2. The kernel's idea of the partition.
    let mut part = BlkpgPartition {
        start: (plan.first_lba * SECTOR) as i64,
        length: new_bytes as i64,
        pno: 4,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as i32,
        data: &mut part,
    };
    // SAFETY: BLKPG takes a pointer to a blkpg_ioctl_arg whose data points to a
    // blkpg_partition; both are #[repr(C)] and live until the call returns.
    let rc = unsafe { nix::libc::ioctl(disk.as_raw_fd(), BLKPG as _, &mut arg) };
    if rc != 0 {
        return Err(ioctl_failed("telling the kernel the new partition size"));
    }

    // 3. The file system, online.
    let stat = nix::sys::statvfs::statvfs(perm).map_err(|e| format!("statvfs: {e}"))?;
    let block = stat.fragment_size().max(1);
    let mut blocks: u64 = new_bytes / block;
    let dir = File::open(perm).map_err(|e| format!("{}: {e}", perm.display()))?;
    // SAFETY: EXT4_IOC_RESIZE_FS reads one u64 (the new block count) through the pointer.
    let rc = unsafe { nix::libc::ioctl(dir.as_raw_fd(), EXT4_IOC_RESIZE_FS as _, &mut blocks) };
    if rc != 0 {
        return Err(ioctl_failed("growing the ext4 file system"));
    }
    Ok(Outcome::Grown {
        from: old_bytes,
        to: new_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gokrazy's layout on a disk of `sectors`, partition 4 ending at `p4_last`.
    fn head(sectors: u64, p4_last: u64) -> Vec<u8> {
        let mut d = vec![0u8; 34 * 512];
        d[510] = 0x55;
        d[511] = 0xAA;
        let mut entries = vec![0u8; 128 * 128];
        let parts = [
            (8192u64, 212_991u64),
            (212_992, 1_236_991),
            (1_236_992, 2_260_991),
            (2_260_992, p4_last),
        ];
        for (i, (first, last)) in parts.iter().enumerate() {
            let e = &mut entries[i * 128..(i + 1) * 128];
            e[0..16].copy_from_slice(&[0xAB; 16]);
            e[16..32].copy_from_slice(&[i as u8 + 1; 16]);
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&last.to_le_bytes());
        }
        let mut h = vec![0u8; 92];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[32..40].copy_from_slice(&(p4_last + 34).to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&p4_last.to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc32fast::hash(&entries).to_le_bytes());
        let c = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        d[512..604].copy_from_slice(&h);
        d[1024..1024 + entries.len()].copy_from_slice(&entries);
        let _ = sectors;
        d
    }

    #[test]
    fn grows_to_the_end() {
        let image_sectors = 2_787_328u64;
        let p4_last = image_sectors - 34;
        let disk = 8 * 1024 * 1024 * 2u64; // 8 GiB
        let plan = plan(&head(image_sectors, p4_last), disk).unwrap().unwrap();
        assert_eq!(plan.new_last_lba, disk - 34);
        assert_eq!(plan.old_last_lba, p4_last);
        // The new primary header checks out and points at the new backup.
        let h = &plan.head[512..604];
        let mut c = h.to_vec();
        c[16..20].fill(0);
        assert_eq!(crc32fast::hash(&c), u32_at(h, 16));
        assert_eq!(u64_at(h, 32), disk - 1);
        assert_eq!(u64_at(h, 48), disk - 34);
        assert_eq!(
            crc32fast::hash(&plan.head[1024..1024 + 16384]),
            u32_at(h, 88)
        );
        // The backup: entries then header, pointing back at LBA 1.
        assert_eq!(plan.tail.len(), 33 * 512);
        let b = &plan.tail[32 * 512..32 * 512 + 92];
        assert_eq!(u64_at(b, 24), disk - 1);
        assert_eq!(u64_at(b, 32), 1);
        assert_eq!(u64_at(b, 72), disk - 33);
        // Running it again on the grown table does nothing.
        assert!(super::plan(&plan.head, disk).unwrap().is_none());
    }

    #[test]
    fn leaves_a_full_disk_alone_and_refuses_damage() {
        let sectors = 2_787_328u64;
        assert!(plan(&head(sectors, sectors - 34), sectors)
            .unwrap()
            .is_none());
        let mut h = head(sectors, sectors - 34);
        h[1024 + 3 * 128 + 40] ^= 1;
        assert!(plan(&h, sectors * 4).is_err());
    }
}
