//! The mail-rules corpus (`tests/corpus/`) through running relays: every message is sent
//! the way the real world would send it, and the relay's SMTP reply and its mailboxes are
//! checked against `verdicts.json`.
//!
//! Three relays run on loopback with Maddy, and one local DNS server publishes the DKIM
//! keys of the sending domains (as the federation test does):
//!
//! * `chat.example` — the corpus's hand-shaped messages leave from `alice@chat.example`;
//! * `chat.corpus.test` — the captured Delta Chat messages leave from its accounts;
//! * `other.example` — the corpus's recipient `bob@other.example` lives here.
//!
//! **Outgoing**: each message is submitted on port 465 (implicit TLS, AUTH PLAIN as the
//! envelope sender, so the account exists: accounts are made at first login). The
//! corpus addresses most messages to `bob@other.example`; here the recipient is an
//! account on the sending relay instead (`bob@<relay domain>`), so that an accepted
//! message can be found in a mailbox: the outgoing rules are the same for local and remote
//! recipients (the milter of the submission endpoint decides before routing), and
//! delivery to another relay is the federation test's subject.
//!
//! **Incoming**: each message is sent to port 25 of the recipient's relay, from
//! "another mail server", DKIM-signed (Ed25519, selector `sel`) by its `From:` domain
//! with a key the DNS server publishes, as the corpus unit test signs. An encrypted
//! message is also sent unsigned and signed by an unaligned domain (both `554`). The same
//! messages then go to the relay's `POST /mxdeliv` (HTTPS federation), where no Maddy
//! stands in front: there the replies carry upstream's texts, and are checked as such.
//!
//! Both sides declare the message size in `MAIL FROM` (`SIZE=`, RFC 1870), as mail servers
//! and clients do when the server announces it.
//!
//! Per message the test asserts the reply code (and the enhanced code's class, or the
//! exact enhanced code where Maddy answers itself), that accepted mail is in the
//! recipient's INBOX (compared by body), and that refused mail never is. Then: the
//! per-sender rate limit (burst 10) answers `450 4.7.1` after the burst (at `RCPT
//! TO`, where Maddy asks the milter about the sender, as upstream's Postfix proxy does),
//! and the oversize message is refused: `552 5.3.4` at `MAIL FROM` with `SIZE=`, and a
//! permanent refusal without it.
//!
//! Maddy 0.8.2 decides a few cases itself before our milter sees them ([`MADDY_FIRST`],
//! each with its reason), and replaces the text of every milter reply
//! ([`expected_text`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use chatmail_dns_world::{ServerSpec, World, RESOLVER_IP};
use chatmail_tests::{
    appliance::{Appliance, RunningAppliance},
    mail_client::{imap_inbox, Outcome, Smtp, Stage},
    tls_client::{self, Trust},
};
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;

const CHAT: &str = "chat.example";
const CORPUS: &str = "chat.corpus.test";
const OTHER: &str = "other.example";
const ATTACKER: &str = "attacker.example";
const PASSWORD: &str = "corpus-test-password";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Accept(String),
    Refuse(u16),
}

impl Verdict {
    fn parse(v: &serde_json::Value) -> Verdict {
        match v {
            serde_json::Value::Number(n) => Verdict::Refuse(n.as_u64().unwrap() as u16),
            serde_json::Value::String(s) => {
                Verdict::Accept(s.strip_prefix("accept:").expect("accept:<kind>").into())
            }
            other => panic!("bad verdict {other}"),
        }
    }
}

struct Case {
    name: String,
    message: Vec<u8>,
    mail_from: String,
    rcpts: Vec<String>,
    outgoing: Verdict,
    incoming: Verdict,
}

/// A valid PGP/MIME message of exactly `size` bytes (the size rule's case).
fn oversize(from: &str, size: usize) -> Vec<u8> {
    let head = format!(
        "From: <{from}>\r\nTo: <bob@other.example>\r\nSubject: [...]\r\n\
         Message-ID: <oversize@chat.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\
         --B\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n"
    );
    let tail = "\r\n-----END PGP MESSAGE-----\r\n\r\n--B--\r\n";
    let mut m = head.into_bytes();
    while m.len() + tail.len() < size {
        let n = (size - tail.len() - m.len()).min(78);
        m.extend(std::iter::repeat_n(b'A', n.saturating_sub(2)));
        m.extend_from_slice(&b"\r\n"[..n.min(2)]);
    }
    m.extend_from_slice(tail.as_bytes());
    assert_eq!(m.len(), size);
    m
}

