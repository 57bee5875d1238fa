//! Helpers shared by the integration tests: sample configs and device facts, and the real
//! zone checkers from Debian (BIND's `named-checkzone`, Knot's `kzonecheck`).
//!
//! The checkers are required, not optional: if one is missing the test fails and names the
//! Debian package to install.

#![allow(dead_code)]

pub mod html;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chatmail_shared::config::{FreeText, RelayConfig};
use chatmail_shared::device_facts::{AcmeAccountUrl, DeviceFacts, DkimPublicKey};
use chatmail_shared::dns_plan::DnsPlan;
use chatmail_shared::domain::{DomainName, MailDomain};
use chatmail_shared::email::EmailAddress;
use chatmail_shared::signing_key::UpdateSigningKey;
use chatmail_shared::web_url::HttpsUrl;
use chatmail_shared::zone_file::{self, ZoneHeader};

pub const NAMED_CHECKZONE: &str = "/usr/bin/named-checkzone";
pub const NAMED_PACKAGE: &str = "bind9-utils";
pub const KZONECHECK: &str = "/usr/bin/kzonecheck";
pub const KNOT_PACKAGE: &str = "knot-dnssecutils";

/// A config as the portal might write it: both addresses, all contacts, updates on.
pub fn full_config() -> RelayConfig {
    let mut c = RelayConfig::new(MailDomain::parse("chat.example.org").unwrap());
    c.addresses.ipv4 = Some("203.0.113.7".parse().unwrap());
    c.addresses.ipv6 = Some("2001:db8::7".parse().unwrap());
    c.privacy.postal_address =
        Some(FreeText::new("Example Chat e.V.\nMain Street 1\n12345 Town").unwrap());
    c.privacy.contact_mail = Some(EmailAddress::parse("privacy@example.org").unwrap());
    c.privacy.data_protection_officer =
        Some(FreeText::new("Dana Protector\ndpo@example.org").unwrap());
    c.privacy.supervisory_authority =
        Some(FreeText::new("The Data Protection Authority of Somewhere").unwrap());
    c.acme.contact_email = Some(EmailAddress::parse("admin@example.org").unwrap());
    c.updates.enabled = true;
    c.updates.portal_url = Some(HttpsUrl::parse("https://portal.example.net/updates").unwrap());
    c.updates.signing_public_key = Some(UpdateSigningKey::parse(&signing_key_b64()).unwrap());
    c
}

/// A minisign-format public key made for the tests.
pub fn signing_key_b64() -> String {
    let mut raw = b"Ed".to_vec();
    raw.extend_from_slice(&[0x11; 8]);
    raw.extend_from_slice(&[0x22; 32]);
    STANDARD.encode(raw)
}

