//! The whole journey, end to end on this machine: in headless Chromium a new person signs
//! up, creates a group, names the relay in a zone served by a local PowerDNS, connects it,
//! applies the DNS plan and downloads the amd64 image; the image boots in QEMU, gets its
//! certificate from Pebble, the portal's probes prove the device and publish its DKIM key
//! and CAA record in PowerDNS, the status page turns to "ready", and two Delta Chat
//! clients with accounts made through the relay's `/new` exchange encrypted messages.
//! The test prints the wall time of each phase and how many inputs the person made.
//!
//! The test network: the relay's "public" address is 127.0.0.1 (the wizard rightly refuses
//! it, so it is set in the database after the person typed a public one), QEMU forwards the
//! relay's ports there, and the portal's `--probe-port-map` knows where. Pebble resolves
//! every name to 127.0.0.1 and validates on the forwarded port 80; the guest reaches Pebble
//! as 10.0.2.100. The portal names that directory in the image (`--relay-acme-directory`)
//! and its CAA domain in the relay's CAA record (`--relay-acme-caa-issuer`);
//! Pebble's CA goes into /perm/chatmail/extra-args, as a tester with the card would add it.

use chatmail_tests::portal_client::phase_done;
use chatmail_tests::zone::zone_lines;
use std::{
    cell::Cell,
    net::SocketAddr,
    time::{Duration, Instant},
};

use chatmail_dns_world::pdns::PowerDns;
use chatmail_portal::images::base::Manifest as BaseManifest;
use chatmail_tests::{
    browser::{Browser, JavaScript},
    deltachat, free_port,
    images::{add_to_perm, base_images_dir, download, manifest, Qemu, HOST_SERVICES_IP},
    pebble::Pebble,
    portal::PortalCommand,
    postgres::TestPostgres,
    shared_temp_dir,
    tls_client::{self, Trust},
    workspace::require_bundle,
};
use fantoccini::Locator;
use sqlx::PgPool;

const ZONE: &str = "example.org";
const DOMAIN: &str = "chat.example.org";
const PASSWORD: &str = "correct horse battery";
const LIMIT: Duration = Duration::from_secs(600);
/// Where the guest reaches Pebble (forwarded to Pebble's port on the host).
const GUEST_ACME_PORT: u16 = 14000;
/// The CAA domain the portal is told for the test CA (Pebble checks no CAA; the record must
/// still name the CA the relays use, not Let's Encrypt).
const CAA_ISSUER: &str = "pebble.test";

/// The person at the browser: every field typed and every click is counted.
struct Person {
    browser: Browser,
    inputs: Cell<u32>,
}

impl Person {
    async fn types(&self, field: &str, value: &str) {
        self.inputs.set(self.inputs.get() + 1);
        self.browser.fill(field, value).await;
    }

    async fn clicks(&self, css: &str) {
        self.inputs.set(self.inputs.get() + 1);
        self.browser.click(css).await;
    }

    async fn sees(&self, heading: &str) {
        self.browser.wait_for_heading(heading).await;
        self.browser.wait_hydrated().await;
    }
}

/// Wall time of each phase, printed at the end.
struct Phases {
    started: Instant,
    last: Instant,
    done: Vec<(String, f64)>,
}

impl Phases {
    fn new() -> Phases {
        let now = Instant::now();
        Phases {
            started: now,
            last: now,
            done: Vec::new(),
        }
    }

    fn end(&mut self, name: &str) {
        let seconds = self.last.elapsed().as_secs_f64();
        eprintln!("phase {name}: {seconds:.1} s");
        self.done.push((name.to_string(), seconds));
        self.last = Instant::now();
    }
}