fn corpus() -> (usize, Vec<Case>) {
    let dir = chatmail_tests::workspace::root().join("tests/corpus");
    let verdicts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("verdicts.json")).unwrap()).unwrap();
    let max = verdicts["max_message_size"].as_u64().unwrap() as usize;
    let cases = verdicts["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let mail_from = entry["mail_from"].as_str().unwrap().to_string();
            let (name, message) = match entry["file"].as_str() {
                Some(file) => (
                    file.to_string(),
                    std::fs::read(dir.join("messages").join(file)).unwrap(),
                ),
                None => {
                    assert_eq!(entry["generate"], "oversize");
                    ("<oversize>".to_string(), oversize(&mail_from, max + 1))
                }
            };
            Case {
                name,
                message,
                mail_from,
                rcpts: entry["rcpts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect(),
                outgoing: Verdict::parse(&entry["outgoing"]),
                incoming: Verdict::parse(&entry["incoming"]),
            }
        })
        .collect();
    (max, cases)
}

/// Cases where Maddy 0.8.2 may refuse before our milter decides (or after it accepted),
/// with Maddy's code, enhanced code and why. Maddy runs its own checks and the milter side
/// by side, so for a forged `From:` either answer comes back (553 from Maddy or our 500);
/// the test accepts Maddy's answer or the verdict's. Every one of them is refused and
/// never stored; only the code differs from upstream's.
const MADDY_FIRST: &[(&str, bool, u16, &str, &str)] = &[
    // Submission's `authorize_sender` compares `From:` with the login before the milter
    // sees the message (upstream's filtermail answers 500 Invalid FROM).
    (
        "forged-from-captured.eml",
        OUT,
        553,
        "5.7.0",
        "authorize_sender: From: is not the login",
    ),
    (
        "forged-from-display.eml",
        OUT,
        553,
        "5.7.0",
        "authorize_sender: From: is not the login",
    ),
    (
        "securejoin-forged-from.eml",
        OUT,
        553,
        "5.7.0",
        "authorize_sender: From: is not the login",
    ),
    (
        "plain-forged-from.eml",
        OUT,
        553,
        "5.7.0",
        "authorize_sender: From: is not the login",
    ),
    (
        "mime-no-from.eml",
        OUT,
        554,
        "5.6.0",
        "submission: no From: field",
    ),
    (
        "mime-empty.eml",
        OUT,
        554,
        "5.6.0",
        "submission: no From: field",
    ),
    // A null sender on submission is no local sender domain (`default_source`), at RCPT.
    (
        "bounce-mailer-daemon.eml",
        OUT,
        501,
        "5.1.8",
        "submission: null sender",
    ),
    (
        "bounce-no-auto-submitted.eml",
        OUT,
        501,
        "5.1.8",
        "submission: null sender",
    ),
    (
        "bounce-not-report.eml",
        OUT,
        501,
        "5.1.8",
        "submission: null sender",
    ),
    (
        "bounce-other-sender.eml",
        OUT,
        501,
        "5.1.8",
        "submission: null sender",
    ),
    // Maddy's header parser gives up before any check runs ("malformed MIME header line").
    (
        "mime-header-without-colon.eml",
        OUT,
        554,
        "5.0.0",
        "Maddy cannot parse the header",
    ),
    (
        "mime-header-without-colon.eml",
        IN,
        554,
        "5.0.0",
        "Maddy cannot parse the header",
    ),
    (
        "mime-garbage.eml",
        OUT,
        554,
        "5.0.0",
        "Maddy cannot parse the header",
    ),
    (
        "mime-garbage.eml",
        IN,
        554,
        "5.0.0",
        "Maddy cannot parse the header",
    ),
    // Port 25 refuses the relay's own domain as envelope sender (`source $(maildomain)`):
    // a self-sent message never comes in from outside.
    (
        "autocrypt-setup-self.eml",
        IN,
        501,
        "5.1.8",
        "port 25: the relay's own sender domain",
    ),
    // The rules accept it (as upstream's lenient parser does), but Maddy's IMAP storage
    // fails on a multipart without its closing delimiter: "Internal server error" from
    // the store, so the sender learns that it was not delivered.
    (
        "mime-no-closing-delimiter.eml",
        OUT,
        554,
        "5.0.0",
        "Maddy's storage cannot store it",
    ),
    (
        "mime-no-closing-delimiter.eml",
        IN,
        554,
        "5.0.0",
        "Maddy's storage cannot store it",
    ),
];

