//! Where the appliance keeps its files.
//!
//! On the device, state that must survive reboots and updates lives on gokrazy's writable
//! `/perm` partition and everything that may vanish lives on the `/run` tmpfs
//! (research/gokrazy.md §2). Both roots can be moved (flags or environment), so tests run
//! the whole appliance inside a temporary directory. Every path the daemons use is named
//! here, once.

use std::io;
use std::path::{Path, PathBuf};

/// The two roots and every path derived from them.
#[derive(Debug, Clone)]
pub struct Paths {
    perm: PathBuf,
    run: PathBuf,
}

impl Paths {
    /// Paths below `perm` (persistent) and `run` (volatile).
    pub fn new(perm: impl Into<PathBuf>, run: impl Into<PathBuf>) -> Self {
        Paths {
            perm: perm.into(),
            run: run.into(),
        }
    }

    /// The persistent root itself (gokrazy's /perm).
    pub fn perm_root(&self) -> &Path {
        &self.perm
    }

    /// Our persistent directory: `<perm>/chatmail`.
    pub fn state_dir(&self) -> PathBuf {
        self.perm.join("chatmail")
    }

    /// The relay configuration the portal wrote into the image.
    pub fn default_config_file(&self) -> PathBuf {
        self.state_dir().join("relay.toml")
    }

    /// The account store.
    pub fn accounts_db(&self) -> PathBuf {
        self.state_dir().join("accounts.redb")
    }

    /// The push database: device tokens and pending notifications.
    pub fn push_db(&self) -> PathBuf {
        self.state_dir().join("push.redb")
    }

    /// The operator's "no new accounts" switch: account creation is refused while this file
    /// exists (upstream's `/etc/chatmail-nocreate`, research/chatmail.md §1.2).
    pub fn nocreate_file(&self) -> PathBuf {
        self.state_dir().join("nocreate")
    }

    /// The DKIM private key (PKCS#8 PEM), selector `opendkim` as upstream's.
    pub fn dkim_key(&self) -> PathBuf {
        self.state_dir().join("dkim/opendkim.key")
    }

    /// The ACME account key (PKCS#8 PEM, ECDSA P-256).
    pub fn acme_account_key(&self) -> PathBuf {
        self.state_dir().join("acme/account-key.pem")
    }

    /// The ACME account URL and the directory it belongs to (JSON).
    pub fn acme_account_file(&self) -> PathBuf {
        self.state_dir().join("acme/account.json")
    }

    /// The certificate chain every TLS listener serves (placeholder or ACME).
    pub fn tls_cert(&self) -> PathBuf {
        self.state_dir().join("tls/fullchain.pem")
    }

    /// The private key of [`Paths::tls_cert`].
    pub fn tls_key(&self) -> PathBuf {
        self.state_dir().join("tls/privkey.pem")
    }

    /// Update downloads and the marker that carries an update across its reboot.
    pub fn update_dir(&self) -> PathBuf {
        self.state_dir().join("update")
    }

    /// Maddy's `state_dir` (mail storage, queue).
    pub fn maddy_state_dir(&self) -> PathBuf {
        self.perm.join("maddy")
    }

    /// Our volatile directory: `<run>/chatmail`.
    pub fn runtime_dir(&self) -> PathBuf {
        self.run.join("chatmail")
    }

    /// The Dovecot authentication socket Maddy's `auth.dovecot_sasl` connects to.
    pub fn auth_socket(&self) -> PathBuf {
        self.runtime_dir().join("auth.sock")
    }

    /// The Maddy configuration, generated at every start.
    pub fn maddy_config(&self) -> PathBuf {
        self.runtime_dir().join("maddy.conf")
    }

    /// Maddy's `runtime_dir`.
    pub fn maddy_runtime_dir(&self) -> PathBuf {
        self.run.join("maddy")
    }

    /// The milter socket Maddy's submission asks (outgoing rules, Appliance III).
    pub fn milter_outgoing_socket(&self) -> PathBuf {
        self.runtime_dir().join("milter-out.sock")
    }

    /// The milter socket Maddy's port 25 asks (incoming rules).
    pub fn milter_incoming_socket(&self) -> PathBuf {
        self.runtime_dir().join("milter-in.sock")
    }

    /// Our LMTP hop for local deliveries (Maddy delivers local mail here).
    pub fn local_delivery_socket(&self) -> PathBuf {
        self.runtime_dir().join("deliver.sock")
    }

    /// Our LMTP hop for deliveries to other relays (Maddy's remote queue delivers here).
    pub fn transport_socket(&self) -> PathBuf {
        self.runtime_dir().join("transport.sock")
    }

    /// Maddy's loopback-only LMTP listener in front of its storage (only our hop uses it).
    pub fn store_socket(&self) -> PathBuf {
        self.runtime_dir().join("store.sock")
    }

    /// Creates every directory above; private ones with mode 0700.
    pub fn create_dirs(&self) -> io::Result<()> {
        for dir in [
            self.state_dir(),
            self.state_dir().join("dkim"),
            self.state_dir().join("acme"),
            self.state_dir().join("tls"),
            self.maddy_state_dir(),
            self.runtime_dir(),
            self.maddy_runtime_dir(),
        ] {
            create_private_dir(&dir)?;
        }
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `data` to `path` atomically: a temporary file in the same directory, fsync, then
/// rename, then fsync of the directory. A crash leaves the old file or the new one, never a
/// mix. `mode` applies to the new file.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_stays_under_roots() {
        let p = Paths::new("/perm", "/run");
        assert_eq!(p.accounts_db(), Path::new("/perm/chatmail/accounts.redb"));
        assert_eq!(p.auth_socket(), Path::new("/run/chatmail/auth.sock"));
        assert_eq!(p.maddy_state_dir(), Path::new("/perm/maddy"));
        assert_eq!(p.maddy_runtime_dir(), Path::new("/run/maddy"));
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x");
        write_atomic(&file, b"one", 0o600).unwrap();
        write_atomic(&file, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