/// The relay's status document over its forwarded HTTPS port, trusting only `trust`.
async fn relay_status(https: SocketAddr, trust: &Trust) -> Option<serde_json::Value> {
    let attempt = async {
        tls_client::connect_tls(https, DOMAIN, trust, &[b"http/1.1"])
            .await
            .ok()?;
        let response = tls_client::https(
            https,
            DOMAIN,
            trust,
            "GET",
            "/.well-known/chatmail-relay/status.json",
        )
        .await;
        (response.status == 200).then(|| response.json())
    };
    tokio::time::timeout(Duration::from_secs(20), attempt)
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_goes_from_sign_up_to_chatting_on_its_own_relay() {
    require_bundle();
    chatmail_tests::tls_ready();
    let mut phases = Phases::new();

    // The world: DNS provider, CA, database, the portal with its images.
    let images = base_images_dir();
    let base: BaseManifest = serde_json::from_value(manifest(&images, "amd64")).unwrap();
    let mut pdns = PowerDns::start().await;
    pdns.create_zone(ZONE);
    let guest = [25u16, 80, 443, 465, 587, 993];
    let host: Vec<u16> = guest.iter().map(|_| free_port()).collect();
    let forwarded = |port: u16| host[guest.iter().position(|g| *g == port).unwrap()];
    let pebble = Pebble::start(forwarded(80)).await;
    let dir = shared_temp_dir();
    let issuing_root = pebble.issuing_root_pem().await;
    let ca_file = dir.path().join("pebble-issuing-root.pem");
    std::fs::write(&ca_file, &issuing_root).unwrap();
    let postgres = TestPostgres::start().await;
    let pool = PgPool::connect(&postgres.url()).await.unwrap();
    let port_map: Vec<String> = guest
        .iter()
        .zip(&host)
        .map(|(g, h)| format!("{g}={h}"))
        .collect();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(postgres.url())
        .device_probes()
        .arg("--images-dir")
        .arg(images.to_string_lossy().to_string())
        .arg("--dns-resolver")
        .arg(pdns.dns_addr().to_string())
        .arg("--dns-nameserver-port")
        .arg(pdns.dns_addr().port().to_string())
        .arg("--probe-ca-file")
        .arg(ca_file.display().to_string())
        .arg("--probe-port-map")
        .arg(port_map.join(","))
        .arg("--relay-acme-directory")
        .arg(format!("https://{HOST_SERVICES_IP}:{GUEST_ACME_PORT}/dir"))
        .arg("--relay-acme-caa-issuer")
        .arg(CAA_ISSUER)
        .start()
        .await;
    phases.end("services up");

    // 1. The person, in the browser: sign up on the start page, start the relay with its
    //    name and address (settings and hardware at their defaults), connect the detected
    //    PowerDNS, write the records; the page goes on to the download by itself.
    let person = Person {
        browser: Browser::start(JavaScript::Enabled).await,
        inputs: Cell::new(0),
    };
    person.browser.open(&portal.url("/start")).await;
    person.browser.wait_hydrated().await;
    person.types("email", "alice@example.org").await;
    person.types("password", PASSWORD).await;
    person.clicks("button[type=submit]").await;
    person.sees("Your groups").await;
    person.types("domain", DOMAIN).await;
    person.types("ipv4", "93.184.216.34").await;
    person
        .clicks("form[action='/groups'] button[type=submit]")
        .await;
    person.sees("Step 2: DNS provider").await;
    let group = person
        .browser
        .path()
        .await
        .split('/')
        .nth(2)
        .expect("/groups/<id>/…")
        .to_string();
    // The name servers said they run PowerDNS: its form is open already.
    person.types("url", &pdns.api_url()).await;
    person.types("api_key", pdns.api_key()).await;
    person
        .clicks("details.connect-choice:first-of-type button[type=submit]")
        .await;
    person.sees("Step 5: DNS records").await;
    // The test network: the device's public address is this machine's loopback.
    sqlx::query(
        "UPDATE relays SET ipv4 = '127.0.0.1', \
         config_toml = replace(config_toml, '93.184.216.34', '127.0.0.1')",
    )
    .execute(&pool)
    .await
    .unwrap();
    person
        .browser
        .open(&portal.url(&format!("/groups/{group}/setup/records")))
        .await;
    person.sees("Step 5: DNS records").await;
    let preview = person.browser.text_of("#dns-creates").await;
    assert!(preview.contains("127.0.0.1"), "{preview}");
    person.clicks("#dns-apply").await;
    person
        .browser
        .client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath("//h1[contains(., 'Step 6: Download')]"))
        .await
        .expect("the records were written and the page went on by itself");
    person.sees("Step 6: Download").await;
    phases.end("sign-up to download step (browser)");

    // 2. The download: what a click on the image link fetches, with the person's session.
    let link = person
        .browser
        .client
        .find(Locator::Css(".image-files a[href$='amd64.img']"))
        .await
        .expect("the amd64 image link")
        .attr("href")
        .await
        .unwrap()
        .expect("href");
    person.inputs.set(person.inputs.get() + 1);
    let cookies: Vec<String> = person
        .browser
        .client
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect();
    let image = dir.path().join("relay.img");
    let got = download(
        &reqwest::Client::new(),
        &portal.url(&link),
        &[(reqwest::header::COOKIE, cookies.join("; "))],
        &image,
        false,
        None,
    )
    .await;
    assert_eq!(got.status, reqwest::StatusCode::OK);
    assert_eq!(got.len, base.size);
    person.clicks("form button.button-primary").await;
    person.sees("Step 7: Status").await;
    phases.end("download");

    // Before the device runs, nothing of it is in DNS (the status page, open from now on,
    // probes by itself and publishes only what a proved device reports).
    let zone_before = zone_lines(&pdns, ZONE).await;
    assert!(
        !zone_before
            .iter()
            .any(|l| l.contains(" CAA ") || l.starts_with("opendkim._domainkey")),
        "nothing of the device is published before it is proved: {zone_before:?}"
    );

    // 3. The device: Pebble's CA for the test network, a disk larger than the image, boot.
    let perm = base.partitions.iter().find(|p| p.number == 4).unwrap();
    add_to_perm(
        &image,
        perm.offset,
        &[
            ("chatmail/acme-ca.pem", pebble.tls_root_pem().as_bytes()),
            (
                "chatmail/extra-args",
                b"# test network: Pebble's HTTPS certificate\n--acme-extra-root=/perm/chatmail/acme-ca.pem\n",
            ),
        ],
        dir.path(),
    );
    let disk = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    disk.set_len(base.size * 2).unwrap();
    drop(disk);
    let forwards: Vec<(u16, u16)> = host.iter().copied().zip(guest).collect();
    let mut vm = Qemu::boot_with_host_services(
        &image,
        &forwards,
        &[(GUEST_ACME_PORT, pebble.acme_port())],
        dir.path(),
    );
    let https: SocketAddr = ([127, 0, 0, 1], forwarded(443)).into();
    vm.wait_for(LIMIT, "the relay's status", || {
        relay_status(https, &Trust::Anything)
    })
    .await;
    phases.end("boot");
    let trust = Trust::pem(&issuing_root);
    let status = vm
        .wait_for(LIMIT, "a certificate from Pebble", || {
            relay_status(https, &trust)
        })
        .await;
    assert_eq!(status["mail_domain"], DOMAIN, "{status}");
    let console = vm.serial();
    assert!(console.contains("chatmail: grew /perm from"), "{console}");
    assert!(
        console.contains(&format!("chatmail: relay {DOMAIN}: starting")),
        "{console}"
    );
    phases.end("certificate");

    // 4. Going live: the status page, left open, checks and refreshes by itself.
    let started = Instant::now();
    loop {
        let body = person.browser.client.source().await.unwrap();
        if phase_done(&body, "ready") {
            break;
        }
        assert!(
            started.elapsed() < LIMIT,
            "not ready after {LIMIT:?}:\n{}\nportal log:\n{}",
            person.browser.text_of("main").await,
            portal.log()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let body = person.browser.client.source().await.unwrap();
    for phase in ["dns", "reachable", "certificate", "dns_complete", "ready"] {
        assert!(phase_done(&body, phase), "phase {phase} is not done");
    }
    assert!(body.contains("id=\"join-ready\""));
    assert!(body.contains("<svg"), "the join QR code is shown");
    let zone = zone_lines(&pdns, ZONE).await;
    let key = status["dkim"]["public_key"].as_str().unwrap();
    let account = status["acme"]["account_url"].as_str().unwrap();
    assert!(
        zone.iter().any(
            |l| l.starts_with(&format!("opendkim._domainkey.{DOMAIN} TXT"))
                && l.replace("\" \"", "").contains(key)
        ),
        "the device's DKIM key is in the zone: {zone:?}"
    );
    assert!(
        zone.iter()
            .any(|l| l.contains(" CAA ")
                && l.contains(&format!("{CAA_ISSUER};accounturi={account}"))),
        "CAA names the test CA and the device's ACME account: {zone:?}"
    );
    person.browser.screenshot("journey/ready").await;
    phases.end("probes, DKIM and CAA, ready");

    // 5. Two friends scan the code: their clients make accounts with POST /new and chat.
    let mut accounts = Vec::new();
    for _ in 0..2 {
        let response = vm
            .wait_for(LIMIT, "a new account", || async {
                let r = tls_client::https(https, DOMAIN, &trust, "POST", "/new").await;
                (r.status == 200).then(|| r.json())
            })
            .await;
        accounts.push(serde_json::json!({
            "addr": response["email"], "password": response["password"]
        }));
    }
    let work = tempfile::tempdir().unwrap();
    let spec = serde_json::json!({
        "accounts_dir": work.path().join("accounts"),
        "imap": { "host": "127.0.0.1", "port": forwarded(993) },
        "smtp": { "host": "127.0.0.1", "port": forwarded(465) },
        "accounts": accounts,
    });
    let result = deltachat::run_driver("exchange.py", spec, LIMIT).await;
    let received = result["received"].as_array().expect("received list");
    assert_eq!(received.len(), 2, "{result}");
    for message in received {
        assert_eq!(
            message["encrypted"], true,
            "not end-to-end encrypted: {result}"
        );
    }
    phases.end("two Delta Chat clients chat");

    let total = phases.started.elapsed().as_secs_f64();
    eprintln!("journey phases:");
    for (name, seconds) in &phases.done {
        eprintln!("  {name:<40} {seconds:>7.1} s");
    }
    eprintln!(
        "journey: {total:.1} s in all (goal: under 900 s); the person made {} inputs (goal: at most 12)",
        person.inputs.get()
    );
    // Times are only printed; the number of inputs is the product's promise and must not
    // creep back up.
    assert!(
        person.inputs.get() <= 12,
        "the journey took {} inputs",
        person.inputs.get()
    );
    vm.assert_running();
    person.browser.close().await;
}
