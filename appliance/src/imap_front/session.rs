//! One client connection of the IMAP front.
//!
//! Three loops share the connection: the client pump frames the client's commands
//! ([`CommandFramer`]), answers the few the front implements and forwards the rest to
//! Maddy unchanged (a synchronizing literal is acknowledged by the front and forwarded as
//! LITERAL+, so framing never depends on Maddy's answer); the response pump forwards
//! Maddy's responses, editing capability lists and noting tagged completions, continuation
//! requests and successful logins; the client writer sends both to the client, compressed
//! once COMPRESS is active. The front answers its own commands only when Maddy has
//! answered everything sent before (responses keep the client's order), and IDLE streams
//! through as any response does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
    ReadHalf, WriteHalf,
};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::compress::{Deflater, Inflater};
use super::local::LocalCommand;
use super::parser::{
    command_head, literal_at_end, make_non_sync, parse_command, response_start, trim_eol,
    CapabilityEdit, CommandFramer, Frame, Literal, Part, ResponseStart, Value,
};
use super::Front;

/// A client stream: TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// Longest response line accepted from Maddy (a SEARCH over a huge mailbox is long).
const MAX_SERVER_LINE: usize = 64 << 20;
/// Largest whole command the front parses itself (a device token is at most 4 KiB).
const MAX_LOCAL_COMMAND: usize = 64 << 10;
/// Largest LOGIN command whose user name the front keeps.
const MAX_CAPTURE: usize = 8 << 10;
/// How long a new session waits for Maddy's IMAP listener.
const UPSTREAM_WAIT: Duration = Duration::from_secs(20);
/// How long the front waits for Maddy to finish earlier commands before answering its own.
const QUIET_WAIT: Duration = Duration::from_secs(60);

/// What goes to the client writer.
enum Out {
    Data(Vec<u8>),
    /// COMPRESS's OK: sent as it is, everything after it compressed.
    StartDeflate(Vec<u8>),
    /// The last bytes; then the connection ends.
    Close(Vec<u8>),
}

/// A SASL exchange under way (AUTHENTICATE without the user in its first line).
#[derive(Debug, Clone, PartialEq, Eq)]
enum SaslWait {
    /// PLAIN: the next continuation line carries authzid, authcid and password.
    Plain { tag: Vec<u8> },
    /// LOGIN: the next continuation line is the user name.
    Login { tag: Vec<u8> },
}

/// What both pumps know about the session.
#[derive(Debug, Default)]
struct State {
    /// Tags sent to Maddy and not completed.
    outstanding: Vec<Vec<u8>>,
    /// Continuation requests of Maddy (IDLE, AUTHENTICATE) the client answers with a line.
    owed_lines: usize,
    /// A LOGIN/AUTHENTICATE in flight: its tag and user.
    pending_login: Option<(Vec<u8>, String)>,
    /// The SASL exchange waiting for the user's name.
    sasl: Option<SaslWait>,
    /// The logged-in account, once Maddy said OK.
    user: Option<String>,
}

/// How the client reached the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Port 993: TLS from the first byte.
    ImplicitTls,
    /// Port 143: plaintext until STARTTLS.
    StartTls,
}

