//! Every planned record against the values in research/chatmail.md §4 (upstream's
//! `cmdeploy dns` output), plus TLSRPT, pending records and the zone-file export checked
//! by the real BIND and Knot tools.

mod common;

use chatmail_shared::device_facts::{AcmeAccountUrl, DeviceFacts, DkimPublicKey};
use chatmail_shared::dns_plan::{
    DnsPlan, Pending, PlannedValue, Purpose, RecordData, Requirement, DKIM_SELECTOR,
};
use chatmail_shared::domain::DomainName;
use chatmail_shared::zone_file::{self, ZoneError};
use common::*;

/// (name, type, presentation rdata, requirement) of every ready record.
fn rows(plan: &DnsPlan) -> Vec<(String, &'static str, String, Requirement)> {
    plan.records()
        .iter()
        .filter_map(|r| match &r.value {
            PlannedValue::Ready(d) => {
                Some((r.name.clone(), d.rtype(), d.presentation(), r.requirement))
            }
            PlannedValue::Pending(_) => None,
        })
        .collect()
}

#[test]
fn complete_plan_matches_upstream_values() {
    let config = full_config();
    let facts = full_facts();
    let plan = DnsPlan::new(&config, &facts);
    assert!(plan.is_complete());
    let dkim = facts.dkim_public_key.as_ref().unwrap();
    let dkim_value = format!("v=DKIM1;k=rsa;p={};s=email;t=s", dkim.base64());
    // Upstream splits the DKIM value into 255-character strings (research §4).
    let dkim_strings: Vec<String> = dkim_value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
        .collect();
    let sts_id = chatmail_shared::mta_sts::PolicyId::for_domain(&config.mail_domain);
    use Requirement::*;
    let d = "chat.example.org";
    let want: Vec<(String, &str, String, Requirement)> = vec![
        (d.into(), "A", "203.0.113.7".into(), Required),
        (d.into(), "AAAA", "2001:db8::7".into(), Required),
        (d.into(), "MX", "10 chat.example.org.".into(), Required),
        (
            format!("_mta-sts.{d}"),
            "TXT",
            format!("\"v=STSv1; id={sts_id}\""),
            Required,
        ),
        (format!("mta-sts.{d}"), "CNAME", "chat.example.org.".into(), Required),
        (format!("www.{d}"), "CNAME", "chat.example.org.".into(), Required),
        (
            format!("opendkim._domainkey.{d}"),
            "TXT",
            dkim_strings.join(" "),
            Required,
        ),
        (d.into(), "TXT", "\"v=spf1 a ~all\"".into(), Recommended),
        (
            format!("_dmarc.{d}"),
            "TXT",
            "\"v=DMARC1;p=reject;adkim=s;aspf=s\"".into(),
            Recommended,
        ),
        (
            d.into(),
            "CAA",
            "0 issue \"letsencrypt.org;accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/123456789\"".into(),
            Recommended,
        ),
        (
            format!("_adsp._domainkey.{d}"),
            "TXT",
            "\"dkim=discardable\"".into(),
            Recommended,
        ),
        (format!("_submission._tcp.{d}"), "SRV", "0 1 587 chat.example.org.".into(), Recommended),
        (format!("_submissions._tcp.{d}"), "SRV", "0 1 465 chat.example.org.".into(), Recommended),
        (format!("_imap._tcp.{d}"), "SRV", "0 1 143 chat.example.org.".into(), Recommended),
        (format!("_imaps._tcp.{d}"), "SRV", "0 1 993 chat.example.org.".into(), Recommended),
        (
            format!("_smtp._tls.{d}"),
            "TXT",
            "\"v=TLSRPTv1; rua=mailto:privacy@example.org\"".into(),
            Recommended,
        ),
    ];
    assert_eq!(rows(&plan), want);
    for r in plan.records() {
        assert_eq!(r.ttl, 3600, "upstream's TTL for {}", r.name);
        assert!(
            r.reason.ends_with('.') && r.reason.len() > 30,
            "{}",
            r.reason
        );
        assert_eq!(
            r.reason.matches(". ").count(),
            0,
            "one sentence: {}",
            r.reason
        );
    }
    assert_eq!(DKIM_SELECTOR, "opendkim");
}

