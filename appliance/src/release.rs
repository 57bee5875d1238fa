//! Which release is running: the image's `/etc/chatmail/release`, written by the image
//! packer, names it (`1.2.3+<build key>`); the binary's own version is only the fallback
//! (runs outside an image, e.g. tests on a host).
//!
//! The image file wins because one appliance binary can ship in several releases (an image
//! rebuilt with a newer Maddy or kernel is a new release), and the update check and the
//! status document must name what is actually booted.

use std::path::Path;

use chatmail_shared::update_manifest::ReleaseVersion;

/// Where the packer writes the release version in the root file system.
pub const RELEASE_FILE: &str = "/etc/chatmail/release";

/// The running release. Build metadata (`+…`) is dropped: releases are ordered without it.
pub fn running(release_file: &Path) -> ReleaseVersion {
    let fallback = || {
        ReleaseVersion::parse(env!("CARGO_PKG_VERSION")).expect("the crate version is a release")
    };
    match std::fs::read_to_string(release_file) {
        Ok(text) => match parse(&text) {
            Ok(version) => version,
            Err(e) => {
                tracing::warn!(
                    "{}: {e}; reporting the binary's version instead",
                    release_file.display()
                );
                fallback()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fallback(),
        Err(e) => {
            tracing::warn!(
                "cannot read {}: {e}; reporting the binary's version instead",
                release_file.display()
            );
            fallback()
        }
    }
}

fn parse(text: &str) -> Result<ReleaseVersion, String> {
    let line = text.trim();
    let release = line.split_once('+').map_or(line, |(v, _)| v);
    ReleaseVersion::parse(release)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_file_names_the_release_without_build_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("release");
        std::fs::write(&file, "0.4.1+81ef19adaa0ae77a\n").unwrap();
        assert_eq!(running(&file).to_string(), "0.4.1");
    }

    #[test]
    fn without_a_readable_release_file_the_binary_version_counts() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert_eq!(running(&missing).to_string(), env!("CARGO_PKG_VERSION"));
        for bad in ["", "latest", "1.2", &"9".repeat(100), "1.2.3 extra"] {
            std::fs::write(&missing, bad).unwrap();
            assert_eq!(
                running(&missing).to_string(),
                env!("CARGO_PKG_VERSION"),
                "{bad:?}"
            );
        }
    }
}
