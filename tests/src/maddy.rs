//! Where the Maddy binary for the tests is.
//!
//! `appliance/maddy/build.sh` builds Maddy from the Go module proxy at the version pinned
//! there and keeps it under the cache directory; the tests use that binary, or the one
//! `$CHATMAIL_MADDY_BIN` names. The appliance starts and supervises it.

use std::path::PathBuf;

use crate::process::{cache_dir, script_pin, INSTALL_HINT};

/// The Maddy executable, or a panic that says how to get it.
pub fn binary() -> PathBuf {
    let path = match std::env::var_os("CHATMAIL_MADDY_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            let version = script_pin("appliance/maddy/build.sh", "MADDY_VERSION");
            let arch = match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            };
            cache_dir().join(format!("maddy/{version}/maddy-linux-{arch}"))
        }
    };
    assert!(
        path.is_file(),
        "Maddy is missing at {}: {INSTALL_HINT}",
        path.display()
    );
    path
}
