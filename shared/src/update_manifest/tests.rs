use super::*;

struct Signer {
    pair: minisign::KeyPair,
}

impl Signer {
    fn new() -> Signer {
        Signer {
            pair: minisign::KeyPair::generate_unencrypted_keypair().unwrap(),
        }
    }

    fn key(&self) -> UpdateSigningKey {
        UpdateSigningKey::parse(&self.pair.pk.to_base64()).unwrap()
    }

    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        minisign::sign(None, &self.pair.sk, bytes, Some("test"), None)
            .unwrap()
            .into_string()
            .into_bytes()
    }
}

fn piece(name: PieceName, size: u64, fill: u8) -> Piece {
    Piece {
        name,
        size,
        sha256: Sha256Digest([fill; 32]),
        url: format!("pieces/{}", Sha256Digest([fill; 32])),
    }
}

fn sample(version: &str) -> UpdateManifest {
    UpdateManifest {
        channel: Channel::Stable,
        target: UpdateTarget::Amd64,
        version: ReleaseVersion::parse(version).unwrap(),
        published_at: 1_790_000_000,
        pieces: Pieces {
            root: piece(PieceName::Root, 40 << 20, 1),
            boot: piece(PieceName::Boot, 20 << 20, 2),
            mbr: piece(PieceName::Mbr, MBR_BYTES, 3),
        },
    }
}

fn json(manifest: &UpdateManifest) -> serde_json::Value {
    serde_json::from_slice(&manifest.to_json()).unwrap()
}

fn parse_value(v: &serde_json::Value) -> Result<UpdateManifest, ManifestError> {
    UpdateManifest::parse(&serde_json::to_vec(v).unwrap())
}

#[test]
fn round_trips_and_verifies() {
    let signer = Signer::new();
    let m = sample("0.2.0");
    let bytes = m.to_json();
    assert_eq!(UpdateManifest::parse(&bytes).unwrap(), m);
    let verified = verify(&bytes, &signer.sign(&bytes), &signer.key()).unwrap();
    assert_eq!(verified.manifest(), &m);
}

#[test]
fn tampered_manifest_is_refused() {
    let signer = Signer::new();
    let bytes = sample("0.2.0").to_json();
    let signature = signer.sign(&bytes);
    let tampered = String::from_utf8(bytes.clone())
        .unwrap()
        .replace("0.2.0", "0.2.1")
        .into_bytes();
    assert_eq!(
        verify(&tampered, &signature, &signer.key()),
        Err(ManifestError::BadSignature)
    );
    // One flipped byte anywhere, even in white space, is a different manifest.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] = b' ';
    assert_eq!(
        verify(&flipped, &signature, &signer.key()),
        Err(ManifestError::BadSignature)
    );
}

#[test]
fn wrong_signature_and_wrong_key_are_refused() {
    let signer = Signer::new();
    let other = Signer::new();
    let bytes = sample("0.2.0").to_json();
    // Signed by someone else: the key id gives it away.
    let err = verify(&bytes, &other.sign(&bytes), &signer.key()).unwrap_err();
    assert!(matches!(err, ManifestError::WrongKey { .. }), "{err}");
    assert!(
        err.to_string().contains(&signer.key().key_id_hex()),
        "{err}"
    );
    // A signature over other bytes.
    let other_bytes = sample("0.3.0").to_json();
    assert_eq!(
        verify(&bytes, &signer.sign(&other_bytes), &signer.key()),
        Err(ManifestError::BadSignature)
    );
    // A forged signature with the right key id but random signature bytes.
    let real = String::from_utf8(signer.sign(&bytes)).unwrap();
    let lines: Vec<&str> = real.lines().collect();
    use base64::Engine as _;
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(lines[1])
        .unwrap();
    raw[20] ^= 0xff;
    let forged = format!(
        "{}\n{}\n{}\n{}\n",
        lines[0],
        base64::engine::general_purpose::STANDARD.encode(raw),
        lines[2],
        lines[3]
    );
    assert_eq!(
        verify(&bytes, forged.as_bytes(), &signer.key()),
        Err(ManifestError::BadSignature)
    );
    // Not a signature at all; an oversized one.
    assert!(matches!(
        verify(&bytes, b"hello", &signer.key()),
        Err(ManifestError::SignatureFormat(_))
    ));
    assert!(matches!(
        verify(&bytes, &vec![b'a'; MAX_SIGNATURE_BYTES + 1], &signer.key()),
        Err(ManifestError::SignatureFormat(_))
    ));
    assert!(matches!(
        verify(&bytes, &[0xff, 0xfe], &signer.key()),
        Err(ManifestError::SignatureFormat(_))
    ));
}

