//! Whether the device has room for one more account.
//!
//! Upstream refuses to create accounts when the 1-minute load average is above
//! `max_load_1m` (5), available memory is below `min_available_memory` (200 MB) or free
//! disk space on the mailbox partition is below `min_free_disk_space` (1 GB); a value that
//! cannot be read is ignored (research/chatmail.md §1.2 step 3). Reading is separate from
//! judging so the judgement can be tested without a loaded machine.

use std::path::Path;

use crate::auth::rules::Refusal;

/// The thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceLimits {
    /// Refuse above this 1-minute load average.
    pub max_load_1m: f64,
    /// Refuse below this much available memory, in MiB.
    pub min_available_memory_mb: u64,
    /// Refuse below this much free disk space, in MiB.
    pub min_free_disk_mb: u64,
}

impl Default for ResourceLimits {
    /// Upstream's defaults (research/chatmail.md §2).
    fn default() -> Self {
        ResourceLimits {
            max_load_1m: 5.0,
            min_available_memory_mb: 200,
            min_free_disk_mb: 1024,
        }
    }
}

/// What was measured; `None` where the value could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Readings {
    /// 1-minute load average.
    pub load_1m: Option<f64>,
    /// `MemAvailable`, in MiB.
    pub available_memory_mb: Option<u64>,
    /// Free space for unprivileged users on the state partition, in MiB.
    pub free_disk_mb: Option<u64>,
}

/// Upstream's order: load, then memory, then disk.
pub fn judge(readings: &Readings, limits: &ResourceLimits) -> Result<(), Refusal> {
    if readings.load_1m.is_some_and(|l| l > limits.max_load_1m) {
        return Err(Refusal::HighLoad);
    }
    if readings
        .available_memory_mb
        .is_some_and(|m| m < limits.min_available_memory_mb)
    {
        return Err(Refusal::LowMemory);
    }
    if readings
        .free_disk_mb
        .is_some_and(|d| d < limits.min_free_disk_mb)
    {
        return Err(Refusal::LowDisk);
    }
    Ok(())
}

/// Reads the current values from `/proc` and `statvfs(state_dir)`.
pub fn read(state_dir: &Path) -> Readings {
    Readings {
        load_1m: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| parse_loadavg(&s)),
        available_memory_mb: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| parse_mem_available_mb(&s)),
        // The casts matter on 32-bit targets (armv7), where these are u32.
        #[allow(clippy::unnecessary_cast)]
        free_disk_mb: nix::sys::statvfs::statvfs(state_dir).ok().map(|s| {
            (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64) / (1 << 20)
        }),
    }
}

/// The first field of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `MemAvailable` of `/proc/meminfo`, in MiB.
pub fn parse_mem_available_mb(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_in_upstream_order() {
        let l = ResourceLimits::default();
        let ok = Readings {
            load_1m: Some(0.5),
            available_memory_mb: Some(1000),
            free_disk_mb: Some(5000),
        };
        assert_eq!(judge(&ok, &l), Ok(()));
        assert_eq!(
            judge(
                &Readings {
                    load_1m: Some(5.1),
                    available_memory_mb: Some(1),
                    ..ok
                },
                &l
            ),
            Err(Refusal::HighLoad)
        );
        assert_eq!(
            judge(
                &Readings {
                    available_memory_mb: Some(199),
                    ..ok
                },
                &l
            ),
            Err(Refusal::LowMemory)
        );
        assert_eq!(
            judge(
                &Readings {
                    free_disk_mb: Some(1023),
                    ..ok
                },
                &l
            ),
            Err(Refusal::LowDisk)
        );
        assert_eq!(judge(&Readings::default(), &l), Ok(()));
    }

    #[test]
    fn parses_proc_files() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/467 12345\n"), Some(0.52));
        assert_eq!(parse_loadavg(""), None);
        let meminfo = "MemTotal:       16318452 kB\nMemFree:  1 kB\nMemAvailable:    2097152 kB\n";
        assert_eq!(parse_mem_available_mb(meminfo), Some(2048));
        assert_eq!(parse_mem_available_mb("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn reads_this_machine() {
        let r = read(Path::new("/"));
        assert!(r.free_disk_mb.is_some());
    }
}