#[test]
fn dkim_is_split_into_255_byte_strings() {
    for bits in [1024, 2048, 4096] {
        let facts = DeviceFacts {
            dkim_public_key: Some(DkimPublicKey::rsa(&rsa_spki_b64(bits)).unwrap()),
            acme_account_url: None,
        };
        let plan = DnsPlan::new(&full_config(), &facts);
        let rec = plan.get(Purpose::Dkim).unwrap();
        let PlannedValue::Ready(RecordData::Txt(txt)) = &rec.value else {
            panic!("DKIM must be ready")
        };
        assert!(txt.strings().iter().all(|s| s.len() <= 255));
        assert!(txt.strings()[..txt.strings().len() - 1]
            .iter()
            .all(|s| s.len() == 255));
        assert_eq!(
            txt.joined(),
            facts.dkim_public_key.as_ref().unwrap().txt_value()
        );
        if bits >= 2048 {
            assert!(txt.strings().len() >= 2);
        }
    }
}

#[test]
fn records_wait_for_device_facts() {
    let mut config = full_config();
    config.addresses.ipv4 = None;
    config.addresses.ipv6 = None;
    let plan = DnsPlan::new(&config, &DeviceFacts::default());
    assert!(!plan.is_complete());
    let pending: Vec<(Purpose, Pending, &str, Requirement)> = plan
        .pending_records()
        .map(|r| match r.value {
            PlannedValue::Pending(p) => (r.purpose, p, r.rtype(), r.requirement),
            PlannedValue::Ready(_) => unreachable!(),
        })
        .collect();
    assert_eq!(
        pending,
        vec![
            (
                Purpose::Ipv4Address,
                Pending::PublicAddress,
                "A",
                Requirement::Required
            ),
            (
                Purpose::Dkim,
                Pending::DkimPublicKey,
                "TXT",
                Requirement::Required
            ),
            (
                Purpose::Caa,
                Pending::AcmeAccountUrl,
                "CAA",
                Requirement::Recommended
            ),
        ]
    );
    // Provider-neutral output holds only publishable records.
    let ready = plan.ready_records();
    assert_eq!(ready.len(), plan.records().len() - 3);
    assert!(ready.iter().all(|r| !matches!(
        r.data,
        RecordData::A(_) | RecordData::Aaaa(_) | RecordData::Caa { .. }
    )));
    assert!(!ready
        .iter()
        .any(|r| r.name.starts_with("opendkim._domainkey.")));
    // Pending records are comments in the zone file.
    let text = zone_file::records_text(&plan);
    assert!(text.contains(
        "; PENDING opendkim._domainkey.chat.example.org. 3600 IN TXT: waits for the signing key"
    ));
    assert!(text.contains("; PENDING chat.example.org. 3600 IN CAA: waits for the certificate"));
    assert!(text.contains("; PENDING chat.example.org. 3600 IN A: waits for the relay's public IP"));
}

#[test]
fn only_one_address_family() {
    let mut config = full_config();
    config.addresses.ipv4 = None;
    let plan = DnsPlan::new(&config, &full_facts());
    assert!(plan.get(Purpose::Ipv4Address).is_none());
    assert!(plan.get(Purpose::Ipv6Address).is_some());
    assert!(plan.is_complete());
}

#[test]
fn tlsrpt_needs_a_contact_address() {
    let mut config = full_config();
    config.privacy.contact_mail = None;
    let plan = DnsPlan::new(&config, &full_facts());
    assert!(plan.get(Purpose::TlsReporting).is_none());
}

