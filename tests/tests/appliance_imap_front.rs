//! Raw IMAP through the appliance's IMAP front (993 with TLS, 143 with STARTTLS) to the
//! real Maddy behind it: capabilities, METADATA device tokens (then posted by the push
//! notifier on delivery), QUOTA, literals and LITERAL+, IDLE, COMPRESS=DEFLATE,
//! pipelining, SASL, and hostile input. Needs Maddy (`appliance/scripts/install-test-deps.sh`).

use std::net::SocketAddr;
use std::sync::atomic::AtomicU16;
use std::sync::Arc;
use std::time::Duration;

use chatmail_tests::appliance::{Appliance, RunningAppliance};
use chatmail_tests::mail_client::{Outcome, Smtp};
use chatmail_tests::push_service;
use chatmail_tests::tls_client::{connect_tls, imap_quote, Trust};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const DOMAIN: &str = "chat.example";
const ALICE: &str = "alice@chat.example";
const BOB: &str = "bob@chat.example";
const CAROL: &str = "carol@chat.example";
const FRANK: &str = "frank@chat.example";
const PASSWORD: &str = "front-test-password";
/// Guards against hangs only.
const LIMIT: Duration = Duration::from_secs(60);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A raw IMAP connection: whole responses as text (literals inline), optional deflate.
struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    inflate: Option<Decompress>,
    deflate: Option<Compress>,
}

impl Conn {
    async fn tls(port: u16) -> Conn {
        Conn::tls_at(([127, 0, 0, 1], port).into()).await
    }

    async fn tls_at(addr: SocketAddr) -> Conn {
        let tls = connect_tls(addr, DOMAIN, &Trust::Anything, &[])
            .await
            .unwrap();
        Conn::new(Box::new(tls))
    }

    fn new(io: Box<dyn Io>) -> Conn {
        Conn {
            io,
            buf: Vec::new(),
            inflate: None,
            deflate: None,
        }
    }

    async fn send(&mut self, data: &[u8]) {
        match &mut self.deflate {
            Some(c) => {
                let mut out = Vec::with_capacity(data.len() + 1024);
                c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
                self.io.write_all(&out).await.unwrap();
            }
            None => self.io.write_all(data).await.unwrap(),
        }
        self.io.flush().await.unwrap();
    }

    /// Reads more bytes; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut raw = vec![0u8; 64 << 10];
        let n = tokio::time::timeout(LIMIT, self.io.read(&mut raw))
            .await
            .expect("IMAP read timed out")
            .unwrap_or(0);
        if n == 0 {
            return false;
        }
        match &mut self.inflate {
            Some(d) => {
                let mut out = Vec::with_capacity(n * 20 + 4096);
                d.decompress_vec(&raw[..n], &mut out, FlushDecompress::Sync)
                    .unwrap();
                self.buf.extend_from_slice(&out);
            }
            None => self.buf.extend_from_slice(&raw[..n]),
        }
        true
    }

    /// One whole response line (literal contents inline), or None at the end.
    async fn response(&mut self) -> Option<String> {
        let mut text = Vec::new();
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                if !self.fill().await {
                    return None;
                }
                continue;
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            text.extend_from_slice(&line);
            let trimmed = String::from_utf8_lossy(&line).trim_end().to_string();
            let literal = trimmed
                .strip_suffix('}')
                .and_then(|l| l.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok());
            let Some(n) = literal else {
                return Some(String::from_utf8_lossy(&text).trim_end().to_string());
            };
            while self.buf.len() < n {
                assert!(self.fill().await, "closed inside a literal");
            }
            text.extend(self.buf.drain(..n));
        }
    }

    /// Responses up to and including the one tagged `tag`.
    async fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let r = self
                .response()
                .await
                .unwrap_or_else(|| panic!("closed before {tag}; got {all:?}"));
            let done = r.starts_with(&format!("{tag} "));
            all.push(r);
            if done {
                return all;
            }
        }
    }

    /// Sends `tag command` and returns every response through the tagged one.
    async fn cmd(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.until_tagged(tag).await
    }

    async fn login(&mut self, user: &str) {
        let r = self
            .cmd("l", &format!("LOGIN \"{user}\" \"{PASSWORD}\""))
            .await;
        assert!(r.last().unwrap().starts_with("l OK"), "{r:?}");
    }
}

