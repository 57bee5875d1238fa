//! The personalized image, checked with tools that know nothing of the portal: its
//! partition tables are intact, /perm checks clean with `e2fsck -n` and holds the relay's
//! configuration, every other byte is the base image's, and each download format
//! decompresses with the standard tools (gzip, zstd) to exactly the raw image and its
//! sha256. Downloads resume, refuse ranges past the end, are for members only and count
//! against the group's daily quota; an oversized configuration is refused.

use std::{fs::File, path::Path};

use chatmail_portal::images::gpt;
use chatmail_tests::{
    images::{base_images_dir, download, e2fsprogs, file_sha256, manifest, run, same_bytes},
    portal::{PortalCommand, RunningPortal},
    portal_client::{visible_text, PortalClient},
    postgres::TestPostgres,
    shared_temp_dir,
};
use reqwest::{header, StatusCode};
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery";
const DOMAIN: &str = "verify.example.org";

struct Setup {
    _postgres: TestPostgres,
    pool: PgPool,
    portal: RunningPortal,
    client: PortalClient,
    group: String,
}

async fn set_up(dir: &Path) -> Setup {
    let images = base_images_dir();
    let postgres = TestPostgres::start().await;
    let pool = PgPool::connect(&postgres.url()).await.unwrap();
    let portal = PortalCommand::new(&dir.join("data"), dir)
        .database_url(postgres.url())
        .arg("--images-dir")
        .arg(images.to_string_lossy().to_string())
        .start()
        .await;
    let client = PortalClient::new(portal.base_url());
    client.sign_up("alice@example.org", PASSWORD).await;
    let group = client.create_group("Family").await;
    let posted = client
        .submit(
            &format!("/groups/{group}/setup/domain"),
            &[("kind", "own"), ("domain", DOMAIN)],
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "domain: {posted:?}");
    // The DNS steps are other suites' business: here they count as done, so the wizard
    // opens every step up to the download.
    sqlx::query("UPDATE relays SET completed_step = 5")
        .execute(&pool)
        .await
        .unwrap();
    let posted = client
        .submit(
            &format!("/groups/{group}/setup/settings"),
            &[
                ("contact_mail", "admin@example.org"),
                ("max_mailbox_size_mb", "500"),
                ("max_message_size_mb", "30"),
                ("delete_mails_after_days", "20"),
                ("delete_inactive_users_after_days", "90"),
            ],
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "settings: {posted:?}");
    Setup {
        _postgres: postgres,
        pool,
        portal,
        client,
        group,
    }
}

/// The sha256 the download page shows for the image labelled `label`.
fn page_sha256(text: &str, label: &str) -> String {
    let section = text
        .find(label)
        .map(|at| &text[at..])
        .unwrap_or_else(|| panic!("the page offers {label}: {text}"));
    let at = section
        .find("SHA-256 of the uncompressed image: ")
        .unwrap_or_else(|| panic!("the page shows the sha256: {text}"));
    section[at + 35..at + 35 + 64].to_string()
}

const PC: &str = "PC or virtual machine (x86-64)";
const PI: &str = "Raspberry Pi 4 or 5";