#[test]
fn caa_uses_configured_issuer() {
    let mut config = full_config();
    config.acme.caa_issuer = DomainName::parse("pki.goog").unwrap();
    let facts = DeviceFacts {
        acme_account_url: Some(
            AcmeAccountUrl::parse("https://dv.acme-v02.api.pki.goog/account/abc").unwrap(),
        ),
        ..DeviceFacts::default()
    };
    let plan = DnsPlan::new(&config, &facts);
    let caa = plan.get(Purpose::Caa).unwrap().ready().unwrap();
    assert_eq!(
        caa.data.presentation(),
        "0 issue \"pki.goog;accounturi=https://dv.acme-v02.api.pki.goog/account/abc\""
    );
}

#[test]
fn idn_domain_uses_a_labels_everywhere() {
    let mut config = full_config();
    config.mail_domain = chatmail_shared::MailDomain::parse("Chat.Bücher.Example.").unwrap();
    let plan = DnsPlan::new(&config, &full_facts());
    for r in plan.records() {
        assert!(r.name.is_ascii() && r.name.ends_with("chat.xn--bcher-kva.example"));
    }
    let zone = zone_for(&plan);
    assert_checkers_accept("chat.xn--bcher-kva.example", &zone);
}

#[test]
fn relative_names_for_provider_apis() {
    let plan = DnsPlan::new(&full_config(), &full_facts());
    let zone = DomainName::parse("example.org").unwrap();
    let names: Vec<String> = plan
        .ready_records()
        .iter()
        .map(|r| r.relative_name(&zone).unwrap())
        .collect();
    assert!(names.contains(&"chat".to_string()));
    assert!(names.contains(&"_dmarc.chat".to_string()));
    assert!(names.contains(&"opendkim._domainkey.chat".to_string()));
    let apex = DomainName::parse("chat.example.org").unwrap();
    assert_eq!(
        plan.ready_records()[0].relative_name(&apex).as_deref(),
        Some("@")
    );
}

#[test]
fn zone_file_passes_bind_and_knot() {
    let plan = DnsPlan::new(&full_config(), &full_facts());
    let zone = zone_for(&plan);
    assert_checkers_accept("chat.example.org", &zone);
    // With addresses known, BIND's integrity check finds the MX/SRV target.
    let out = named_checkzone("chat.example.org", &zone).unwrap();
    assert!(!out.contains("has no address records"), "{out}");
}

#[test]
fn zone_file_with_parent_origin_passes() {
    let plan = DnsPlan::new(&full_config(), &full_facts());
    let zone = zone_file::zone_text(&plan, &header_for("example.org")).unwrap();
    assert!(zone.contains("$ORIGIN example.org."));
    assert_checkers_accept("example.org", &zone);
}

#[test]
fn zone_file_with_pending_records_passes() {
    let mut config = full_config();
    config.addresses.ipv4 = None;
    config.addresses.ipv6 = None;
    config.privacy.contact_mail = None;
    let plan = DnsPlan::new(&config, &DeviceFacts::default());
    assert_plan_zone_accepted(&plan, "chat.example.org", &zone_for(&plan));
    // The strict check notices the missing address, as it should.
    assert!(named_checkzone("chat.example.org", &zone_for(&plan)).is_err());
}

/// BIND reads back exactly the records the plan holds.
#[test]
fn bind_reads_back_the_planned_records() {
    let plan = DnsPlan::new(&full_config(), &full_facts());
    let dump = named_dump("chat.example.org", &zone_for(&plan));
    let dumped: Vec<Vec<String>> = dump
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    for record in plan.ready_records() {
        let rdata = record.data.presentation();
        let found = dumped.iter().any(|f| {
            f.len() >= 5
                && f[0] == record.fqdn()
                && f[1] == "3600"
                && f[2] == "IN"
                && f[3] == record.data.rtype()
                && f[4..].join(" ") == rdata
        });
        assert!(found, "BIND did not read back {record:?}\n{dump}");
    }
}