#[test]
fn a_trusted_comment_cannot_be_swapped() {
    let signer = Signer::new();
    let bytes = sample("0.2.0").to_json();
    let real = String::from_utf8(signer.sign(&bytes)).unwrap();
    let swapped = real.replace("trusted comment: test", "trusted comment: other");
    assert_ne!(real, swapped);
    assert_eq!(
        verify(&bytes, swapped.as_bytes(), &signer.key()),
        Err(ManifestError::BadSignature)
    );
}

#[test]
fn oversized_manifest_is_refused_before_the_signature() {
    let signer = Signer::new();
    let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
    assert_eq!(
        verify(&big, &signer.sign(&big), &signer.key()),
        Err(ManifestError::TooLarge {
            len: MAX_MANIFEST_BYTES + 1
        })
    );
    assert!(matches!(
        UpdateManifest::parse(&big),
        Err(ManifestError::TooLarge { .. })
    ));
}

#[test]
fn a_signed_but_malformed_manifest_is_refused() {
    // The portal's key signed garbage: the signature holds, the parser still says no.
    let signer = Signer::new();
    let bytes = b"{\"format\":1}".to_vec();
    let err = verify(&bytes, &signer.sign(&bytes), &signer.key()).unwrap_err();
    assert!(matches!(err, ManifestError::Malformed(_)), "{err}");
}

#[test]
fn strict_parsing_names_the_field() {
    let good = json(&sample("0.2.0"));
    type Change = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "not json",
            Box::new(|v| *v = serde_json::json!("x")),
            "malformed",
        ),
        (
            "unknown field",
            Box::new(|v| {
                v["extra"] = 1.into();
            }),
            "unknown field",
        ),
        (
            "format",
            Box::new(|v| v["format"] = 2.into()),
            "format is invalid",
        ),
        (
            "channel",
            Box::new(|v| v["channel"] = "beta".into()),
            "channel is invalid: must be \"stable\" or \"testing\"",
        ),
        (
            "target",
            Box::new(|v| v["target"] = "riscv".into()),
            "target is invalid",
        ),
        (
            "version",
            Box::new(|v| v["version"] = "1.2".into()),
            "version is invalid",
        ),
        (
            "version with build",
            Box::new(|v| v["version"] = "1.2.3+abc".into()),
            "build metadata",
        ),
        (
            "bad hex",
            Box::new(|v| v["pieces"][0]["sha256"] = "zz".repeat(32).into()),
            "pieces[0].sha256 is invalid: must be 64 hexadecimal digits",
        ),
        (
            "short hex",
            Box::new(|v| v["pieces"][1]["sha256"] = "ab".into()),
            "pieces[1].sha256 is invalid",
        ),
        (
            "duplicate piece",
            Box::new(|v| v["pieces"][1]["name"] = "root".into()),
            "root is listed twice",
        ),
        (
            "unknown piece",
            Box::new(|v| v["pieces"][2]["name"] = "kernel".into()),
            "pieces[2].name is invalid",
        ),
        (
            "missing piece",
            Box::new(|v| {
                v["pieces"].as_array_mut().unwrap().pop();
            }),
            "exactly root, boot and mbr",
        ),
        (
            "mbr size",
            Box::new(|v| v["pieces"][2]["size"] = 512.into()),
            "exactly 446 bytes",
        ),
        (
            "root too big",
            Box::new(|v| v["pieces"][0]["size"] = (MAX_ROOT_BYTES + 1).into()),
            "pieces[0].size is invalid",
        ),
        (
            "empty boot",
            Box::new(|v| v["pieces"][1]["size"] = 0.into()),
            "pieces[1].size is invalid",
        ),
        (
            "negative size",
            Box::new(|v| v["pieces"][1]["size"] = (-1).into()),
            "malformed",
        ),
        (
            "file url",
            Box::new(|v| v["pieces"][0]["url"] = "file:///etc/passwd".into()),
            "pieces[0].url is invalid",
        ),
        (
            "url with space",
            Box::new(|v| v["pieces"][0]["url"] = "pieces/a b".into()),
            "pieces[0].url is invalid",
        ),
        (
            "missing field",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("version");
            }),
            "missing field",
        ),
    ];
    for (what, change, expect) in cases {
        let mut v = good.clone();
        change(&mut v);
        let err = parse_value(&v).expect_err(what).to_string();
        assert!(err.contains(expect), "{what}: {err}");
    }
    // Upper-case hex is fine; absolute https piece URLs too.
    let mut v = good.clone();
    v["pieces"][0]["sha256"] = "AB".repeat(32).into();
    v["pieces"][1]["url"] = "https://cdn.example.org/boot.img".into();
    assert!(parse_value(&v).is_ok());
}

