//! Signed updates, end to end: the portal makes a release key, publishes a base image as a
//! signed release and serves it; a relay that opted in checks, verifies and installs it
//! through gokrazy's local update API; every bad release is refused with a clear log line
//! while the relay keeps serving.
//!
//! gokrazy's update API is a fake here (a device's init cannot run in a test process). It
//! follows gokrazy's own handlers as research/gokrazy.md §5.1 describes them, from
//! gokrazy/gokrazy `update.go` (`/update/features`, `/update/root`, `/update/boot`,
//! `/update/bootonly`, `/update/mbr`, `/update/switch`, `/update/testboot`, `/reboot`; each
//! PUT answers with the hex sha256 of what it wrote) and `authenticated.go` (HTTP Basic
//! auth as user `gokrazy`). The portal of the refusal test is a fake too, so that it can
//! serve what a real portal never would (tampered, oversized, foreign-key manifests).
//!
//! Needs Maddy (`appliance/scripts/install-test-deps.sh`) and PostgreSQL, as the other suites.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatmail_portal::updates::{keys, publish};
use chatmail_shared::update_manifest::{
    Channel, Piece, PieceName, Pieces, ReleaseVersion, Sha256Digest, UpdateManifest, UpdateTarget,
    MBR_BYTES,
};
use chatmail_tests::{
    appliance::{Appliance, RunningAppliance},
    images::file_sha256,
    portal::{portal_cli, PortalCommand},
    portal_client::{visible_text, PortalClient},
    postgres::TestPostgres,
    shared_temp_dir,
    tls_client::Trust,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DOMAIN: &str = "updates.relay.test";
const GOKRAZY_PASSWORD: &str = "gokrazy-test-password";
const RUNNING: &str = env!("CARGO_PKG_VERSION");
const LIMIT: Duration = Duration::from_secs(120);

// ---- A small HTTP/1.1 server for the fakes: one request per connection.

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake portal serves: path → (status, body).
type Routes = Arc<Mutex<HashMap<String, (u16, Vec<u8>)>>>;

type Handler = Arc<dyn Fn(&Recorded) -> (u16, Vec<u8>) + Send + Sync>;

struct FakeHttp {
    port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHttp {
    async fn start(port: u16, handler: Handler) -> FakeHttp {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the fake server");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    let (status, body) = handler(&request);
                    recorded.lock().unwrap().push(request);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        FakeHttp {
            port,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}

fn sha256_hex(scratch: &Path, bytes: &[u8]) -> String {
    let path = scratch.join(format!("hash.{}", rand_suffix()));
    std::fs::write(&path, bytes).unwrap();
    let hex = file_sha256(&path);
    let _ = std::fs::remove_file(&path);
    hex
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// gokrazy's update API as `update.go` and `authenticated.go` serve it.
async fn fake_gokrazy(scratch: PathBuf) -> FakeHttp {
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("gokrazy:{GOKRAZY_PASSWORD}")
        )
    );
    FakeHttp::start(
        0,
        Arc::new(move |r: &Recorded| {
            if r.header("authorization") != Some(expected.as_str()) {
                return (401, b"invalid username/password".to_vec());
            }
            match (r.method.as_str(), r.path.as_str()) {
                ("GET", "/update/features") => (200, b"partuuid,updatehash,gpt,".to_vec()),
                ("PUT", "/update/root" | "/update/boot" | "/update/bootonly" | "/update/mbr") => {
                    (200, sha256_hex(&scratch, &r.body).into_bytes())
                }
                ("POST", "/update/switch" | "/update/testboot" | "/reboot") => (200, Vec::new()),
                _ => (404, b"404 page not found".to_vec()),
            }
        }),
    )
    .await
}

// ---- A small base image as appliance/scripts/build-images.sh lays it out: MBR, boot FAT
// ---- in partition 1, root squashfs in partition 2, /perm in partition 4.

const MIB: u64 = 1 << 20;
const BOOT_FS: u64 = MIB; // the FAT's own length inside its 2 MiB partition
const ROOT_USED: u64 = 700_000; // squashfs bytes_used; the piece is rounded up to 4 KiB
const ROOT_PIECE: u64 = 700_416;

struct BaseImage {
    image: PathBuf,
}

fn make_base_image(dir: &Path, version: &str, seed: u8) -> BaseImage {
    std::fs::create_dir_all(dir).unwrap();
    let size = 8 * MIB;
    let mut bytes: Vec<u8> = (0..size)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    // Partition 1: a FAT boot sector saying 2048 sectors of 512 bytes.
    let boot = MIB as usize;
    bytes[boot + 11..boot + 13].copy_from_slice(&512u16.to_le_bytes());
    bytes[boot + 19..boot + 21].copy_from_slice(&((BOOT_FS / 512) as u16).to_le_bytes());
    bytes[boot + 510] = 0x55;
    bytes[boot + 511] = 0xAA;
    // cmdline.txt and the systemd-boot entry, padded as gokrazy's packer pads them.
    let cmdline = gokrazy_cmdline();
    bytes[boot + 4096..boot + 4096 + cmdline.len()].copy_from_slice(&cmdline);
    bytes[boot + 8192..boot + 8192 + cmdline.len()].copy_from_slice(&cmdline);
    // Partition 2: a squashfs superblock.
    let root = 3 * MIB as usize;
    bytes[root..root + 4].copy_from_slice(b"hsqs");
    bytes[root + 40..root + 48].copy_from_slice(&ROOT_USED.to_le_bytes());
    let image = dir.join("chatmail-amd64.img");
    std::fs::write(&image, &bytes).unwrap();
    let part = |number: u32, offset: u64, size: u64| {
        serde_json::json!({
            "number": number, "type_guid": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            "guid": format!("60c24cc1-f3f9-427a-8199-0000000000{number:02}"),
            "first_lba": offset / 512, "last_lba": (offset + size) / 512 - 1,
            "offset": offset, "size": size,
        })
    };
    let manifest = serde_json::json!({
        "format": 1, "target": "amd64", "arch": "x86_64", "version": version,
        "image": "chatmail-amd64.img", "size": size, "sha256": file_sha256(&image),
        "sector_size": 512,
        "partitions": [part(1, MIB, 2 * MIB), part(2, 3 * MIB, 2 * MIB),
                       part(3, 5 * MIB, 2 * MIB), part(4, 7 * MIB, MIB)],
    });
    std::fs::write(
        dir.join("chatmail-amd64.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    BaseImage { image }
}

/// A kernel command line as gokrazy's packer writes it: 64 spaces of padding, no newline.
fn gokrazy_cmdline() -> Vec<u8> {
    let mut line = b"console=tty1 root=PARTUUID=60c24cc1-f3f9-427a-8199-eed231000001/PARTNROFF=1 ro init=/gokrazy/init panic=10".to_vec();
    line.extend_from_slice(&[b' '; 64]);
    line
}

/// The boot piece as the relay writes it: armed for the one-time test boot.
fn armed(boot: &[u8]) -> Vec<u8> {
    let mut boot = boot.to_vec();
    assert_eq!(
        chatmail_shared::update_manifest::arm_test_boot(&mut boot),
        Ok(2)
    );
    boot
}

fn slice(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    bytes[offset as usize..(offset + len) as usize].to_vec()
}

async fn saved_config(pool: &sqlx::PgPool) -> chatmail_shared::RelayConfig {
    let text: String = sqlx::query_scalar("SELECT config_toml FROM relays")
        .fetch_one(pool)
        .await
        .unwrap();
    chatmail_shared::RelayConfig::from_toml(&text).unwrap()
}

fn update_config(portal: &str, key: &str) -> String {
    format!(
        "[updates]\nenabled = true\nportal_url = \"{portal}\"\nsigning_public_key = \"{key}\"\n"
    )
}

fn with_gokrazy(setup: Appliance, gokrazy: &FakeHttp, password_file: &Path) -> Appliance {
    setup
        .arg(format!(
            "--gokrazy-update-api=http://127.0.0.1:{}",
            gokrazy.port
        ))
        .arg(format!(
            "--gokrazy-password-file={}",
            password_file.display()
        ))
        .arg("--update-check-first-secs=0")
        .arg("--update-check-interval-secs=1")
        .arg("--update-check-retry-secs=1")
        .arg("--update-check-jitter-secs=0")
}

async fn wait_for_log(app: &RunningAppliance, what: &str) {
    app.wait_for(&format!("log line {what:?}"), LIMIT, || async {
        app.log().contains(what).then_some(())
    })
    .await
}

/// The relay keeps serving: its status document answers, it makes accounts and they can
/// log in to IMAP and SMTP.
async fn still_serving(app: &RunningAppliance) {
    let status = app.status().await;
    assert_eq!(status["version"], RUNNING);
    let home = app.https(DOMAIN, &Trust::Anything, "GET", "/").await;
    assert_eq!(home.status, 200);
    let (email, password) = app.new_account_ok().await;
    let imap = app.imap_login(&email, &password).await;
    assert!(imap.starts_with("a1 OK"), "{imap}");
    let smtp = app.smtp_auth(&email, &password).await;
    assert!(smtp.starts_with("235"), "{smtp}");
}

fn calls(gokrazy: &FakeHttp) -> Vec<String> {
    gokrazy
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_publishes_a_signed_release_and_a_relay_installs_it() {
    let dir = shared_temp_dir();
    let postgres = TestPostgres::start().await;
    let data = dir.path().join("data");
    let db = postgres.url();

    // The key pair: the secret key only in a 0600 file, never printed, never replaced.
    let key_dir = dir.path().join("keys");
    let (ok, out) = portal_cli(
        &data,
        &db,
        &["release-key", "--out", key_dir.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{out}");
    let secret_path = key_dir.join(keys::SECRET_FILE);
    let secret = std::fs::read_to_string(&secret_path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let public = out
        .lines()
        .find(|l| l.starts_with("RW") && l.len() == 56)
        .unwrap_or_else(|| panic!("no public key printed:\n{out}"))
        .to_string();
    let secret_line = secret.lines().nth(1).unwrap();
    assert!(!out.contains(secret_line), "the secret key was printed");
    let (ok, again) = portal_cli(
        &data,
        &db,
        &["release-key", "--out", key_dir.to_str().unwrap()],
        &[],
    );
    assert!(!ok && again.contains("already exists"), "{again}");
    assert_eq!(std::fs::read_to_string(&secret_path).unwrap(), secret);

    // Publishing: bad inputs first, each refused with a reason.
    let next = ReleaseVersion::parse("99.0.0").unwrap().to_string();
    let base_dir = dir.path().join("images");
    // The build script's version carries `+<input hash>`; the release is the version alone.
    let base = make_base_image(&base_dir, &format!("{next}+f7ef1974c1367709"), 7);
    let publish = |channel: &str, key: &Path| {
        portal_cli(
            &data,
            &db,
            &[
                "publish-release",
                "--channel",
                channel,
                "--target",
                "amd64",
                "--from",
                base_dir.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
            &[],
        )
    };
    let (ok, out) = publish("beta", &secret_path);
    assert!(
        !ok && out.contains("--channel must be \"stable\" or \"testing\""),
        "{out}"
    );
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out) = publish("stable", &secret_path);
    assert!(!ok && out.contains("chmod 600"), "{out}");
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, out) = publish("stable", &secret_path);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("Published {next} on stable for amd64")),
        "{out}"
    );
    // The same version again would be refused by every device: refused here too.
    let (ok, out) = publish("stable", &secret_path);
    assert!(!ok && out.contains("not newer"), "{out}");

    // The database holds the signed manifest, never the key.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT signature, convert_from(manifest, 'UTF8') FROM update_releases")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].0.contains(secret_line) && !rows[0].1.contains(secret_line));

    // Served: manifest and signature verify with the public key; pieces are the image's
    // bytes, with exact lengths and ranges.
    // DNS checks of the test relay go to a closed loopback port: they fail at once.
    let portal = PortalCommand::new(&data, dir.path())
        .database_url(db.clone())
        .arg(format!(
            "--dns-resolver=127.0.0.1:{}",
            chatmail_tests::free_port()
        ))
        .arg(format!("--release-public-key={public}"))
        .start()
        .await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = portal.url(&path);
        async move { http.get(url).send().await.unwrap() }
    };
    let manifest_bytes = get("/updates/stable/amd64/manifest.json".into())
        .await
        .bytes()
        .await
        .unwrap();
    let signature = get("/updates/stable/amd64/manifest.json.minisig".into())
        .await
        .bytes()
        .await
        .unwrap();
    let key = chatmail_shared::signing_key::UpdateSigningKey::parse(&public).unwrap();
    let verified =
        chatmail_shared::update_manifest::verify(&manifest_bytes, &signature, &key).unwrap();
    let m = verified.manifest();
    assert_eq!(m.version.to_string(), next);
    assert_eq!(m.channel, Channel::Stable);
    assert_eq!(m.target, UpdateTarget::Amd64);
    let expect = [
        (&m.pieces.root, 3 * MIB, ROOT_PIECE),
        (&m.pieces.boot, MIB, BOOT_FS),
        (&m.pieces.mbr, 0, MBR_BYTES),
    ];
    for (piece, offset, len) in expect {
        assert_eq!(piece.size, len, "{}", piece.name);
        let url = format!("/updates/stable/amd64/{}", piece.url);
        let response = get(url.clone()).await;
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(
            response.headers()["content-length"].to_str().unwrap(),
            len.to_string()
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(
            body.to_vec(),
            slice(&base.image, offset, len),
            "{}",
            piece.name
        );
        assert_eq!(sha256_hex(dir.path(), &body), piece.sha256.to_hex());
        let part = http
            .get(portal.url(&url))
            .header("range", "bytes=100-199")
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206);
        assert_eq!(
            part.bytes().await.unwrap().to_vec(),
            slice(&base.image, offset + 100, 100)
        );
    }
    // Nothing on the other channel, unknown names and pieces are 404.
    assert_eq!(
        get("/updates/testing/amd64/manifest.json".into())
            .await
            .status(),
        404
    );
    assert_eq!(
        get("/updates/beta/amd64/manifest.json".into())
            .await
            .status(),
        404
    );
    assert_eq!(
        get("/updates/stable/amd64/pieces/nothex".into())
            .await
            .status(),
        404
    );
    assert_eq!(
        get(format!("/updates/stable/amd64/pieces/{}", "0".repeat(64)))
            .await
            .status(),
        404
    );
    // Devices ask without cookies and get none.
    let response = get("/updates/stable/amd64/manifest.json".into()).await;
    assert!(response.headers().get("set-cookie").is_none());

    // A group opts in on the settings step: its relay config then names this portal and
    // its release key; without the tick it stays off.
    let client = PortalClient::new(portal.base_url());
    client
        .sign_up("alice@example.org", "correct horse battery")
        .await;
    let group = client.create_group("Family").await;
    let posted = client
        .submit(
            &format!("/groups/{group}/setup/domain"),
            &[("kind", "own"), ("domain", "updates.example.org")],
        )
        .await;
    assert_eq!(posted.status, reqwest::StatusCode::SEE_OTHER, "{posted:?}");
    sqlx::query("UPDATE relays SET completed_step = 5")
        .execute(&pool)
        .await
        .unwrap();
    let settings_page = client
        .page(&format!("/groups/{group}/setup/settings"))
        .await;
    assert!(
        settings_page.contains("name=\"update_checks\""),
        "no opt-in offered"
    );
    let mut fields = vec![
        ("contact_mail", "admin@example.org"),
        ("max_mailbox_size_mb", "500"),
        ("max_message_size_mb", "30"),
        ("delete_mails_after_days", "20"),
        ("delete_inactive_users_after_days", "90"),
    ];
    let posted = client
        .submit(&format!("/groups/{group}/setup/settings"), &fields)
        .await;
    assert_eq!(posted.status, reqwest::StatusCode::SEE_OTHER, "{posted:?}");
    assert!(
        !saved_config(&pool).await.updates.enabled,
        "on without asking"
    );
    fields.push(("update_checks", "on"));
    let posted = client
        .submit(&format!("/groups/{group}/setup/settings"), &fields)
        .await;
    assert_eq!(posted.status, reqwest::StatusCode::SEE_OTHER, "{posted:?}");
    let updates = saved_config(&pool).await.updates;
    assert!(updates.enabled);
    assert_eq!(updates.channel, Channel::Stable);
    assert_eq!(
        updates.signing_public_key.as_ref().unwrap().as_str(),
        public
    );
    let portal_url = updates.portal_url.unwrap().to_string();
    assert_eq!(portal_url, format!("{}/", portal.base_url()));

    // A relay that opted in installs it: pieces verified, then gokrazy's calls in order.
    let gokrazy = fake_gokrazy(dir.path().to_path_buf()).await;
    let password_file = dir.path().join("gokr-pw.txt");
    std::fs::write(&password_file, GOKRAZY_PASSWORD).unwrap();
    let mut setup = with_gokrazy(
        Appliance::new(DOMAIN).config(&update_config(&portal_url, &public)),
        &gokrazy,
        &password_file,
    );
    let perm = setup.perm_dir();
    let app = setup.start().await;
    wait_for_log(&app, "rebooting into it for a test boot").await;
    assert_eq!(
        calls(&gokrazy),
        [
            "GET /update/features",
            "PUT /update/root",
            "PUT /update/bootonly",
            "PUT /update/mbr",
            "POST /reboot",
        ]
    );
    let written = gokrazy.requests();
    assert_eq!(written[1].body, slice(&base.image, 3 * MIB, ROOT_PIECE));
    assert_eq!(written[2].body, armed(&slice(&base.image, MIB, BOOT_FS)));
    assert_eq!(written[3].body, slice(&base.image, 0, MBR_BYTES));
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(perm.join("chatmail/update/pending.json")).unwrap())
            .unwrap();
    assert_eq!(marker["version"], next);
    assert_eq!(marker["from"], RUNNING);
    // The check named nothing about the relay.
    let portal_log = portal.log();
    assert!(
        !portal_log.contains(DOMAIN),
        "the relay's domain reached the portal"
    );
    still_serving(&app).await;

    // The status page shows the relay's last reported version and the newer release on
    // its channel (the version comes from the go-live probe of its status document).
    sqlx::query(
        "UPDATE relays SET completed_step = 6, hardware = 'virtual_machine', device_version = $1",
    )
    .bind(RUNNING)
    .execute(&pool)
    .await
    .unwrap();
    let text = visible_text(&client.page(&format!("/groups/{group}/setup/status")).await);
    assert!(
        text.contains(&format!("Software version {RUNNING}.")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Version {next} is available on its update channel."
        )),
        "{text}"
    );
    sqlx::query("UPDATE relays SET device_version = $1")
        .bind(&next)
        .execute(&pool)
        .await
        .unwrap();
    let text = visible_text(&client.page(&format!("/groups/{group}/setup/status")).await);
    assert!(
        text.contains(&format!("Software version {next}.")),
        "{text}"
    );
    assert!(
        !text.contains("is available on its update channel"),
        "{text}"
    );

    app.stop();
    portal.stop().await;
    postgres.stop().await;
}

/// A release signed by `signer`, with the pieces' bytes as given.
fn signed(
    signer: &keys::SigningKey,
    version: &str,
    pieces: [(&[u8], &str); 3],
) -> (Vec<u8>, String) {
    let piece = |name: PieceName, (bytes, digest_of): (&[u8], &str)| Piece {
        name,
        size: bytes.len() as u64,
        sha256: Sha256Digest::parse(digest_of).unwrap(),
        url: format!("pieces/{name}"),
    };
    let manifest = UpdateManifest {
        channel: Channel::Stable,
        target: UpdateTarget::of_this_build().unwrap_or(UpdateTarget::Amd64),
        version: ReleaseVersion::parse(version).unwrap(),
        published_at: 1_790_000_000,
        pieces: Pieces {
            root: piece(PieceName::Root, pieces[0]),
            boot: piece(PieceName::Boot, pieces[1]),
            mbr: piece(PieceName::Mbr, pieces[2]),
        },
    };
    let bytes = manifest.to_json();
    let signature = publish::sign(signer, &manifest, &bytes).unwrap();
    (bytes, signature)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_releases_are_refused_and_the_relay_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().to_path_buf();
    keys::generate(&dir.path().join("good")).unwrap();
    keys::generate(&dir.path().join("other")).unwrap();
    let good = keys::load(&dir.path().join("good").join(keys::SECRET_FILE)).unwrap();
    let other = keys::load(&dir.path().join("other").join(keys::SECRET_FILE)).unwrap();

    let root = vec![0x5au8; 300_000];
    let mut boot = vec![0xa5u8; 200_000];
    let cmdline = gokrazy_cmdline();
    boot[1000..1000 + cmdline.len()].copy_from_slice(&cmdline);
    boot[5000..5000 + cmdline.len()].copy_from_slice(&cmdline);
    let mbr = vec![0x33u8; MBR_BYTES as usize];
    let (root_hex, boot_hex, mbr_hex) = (
        sha256_hex(&scratch, &root),
        sha256_hex(&scratch, &boot),
        sha256_hex(&scratch, &mbr),
    );
    let pieces = [
        (root.as_slice(), root_hex.as_str()),
        (boot.as_slice(), boot_hex.as_str()),
        (mbr.as_slice(), mbr_hex.as_str()),
    ];

    // What the fake portal serves at each path; changed step by step.
    let routes: Routes = Arc::default();
    let serve = |manifest: Vec<u8>, signature: String| {
        let mut r = routes.lock().unwrap();
        r.insert(
            "/updates/stable/amd64/manifest.json".into(),
            (200, manifest),
        );
        r.insert(
            "/updates/stable/amd64/manifest.json.minisig".into(),
            (200, signature.into_bytes()),
        );
    };
    {
        let mut r = routes.lock().unwrap();
        r.insert(
            "/updates/stable/amd64/pieces/root".into(),
            (200, root.clone()),
        );
        r.insert(
            "/updates/stable/amd64/pieces/boot".into(),
            (200, boot.clone()),
        );
        r.insert(
            "/updates/stable/amd64/pieces/mbr".into(),
            (200, mbr.clone()),
        );
    }

    // The portal is down at first.
    let portal_port = chatmail_tests::free_port();
    let gokrazy = fake_gokrazy(scratch.clone()).await;
    let password_file = scratch.join("gokr-pw.txt");
    std::fs::write(&password_file, GOKRAZY_PASSWORD).unwrap();
    let mut setup = with_gokrazy(
        Appliance::new(DOMAIN).config(&update_config(
            &format!("http://127.0.0.1:{portal_port}/"),
            &good.public.to_base64(),
        )),
        &gokrazy,
        &password_file,
    );
    // An earlier update to the next patch version never came back healthy: remembered.
    let failed_version = {
        let mut parts: Vec<u64> = RUNNING.split('.').map(|p| p.parse().unwrap()).collect();
        parts[2] += 1;
        format!("{}.{}.{}", parts[0], parts[1], parts[2])
    };
    std::fs::create_dir_all(setup.perm_dir().join("chatmail/update")).unwrap();
    std::fs::write(
        setup.perm_dir().join("chatmail/update/pending.json"),
        serde_json::json!({"version": failed_version, "from": RUNNING, "state": "trying"})
            .to_string(),
    )
    .unwrap();
    let app = setup.start().await;
    wait_for_log(
        &app,
        &format!("update to {failed_version} did not complete: the device is back on {RUNNING}"),
    )
    .await;
    wait_for_log(&app, "the portal is unreachable").await;
    wait_for_log(&app, "retrying in 1 second").await;
    still_serving(&app).await;

    let handler_routes = routes.clone();
    let portal = FakeHttp::start(
        portal_port,
        Arc::new(move |r: &Recorded| {
            handler_routes
                .lock()
                .unwrap()
                .get(&r.path)
                .cloned()
                .unwrap_or((404, b"not found".to_vec()))
        }),
    )
    .await;
    wait_for_log(&app, "no release is published").await;

    // Oversized manifest.
    serve(vec![b' '; 20_000], "x".into());
    wait_for_log(&app, "sent more than 16384 bytes").await;

    // Tampered manifest: signed, then one version digit changed.
    let (bytes, signature) = signed(&good, "50.0.0", pieces);
    let tampered = String::from_utf8(bytes.clone())
        .unwrap()
        .replace("50.0.0", "51.0.0")
        .into_bytes();
    serve(tampered, signature.clone());
    wait_for_log(
        &app,
        "update refused: the signature does not match the manifest",
    )
    .await;

    // A signature that is not minisign at all.
    serve(
        bytes.clone(),
        "untrusted comment: x\nnot a signature\n".into(),
    );
    wait_for_log(
        &app,
        "update refused: the signature file is not a minisign signature",
    )
    .await;

    // Signed with another key.
    let (bytes, signature) = signed(&other, "50.0.0", pieces);
    serve(bytes, signature);
    wait_for_log(
        &app,
        "update refused: the manifest is signed with another key",
    )
    .await;

    // Downgrade and the same version.
    let (bytes, signature) = signed(&good, "0.0.1", pieces);
    serve(bytes, signature);
    wait_for_log(&app, "downgrades are refused").await;
    let (bytes, signature) = signed(&good, RUNNING, pieces);
    serve(bytes, signature);
    wait_for_log(&app, &format!("version {RUNNING} is the running version")).await;

    // The version that failed here before.
    let (bytes, signature) = signed(&good, &failed_version, pieces);
    serve(bytes, signature);
    wait_for_log(
        &app,
        &format!("version {failed_version} did not become healthy here before"),
    )
    .await;

    // A piece whose bytes do not match the signed hash.
    let (bytes, signature) = signed(
        &good,
        "50.0.0",
        [(root.as_slice(), boot_hex.as_str()), pieces[1], pieces[2]],
    );
    serve(bytes, signature);
    wait_for_log(&app, "the root piece's sha256 is").await;
    still_serving(&app).await;
    // Nothing of any refused release reached gokrazy.
    assert!(calls(&gokrazy).is_empty(), "{:?}", calls(&gokrazy));

    // The requests named nothing about the relay: no cookies, no query, a generic agent.
    for r in portal.requests() {
        assert!(r.header("cookie").is_none(), "{r:?}");
        assert!(!r.path.contains('?'), "{r:?}");
        assert_eq!(r.header("user-agent"), Some("chatmail-relay"));
        let names: Vec<String> = r.headers.iter().map(|(n, _)| n.to_lowercase()).collect();
        assert_eq!(names, ["host", "user-agent"], "{r:?}");
        assert!(!format!("{r:?}").contains(DOMAIN));
    }

    // Finally a good one: written in gokrazy's order, then the test boot and a reboot.
    let (bytes, signature) = signed(&good, "50.0.0", pieces);
    serve(bytes, signature);
    wait_for_log(&app, "rebooting into it for a test boot").await;
    assert_eq!(
        calls(&gokrazy),
        [
            "GET /update/features",
            "PUT /update/root",
            "PUT /update/bootonly",
            "PUT /update/mbr",
            "POST /reboot",
        ]
    );
    let written = gokrazy.requests();
    assert_eq!(written[1].body, root);
    assert_eq!(written[2].body, armed(&boot));
    assert_eq!(written[3].body, mbr);
    still_serving(&app).await;
    app.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_makes_itself_permanent_once_healthy() {
    // The boot after an update: the marker names the running version, so this is the new
    // version on its test boot. Once healthy it calls /update/switch; update checks need
    // not be on for this.
    let dir = tempfile::tempdir().unwrap();
    let gokrazy = fake_gokrazy(dir.path().to_path_buf()).await;
    let password_file = dir.path().join("gokr-pw.txt");
    std::fs::write(&password_file, GOKRAZY_PASSWORD).unwrap();
    let mut setup = with_gokrazy(Appliance::new(DOMAIN), &gokrazy, &password_file);
    let marker = setup.perm_dir().join("chatmail/update/pending.json");
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(
        &marker,
        serde_json::json!({"version": RUNNING, "from": "0.0.1", "state": "trying"}).to_string(),
    )
    .unwrap();
    let app = setup.start().await;
    wait_for_log(&app, "it is now the version this device boots").await;
    assert_eq!(calls(&gokrazy), ["POST /update/switch"]);
    assert!(!marker.exists());
    wait_for_log(&app, "update checks are off").await;
    still_serving(&app).await;
    app.stop();
}
