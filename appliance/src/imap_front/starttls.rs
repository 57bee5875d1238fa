//! Port 143 before STARTTLS: the front answers alone (CAPABILITY, NOOP, LOGOUT,
//! STARTTLS) and refuses logins in plaintext, as upstream's Dovecot with `ssl = required`
//! (research/chatmail.md §6). Delta Chat sends no SNI on STARTTLS; the relay has one
//! certificate, so none is needed.
//!
//! Whatever the client sent after STARTTLS in plaintext is dropped, not read as the first
//! bytes of the TLS session (the command-injection attack on STARTTLS).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::parser::{command_head, literal_at_end};
use super::Front;

const CAPABILITIES: &str = "IMAP4rev1 STARTTLS LOGINDISABLED";
/// Longest command line before TLS.
const MAX_LINE: u64 = 1024;

/// Runs the plaintext part; the TLS stream once STARTTLS succeeded, or `None` if the
/// client left.
pub async fn negotiate(
    tcp: TcpStream,
    front: &Front,
) -> std::io::Result<Option<TlsStream<TcpStream>>> {
    let mut conn = BufReader::new(tcp);
    let greeting = format!("* OK [CAPABILITY {CAPABILITIES}] chatmail relay ready\r\n");
    conn.get_mut().write_all(greeting.as_bytes()).await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut conn).take(MAX_LINE);
        let read = limited.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout(front.timeouts.not_authenticated, read).await {
            Ok(n) => n?,
            Err(_) => {
                let _ = conn
                    .get_mut()
                    .write_all(b"* BYE Autologout; idle for too long\r\n")
                    .await;
                return Ok(None);
            }
        };
        if n == 0 {
            return Ok(None);
        }
        if !line.ends_with(b"\n") || literal_at_end(&line).is_some() {
            let _ = conn
                .get_mut()
                .write_all(b"* BAD Invalid command\r\n* BYE Use STARTTLS first\r\n")
                .await;
            return Ok(None);
        }
        let Some((tag, name)) = command_head(&line) else {
            conn.get_mut()
                .write_all(b"* BAD Invalid command\r\n")
                .await?;
            continue;
        };
        let answer = match name.as_str() {
            "CAPABILITY" => {
                format!("* CAPABILITY {CAPABILITIES}\r\n{tag} OK CAPABILITY completed\r\n")
            }
            "NOOP" => format!("{tag} OK NOOP completed\r\n"),
            "LOGOUT" => {
                let bye = format!("* BYE Logging out\r\n{tag} OK LOGOUT completed\r\n");
                conn.get_mut().write_all(bye.as_bytes()).await?;
                return Ok(None);
            }
            "STARTTLS" => {
                let ok = format!("{tag} OK Begin TLS negotiation now\r\n");
                conn.get_mut().write_all(ok.as_bytes()).await?;
                // Dropping the reader drops anything pipelined after STARTTLS.
                let tcp = conn.into_inner();
                let tls = tokio::time::timeout(front.timeouts.handshake, front.tls.accept(tcp))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake")
                    })??;
                return Ok(Some(tls));
            }
            "LOGIN" | "AUTHENTICATE" => {
                format!("{tag} NO [PRIVACYREQUIRED] Use STARTTLS first\r\n")
            }
            _ => format!("{tag} BAD Use STARTTLS first\r\n"),
        };
        conn.get_mut().write_all(answer.as_bytes()).await?;
    }
}