#[test]
fn offers_must_be_newer_and_for_this_device() {
    let signer = Signer::new();
    let offer = |m: UpdateManifest| {
        let bytes = m.to_json();
        verify(&bytes, &signer.sign(&bytes), &signer.key()).unwrap()
    };
    let running = ReleaseVersion::parse("0.2.0").unwrap();
    let (stable, amd64) = (Channel::Stable, UpdateTarget::Amd64);
    assert_eq!(
        check_offer(&offer(sample("0.3.0")), stable, amd64, &running),
        Ok(())
    );
    assert!(matches!(
        check_offer(&offer(sample("0.1.9")), stable, amd64, &running),
        Err(Refusal::Downgrade { .. })
    ));
    assert!(matches!(
        check_offer(&offer(sample("0.2.0")), stable, amd64, &running),
        Err(Refusal::SameVersion { .. })
    ));
    // A pre-release of the running version is older.
    assert!(matches!(
        check_offer(&offer(sample("0.2.0-rc.1")), stable, amd64, &running),
        Err(Refusal::Downgrade { .. })
    ));
    // Numeric, not text, comparison.
    assert_eq!(
        check_offer(
            &offer(sample("0.10.0")),
            stable,
            amd64,
            &ReleaseVersion::parse("0.9.0").unwrap()
        ),
        Ok(())
    );
    let mut testing = sample("0.3.0");
    testing.channel = Channel::Testing;
    assert!(matches!(
        check_offer(&offer(testing), stable, amd64, &running),
        Err(Refusal::WrongChannel { .. })
    ));
    let mut rpi = sample("0.3.0");
    rpi.target = UpdateTarget::Rpi;
    assert!(matches!(
        check_offer(&offer(rpi), stable, amd64, &running),
        Err(Refusal::WrongTarget { .. })
    ));
}

#[test]
fn names_and_paths() {
    assert_eq!(Channel::parse("testing"), Ok(Channel::Testing));
    assert!(Channel::parse("Stable").is_err());
    assert_eq!(UpdateTarget::parse("rpi"), Ok(UpdateTarget::Rpi));
    assert_eq!(
        manifest_path(Channel::Stable, UpdateTarget::Amd64),
        "updates/stable/amd64/manifest.json"
    );
    assert_eq!(
        sample("1.0.0").trusted_comment(),
        "chatmail-relay update channel=stable target=amd64 version=1.0.0"
    );
}

#[test]
fn test_boot_flag_goes_into_the_padding_in_place() {
    let cmdline = |extra: &str| {
        format!(
            "console=tty1 root=PARTUUID=60c24cc1-f3f9-427a-8199-eed231000001/PARTNROFF=1 ro init=/gokrazy/init panic=10{extra}"
        )
    };
    let padded = format!("{}{}", cmdline(""), " ".repeat(64));
    let mut fat = vec![0u8; 4096];
    fat[100..100 + padded.len()].copy_from_slice(padded.as_bytes());
    let entry = format!("title gokrazy\nlinux /vmlinuz\noptions {padded}");
    fat[2000..2000 + entry.len()].copy_from_slice(entry.as_bytes());
    let before = fat.clone();
    assert_eq!(arm_test_boot(&mut fat), Ok(2));
    assert_eq!(fat.len(), before.len());
    let text = String::from_utf8_lossy(&fat).to_string();
    let armed = format!(
        "{}{}",
        cmdline(" gokrazy.try_boot_inactive=1"),
        " ".repeat(36)
    );
    assert_eq!(text.matches(&armed).count(), 2, "{text}");
    // Nothing else moved.
    let changed: Vec<usize> = (0..fat.len()).filter(|&i| fat[i] != before[i]).collect();
    assert_eq!(changed.len(), 2 * (TRY_BOOT_INACTIVE.len() - 1));
    // Without gokrazy's command line (or its padding) there is nothing to arm.
    assert_eq!(arm_test_boot(&mut vec![0u8; 512]), Err(ArmError::NoCmdline));
    let mut tight = cmdline(" ").into_bytes();
    tight.extend_from_slice(&[0u8; 100]);
    assert_eq!(arm_test_boot(&mut tight), Err(ArmError::NoCmdline));
}