#[tokio::test]
async fn the_personalized_image_is_the_base_image_with_the_config_in_perm() {
    let dir = shared_temp_dir();
    let s = set_up(dir.path()).await;
    let images = base_images_dir();
    let base = images.join("chatmail-amd64.img");
    let m = manifest(&images, "amd64");

    let page = visible_text(
        &s.client
            .page(&format!("/groups/{}/setup/download", s.group))
            .await,
    );
    let shown_sha = page_sha256(&page, PC);
    assert!(page.contains("Download .img.gz"), "{page}");

    // Raw: exact length, ranges offered, the sha256 the page shows.
    let raw = download(
        &s.client.http,
        &s.client
            .url(&format!("/groups/{}/download/amd64.img", s.group)),
        &[],
        &dir.path().join("relay.img"),
        false,
        None,
    )
    .await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(
        raw.headers[header::CONTENT_LENGTH].to_str().unwrap(),
        m["size"].to_string()
    );
    assert_eq!(raw.headers[header::ACCEPT_RANGES], "bytes");
    assert!(raw.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(raw.sha256, shown_sha);
    assert_ne!(raw.sha256, m["sha256"].as_str().unwrap());

    // Partition tables intact and the same as the base image's.
    let tables = gpt::read(&File::open(&raw.path).unwrap()).expect("partition tables");
    assert_eq!(tables, gpt::read(&File::open(&base).unwrap()).unwrap());
    let perm = tables.partition(4).unwrap();
    // Every byte outside /perm is the base image's.
    assert!(same_bytes(&base, &raw.path, 0, perm.offset()));
    let end = perm.offset() + perm.size();
    assert!(same_bytes(&base, &raw.path, end, raw.len - end));

    // /perm: a clean ext4 with the relay's configuration.
    let perm_path = dir.path().join("perm.img");
    run(
        "dd",
        &[
            &format!("if={}", raw.path.display()),
            &format!("of={}", perm_path.display()),
            "bs=1M",
            &format!("skip={}", perm.offset() >> 20),
            &format!("count={}", perm.size().div_ceil(1 << 20)),
            "status=none",
        ],
    );
    run(&e2fsprogs("e2fsck"), &["-fn", &perm_path.to_string_lossy()]);
    let config = run(
        &e2fsprogs("debugfs"),
        &[
            "-R",
            "cat /chatmail/relay.toml",
            &perm_path.to_string_lossy(),
        ],
    );
    let saved: String = sqlx::query_scalar("SELECT config_toml FROM relays")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let parsed = chatmail_shared::RelayConfig::from_toml(&config).expect("a valid config");
    assert_eq!(parsed.mail_domain.as_str(), DOMAIN);
    assert_eq!(
        parsed,
        chatmail_shared::RelayConfig::from_toml(&saved).unwrap()
    );
    // Nothing secret: no keys, no passwords.
    let listing = run(
        &e2fsprogs("debugfs"),
        &["-R", "ls -l /chatmail", &perm_path.to_string_lossy()],
    );
    assert!(listing.contains("relay.toml"), "{listing}");
    assert!(
        !listing.contains(".key") && !listing.contains(".pem"),
        "{listing}"
    );

    // .img.gz: one gzip member whose trailer gives the exact size; decompresses to the raw
    // image.
    let gz = download(
        &s.client.http,
        &s.client
            .url(&format!("/groups/{}/download/amd64.img.gz", s.group)),
        &[],
        &dir.path().join("relay.img.gz"),
        false,
        None,
    )
    .await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(
        gz.headers[header::CONTENT_LENGTH].to_str().unwrap(),
        gz.len.to_string()
    );
    assert!(gz.len < raw.len / 4, "{} vs {}", gz.len, raw.len);
    let listing = run("gzip", &["-l", &gz.path.to_string_lossy()]);
    assert!(
        listing.contains(&format!(" {} ", raw.len)),
        "gzip -l reports the size: {listing}"
    );
    let unpacked = dir.path().join("from-gz.img");
    run(
        "sh",
        &[
            "-c",
            &format!(
                "gzip -dc '{}' > '{}'",
                gz.path.display(),
                unpacked.display()
            ),
        ],
    );
    assert_eq!(file_sha256(&unpacked), raw.sha256);
    std::fs::remove_file(&unpacked).unwrap();

    // .img.zst: frames with their sizes; decompresses to the raw image.
    let zst = download(
        &s.client.http,
        &s.client
            .url(&format!("/groups/{}/download/amd64.img.zst", s.group)),
        &[],
        &dir.path().join("relay.img.zst"),
        false,
        None,
    )
    .await;
    assert_eq!(zst.status, StatusCode::OK);
    let listing = run("zstd", &["-lv", &zst.path.to_string_lossy()]);
    assert!(
        listing.contains(&format!("({} B)", raw.len)),
        "zstd -lv reports the size: {listing}"
    );
    run(
        "sh",
        &[
            "-c",
            &format!(
                "zstd -q -dc '{}' > '{}'",
                zst.path.display(),
                unpacked.display()
            ),
        ],
    );
    assert_eq!(file_sha256(&unpacked), raw.sha256);
    assert!(s.portal.stop().await.success());
}

#[tokio::test]
async fn downloads_resume_refuse_bad_ranges_and_count_against_the_quota() {
    let dir = shared_temp_dir();
    let s = set_up(dir.path()).await;
    let url = s
        .client
        .url(&format!("/groups/{}/download/amd64.img.gz", s.group));
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM image_downloads")
            .fetch_one(&s.pool)
            .await
            .unwrap()
    };

    // HEAD: the length, nothing counted.
    let head = s.client.http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let len: u64 = head.headers()[header::CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let etag = head.headers()[header::ETAG].to_str().unwrap().to_string();
    assert_eq!(count().await, 0);

    // A range past the end.
    let past = s
        .client
        .http
        .get(&url)
        .header(header::RANGE, format!("bytes={len}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        past.headers()[header::CONTENT_RANGE],
        format!("bytes */{len}")
    );
    assert_eq!(count().await, 0);

    // Interrupted after 3 MiB, then resumed where it stopped.
    let file = dir.path().join("relay.img.gz");
    let first = download(&s.client.http, &url, &[], &file, false, Some(3 << 20)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(count().await, 1);
    let rest = download(
        &s.client.http,
        &url,
        &[
            (header::RANGE, format!("bytes={}-", first.len)),
            (header::IF_RANGE, etag.clone()),
        ],
        &file,
        true,
        None,
    )
    .await;
    assert_eq!(rest.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        rest.headers[header::CONTENT_RANGE],
        format!("bytes {}-{}/{len}", first.len, len - 1)
    );
    assert_eq!(rest.len, len - first.len);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), len);
    assert_eq!(count().await, 1, "resuming is not a new download");
    let unpacked = dir.path().join("unpacked.img");
    run(
        "sh",
        &[
            "-c",
            &format!("gzip -dc '{}' > '{}'", file.display(), unpacked.display()),
        ],
    );
    let page = visible_text(
        &s.client
            .page(&format!("/groups/{}/setup/download", s.group))
            .await,
    );
    assert_eq!(file_sha256(&unpacked), page_sha256(&page, PC));
    assert!(
        page.contains("Downloads in the last 24 hours: 1 of 10"),
        "{page}"
    );

    // A stale If-Range gets the whole image (and counts).
    let stale = s
        .client
        .http
        .get(&url)
        .header(header::RANGE, "bytes=100-")
        .header(header::IF_RANGE, "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    drop(stale);

    // Members only: someone else gets 404, an anonymous visitor the sign-in page.
    let bob = PortalClient::new(s.portal.base_url());
    bob.sign_up("bob@example.org", PASSWORD).await;
    let (status, _, _) = bob
        .get(&format!("/groups/{}/download/amd64.img.gz", s.group))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let anonymous = PortalClient::new(s.portal.base_url());
    let (_, path, _) = anonymous
        .get(&format!("/groups/{}/download/amd64.img", s.group))
        .await;
    assert!(path.starts_with("/signin"), "{path}");

    // The quota: the operator allows two a day; the third is refused.
    sqlx::query("UPDATE operator_settings SET downloads_per_day = 2")
        .execute(&s.pool)
        .await
        .unwrap();
    assert_eq!(count().await, 2);
    let refused = s.client.http.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("used its 2 image downloads"));
    // The audit log has each counted download.
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'image.download'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(audited, 2);

    // A disabled group cannot download.
    sqlx::query("UPDATE operator_settings SET downloads_per_day = 100")
        .execute(&s.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE groups SET disabled_reason = 'abuse', disabled_at = now()")
        .execute(&s.pool)
        .await
        .unwrap();
    let disabled = s.client.http.get(&url).send().await.unwrap();
    assert_eq!(disabled.status(), StatusCode::FORBIDDEN);
    assert!(s.portal.stop().await.success());
}

#[tokio::test]
async fn an_oversized_configuration_is_refused() {
    let dir = shared_temp_dir();
    let s = set_up(dir.path()).await;
    // 70 000 bytes: a comment cannot make a config valid past the 64 KiB limit.
    let huge = format!(
        "schema_version = 1\nmail_domain = \"{DOMAIN}\"\n#{}\n",
        "x".repeat(70_000)
    );
    sqlx::query("UPDATE relays SET config_toml = $1")
        .bind(&huge)
        .execute(&s.pool)
        .await
        .unwrap();
    let response = s
        .client
        .http
        .get(
            s.client
                .url(&format!("/groups/{}/download/amd64.img", s.group)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = response.text().await.unwrap();
    assert!(body.contains("at most 65536 bytes"), "{body}");
    let page = visible_text(
        &s.client
            .page(&format!("/groups/{}/setup/download", s.group))
            .await,
    );
    assert!(page.contains("at most 65536 bytes"), "{page}");
    assert!(!page.contains("Download .img"), "{page}");
    let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM image_downloads")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(counted, 0);
    assert!(s.portal.stop().await.success());
}

#[tokio::test]
async fn the_download_step_shows_each_image_and_the_imager_repository() {
    let dir = shared_temp_dir();
    let s = set_up(dir.path()).await;
    let images = base_images_dir();
    let m = manifest(&images, "amd64");
    let step = format!("/groups/{}/setup/download", s.group);
    let html = s.client.page(&step).await;
    let page = visible_text(&html);

    // Each image: its size, its sha256 and a link per format, with the size of each file.
    assert!(page.contains("PC or virtual machine (x86-64)"), "{page}");
    let size = m["size"].as_u64().unwrap();
    assert!(
        page.contains(&format!("Uncompressed size: 1.3 GiB ({size} bytes)")),
        "{page}"
    );
    let sha = page_sha256(&page, PC);
    assert_eq!(sha.len(), 64);
    assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()), "{sha}");
    for format in ["img.gz", "img.zst", "img"] {
        let href = format!("href=\"/groups/{}/download/amd64.{format}\"", s.group);
        assert!(html.contains(&href), "no link {href}: {html}");
        assert!(page.contains(&format!("Download .{format} ")), "{page}");
    }
    // The sizes shown are the sizes served.
    let gz_len: u64 = s
        .client
        .http
        .head(
            s.client
                .url(&format!("/groups/{}/download/amd64.img.gz", s.group)),
        )
        .send()
        .await
        .unwrap()
        .headers()[header::CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let gz_shown = format!(
        "Download .img.gz {} MiB",
        format_args!("{:.1}", gz_len as f64 / (1 << 20) as f64)
    );
    assert!(page.contains(&gz_shown), "{gz_shown}: {page}");
    assert!(
        page.contains("Downloads in the last 24 hours: 0 of 10"),
        "{page}"
    );
    assert!(!html.contains("<progress"), "no download yet: {html}");

    // A download in progress shows as a bar with how far it got.
    let partial = download(
        &s.client.http,
        &s.client
            .url(&format!("/groups/{}/download/amd64.img", s.group)),
        &[],
        &dir.path().join("partial.img"),
        false,
        Some(8 << 20),
    )
    .await;
    assert_eq!(partial.status, StatusCode::OK);
    let html = s.client.page(&step).await;
    let bar = html
        .find("<progress")
        .map(|at| &html[at..at + html[at..].find('>').unwrap()])
        .unwrap_or_else(|| panic!("a progress bar: {html}"));
    assert!(bar.contains(&format!("max=\"{size}\"")), "{bar}");
    let page = visible_text(&html);
    assert!(
        page.contains("chatmail-verify.example.org-amd64.img"),
        "{page}"
    );

    // The Raspberry Pi Imager repository: made on request, readable without an account,
    // listing the group's Pi image with the size and sha256 the page shows.
    assert!(page.contains("Raspberry Pi Imager"), "{page}");
    assert!(!html.contains("id=\"imager-url\""), "{html}");
    let made = s
        .client
        .submit(&format!("/groups/{}/imager-link", s.group), &[])
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{made:?}");
    let html = s.client.page(&step).await;
    let at = html.find("id=\"imager-url\">").expect("the Imager address") + 16;
    let imager_url = html[at..at + html[at..].find('<').unwrap()].to_string();
    assert!(imager_url.ends_with("/os-list.json"), "{imager_url}");
    let path = &imager_url[imager_url.find("/imager/").expect("an /imager/ path")..];
    let anonymous = PortalClient::new(s.portal.base_url());
    let response = anonymous
        .http
        .get(anonymous.url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let list: serde_json::Value = response.json().await.unwrap();
    let entry = &list["os_list"][0];
    let page = visible_text(&html);
    let rpi_sha = page_sha256(&page, PI);
    assert_eq!(entry["extract_sha256"], rpi_sha.as_str(), "{list}");
    assert_eq!(
        entry["extract_size"],
        manifest(&images, "rpi")["size"],
        "{list}"
    );
    assert!(
        entry["name"]
            .as_str()
            .unwrap()
            .contains("verify.example.org"),
        "{list}"
    );
    // Imager downloads the .img.gz from the address in the list: the length it expects.
    let image_url = entry["url"].as_str().unwrap();
    let image_path = &image_url[image_url.find("/imager/").unwrap()..];
    let head = anonymous
        .http
        .head(anonymous.url(image_path))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH].to_str().unwrap(),
        entry["image_download_size"].to_string()
    );
    assert!(s.portal.stop().await.success());
}

/// Every device the portal has an image for is offered, whatever hardware step 4 says:
/// the chosen device's image comes first, marked, and the others follow.
#[tokio::test]
async fn the_download_step_offers_every_device_the_chosen_one_first() {
    let dir = shared_temp_dir();
    let s = set_up(dir.path()).await;
    let step = format!("/groups/{}/setup/download", s.group);
    for (hardware, first, second) in [
        ("raspberry_pi", "image-rpi", "image-amd64"),
        ("virtual_machine", "image-amd64", "image-rpi"),
    ] {
        sqlx::query("UPDATE relays SET hardware = $1")
            .bind(hardware)
            .execute(&s.pool)
            .await
            .unwrap();
        let html = s.client.page(&step).await;
        let at = |id: &str| {
            html.find(&format!("id=\"{id}\""))
                .unwrap_or_else(|| panic!("{hardware}: no section {id}: {html}"))
        };
        assert!(at(first) < at(second), "{hardware}: {first} first");
        assert!(
            visible_text(&html).contains("For your hardware"),
            "{hardware}"
        );
        for target in ["rpi", "amd64"] {
            let href = format!("href=\"/groups/{}/download/{target}.img\"", s.group);
            assert!(html.contains(&href), "{hardware}: no link {href}");
        }
    }
}
