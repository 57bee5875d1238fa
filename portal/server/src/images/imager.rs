//! The Raspberry Pi Imager repository for a group: an OS list (Imager's `os_list` JSON,
//! raspberrypi/rpi-imager `doc/json-schema/os-list-schema.json`) with the group's
//! personalized Raspberry Pi image, so that Imager ("Use custom repository", or
//! `rpi-imager --repo <url>`) lists it, downloads it and checks it against
//! `extract_sha256` and `extract_size`.
//!
//! `init_format` is left out on purpose: Imager's OS customisation writes files for
//! Raspberry Pi OS into the boot partition, which gokrazy neither reads nor has room for.

use serde::Serialize;

/// The document.
#[derive(Debug, Serialize)]
pub struct OsList {
    pub os_list: Vec<OsEntry>,
}

/// One image.
#[derive(Debug, Serialize)]
pub struct OsEntry {
    pub name: String,
    pub description: String,
    pub icon: String,
    pub url: String,
    pub extract_size: u64,
    pub extract_sha256: String,
    pub image_download_size: u64,
    pub release_date: String,
    pub devices: Vec<&'static str>,
    pub website: String,
}

/// Imager's names of the boards the Raspberry Pi image runs on.
pub const PI_DEVICES: &[&str] = &["pi4-64bit", "pi5-64bit"];

/// The release date Imager shows: the day the base image was built.
pub fn release_date(build_timestamp: &str) -> String {
    let day = build_timestamp.get(..10).unwrap_or("");
    let valid = day.len() == 10
        && day.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if valid {
        day.to_string()
    } else {
        "1970-01-01".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(release_date("2026-11-29T10:00:00Z"), "2026-11-29");
        assert_eq!(release_date("soon"), "1970-01-01");
    }

    #[test]
    fn shape() {
        let list = OsList {
            os_list: vec![OsEntry {
                name: "n".into(),
                description: "d".into(),
                icon: "https://p/i.svg".into(),
                url: "https://p/x.img.gz".into(),
                extract_size: 10,
                extract_sha256: "ab".into(),
                image_download_size: 5,
                release_date: "2026-01-01".into(),
                devices: PI_DEVICES.to_vec(),
                website: "https://p/".into(),
            }],
        };
        let v = serde_json::to_value(&list).unwrap();
        for key in [
            "name",
            "description",
            "icon",
            "url",
            "extract_size",
            "extract_sha256",
            "image_download_size",
            "release_date",
        ] {
            assert!(v["os_list"][0].get(key).is_some(), "{key}");
        }
    }
}