/// The base64 DER of an RSA SubjectPublicKeyInfo with a `bits`-bit modulus (structurally
/// right, numerically made up).
pub fn rsa_spki_b64(bits: usize) -> String {
    let modulus_len = bits / 8 + 1; // leading zero byte
    let int = |content_len: usize| -> Vec<u8> { der_header(0x02, content_len) };
    let mut modulus = int(modulus_len);
    modulus.push(0);
    modulus.extend((0..bits / 8).map(|i| (i * 7 + 0x80) as u8 | 0x80));
    let exponent = [0x02, 0x03, 0x01, 0x00, 0x01];
    let mut rsa_key = der_header(0x30, modulus.len() + exponent.len());
    rsa_key.extend(&modulus);
    rsa_key.extend(exponent);
    let mut bit_string = der_header(0x03, rsa_key.len() + 1);
    bit_string.push(0);
    bit_string.extend(&rsa_key);
    let alg = [
        0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut spki = der_header(0x30, alg.len() + bit_string.len());
    spki.extend(alg);
    spki.extend(bit_string);
    STANDARD.encode(spki)
}

fn der_header(tag: u8, len: usize) -> Vec<u8> {
    let mut v = vec![tag];
    if len < 128 {
        v.push(len as u8);
    } else if len < 256 {
        v.extend([0x81, len as u8]);
    } else {
        v.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    v
}

/// Device facts with an RSA-2048 DKIM key and a Let's Encrypt account URL.
pub fn full_facts() -> DeviceFacts {
    DeviceFacts {
        dkim_public_key: Some(DkimPublicKey::rsa(&rsa_spki_b64(2048)).unwrap()),
        acme_account_url: Some(
            AcmeAccountUrl::parse("https://acme-v02.api.letsencrypt.org/acme/acct/123456789")
                .unwrap(),
        ),
    }
}

/// A zone header whose name servers lie outside every test domain.
pub fn header_for(origin: &str) -> ZoneHeader {
    ZoneHeader {
        origin: DomainName::parse(origin).unwrap(),
        nameservers: vec![
            DomainName::parse("ns1.dns-provider.test").unwrap(),
            DomainName::parse("ns2.dns-provider.test").unwrap(),
        ],
        hostmaster: EmailAddress::parse("host.master@dns-provider.test").unwrap(),
        serial: 2026120101,
    }
}

/// The self-contained zone for `plan`, with the mail domain as origin.
pub fn zone_for(plan: &DnsPlan) -> String {
    zone_file::zone_text(plan, &header_for(plan.domain().as_str())).unwrap()
}

pub fn require_tool(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: these tests run the real zone checker; install the Debian package \
         `{package}` (apt-get install -y {package})"
    );
}

fn write_temp(zone: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(zone.as_bytes()).expect("write zone");
    f.flush().expect("flush zone");
    f
}

/// Runs `named-checkzone` with its strictest settings on `zone` for `origin`. Returns its
/// output on success, or a message with the output and the zone on failure.
///
/// `-m fail` also fails a zone whose MX target has no address record. That is the case
/// while the relay's address is pending; such zones are checked with `address_known`
/// false, which leaves that one check at BIND's default (a warning), and every warning
/// must then be that one.
pub fn named_checkzone_with(
    origin: &str,
    zone: &str,
    address_known: bool,
) -> Result<String, String> {
    require_tool(NAMED_CHECKZONE, NAMED_PACKAGE);
    let file = write_temp(zone);
    let mut cmd = Command::new(NAMED_CHECKZONE);
    // Fail on bad host names, MX/SRV pointing at CNAMEs or IP addresses, and run the full
    // post-load integrity checks.
    cmd.args([
        "-k", "fail", "-M", "fail", "-S", "fail", "-n", "fail", "-i", "full",
    ]);
    if address_known {
        cmd.args(["-m", "fail"]);
    }
    let out = cmd
        .arg(origin)
        .arg(file.path())
        .output()
        .expect("run named-checkzone");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let unexpected_warning = text.lines().any(|l| {
        let tolerated = !address_known && l.ends_with("has no address records (A or AAAA)");
        l.starts_with("zone ") && !l.contains(": loaded serial ") && !tolerated
    });
    if out.status.success() && text.contains("OK") && !unexpected_warning {
        Ok(text)
    } else {
        Err(format!(
            "named-checkzone rejected the zone ({}):\n{text}\n--- zone ---\n{zone}",
            out.status
        ))
    }
}

/// `named-checkzone -D`: BIND's canonical dump of the zone, one record per line.
pub fn named_dump(origin: &str, zone: &str) -> String {
    require_tool(NAMED_CHECKZONE, NAMED_PACKAGE);
    let file = write_temp(zone);
    let out = Command::new(NAMED_CHECKZONE)
        .args(["-q", "-D", "-o", "-"])
        .arg(origin)
        .arg(file.path())
        .output()
        .expect("run named-checkzone -D");
    assert!(out.status.success(), "named-checkzone -D failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs Knot's `kzonecheck` on `zone` for `origin`.
pub fn kzonecheck(origin: &str, zone: &str) -> Result<String, String> {
    require_tool(KZONECHECK, KNOT_PACKAGE);
    let file = write_temp(zone);
    let out = Command::new(KZONECHECK)
        .args(["-v", "-o"])
        .arg(origin)
        .arg(file.path())
        .output()
        .expect("run kzonecheck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "kzonecheck rejected the zone ({}):\n{text}\n--- zone ---\n{zone}",
            out.status
        ))
    }
}

/// [`named_checkzone_with`] for a zone whose relay address is known.
pub fn named_checkzone(origin: &str, zone: &str) -> Result<String, String> {
    named_checkzone_with(origin, zone, true)
}

/// Both checkers must accept the zone made from `plan`.
pub fn assert_plan_zone_accepted(plan: &DnsPlan, origin: &str, zone: &str) {
    let address_known = plan
        .get(chatmail_shared::dns_plan::Purpose::Ipv4Address)
        .is_none_or(|r| r.ready().is_some());
    if let Err(e) = named_checkzone_with(origin, zone, address_known) {
        panic!("{e}");
    }
    if let Err(e) = kzonecheck(origin, zone) {
        panic!("{e}");
    }
}

/// Both checkers must accept (strict settings; the relay's address must be in the zone).
pub fn assert_checkers_accept(origin: &str, zone: &str) {
    if let Err(e) = named_checkzone(origin, zone) {
        panic!("{e}");
    }
    if let Err(e) = kzonecheck(origin, zone) {
        panic!("{e}");
    }
}