fn tagged_ok(responses: &[String]) -> bool {
    responses.last().is_some_and(|l| {
        l.split(' ')
            .nth(1)
            .is_some_and(|s| s.eq_ignore_ascii_case("OK"))
    })
}

/// A notification service on loopback answering 200; reports each body.
async fn notification_service() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let (addr, mut requests) =
        push_service::notification_service(Arc::new(AtomicU16::new(200))).await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            let _ = tx.send(request.body);
        }
    });
    (addr, rx)
}

/// The appliance with the front; the setup keeps its directory alive.
async fn start(push: SocketAddr) -> (Appliance, RunningAppliance) {
    let mut setup = Appliance::new(DOMAIN)
        .arg("--imap-preauth-timeout-secs=2")
        .imap_front(true)
        .config(
            "[limits]\nusername_min_length = 3\nmax_mailbox_size_mb = 100\n\n\
             [privacy]\ncontact_mail = \"admin@example.org\"\n",
        )
        .arg(format!("--push-url=http://{push}/notify"));
    let app = setup.start().await;
    (setup, app)
}

async fn send_from_alice(app: &RunningAppliance, rcpt: &str) {
    let addr: SocketAddr = ([127, 0, 0, 1], app.ports.submissions).into();
    let mut smtp = Smtp::submission(addr, ALICE, PASSWORD).await.unwrap();
    let path =
        chatmail_tests::workspace::root().join("tests/corpus/messages/synthetic-pkesk-seipd.eml");
    let outcome = smtp
        .send(ALICE, &[rcpt], &std::fs::read(path).unwrap())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    smtp.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_front_end_to_end() {
    let (push, mut notifications) = notification_service().await;
    let (_setup, app) = start(push).await;
    let log = || app.log();

    // Capabilities before login, from the greeting and the command.
    let mut bob = Conn::tls(app.ports.imaps).await;
    let greeting = bob.response().await.unwrap();
    assert!(greeting.contains("XCHATMAIL"), "{greeting}");
    let caps = bob.cmd("c", "CAPABILITY").await;
    let list = caps.iter().find(|l| l.starts_with("* CAPABILITY")).unwrap();
    for cap in [
        "IMAP4rev1",
        "IDLE",
        "LITERAL+",
        "METADATA",
        "QUOTA",
        "ID",
        "XCHATMAIL",
        "XDELTAPUSH",
        "COMPRESS=DEFLATE",
    ] {
        assert!(list.split(' ').any(|c| c == cap), "{cap} missing: {list}");
    }
    assert!(!list.contains("STARTTLS"), "{list}");
    // Logged-in commands are refused before login.
    let r = bob
        .cmd("m0", "GETMETADATA INBOX /private/devicetoken")
        .await;
    assert!(r.last().unwrap().starts_with("m0 BAD"), "{r:?}");

    bob.login(BOB).await;
    let r = bob.cmd("i", "ID (\"name\" \"Delta Chat\")").await;
    assert_eq!(r[0], "* ID (\"name\" \"chatmail relay\")");
    assert!(tagged_ok(&r));

    // Server entries, as Delta Chat asks for them.
    let r = bob
        .cmd(
            "m1",
            "GETMETADATA \"\" (/shared/comment /shared/admin /shared/vendor/deltachat/irohrelay \
             /shared/vendor/deltachat/turn /shared/vendor/deltachat/maxsmtprecipients \
             /shared/vendor/deltachat/appversions)",
        )
        .await;
    assert!(tagged_ok(&r), "{r:?}");
    assert_eq!(
        r[0],
        "* METADATA \"\" (/shared/comment NIL /shared/admin \"mailto:admin@example.org\" \
         /shared/vendor/deltachat/irohrelay NIL /shared/vendor/deltachat/turn NIL \
         /shared/vendor/deltachat/maxsmtprecipients \"1000\" \
         /shared/vendor/deltachat/appversions NIL)"
    );

    // Two device tokens: one quoted, one as a synchronizing literal; both kept.
    let r = bob
        .cmd(
            "s1",
            "SETMETADATA \"INBOX\" (/private/devicetoken \"openpgp:first\")",
        )
        .await;
    assert!(tagged_ok(&r), "{r:?}");
    bob.send(b"s2 SETMETADATA INBOX (/private/devicetoken {14}\r\n")
        .await;
    let go = bob.response().await.unwrap();
    assert!(go.starts_with('+'), "{go}");
    bob.send(b"openpgp:second)\r\n").await;
    let r = bob.until_tagged("s2").await;
    assert!(tagged_ok(&r), "{r:?}");
    let r = bob.cmd("g", "GETMETADATA INBOX /private/devicetoken").await;
    assert_eq!(
        r[0],
        "* METADATA INBOX (/private/devicetoken \"openpgp:first openpgp:second\")"
    );

    // APPEND with a synchronizing literal and with LITERAL+.
    let message = b"From: bob@chat.example\r\nSubject: x\r\n\r\nhello\r\n";
    bob.send(format!("a1 APPEND INBOX {{{}}}\r\n", message.len()).as_bytes())
        .await;
    assert!(bob.response().await.unwrap().starts_with('+'));
    bob.send(message).await;
    bob.send(b"\r\n").await;
    assert!(tagged_ok(&bob.until_tagged("a1").await));
    let mut plus = format!("a2 APPEND INBOX {{{}+}}\r\n", message.len()).into_bytes();
    plus.extend_from_slice(message);
    plus.extend_from_slice(b"\r\n");
    bob.send(&plus).await;
    let r = bob.until_tagged("a2").await;
    assert!(tagged_ok(&r), "{r:?}");
    let r = bob.cmd("f", "SELECT INBOX").await;
    assert!(r.iter().any(|l| l == "* 2 EXISTS"), "{r:?}");
    let r = bob.cmd("f2", "FETCH 2 (BODY.PEEK[])").await;
    assert!(r[0].contains("hello"), "{r:?}");

    // Quota: what the two small messages take (rounded up to 1 KiB) of the configured
    // limit, in KiB.
    let r = bob.cmd("q", "GETQUOTAROOT INBOX").await;
    assert_eq!(r[0], "* QUOTAROOT \"INBOX\" \"\"");
    assert_eq!(r[1], format!("* QUOTA \"\" (STORAGE 1 {})", 100 * 1024));
    assert!(tagged_ok(&r));
    let r = bob.cmd("q2", "GETQUOTA \"\"").await;
    assert!(tagged_ok(&r), "{r:?}");
    let r = bob.cmd("q3", "GETQUOTA \"other\"").await;
    assert!(r.last().unwrap().starts_with("q3 NO"), "{r:?}");

    // Pipelined: passed-through and local commands answered in order.
    bob.send(b"p1 NOOP\r\np2 ID NIL\r\np3 CAPABILITY\r\np4 GETQUOTAROOT INBOX\r\np5 NOOP\r\n")
        .await;
    let r = bob.until_tagged("p5").await;
    let tags: Vec<&str> = r
        .iter()
        .filter(|l| l.starts_with('p'))
        .map(|l| &l[..2])
        .collect();
    assert_eq!(tags, ["p1", "p2", "p3", "p4", "p5"], "{r:?}");

    // IDLE: a message delivered meanwhile arrives as EXISTS, and the notifier posts
    // both tokens the front stored.
    let r = bob.cmd("x", "EXAMINE INBOX").await;
    assert!(tagged_ok(&r));
    bob.send(b"d IDLE\r\n").await;
    assert!(bob.response().await.unwrap().starts_with('+'));
    // Alice exists from her first login.
    let mut alice = Conn::tls(app.ports.imaps).await;
    alice.response().await;
    alice.login(ALICE).await;
    send_from_alice(&app, BOB).await;
    let exists = tokio::time::timeout(LIMIT, bob.response())
        .await
        .unwrap_or_else(|_| panic!("no EXISTS during IDLE; log:\n{}", log()))
        .unwrap();
    assert_eq!(exists, "* 3 EXISTS");
    bob.send(b"DONE\r\n").await;
    let r = bob.until_tagged("d").await;
    assert!(tagged_ok(&r), "{r:?}");
    let mut posted = Vec::new();
    for _ in 0..2 {
        let body = tokio::time::timeout(LIMIT, notifications.recv())
            .await
            .unwrap_or_else(|_| panic!("no notification; log:\n{}", log()))
            .unwrap();
        posted.push(body);
    }
    posted.sort();
    assert_eq!(posted, ["openpgp:first", "openpgp:second"]);

    // COMPRESS: deflate both ways from the next command on.
    let r = bob.cmd("z", "COMPRESS DEFLATE").await;
    assert!(tagged_ok(&r), "{r:?}");
    bob.inflate = Some(Decompress::new(false));
    bob.deflate = Some(Compress::new(Compression::default(), false));
    let r = bob.cmd("z1", "CAPABILITY").await;
    assert!(!r[0].contains("COMPRESS"), "{r:?}");
    let r = bob.cmd("z2", "FETCH 1:3 (RFC822.SIZE)").await;
    assert!(tagged_ok(&r), "{r:?}");
    let r = bob.cmd("z3", "COMPRESS DEFLATE").await;
    assert!(r.last().unwrap().starts_with("z3 NO"), "{r:?}");
    let r = bob.cmd("z4", "LOGOUT").await;
    assert!(tagged_ok(&r), "{r:?}");
    drop(alice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_sasl_and_hostile_input() {
    let (push, _notifications) = notification_service().await;
    let (_setup, app) = start(push).await;

    // Both ports answer on IPv6 as well (the relay's AAAA record sends clients there).
    let mut v6 = Conn::tls_at((std::net::Ipv6Addr::LOCALHOST, app.ports.imaps).into()).await;
    let greeting = v6.response().await.unwrap();
    assert!(greeting.starts_with("* OK"), "993 on ::1: {greeting}");
    let tcp = TcpStream::connect(("::1", app.ports.imap)).await.unwrap();
    let greeting = Conn::new(Box::new(tcp)).response().await.unwrap();
    assert!(greeting.contains("STARTTLS"), "143 on ::1: {greeting}");

    // Port 143: plaintext until STARTTLS, no login before it.
    let tcp = TcpStream::connect(("127.0.0.1", app.ports.imap))
        .await
        .unwrap();
    let mut plain = Conn::new(Box::new(tcp));
    let greeting = plain.response().await.unwrap();
    assert!(greeting.contains("STARTTLS"), "{greeting}");
    let r = plain.cmd("l0", &format!("LOGIN {CAROL} {PASSWORD}")).await;
    assert!(r[0].starts_with("l0 NO"), "{r:?}");
    let r = plain.cmd("t", "STARTTLS").await;
    assert!(tagged_ok(&r), "{r:?}");
    let Conn { io, .. } = plain;
    let connector = tokio_rustls::TlsConnector::from(Trust::Anything.client_config(&[]));
    // Delta Chat sends no SNI on STARTTLS; the name here only satisfies the API.
    let tls = connector
        .connect(
            rustls_pki_types::ServerName::try_from(DOMAIN.to_string()).unwrap(),
            io,
        )
        .await
        .unwrap();
    let mut carol = Conn::new(Box::new(tls));
    let r = carol.cmd("c", "CAPABILITY").await;
    assert!(
        r[0].contains("METADATA") && !r[0].contains("STARTTLS"),
        "{r:?}"
    );
    // AUTHENTICATE PLAIN without the initial response: the front learns the user from
    // the continuation line.
    use base64::Engine as _;
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    carol.send(b"a AUTHENTICATE PLAIN\r\n").await;
    assert!(carol.response().await.unwrap().starts_with('+'));
    carol
        .send(format!("{}\r\n", b64(format!("\0{CAROL}\0{PASSWORD}"))).as_bytes())
        .await;
    let r = carol.until_tagged("a").await;
    assert!(tagged_ok(&r), "{r:?}");
    let r = carol
        .cmd(
            "s",
            "SETMETADATA INBOX (/private/devicetoken \"carol-token\")",
        )
        .await;
    assert!(tagged_ok(&r), "{r:?}");

    // SASL-IR on 993.
    let mut dave = Conn::tls(app.ports.imaps).await;
    dave.response().await;
    let ir = b64(format!("\0{CAROL}\0{PASSWORD}"));
    let r = dave.cmd("a", &format!("AUTHENTICATE PLAIN {ir}")).await;
    assert!(tagged_ok(&r), "{r:?}");
    let r = dave
        .cmd("g", "GETMETADATA INBOX (/private/devicetoken)")
        .await;
    assert_eq!(
        r[0],
        "* METADATA INBOX (/private/devicetoken \"carol-token\")"
    );
    // A wrong password logs nobody in.
    let mut eve = Conn::tls(app.ports.imaps).await;
    eve.response().await;
    let r = eve.cmd("l", &format!("LOGIN {CAROL} wrong-password")).await;
    assert!(!tagged_ok(&r), "{r:?}");
    let r = eve.cmd("g", "GETMETADATA INBOX /private/devicetoken").await;
    assert!(r.last().unwrap().starts_with("g BAD"), "{r:?}");

    // A huge synchronizing literal is refused and the session goes on.
    let r = dave.cmd("h1", "APPEND INBOX {999999999999}").await;
    assert!(r.last().unwrap().starts_with("h1 BAD"), "{r:?}");
    let r = dave.cmd("h2", "NOOP").await;
    assert!(tagged_ok(&r), "{r:?}");
    drop(eve);
    // An overlong line: BAD, and this connection ends. (A fresh connection: one left idle
    // before login is closed after this test's 2 s, and the steps above can take longer
    // on a loaded machine.)
    let mut mallory = Conn::tls(app.ports.imaps).await;
    mallory.response().await;
    let mut long = b"o1 NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 200 << 10));
    mallory.send(&long).await;
    let r = mallory.response().await.unwrap();
    assert!(r.starts_with("o1 BAD"), "{r}");
    while mallory.response().await.is_some() {}
    // The other sessions are unharmed.
    let r = dave.cmd("n", "NOOP").await;
    assert!(tagged_ok(&r), "{r:?}");
    let r = carol.cmd("n", "NOOP").await;
    assert!(tagged_ok(&r), "{r:?}");
    // Generated passwords hold `"` and `\`: quoted with escapes, LOGIN works through the
    // front, which learns the user from it.
    let mut frank = Conn::tls(app.ports.imaps).await;
    frank.response().await;
    let password = r#"pa"ss\word-of-frank\"#;
    let r = frank
        .cmd("l", &format!("LOGIN {FRANK} {}", imap_quote(password)))
        .await;
    assert!(tagged_ok(&r), "{r:?}");
    let r = frank
        .cmd("g", "GETMETADATA INBOX (/private/devicetoken)")
        .await;
    assert!(tagged_ok(&r), "{r:?}");

    // Silent before login: logged out, on both ports; logged in: kept.
    let mut idle = Conn::tls(app.ports.imaps).await;
    idle.response().await.unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", app.ports.imap))
        .await
        .unwrap();
    let mut idle_plain = Conn::new(Box::new(tcp));
    idle_plain.response().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        idle.response().await.as_deref(),
        Some("* BYE Autologout; idle for too long")
    );
    assert_eq!(idle.response().await, None);
    assert_eq!(
        idle_plain.response().await.as_deref(),
        Some("* BYE Autologout; idle for too long")
    );
    let r = dave.cmd("k", "NOOP").await;
    assert!(tagged_ok(&r), "{r:?}");
}