const OUT: bool = true;
const IN: bool = false;

fn maddy_first(case: &Case, outgoing: bool) -> Option<(u16, &'static str)> {
    MADDY_FIRST
        .iter()
        .find(|(name, out, ..)| *name == case.name && *out == outgoing)
        .map(|&(_, _, code, enhanced, _)| (code, enhanced))
}

/// The text expected after the code: Maddy 0.8.2 replaces the text of a milter's
/// `REPLYCODE` by its own ("Message rejected due to local policy", enhanced code 5.7.1),
/// so upstream's texts ("523 Encryption Needed: Invalid Unencrypted Mail", "500 Invalid
/// FROM <…> for <…>", "554 5.7.1 No DKIM signature found") do not reach the client; the
/// size limit is Maddy's own check ("552 5.3.4 …").
fn expected_text(code: u16) -> &'static str {
    match code {
        552 => "5.3.4",
        _ => "Message rejected due to local policy",
    }
}

fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or("", |(_, d)| d)
}

fn body_of(message: &[u8]) -> Vec<u8> {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => message[i + 4..].to_vec(),
        None => Vec::new(),
    }
}

/// Signs `message` for `domain` (selector `sel`), as the sending server would.
fn dkim_sign(key_der: &[u8], domain: &str, message: &[u8]) -> Option<Vec<u8>> {
    let key = Ed25519Key::from_pkcs8_der(key_der).unwrap();
    let signature = DkimSigner::from_key(key)
        .domain(domain)
        .selector("sel")
        .headers([
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Content-Type",
        ])
        .sign(message)
        .ok()?;
    let mut out = signature.to_header().into_bytes();
    out.extend_from_slice(message);
    Some(out)
}

fn ed25519() -> (Vec<u8>, String) {
    use base64::Engine as _;
    let der = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&der).unwrap();
    let txt = format!(
        "v=DKIM1; k=ed25519; p={}",
        base64::engine::general_purpose::STANDARD.encode(key.public_key())
    );
    (der, txt)
}

/// A zone publishing `sel._domainkey.<domain>`.
fn zone(domain: &str, txt: &str) -> String {
    format!(
        "$ORIGIN {domain}.\n$TTL 60\n\
         @ 60 IN SOA ns.{domain}. hostmaster.{domain}. 1 7200 3600 1209600 60\n\
         @ 60 IN NS ns.{domain}.\n\
         ns 60 IN A 127.0.0.1\n\
         sel._domainkey 60 IN TXT \"{txt}\"\n"
    )
}

struct Relays {
    chat: RunningAppliance,
    corpus: RunningAppliance,
    other: RunningAppliance,
}

impl Relays {
    fn by_domain(&self, domain: &str) -> &RunningAppliance {
        match domain {
            CHAT => &self.chat,
            CORPUS => &self.corpus,
            OTHER => &self.other,
            other => panic!("no relay for {other}"),
        }
    }

    fn logs(&self) -> String {
        format!(
            "--- {CHAT}\n{}\n--- {CORPUS}\n{}\n--- {OTHER}\n{}",
            self.chat.log(),
            self.corpus.log(),
            self.other.log()
        )
    }
}

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

async fn submission(app: &RunningAppliance, user: &str) -> Smtp {
    Smtp::submission(addr(app.ports.submissions), user, PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("submission as {user}: {e}\n{}", app.log()))
}

async fn mx(app: &RunningAppliance) -> Smtp {
    Smtp::mx(addr(app.ports.smtp), "mx.sender.example")
        .await
        .unwrap_or_else(|e| panic!("port 25: {e}\n{}", app.log()))
}

