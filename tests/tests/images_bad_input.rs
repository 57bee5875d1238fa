//! Base images the portal must refuse at start-up, each with a message that says what is
//! wrong: a corrupt image (one byte changed), an image for the wrong architecture (an
//! x86-64 image offered as the Raspberry Pi's), and a truncated one.

use std::{os::unix::fs::FileExt, path::Path, time::Duration};

use chatmail_tests::{images::base_images_dir, portal::PortalCommand, shared_temp_dir};

/// Starts a portal on `images` that must fail; returns what it printed.
fn refused(images: &Path, dir: &Path) -> String {
    let (status, output) = PortalCommand::new(&dir.join("data"), dir)
        .arg("--images-dir")
        .arg(images.to_string_lossy().to_string())
        .run_to_failure(Duration::from_secs(120));
    assert!(!status.success(), "{output}");
    output
}

fn manifest(images: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(images.join("chatmail-amd64.json")).unwrap()).unwrap()
}

#[test]
fn a_corrupt_base_image_is_refused() {
    let images = base_images_dir();
    let dir = shared_temp_dir();
    let bad = dir.path().join("images");
    std::fs::create_dir(&bad).unwrap();
    let copy = bad.join("chatmail-amd64.img");
    let status = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(images.join("chatmail-amd64.img"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(
        images.join("chatmail-amd64.json"),
        bad.join("chatmail-amd64.json"),
    )
    .unwrap();
    // One byte inside the root file system (partition 2).
    let root_offset = manifest(&images)["partitions"][1]["offset"]
        .as_u64()
        .unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, root_offset + 4096).ok();
    file.write_all_at(&[byte[0] ^ 0xff], root_offset + 4096)
        .unwrap();
    drop(file);
    let output = refused(&bad, dir.path());
    assert!(output.contains("base image refused"), "{output}");
    assert!(
        output.contains("the image is corrupt: its sha256 is"),
        "{output}"
    );
}

#[test]
fn a_base_image_for_the_wrong_architecture_is_refused() {
    let images = base_images_dir();
    let dir = shared_temp_dir();
    let bad = dir.path().join("images");
    std::fs::create_dir(&bad).unwrap();
    // The x86-64 image, claimed (by name and manifest) to be the Raspberry Pi's.
    std::os::unix::fs::symlink(
        images.join("chatmail-amd64.img"),
        bad.join("chatmail-rpi.img"),
    )
    .unwrap();
    let mut m = manifest(&images);
    m["target"] = "rpi".into();
    m["arch"] = "aarch64".into();
    m["image"] = "chatmail-rpi.img".into();
    std::fs::write(bad.join("chatmail-rpi.json"), m.to_string()).unwrap();
    let output = refused(&bad, dir.path());
    assert!(
        output.contains(
            "wrong architecture for target rpi: the root partition is for x86_64, the target needs aarch64"
        ),
        "{output}"
    );
}

#[test]
fn a_truncated_base_image_is_refused() {
    let images = base_images_dir();
    let dir = shared_temp_dir();
    let bad = dir.path().join("images");
    std::fs::create_dir(&bad).unwrap();
    let mut m = manifest(&images);
    let size = m["size"].as_u64().unwrap();
    // A sparse file of half the size with the real manifest.
    let file = std::fs::File::create(bad.join("chatmail-amd64.img")).unwrap();
    file.set_len(size / 2).unwrap();
    drop(file);
    std::fs::write(bad.join("chatmail-amd64.json"), m.to_string()).unwrap();
    let output = refused(&bad, dir.path());
    assert!(output.contains("it is truncated"), "{output}");
    // And a manifest that is not JSON at all.
    m = serde_json::Value::Null;
    std::fs::write(bad.join("chatmail-amd64.json"), format!("{m} not json")).unwrap();
    let output = refused(&bad, dir.path());
    assert!(output.contains("the manifest cannot be read"), "{output}");
}