#[test]
fn zone_header_errors() {
    let plan = DnsPlan::new(&full_config(), &full_facts());
    assert!(matches!(
        zone_file::zone_text(&plan, &header_for("other.org")),
        Err(ZoneError::OriginOutsideZone { .. })
    ));
    let mut h = header_for("example.org");
    h.nameservers.clear();
    assert_eq!(
        zone_file::zone_text(&plan, &h),
        Err(ZoneError::NoNameservers)
    );
    let mut h = header_for("example.org");
    h.nameservers = vec![DomainName::parse("ns1.example.org").unwrap()];
    assert!(matches!(
        zone_file::zone_text(&plan, &h),
        Err(ZoneError::NameserverInZone(_))
    ));
}

#[test]
fn records_text_has_upstreams_layout() {
    let plan = DnsPlan::new(&full_config(), &full_facts());
    let text = zone_file::records_text(&plan);
    assert!(text.starts_with("; Required DNS entries\n"));
    assert!(text.contains("\n; Recommended DNS entries\n"));
    // `{name:<40} {ttl:<6} IN  {type:<5}  {rdata}` (research §4).
    assert!(text.contains(&format!(
        "{:<40} {:<6} IN  {:<5}  {}\n",
        "_dmarc.chat.example.org.", 3600, "TXT", "\"v=DMARC1;p=reject;adkim=s;aspf=s\""
    )));
    assert!(text.contains(&format!(
        "{:<40} {:<6} IN  {:<5}  {}\n",
        "chat.example.org.", 3600, "MX", "10 chat.example.org."
    )));
    // Every record line follows a reason comment.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if !l.starts_with(';') && !l.is_empty() {
            assert!(lines[i - 1].starts_with("; "), "{l}");
        }
    }
}

#[test]
fn dkim_ed25519_record() {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let facts = DeviceFacts {
        dkim_public_key: Some(DkimPublicKey::ed25519(&key).unwrap()),
        ..full_facts()
    };
    let plan = DnsPlan::new(&full_config(), &facts);
    let rec = plan.get(Purpose::Dkim).unwrap().ready().unwrap();
    assert_eq!(
        rec.data.presentation(),
        format!("\"v=DKIM1;k=ed25519;p={key};s=email;t=s\"")
    );
    assert_checkers_accept("chat.example.org", &zone_for(&plan));
}

#[test]
fn longest_mail_domain_still_fits() {
    // 233 bytes: the longest name in the plan, opendkim._domainkey.<domain>, is 253.
    let label = "a".repeat(63);
    let domain = format!("{label}.{label}.{label}.{}.org", "b".repeat(37));
    assert_eq!(domain.len(), 233);
    let mut config = full_config();
    config.mail_domain = chatmail_shared::MailDomain::parse(&domain).unwrap();
    let plan = DnsPlan::new(&config, &full_facts());
    let longest = plan.records().iter().map(|r| r.name.len()).max().unwrap();
    assert_eq!(longest, 253);
    let origin = &domain[64..];
    let zone = zone_file::zone_text(&plan, &header_for(origin)).unwrap();
    assert_checkers_accept(origin, &zone);
}

/// The harness itself: both checkers really reject a broken zone.
#[test]
fn checkers_reject_a_broken_zone() {
    let plan = DnsPlan::new(&full_config(), &full_facts());
    let broken = format!(
        "{}www.chat.example.org. 3600 IN TXT \"beside a CNAME\"\n",
        zone_for(&plan)
    );
    assert!(named_checkzone("chat.example.org", &broken).is_err());
    assert!(kzonecheck("chat.example.org", &broken).is_err());
}

/// A missing checker fails the test and names the Debian package; it is never skipped.
#[test]
#[should_panic(expected = "install the Debian package `bind9-utils`")]
fn missing_checker_fails_with_package_name() {
    require_tool("/nonexistent/named-checkzone", NAMED_PACKAGE);
}