/// Compares a reply with the verdict: `None` if it matches, else what is wrong.
fn mismatch(case: &Case, outgoing: bool, outcome: &Outcome) -> Option<String> {
    let verdict = if outgoing {
        &case.outgoing
    } else {
        &case.incoming
    };
    let direction = if outgoing { "outgoing" } else { "incoming" };
    let wrong = |what: String| Some(format!("{} {direction}: {what}", case.name));
    if let Some((code, enhanced)) = maddy_first(case, outgoing) {
        // Maddy runs its checks and our milter side by side: either may answer first.
        let maddy = matches!(outcome,
            Outcome::Refused(_, r) if r.code == code && r.enhanced.as_deref() == Some(enhanced));
        if maddy || verdict_mismatch(verdict, outcome).is_none() {
            return None;
        }
        return wrong(format!(
            "expected Maddy's {code} {enhanced} or the verdict, got {outcome:?}"
        ));
    }
    verdict_mismatch(verdict, outcome).and_then(wrong)
}

/// Compares a reply with the verdict alone: `None` if it matches, else what is wrong.
fn verdict_mismatch(verdict: &Verdict, outcome: &Outcome) -> Option<String> {
    let reply = outcome.reply();
    let wrong = Some;
    match (verdict, outcome) {
        (Verdict::Accept(_), Outcome::Accepted(_)) => None,
        (Verdict::Accept(kind), Outcome::Refused(stage, r)) => {
            wrong(format!("expected accept:{kind}, refused at {stage:?}: {r}"))
        }
        (Verdict::Refuse(code), Outcome::Accepted(r)) => {
            wrong(format!("expected {code}, accepted: {r}"))
        }
        (Verdict::Refuse(code), Outcome::Refused(_, r)) => {
            if r.code != *code {
                return wrong(format!("expected {code}, got {reply}"));
            }
            let text = expected_text(*code);
            if !r.text.contains(text) {
                return wrong(format!("expected a text with {text:?}, got {reply}"));
            }
            // Maddy passes an enhanced code on with every refusal of ours; its class is
            // the reply's.
            match &r.enhanced {
                Some(e) if e.starts_with(&(code / 100).to_string()) => None,
                other => wrong(format!("enhanced code {other:?} in {reply}")),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_through_running_relays() {
    let started = Instant::now();
    let (_, cases) = corpus();
    assert!(cases.len() >= 50, "the corpus is missing");

    // DKIM keys of the sending domains, published by the local DNS server.
    // Every From: domain of the corpus signs its messages.
    let mut keys = BTreeMap::new();
    let mut zones = Vec::new();
    let mut domains: Vec<String> = cases
        .iter()
        .filter_map(|c| from_domain(&c.message))
        .chain([ATTACKER.to_string()])
        .collect();
    domains.sort();
    domains.dedup();
    for domain in domains {
        let (der, txt) = ed25519();
        zones.push(zone(&domain, &txt));
        keys.insert(domain, der);
    }
    let dns = World::start(vec![ServerSpec::new(RESOLVER_IP, zones)]).await;

    // Short local parts (alice, bob) are allowed; the chat.example relay lets one sender
    // send the whole corpus at once. The rate limit is tested on chat.corpus.test with the
    // default burst of 10 and one message a minute after it (upstream: 60), so the number
    // of messages that pass does not depend on how fast this machine sends them.
    let short_names = "[limits]\nusername_min_length = 3\n";
    let mut setups = [
        Appliance::new(CHAT).config(&format!("{short_names}max_user_send_burst_size = 1000\n")),
        Appliance::new(CORPUS).config(&format!("{short_names}max_user_send_per_minute = 1\n")),
        Appliance::new(OTHER).config(short_names),
    ]
    .map(|s| s.arg(format!("--dns-server={}", dns.resolver())));
    let [a, b, c] = &mut setups;
    let (chat, corpus_relay, other) = tokio::join!(a.start(), b.start(), c.start());
    let relays = Relays {
        chat,
        corpus: corpus_relay,
        other,
    };
    eprintln!("relays up after {:?}", started.elapsed());
    // The recipients' accounts, made by their first login (senders log in to submit).
    for (domain, user) in [
        (CHAT, "bob"),
        (CHAT, "alice"),
        (CORPUS, "bob"),
        (CORPUS, "carol"),
        (OTHER, "bob"),
    ] {
        let app = relays.by_domain(domain);
        let reply = app.imap_login(&format!("{user}@{domain}"), PASSWORD).await;
        assert!(reply.starts_with("a1 OK"), "{user}@{domain}: {reply}");
    }

    // Mailbox contents expected at the end: (relay domain, address) -> bodies.
    let mut expected: BTreeMap<(String, String), Vec<Vec<u8>>> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut replies = Vec::new();

    // 1. Outgoing, through submission as the sender.
    let mut sessions: BTreeMap<String, Smtp> = BTreeMap::new();
    for case in &cases {
        // The bounces have a null sender: submitted by the recipient's account.
        let user = if case.mail_from.is_empty() {
            case.rcpts[0].clone()
        } else {
            case.mail_from.clone()
        };
        let domain = domain_of(&user).to_string();
        let app = relays.by_domain(&domain);
        if !sessions.contains_key(&user) {
            let session = submission(app, &user).await;
            sessions.insert(user.clone(), session);
        }
        let rcpts: Vec<String> = case
            .rcpts
            .iter()
            .map(|r| {
                if domain_of(r) == domain {
                    r.clone()
                } else {
                    format!("bob@{domain}")
                }
            })
            .collect();
        let rcpt_refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        let session = sessions.get_mut(&user).unwrap();
        let outcome = match session
            .send(&case.mail_from, &rcpt_refs, &case.message)
            .await
        {
            Ok(o) => o,
            Err(e) => {
                // The server may close after a refusal: note it, open a new session.
                sessions.remove(&user);
                wrong.push(format!("{} outgoing: connection failed: {e}", case.name));
                continue;
            }
        };
        replies.push(format!("{} outgoing: {:?}", case.name, outcome));
        if let Some(w) = mismatch(case, true, &outcome) {
            wrong.push(w);
        }
        if let Outcome::Accepted(_) = outcome {
            for r in &rcpts {
                expected
                    .entry((domain.clone(), r.clone()))
                    .or_default()
                    .push(body_of(&case.message));
            }
        }
    }
    // The oversize message once more, without SIZE in MAIL FROM: Maddy 0.8.2 reads it to
    // the end, then loses its own 552 on the way out ("554 5.0.0 Internal server error").
    // Still refused, and not stored.
    let big = cases.iter().find(|c| c.name == "<oversize>").unwrap();
    let alice = sessions.get_mut(&big.mail_from).unwrap();
    alice.declare_size = false;
    let outcome = alice
        .send(&big.mail_from, &[&format!("bob@{CHAT}")], &big.message)
        .await
        .unwrap_or_else(|e| panic!("oversize without SIZE: {e}\n{}", relays.chat.log()));
    replies.push(format!("<oversize> outgoing without SIZE: {outcome:?}"));
    if !matches!(&outcome, Outcome::Refused(_, r) if r.code / 100 == 5) {
        wrong.push(format!("oversize without SIZE: {outcome:?}"));
    }
    for (_, s) in sessions {
        s.quit().await;
    }
    eprintln!("outgoing done after {:?}", started.elapsed());

    // 2. Incoming, on port 25 of the recipient's relay, signed by the From: domain.
    let signed = |case: &Case| {
        from_domain(&case.message)
            .and_then(|d| keys.get(&d).and_then(|k| dkim_sign(k, &d, &case.message)))
            .unwrap_or_else(|| case.message.clone())
    };
    let mut mx_sessions: BTreeMap<String, Smtp> = BTreeMap::new();
    for case in &cases {
        let domain = domain_of(&case.rcpts[0]).to_string();
        let app = relays.by_domain(&domain);
        let message = signed(case);
        if !mx_sessions.contains_key(&domain) {
            mx_sessions.insert(domain.clone(), mx(app).await);
        }
        let session = mx_sessions.get_mut(&domain).unwrap();
        let rcpt_refs: Vec<&str> = case.rcpts.iter().map(String::as_str).collect();
        let outcome = match session.send(&case.mail_from, &rcpt_refs, &message).await {
            Ok(o) => o,
            Err(e) => {
                mx_sessions.remove(&domain);
                wrong.push(format!("{} incoming: connection failed: {e}", case.name));
                continue;
            }
        };
        replies.push(format!("{} incoming: {:?}", case.name, outcome));
        if let Some(w) = mismatch(case, false, &outcome) {
            wrong.push(w);
        }
        if let Outcome::Accepted(_) = outcome {
            for r in &case.rcpts {
                expected
                    .entry((domain.clone(), r.clone()))
                    .or_default()
                    .push(body_of(&case.message));
            }
        }
    }

    // DKIM alignment: an encrypted message unsigned, and signed by another domain.
    let encrypted = cases
        .iter()
        .find(|c| c.name == "synthetic-pkesk-seipd.eml")
        .expect("an encrypted corpus message");
    let unaligned = dkim_sign(&keys[ATTACKER], ATTACKER, &encrypted.message).unwrap();
    for (what, message) in [
        ("unsigned", encrypted.message.clone()),
        ("signed by attacker.example", unaligned),
    ] {
        let session = mx_sessions.get_mut(OTHER).unwrap();
        let rcpts: Vec<&str> = encrypted.rcpts.iter().map(String::as_str).collect();
        let outcome = session
            .send(&encrypted.mail_from, &rcpts, &message)
            .await
            .unwrap();
        replies.push(format!("encrypted, {what}: {outcome:?}"));
        match &outcome {
            Outcome::Refused(Stage::EndOfData, r)
                if r.code == 554 && r.enhanced.as_deref() == Some("5.7.1") => {}
            other => wrong.push(format!(
                "encrypted, {what}: expected 554 5.7.1, got {other:?}"
            )),
        }
    }
    for (_, s) in mx_sessions {
        s.quit().await;
    }
    eprintln!("incoming done after {:?}", started.elapsed());

    // 2b. Incoming over HTTPS (`POST /mxdeliv`, as relays deliver to each other): no
    // Maddy in front, so every verdict comes from the rules, with upstream's texts.
    for case in &cases {
        let domain = domain_of(&case.rcpts[0]).to_string();
        let app = relays.by_domain(&domain);
        let mut headers = Vec::new();
        if !case.mail_from.is_empty() {
            headers.push(("X-MAIL-FROM", case.mail_from.as_str()));
        }
        for r in &case.rcpts {
            headers.push(("X-MAIL-TO", r.as_str()));
        }
        let response = tls_client::https_with_headers(
            addr(app.ports.https),
            &domain,
            &Trust::Anything,
            "POST",
            "/mxdeliv",
            &headers,
            &signed(case),
        )
        .await;
        let text = response.text();
        replies.push(format!(
            "{} /mxdeliv: {} {text}",
            case.name, response.status
        ));
        let ok = match (&case.incoming, case.name.as_str()) {
            // Maddy's storage refuses it after the rules accepted it (see MADDY_FIRST).
            (_, "mime-no-closing-delimiter.eml") => response.status == 400 && text.starts_with('5'),
            (Verdict::Accept(_), _) => response.status == 200 && text == "250 OK",
            (Verdict::Refuse(552), _) => {
                response.status == 413 && text == "552 Message exceeds maximum size"
            }
            (Verdict::Refuse(523), _) => {
                response.status == 400 && text == "523 Encryption Needed: Invalid Unencrypted Mail"
            }
            (Verdict::Refuse(500), _) => {
                response.status == 400
                    && (text.starts_with("500 Invalid FROM header: ")
                        || text.starts_with("500 Failed to parse message: "))
            }
            (Verdict::Refuse(code), _) => {
                response.status == 400 && text.starts_with(&code.to_string())
            }
        };
        if !ok {
            wrong.push(format!(
                "{} /mxdeliv: expected {:?}, got {} {text}",
                case.name, case.incoming, response.status
            ));
        }
        if response.status == 200 {
            for r in &case.rcpts {
                expected
                    .entry((domain.clone(), r.clone()))
                    .or_default()
                    .push(body_of(&case.message));
            }
        }
    }
    for (what, message, reply) in [
        (
            "unsigned",
            encrypted.message.clone(),
            "554 5.7.1 No DKIM signature found",
        ),
        (
            "signed by attacker.example",
            dkim_sign(&keys[ATTACKER], ATTACKER, &encrypted.message).unwrap(),
            "554 5.7.1 No valid DKIM signature found",
        ),
    ] {
        let response = tls_client::https_with_headers(
            addr(relays.other.ports.https),
            OTHER,
            &Trust::Anything,
            "POST",
            "/mxdeliv",
            &[
                ("X-MAIL-FROM", &encrypted.mail_from),
                ("X-MAIL-TO", &encrypted.rcpts[0]),
            ],
            &message,
        )
        .await;
        replies.push(format!(
            "encrypted, {what}, /mxdeliv: {} {}",
            response.status,
            response.text()
        ));
        if (response.status, response.text().as_str()) != (400, reply) {
            wrong.push(format!(
                "encrypted, {what}, /mxdeliv: expected 400 {reply}, got {} {}",
                response.status,
                response.text()
            ));
        }
    }
    eprintln!("/mxdeliv done after {:?}", started.elapsed());

    // 3. The rate limit on chat.corpus.test (burst 10, then one a minute): the burst is
    // accepted, then the sender is told 450 4.7.1 to come back later. Each accepted
    // message must arrive, the refused one must not.
    let sender = format!("ratelimit@{CORPUS}");
    let rcpt = format!("carol@{CORPUS}");
    let message = String::from_utf8(encrypted.message.clone())
        .unwrap()
        .replacen(
            "From: <alice@chat.example>",
            &format!("From: <{sender}>"),
            1,
        )
        .into_bytes();
    let mut session = submission(&relays.corpus, &sender).await;
    let mut limited = None;
    let mut accepted = 0;
    for _ in 0..30 {
        match session.send(&sender, &[&rcpt], &message).await.unwrap() {
            Outcome::Accepted(_) => {
                accepted += 1;
                expected
                    .entry((CORPUS.to_string(), rcpt.clone()))
                    .or_default()
                    .push(body_of(&message));
            }
            Outcome::Refused(stage, reply) => {
                limited = Some((stage, reply));
                break;
            }
        }
    }
    let (stage, limited) = limited.expect("the rate limit never answered");
    replies.push(format!(
        "rate limit: {accepted} accepted, then at {stage:?}: {limited}"
    ));
    // Ten, or eleven if a minute passed during the burst.
    assert!(
        (10..=11).contains(&accepted),
        "{accepted} accepted before: {limited}"
    );
    assert_eq!(
        (limited.code, limited.enhanced.as_deref()),
        (450, Some("4.7.1")),
        "{limited}"
    );
    session.quit().await;

    // 4. Mailboxes: exactly the accepted messages, each once.
    for ((domain, user), mut bodies) in expected.clone() {
        let app = relays.by_domain(&domain);
        let mut stored: Vec<Vec<u8>> = imap_inbox(addr(app.ports.imaps), &user, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("IMAP {user}: {e}"))
            .iter()
            .map(|m| body_of(m))
            .collect();
        bodies.sort();
        stored.sort();
        if stored != bodies {
            wrong.push(format!(
                "{user}: {} messages stored, {} expected (accepted messages missing or refused ones stored)",
                stored.len(),
                bodies.len()
            ));
        }
    }
    // Mailboxes that nothing accepted was addressed to stay empty (alice gets no bounces
    // and no refused message).
    for (domain, user) in [
        (CHAT, format!("alice@{CHAT}")),
        (OTHER, format!("bob@{OTHER}")),
    ] {
        if expected.contains_key(&(domain.to_string(), user.clone())) {
            continue;
        }
        let app = relays.by_domain(domain);
        let stored = imap_inbox(addr(app.ports.imaps), &user, PASSWORD)
            .await
            .unwrap();
        if !stored.is_empty() {
            wrong.push(format!(
                "{user}: {} messages stored, none expected",
                stored.len()
            ));
        }
    }
    eprintln!("{}", replies.join("\n"));
    assert!(
        wrong.is_empty(),
        "{}\n\n{}",
        wrong.join("\n"),
        if std::env::var_os("CHATMAIL_TEST_LOGS").is_some() {
            relays.logs()
        } else {
            "(set CHATMAIL_TEST_LOGS=1 for the relays' logs)".into()
        }
    );
    eprintln!("milter corpus test took {:?}", started.elapsed());
}

/// The domain of the first address in `From:`, lowercased (what DKIM must align with).
fn from_domain(message: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next()?;
    let line = head
        .lines()
        .find(|l| l.len() > 5 && l[..5].eq_ignore_ascii_case("from:"))?;
    let addr = line.rsplit('<').next()?.split('>').next()?.trim();
    Some(domain_of(addr).to_ascii_lowercase()).filter(|d| !d.is_empty())
}
