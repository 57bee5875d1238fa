//! The portal's data directory: created on first start, checked for write access, and
//! locked so that two portals never share one private database.

use std::{
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
};

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("the data directory {path} cannot be created: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "the data directory {path} is not writable ({source}); fix its permissions or choose another with --data-dir"
    )]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("{path} is not a directory; choose another with --data-dir")]
    NotADirectory { path: PathBuf },
    #[error("another portal is already using the data directory {path}")]
    InUse { path: PathBuf },
}

/// An open data directory, locked unless opened by [`DataDir::open_shared`]. The lock
/// lasts as long as this value.
pub struct DataDir {
    path: PathBuf,
    _lock: Option<Flock<File>>,
}

impl DataDir {
    /// Opens and locks `path`: the portal that runs a private PostgreSQL in it.
    pub fn open(path: &Path) -> Result<DataDir, DataDirError> {
        let mut dir = DataDir::open_shared(path)?;
        let lock_file = File::create(dir.path.join("portal.lock")).map_err(|source| {
            DataDirError::NotWritable {
                path: dir.path.clone(),
                source,
            }
        })?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            DataDirError::InUse {
                path: dir.path.clone(),
            }
        })?;
        dir._lock = Some(lock);
        Ok(dir)
    }

    /// Opens `path` without the lock: for operator commands against an external database
    /// (DATABASE_URL), which may run beside the portal that uses the same directory.
    pub fn open_shared(path: &Path) -> Result<DataDir, DataDirError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        if path.exists() && !path.is_dir() {
            return Err(DataDirError::NotADirectory { path });
        }
        std::fs::create_dir_all(&path).map_err(|source| match source.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                DataDirError::NotWritable {
                    path: path.clone(),
                    source,
                }
            }
            _ => DataDirError::Create {
                path: path.clone(),
                source,
            },
        })?;
        // Writing a file is the only reliable test: permissions, read-only mounts and full
        // disks all show up here, before anything else has started.
        let probe = path.join(".write-test");
        let written = File::create(&probe).and_then(|mut file| file.write_all(b"ok\n"));
        let _ = std::fs::remove_file(&probe);
        written.map_err(|source| DataDirError::NotWritable {
            path: path.clone(),
            source,
        })?;
        Ok(DataDir { path, _lock: None })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the private PostgreSQL cluster lives.
    pub fn postgres_dir(&self) -> PathBuf {
        self.path.join("postgres")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_missing_directories() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(&temp.path().join("a/b")).unwrap();
        assert!(dir.path().is_dir());
    }

    #[test]
    fn a_file_in_the_way_is_reported() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = DataDir::open(&file).err().unwrap();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }

    #[test]
    fn a_second_portal_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let _first = DataDir::open(temp.path()).unwrap();
        let err = DataDir::open(temp.path()).err().unwrap();
        assert!(err.to_string().contains("already using"), "{err}");
    }
}
