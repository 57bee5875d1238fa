//! Where the workspace, its build output and its binaries are.

use std::{path::PathBuf, process::Command, sync::OnceLock};

pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .canonicalize()
        .expect("workspace root")
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The portal binary: `$CHATMAIL_PORTAL_BIN`, or a debug build made once per test run.
pub fn portal_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("CHATMAIL_PORTAL_BIN") {
                return PathBuf::from(path);
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(root())
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "chatmail-portal",
                    "--bin",
                    "chatmail-portal",
                ])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the portal failed");
            target_dir().join("debug/chatmail-portal")
        })
        .clone()
}

/// The built browser bundle; tests of hydration need it.
pub fn require_bundle() {
    let manifest = target_dir().join("site/manifest.json");
    assert!(
        manifest.exists(),
        "the browser bundle is missing ({}); build it with portal/scripts/build.sh",
        manifest.display()
    );
}