/// Serves one connection until either side closes.
pub async fn run(tcp: TcpStream, mode: Mode, front: Arc<Front>) -> std::io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let client: Box<dyn Io> = match mode {
        Mode::ImplicitTls => {
            let tls = tokio::time::timeout(front.timeouts.handshake, front.tls.accept(tcp))
                .await
                .map_err(|_| timed_out("TLS handshake"))??;
            Box::new(tls)
        }
        Mode::StartTls => match super::starttls::negotiate(tcp, &front).await? {
            Some(tls) => Box::new(tls),
            None => return Ok(()),
        },
    };
    tracing::trace!("client TLS up");
    let (client_read, mut client_write) = tokio::io::split(client);
    let upstream = match tokio::time::timeout(UPSTREAM_WAIT, connect_upstream(front.upstream)).await
    {
        Ok(Ok(stream)) => stream,
        result => {
            tracing::warn!(upstream = %front.upstream, "IMAP front: Maddy unreachable: {result:?}");
            let _ = client_write
                .write_all(b"* BYE [UNAVAILABLE] Try again later\r\n")
                .await;
            let _ = client_write.flush().await;
            return Ok(());
        }
    };
    let _ = upstream.set_nodelay(true);
    tracing::trace!("connected to Maddy");
    let (up_read, up_write) = upstream.into_split();
    let mut up_read = BufReader::with_capacity(64 << 10, up_read);

    let (tx, rx) = mpsc::channel(64);
    let compressing = Arc::new(AtomicBool::new(false));
    // Maddy's greeting; after STARTTLS the client had ours already.
    let mut greeting = Vec::new();
    read_server_line(&mut up_read, &mut greeting).await?;
    if mode == Mode::ImplicitTls {
        let line = front.edit(false).edit_line(&greeting).unwrap_or(greeting);
        let _ = tx.send(Out::Data(line)).await;
    }
    let (state_tx, state_rx) = watch::channel(State::default());
    let state = Arc::new(state_tx);

    let client_pump = ClientPump {
        front: front.clone(),
        reader: client_read,
        upstream: BufWriter::with_capacity(64 << 10, up_write),
        tx: tx.clone(),
        state: state.clone(),
        state_rx,
        framer: CommandFramer::new(front.limits),
        inflater: None,
        command: InCommand::Between,
        compressing: compressing.clone(),
    }
    .run();
    let responses = pump_responses(up_read, tx, state, front.clone(), compressing);
    let writer = write_to_client(rx, client_write);
    tokio::pin!(client_pump, responses, writer);
    // The session ends when the client leaves, when the writer has sent the last words
    // (after a BYE of the front's or of Maddy's), or on an error.
    tokio::select! {
        result = &mut client_pump => result,
        result = &mut writer => result,
        result = &mut responses => match result {
            // Maddy closed; its last responses are queued for the writer.
            Ok(()) => (&mut writer).await,
            Err(e) => Err(e),
        },
    }
}

/// Connects to Maddy, trying again while it is (re)starting: the front listens from the
/// relay's start, Maddy a little later, and the supervisor restarts it after a crash.
async fn connect_upstream(addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}

