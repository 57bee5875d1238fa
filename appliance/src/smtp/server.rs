//! A small LMTP server for the hops Maddy delivers to on loopback (`target.lmtp`).
//!
//! Maddy's LMTP client (go-smtp behind `internal/target/smtp`) sends LHLO, MAIL, RCPT…,
//! DATA and reads one DATA reply per accepted recipient (RFC 2033); the queue turns each
//! into a per-recipient success, retry (4xx) or bounce (5xx) (research/maddy-pipeline.md
//! §3.2). This module speaks that protocol and hands the envelope and the message to a
//! [`Handler`]; what happens with them is the handler's business (local storage, or
//! delivery to other relays). Dot-unstuffing and the size limit are done here.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use chatmail_appliance::mail_rules::Reply;

/// How long a client may stay silent.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest command line accepted.
const MAX_LINE: usize = 4096;

/// One mail transaction, from MAIL to the end of DATA.
pub trait Transaction: Send {
    /// `MAIL FROM` (the address without brackets; empty for the null sender).
    fn mail(&mut self, from: &str) -> impl Future<Output = Result<(), Reply>> + Send;
    /// `RCPT TO`.
    fn rcpt(&mut self, to: &str) -> impl Future<Output = Result<(), Reply>> + Send;
    /// The message; one reply per accepted recipient, in order.
    fn data(&mut self, message: Vec<u8>) -> impl Future<Output = Vec<Reply>> + Send;
}

/// Starts transactions.
pub trait Handler: Send + Sync + 'static {
    type Tx: Transaction + 'static;
    fn begin(&self) -> Self::Tx;
}

/// Serves LMTP on the Unix socket `socket` until `shutdown`.
pub async fn serve<H: Handler>(
    socket: &Path,
    name: &'static str,
    max_message_size: usize,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = crate::milter::bind_unix(socket)?;
    tracing::info!(socket = %socket.display(), "{name} listening (LMTP)");
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("{name} accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        };
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                result = session(stream, name, max_message_size, handler) => {
                    if let Err(e) = result {
                        tracing::debug!("{name} connection: {e:#}");
                    }
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(30), connections.wait()).await;
    let _ = std::fs::remove_file(socket);
    Ok(())
}

async fn write_reply(w: &mut (impl AsyncWriteExt + Unpin), reply: &Reply) -> std::io::Result<()> {
    let mut line = reply.line.replace(['\r', '\n'], " ");
    line.push_str("\r\n");
    w.write_all(line.as_bytes()).await
}

async fn write_line(w: &mut (impl AsyncWriteExt + Unpin), line: &str) -> std::io::Result<()> {
    w.write_all(format!("{line}\r\n").as_bytes()).await
}

/// One LMTP connection.
async fn session<H: Handler>(
    stream: UnixStream,
    name: &'static str,
    max_message_size: usize,
    handler: Arc<H>,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write_line(&mut write, &format!("220 {name} LMTP ready")).await?;
    let mut tx: Option<H::Tx> = None;
    let mut accepted = 0usize;
    let mut have_mail = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line),
        )
        .await??;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            write_line(&mut write, "500 5.5.2 Line too long").await?;
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        let upper = text.to_ascii_uppercase();
        if upper.starts_with("LHLO") {
            write
                .write_all(
                    format!("250-{name}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE {max_message_size}\r\n")
                        .as_bytes(),
                )
                .await?;
        } else if let Some(arg) = strip_command(text, "MAIL FROM:") {
            if have_mail {
                write_line(&mut write, "503 5.5.1 Nested MAIL command").await?;
                continue;
            }
            let from = angle_address(arg);
            let mut t = handler.begin();
            match t.mail(&from).await {
                Ok(()) => {
                    tx = Some(t);
                    have_mail = true;
                    accepted = 0;
                    write_line(&mut write, "250 2.1.0 OK").await?;
                }
                Err(reply) => write_reply(&mut write, &reply).await?,
            }
        } else if let Some(arg) = strip_command(text, "RCPT TO:") {
            let Some(t) = tx.as_mut() else {
                write_line(&mut write, "503 5.5.1 MAIL first").await?;
                continue;
            };
            let to = angle_address(arg);
            match t.rcpt(&to).await {
                Ok(()) => {
                    accepted += 1;
                    write_line(&mut write, "250 2.1.5 OK").await?;
                }
                Err(reply) => write_reply(&mut write, &reply).await?,
            }
        } else if upper == "DATA" {
            if tx.is_none() || accepted == 0 {
                write_line(&mut write, "503 5.5.1 No valid recipients").await?;
                continue;
            }
            write_line(&mut write, "354 End data with <CR><LF>.<CR><LF>").await?;
            let message = match read_data(&mut reader, max_message_size).await? {
                Some(m) => m,
                None => {
                    for _ in 0..accepted {
                        write_line(&mut write, "552 5.3.4 Message exceeds maximum size").await?;
                    }
                    tx = None;
                    have_mail = false;
                    continue;
                }
            };
            let mut t = tx.take().expect("checked above");
            let mut replies = t.data(message).await;
            replies.resize(
                accepted,
                Reply::new(451, "451 4.3.0 Local error".to_string()),
            );
            let mut out = String::new();
            for reply in &replies {
                out.push_str(&reply.line.replace(['\r', '\n'], " "));
                out.push_str("\r\n");
            }
            write.write_all(out.as_bytes()).await?;
            have_mail = false;
        } else if upper == "RSET" {
            tx = None;
            have_mail = false;
            write_line(&mut write, "250 2.0.0 OK").await?;
        } else if upper == "NOOP" {
            write_line(&mut write, "250 2.0.0 OK").await?;
        } else if upper == "QUIT" {
            write_line(&mut write, "221 2.0.0 Bye").await?;
            return Ok(());
        } else {
            write_line(&mut write, "500 5.5.2 Command not recognized").await?;
        }
    }
}

fn strip_command<'a>(line: &'a str, command: &str) -> Option<&'a str> {
    let head = line.get(..command.len())?;
    head.eq_ignore_ascii_case(command)
        .then(|| line[command.len()..].trim_start())
}

/// `<addr> PARAMS` → `addr` (lower-cased as upstream's SMTP layer does).
fn angle_address(arg: &str) -> String {
    chatmail_appliance::mail_rules::address::envelope_address(arg)
}

/// Reads DATA lines up to the lone dot, undoing dot-stuffing. `None` if the message is
/// larger than `max` (the rest is read and dropped, so the session stays in sync).
async fn read_data(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    max: usize,
) -> anyhow::Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    let mut line = Vec::new();
    let mut too_big = false;
    loop {
        line.clear();
        let n = tokio::time::timeout(IDLE_TIMEOUT, reader.read_until(b'\n', &mut line)).await??;
        if n == 0 {
            anyhow::bail!("connection closed inside DATA");
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let content = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        if message.len() + content.len() > max {
            too_big = true;
            continue;
        }
        if !too_big {
            message.extend_from_slice(content);
        }
    }
    Ok((!too_big).then_some(message))
}