/// Reads one line of Maddy's (line ending included); empty at the end of the stream.
async fn read_server_line(
    up: &mut BufReader<OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<()> {
    line.clear();
    (&mut *up)
        .take(MAX_SERVER_LINE as u64)
        .read_until(b'\n', line)
        .await?;
    if line.len() >= MAX_SERVER_LINE {
        return Err(std::io::Error::other("Maddy sent an overlong line"));
    }
    Ok(())
}

/// Forwards Maddy's responses to the client writer.
async fn pump_responses(
    mut up: BufReader<OwnedReadHalf>,
    tx: mpsc::Sender<Out>,
    state: Arc<watch::Sender<State>>,
    front: Arc<Front>,
    compressing: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut at_response_start = true;
    loop {
        read_server_line(&mut up, &mut line).await?;
        tracing::trace!(len = line.len(), "line from Maddy");
        if line.is_empty() {
            let _ = tx.send(Out::Close(Vec::new())).await;
            return Ok(());
        }
        let literal = literal_at_end(&line);
        let mut completed = None;
        let mut out = std::mem::take(&mut line);
        if at_response_start {
            match response_start(&out) {
                // Counted before the client can see it, so its answer is known as one.
                ResponseStart::Continuation => state.send_modify(|s| s.owed_lines += 1),
                ResponseStart::Tagged { tag, ok } => {
                    tracing::debug!(tag = %String::from_utf8_lossy(tag), ok, "Maddy completed");
                    completed = Some((tag.to_vec(), ok))
                }
                ResponseStart::Untagged => {}
            }
            if let Some(edited) = front
                .edit(compressing.load(Ordering::SeqCst))
                .edit_line(&out)
            {
                out = edited;
            }
        }
        if tx.send(Out::Data(out)).await.is_err() {
            return Ok(());
        }
        if let Some((tag, ok)) = completed {
            complete(&state, &front, &tag, ok);
        }
        at_response_start = literal.is_none();
        if let Some(Literal { len, .. }) = literal {
            let mut left = len;
            while left > 0 {
                let mut chunk = vec![0u8; left.min(64 << 10) as usize];
                up.read_exact(&mut chunk).await?;
                left -= chunk.len() as u64;
                if tx.send(Out::Data(chunk)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Maddy completed `tag`: the client may be logged in now, and the front's own answers
/// may go out once nothing is outstanding.
fn complete(state: &watch::Sender<State>, front: &Front, tag: &[u8], ok: bool) {
    let mut logged_in = None;
    state.send_modify(|s| {
        if let Some(i) = s.outstanding.iter().position(|t| t == tag) {
            s.outstanding.remove(i);
        }
        if s.sasl.as_ref().is_some_and(|w| match w {
            SaslWait::Plain { tag: t } | SaslWait::Login { tag: t } => t == tag,
        }) {
            s.sasl = None;
        }
        if s.pending_login.as_ref().is_some_and(|(t, _)| t == tag) {
            let (_, user) = s.pending_login.take().expect("checked");
            if ok {
                s.user = Some(user.clone());
                logged_in = Some(user);
            }
        }
    });
    if let Some(user) = logged_in {
        (front.on_login)(user);
    }
}

/// Sends the client what the pumps hand over, flushing when nothing more is waiting.
async fn write_to_client(
    mut rx: mpsc::Receiver<Out>,
    mut w: WriteHalf<Box<dyn Io>>,
) -> std::io::Result<()> {
    let mut deflater: Option<Deflater> = None;
    let mut plain = Vec::new();
    let mut wire = Vec::new();
    loop {
        let Some(mut msg) = rx.recv().await else {
            return Ok(());
        };
        loop {
            let mut close = false;
            match msg {
                Out::Data(data) => plain.extend_from_slice(&data),
                Out::StartDeflate(ok) => {
                    plain.extend_from_slice(&ok);
                    flush(&mut w, &mut deflater, &mut plain, &mut wire).await?;
                    deflater = Some(Deflater::new());
                }
                Out::Close(data) => {
                    plain.extend_from_slice(&data);
                    close = true;
                }
            }
            if close {
                flush(&mut w, &mut deflater, &mut plain, &mut wire).await?;
                let _ = w.shutdown().await;
                return Ok(());
            }
            if plain.len() >= 256 << 10 {
                break;
            }
            match rx.try_recv() {
                Ok(next) => msg = next,
                Err(_) => break,
            }
        }
        flush(&mut w, &mut deflater, &mut plain, &mut wire).await?;
    }
}

async fn flush(
    w: &mut WriteHalf<Box<dyn Io>>,
    deflater: &mut Option<Deflater>,
    plain: &mut Vec<u8>,
    wire: &mut Vec<u8>,
) -> std::io::Result<()> {
    if plain.is_empty() {
        return Ok(());
    }
    match deflater {
        Some(d) => {
            wire.clear();
            d.deflate(plain, wire)?;
            w.write_all(wire).await?;
        }
        None => w.write_all(plain).await?,
    }
    tracing::trace!(len = plain.len(), "written to the client");
    plain.clear();
    w.flush().await?;
    tracing::trace!("client flushed");
    Ok(())
}

/// Where the client pump is within a command.
enum InCommand {
    /// Between commands.
    Between,
    /// Forwarding a command to Maddy; LOGIN's parts are kept to learn the user.
    Passing { capture: Option<Vec<Part>> },
    /// Collecting a command the front answers.
    Local {
        kind: LocalCommand,
        parts: Vec<Part>,
        size: usize,
    },
}

/// The outcome of handling one frame.
enum Next {
    Go,
    /// The connection must end after the bytes sent.
    Stop,
}

struct ClientPump {
    front: Arc<Front>,
    reader: ReadHalf<Box<dyn Io>>,
    upstream: BufWriter<OwnedWriteHalf>,
    tx: mpsc::Sender<Out>,
    state: Arc<watch::Sender<State>>,
    state_rx: watch::Receiver<State>,
    framer: CommandFramer,
    inflater: Option<Inflater>,
    command: InCommand,
    compressing: Arc<AtomicBool>,
}

impl ClientPump {
    async fn run(mut self) -> std::io::Result<()> {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            while let Some(frame) = self.framer.next_frame() {
                if let Next::Stop = self.frame(frame).await? {
                    self.upstream.flush().await?;
                    // The writer ends the session once the last words are out.
                    std::future::pending::<()>().await;
                }
            }
            self.upstream.flush().await?;
            tracing::trace!("upstream flushed; reading the client");
            if let Some(inflater) = &mut self.inflater {
                if inflater.has_pending() {
                    let mut plain = Vec::new();
                    inflater.inflate(&[], &mut plain)?;
                    self.framer.push(&plain);
                    continue;
                }
            }
            let logged_in = self.state_rx.borrow().user.is_some();
            let limit = if logged_in {
                self.front.timeouts.authenticated
            } else {
                self.front.timeouts.not_authenticated
            };
            let n = match tokio::time::timeout(limit, self.reader.read(&mut buf)).await {
                Ok(n) => n?,
                Err(_) => {
                    self.send(Out::Close(
                        b"* BYE Autologout; idle for too long\r\n".to_vec(),
                    ))
                    .await;
                    std::future::pending::<()>().await;
                    unreachable!()
                }
            };
            tracing::trace!(n, "bytes from the client");
            if n == 0 {
                return Ok(());
            }
            match &mut self.inflater {
                Some(inflater) => {
                    let mut plain = Vec::new();
                    inflater.inflate(&buf[..n], &mut plain)?;
                    self.framer.push(&plain);
                }
                None => self.framer.push(&buf[..n]),
            }
        }
    }

    async fn send(&self, out: Out) {
        let _ = self.tx.send(out).await;
    }

    async fn reply(&self, text: String) {
        self.send(Out::Data(text.into_bytes())).await;
    }

    async fn frame(&mut self, frame: Frame) -> std::io::Result<Next> {
        match frame {
            Frame::LineTooLong { prefix } => {
                let tag = tag_of(&prefix);
                self.send(Out::Close(
                    format!("{tag} BAD Line too long\r\n* BYE Closing the connection\r\n")
                        .into_bytes(),
                ))
                .await;
                Ok(Next::Stop)
            }
            Frame::LiteralTooLarge { line, literal } => {
                let tag = match &self.command {
                    InCommand::Between => tag_of(&line),
                    InCommand::Local { parts, .. } => match parts.first() {
                        Some(Part::Text(first)) => tag_of(first),
                        _ => "*".into(),
                    },
                    InCommand::Passing { .. } => "*".into(),
                };
                let text = format!(
                    "{tag} BAD [TOOBIG] Literal too large (at most {} bytes)\r\n",
                    self.front.limits.max_literal
                );
                // A rejected synchronizing literal is never sent; the session goes on
                // unless part of the command already went to Maddy.
                let recoverable =
                    literal.sync && !matches!(self.command, InCommand::Passing { .. });
                self.command = InCommand::Between;
                if recoverable {
                    self.reply(text).await;
                    Ok(Next::Go)
                } else {
                    self.send(Out::Close(
                        format!("{text}* BYE Closing the connection\r\n").into_bytes(),
                    ))
                    .await;
                    Ok(Next::Stop)
                }
            }
            Frame::LiteralData(data) => {
                match &mut self.command {
                    InCommand::Passing { capture } => {
                        if let Some(parts) = capture {
                            if let Some(Part::Literal(bytes)) = parts.last_mut() {
                                bytes.extend_from_slice(&data);
                            }
                        }
                        self.upstream.write_all(&data).await?;
                    }
                    InCommand::Local { parts, .. } => {
                        if let Some(Part::Literal(bytes)) = parts.last_mut() {
                            bytes.extend_from_slice(&data);
                        }
                    }
                    InCommand::Between => {
                        return Err(std::io::Error::other("literal data outside a command"))
                    }
                }
                Ok(Next::Go)
            }
            Frame::Line { line, literal } => self.line(line, literal).await,
        }
    }

    /// Takes one continuation line the client owes Maddy, if any.
    fn take_owed_line(&self) -> bool {
        let mut owed = false;
        self.state.send_if_modified(|s| {
            owed = s.owed_lines > 0;
            if owed {
                s.owed_lines -= 1;
            }
            owed
        });
        owed
    }

    async fn line(&mut self, line: Vec<u8>, literal: Option<Literal>) -> std::io::Result<Next> {
        match std::mem::replace(&mut self.command, InCommand::Between) {
            InCommand::Between => {
                if self.take_owed_line() {
                    if literal.is_some() {
                        self.send(Out::Close(
                            b"* BAD Literal in a continuation response\r\n".to_vec(),
                        ))
                        .await;
                        return Ok(Next::Stop);
                    }
                    self.note_sasl_response(&line);
                    self.upstream.write_all(&line).await?;
                    return Ok(Next::Go);
                }
                let Some((tag, name)) = command_head(&line) else {
                    return self
                        .reject("* BAD Invalid command\r\n".into(), literal)
                        .await;
                };
                tracing::debug!(%tag, %name, "command");
                if let Some(kind) = LocalCommand::of(&name) {
                    let parts = vec![Part::of_line(&line)];
                    return self.local_part(kind, parts, line.len(), literal).await;
                }
                self.state
                    .send_modify(|s| s.outstanding.push(tag.as_bytes().to_vec()));
                let capture = (name == "LOGIN").then(|| vec![Part::of_line(&line)]);
                if name == "AUTHENTICATE" {
                    self.note_authenticate(&tag, &line);
                }
                self.forward(line, literal, capture).await
            }
            InCommand::Passing { mut capture } => {
                if let Some(parts) = &mut capture {
                    parts.push(Part::of_line(&line));
                }
                self.forward(line, literal, capture).await
            }
            InCommand::Local {
                kind,
                mut parts,
                size,
            } => {
                parts.push(Part::of_line(&line));
                self.local_part(kind, parts, size + line.len(), literal)
                    .await
            }
        }
    }

    /// Refuses the command at this line; a literal it announced is refused with it.
    async fn reject(&mut self, text: String, literal: Option<Literal>) -> std::io::Result<Next> {
        self.command = InCommand::Between;
        match literal {
            Some(l) if !l.sync => {
                self.send(Out::Close(
                    format!("{text}* BYE Closing the connection\r\n").into_bytes(),
                ))
                .await;
                Ok(Next::Stop)
            }
            Some(_) => {
                self.framer.refuse_literal();
                self.reply(text).await;
                Ok(Next::Go)
            }
            None => {
                self.reply(text).await;
                Ok(Next::Go)
            }
        }
    }

    /// Forwards one line of a passed-through command.
    async fn forward(
        &mut self,
        line: Vec<u8>,
        literal: Option<Literal>,
        mut capture: Option<Vec<Part>>,
    ) -> std::io::Result<Next> {
        match literal {
            None => {
                if let Some(parts) = capture {
                    self.note_login(&parts);
                }
                tracing::trace!(len = line.len(), "line to Maddy");
                self.upstream.write_all(&line).await?;
            }
            Some(literal) => {
                if let Some(parts) = &mut capture {
                    let size: usize = parts.iter().map(part_len).sum();
                    if size as u64 + literal.len > MAX_CAPTURE as u64 {
                        capture = None;
                    } else {
                        parts.push(Part::Literal(Vec::new()));
                    }
                }
                if literal.sync {
                    self.upstream.write_all(&make_non_sync(&line)).await?;
                    self.upstream.flush().await?;
                    self.reply("+ Ready for literal data\r\n".into()).await;
                } else {
                    self.upstream.write_all(&line).await?;
                }
                self.command = InCommand::Passing { capture };
            }
        }
        Ok(Next::Go)
    }

    /// LOGIN's user, for METADATA once Maddy says OK.
    fn note_login(&self, parts: &[Part]) {
        let Ok(cmd) = parse_command(parts) else {
            return;
        };
        let Some(user) = cmd.args.first().and_then(Value::as_astring) else {
            return;
        };
        let user = String::from_utf8_lossy(&user).into_owned();
        let tag = cmd.tag.into_bytes();
        self.state
            .send_modify(|s| s.pending_login = Some((tag, user)));
    }

    /// AUTHENTICATE's mechanism, and the user if the initial response (SASL-IR) has it.
    fn note_authenticate(&self, tag: &str, line: &[u8]) {
        let text = String::from_utf8_lossy(trim_eol(line)).into_owned();
        let mut words = text.split(' ').skip(2);
        let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next();
        let tag = tag.as_bytes().to_vec();
        match (mechanism.as_str(), initial) {
            ("PLAIN", Some(ir)) => {
                if let Some(user) = plain_user(ir.as_bytes()) {
                    self.state
                        .send_modify(|s| s.pending_login = Some((tag, user)));
                }
            }
            ("PLAIN", None) => self
                .state
                .send_modify(|s| s.sasl = Some(SaslWait::Plain { tag })),
            ("LOGIN", Some(ir)) => {
                if let Some(user) = decode_b64(ir.as_bytes()) {
                    self.state
                        .send_modify(|s| s.pending_login = Some((tag, user)));
                }
            }
            ("LOGIN", None) => self
                .state
                .send_modify(|s| s.sasl = Some(SaslWait::Login { tag })),
            _ => {}
        }
    }

    /// A continuation line of a SASL exchange that names the user.
    fn note_sasl_response(&self, line: &[u8]) {
        let Some(wait) = self.state_rx.borrow().sasl.clone() else {
            return;
        };
        let body = trim_eol(line);
        let (tag, user) = match wait {
            SaslWait::Plain { tag } => (tag, plain_user(body)),
            SaslWait::Login { tag } => (tag, decode_b64(body)),
        };
        self.state.send_modify(|s| {
            s.sasl = None;
            if let Some(user) = user {
                s.pending_login = Some((tag, user));
            }
        });
    }

    /// One more line of a command the front answers.
    async fn local_part(
        &mut self,
        kind: LocalCommand,
        mut parts: Vec<Part>,
        size: usize,
        literal: Option<Literal>,
    ) -> std::io::Result<Next> {
        let Some(literal) = literal else {
            return self.answer(kind, parts).await;
        };
        if size as u64 + literal.len > MAX_LOCAL_COMMAND as u64 {
            let tag = match parts.first() {
                Some(Part::Text(first)) => tag_of(first),
                _ => "*".into(),
            };
            return self
                .reject(
                    format!("{tag} BAD [TOOBIG] Command too long\r\n"),
                    Some(literal),
                )
                .await;
        }
        parts.push(Part::Literal(Vec::new()));
        if literal.sync {
            self.reply("+ Ready for literal data\r\n".into()).await;
        }
        self.command = InCommand::Local {
            kind,
            parts,
            size: size + literal.len as usize,
        };
        Ok(Next::Go)
    }

    /// Waits until Maddy has answered every command sent before (bounded, so a command
    /// Maddy never tags cannot hang the session).
    async fn wait_quiet(&mut self) -> std::io::Result<()> {
        // What is still buffered for Maddy must reach it, or it never answers.
        self.upstream.flush().await?;
        let _ = tokio::time::timeout(
            QUIET_WAIT,
            self.state_rx.wait_for(|s| s.outstanding.is_empty()),
        )
        .await;
        Ok(())
    }

    /// Answers a whole command the front implements.
    async fn answer(&mut self, kind: LocalCommand, parts: Vec<Part>) -> std::io::Result<Next> {
        let cmd = match parse_command(&parts) {
            Ok(cmd) => cmd,
            Err(e) => {
                let tag = match parts.first() {
                    Some(Part::Text(first)) => tag_of(first),
                    _ => "*".into(),
                };
                self.reply(format!("{tag} BAD {e}\r\n")).await;
                return Ok(Next::Go);
            }
        };
        self.wait_quiet().await?;
        let tag = cmd.tag.clone();
        let user = self.state_rx.borrow().user.clone();
        let text = match kind {
            LocalCommand::Id => {
                format!("* ID (\"name\" \"chatmail relay\")\r\n{tag} OK ID completed\r\n")
            }
            LocalCommand::StartTls => format!("{tag} BAD TLS is active already\r\n"),
            LocalCommand::Compress => return self.compress(&cmd).await,
            LocalCommand::Account(command) => match user {
                None => format!("{tag} BAD Log in first\r\n"),
                Some(user) => command.answer(&self.front, &cmd, user).await,
            },
        };
        self.reply(text).await;
        Ok(Next::Go)
    }

    async fn compress(&mut self, cmd: &super::parser::Command) -> std::io::Result<Next> {
        let tag = &cmd.tag;
        let deflate = matches!(cmd.args.as_slice(),
            [Value::Atom(a)] if a.eq_ignore_ascii_case("DEFLATE"));
        if !deflate {
            self.reply(format!("{tag} BAD Only COMPRESS DEFLATE is supported\r\n"))
                .await;
        } else if self.inflater.is_some() {
            self.reply(format!(
                "{tag} NO [COMPRESSIONACTIVE] Compression is active already\r\n"
            ))
            .await;
        } else {
            self.compressing.store(true, Ordering::SeqCst);
            self.front.compressed_sessions.inc();
            self.send(Out::StartDeflate(
                format!("{tag} OK DEFLATE active\r\n").into_bytes(),
            ))
            .await;
            // Whatever the client sent after the command is compressed already.
            let mut inflater = Inflater::new();
            let mut plain = Vec::new();
            inflater.inflate(&self.framer.take_unframed(), &mut plain)?;
            self.framer.push(&plain);
            self.inflater = Some(inflater);
        }
        Ok(Next::Go)
    }
}

fn part_len(part: &Part) -> usize {
    match part {
        Part::Text(t) | Part::Literal(t) => t.len(),
    }
}

/// The tag of a command line for an answer, or `*` if it has none.
fn tag_of(line: &[u8]) -> String {
    command_head(line).map_or_else(|| "*".to_string(), |(tag, _)| tag)
}

fn decode_b64(text: &[u8]) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    String::from_utf8(bytes).ok().filter(|u| !u.is_empty())
}

/// The user of a SASL PLAIN response: the authorization identity if given, else the
/// authentication identity.
fn plain_user(b64: &[u8]) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let mut fields = bytes.split(|&b| b == 0);
    let (authz, authc) = (fields.next()?, fields.next()?);
    fields.next()?;
    let user = if authz.is_empty() { authc } else { authz };
    String::from_utf8(user.to_vec())
        .ok()
        .filter(|u| !u.is_empty())
}

/// Capability lists as the front shows them: Maddy's COMPRESS (the front compresses
/// itself) and STARTTLS (Maddy's plaintext listener is loopback only) hidden, the front's
/// own extensions added, COMPRESS=DEFLATE only while compression is not active.
pub fn capability_edit(compressing: bool) -> CapabilityEdit {
    let mut add: Vec<String> = ["ID", "METADATA", "QUOTA", "XCHATMAIL", "XDELTAPUSH"]
        .into_iter()
        .map(String::from)
        .collect();
    if !compressing {
        add.push("COMPRESS=DEFLATE".into());
    }
    CapabilityEdit {
        // Maddy (go-imap-compress) advertises a bare `COMPRESS`.
        hide: ["COMPRESS", "COMPRESS=", "STARTTLS", "LOGINDISABLED"]
            .into_iter()
            .map(String::from)
            .collect(),
        add,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_users() {
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            plain_user(b64(b"\0alice@x\0pw").as_bytes()).as_deref(),
            Some("alice@x")
        );
        assert_eq!(
            plain_user(b64(b"bob@x\0alice@x\0pw").as_bytes()).as_deref(),
            Some("bob@x")
        );
        assert_eq!(plain_user(b64(b"alice").as_bytes()), None);
        assert_eq!(plain_user(b"*"), None);
        assert_eq!(
            decode_b64(b64(b"alice@x").as_bytes()).as_deref(),
            Some("alice@x")
        );
    }

    #[test]
    fn capabilities() {
        let list = "IMAP4rev1 LITERAL+ SASL-IR IDLE COMPRESS=DEFLATE AUTH=PLAIN COMPRESS";
        assert_eq!(
            capability_edit(false).apply(list),
            "IMAP4rev1 LITERAL+ SASL-IR IDLE AUTH=PLAIN ID METADATA QUOTA XCHATMAIL \
             XDELTAPUSH COMPRESS=DEFLATE"
        );
        assert!(!capability_edit(true).apply(list).contains("COMPRESS"));
    }
}
