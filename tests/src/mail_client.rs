//! Just enough SMTP and IMAP to send arbitrary messages through a relay and read back what
//! it stored: the mail-rules suite sends every corpus message the way a mail client
//! (submission, implicit TLS, AUTH PLAIN) or another mail server (port 25) would, and
//! looks into the recipient's mailbox afterwards.
//!
//! Certificates are not checked (the relays in these tests serve their placeholder), and
//! every reply is kept whole: code, enhanced status code and text, so a test can say which
//! of them the relay passed on.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::tls_client::{connect_tls, Trust};

const IO_TIMEOUT: Duration = Duration::from_secs(120);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One SMTP reply: the code, the enhanced status code if the text starts with one, and the
/// text of the last line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    pub enhanced: Option<String>,
    pub text: String,
}

impl SmtpReply {
    fn parse(line: &str) -> SmtpReply {
        let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        let text = line.get(4..).unwrap_or("").to_string();
        let first = text.split(' ').next().unwrap_or("");
        let enhanced = (first.split('.').count() == 3
            && first
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
        .then(|| first.to_string());
        SmtpReply {
            code,
            enhanced,
            text,
        }
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

impl std::fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// Where in the transaction the server said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    MailFrom,
    RcptTo,
    Data,
    /// After the message (the final reply).
    EndOfData,
}

/// The outcome of one transaction: accepted (the final reply), or refused at a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted(SmtpReply),
    Refused(Stage, SmtpReply),
}

impl Outcome {
    pub fn reply(&self) -> &SmtpReply {
        match self {
            Outcome::Accepted(r) | Outcome::Refused(_, r) => r,
        }
    }
}

/// An SMTP session after the greeting and EHLO.
pub struct Smtp {
    stream: BufReader<Box<dyn Io>>,
    /// Every line of the last reply.
    lines: Vec<String>,
    /// The server announced the SIZE extension (RFC 1870).
    size_extension: bool,
    /// Declare each message's size in `MAIL FROM` when the server announces SIZE, as
    /// mail servers and clients do.
    pub declare_size: bool,
}

impl Smtp {
    /// Port 25 as another mail server uses it: plain TCP (no STARTTLS), EHLO `helo`.
    pub async fn mx(addr: SocketAddr, helo: &str) -> std::io::Result<Smtp> {
        let tcp = TcpStream::connect(addr).await?;
        Smtp::start(Box::new(tcp), helo).await
    }

    /// Submission with implicit TLS (465) and AUTH PLAIN as `user`.
    pub async fn submission(addr: SocketAddr, user: &str, password: &str) -> std::io::Result<Smtp> {
        use base64::Engine as _;
        let tls = connect_tls(addr, "localhost", &Trust::Anything, &[]).await?;
        let mut smtp = Smtp::start(Box::new(tls), "client.invalid").await?;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        let reply = smtp.command(&format!("AUTH PLAIN {token}")).await?;
        if reply.code != 235 {
            return Err(std::io::Error::other(format!("AUTH as {user}: {reply}")));
        }
        Ok(smtp)
    }

    async fn start(stream: Box<dyn Io>, helo: &str) -> std::io::Result<Smtp> {
        let mut smtp = Smtp {
            stream: BufReader::new(stream),
            lines: Vec::new(),
            size_extension: false,
            declare_size: true,
        };
        let greeting = smtp.reply().await?;
        if greeting.code != 220 {
            return Err(std::io::Error::other(format!("greeting: {greeting}")));
        }
        let ehlo = smtp.command(&format!("EHLO {helo}")).await?;
        if ehlo.code != 250 {
            return Err(std::io::Error::other(format!("EHLO: {ehlo}")));
        }
        smtp.size_extension = smtp.lines.iter().any(|l| {
            l.get(4..).is_some_and(|e| {
                e.eq_ignore_ascii_case("SIZE") || e.to_ascii_uppercase().starts_with("SIZE ")
            })
        });
        Ok(smtp)
    }

    async fn reply(&mut self) -> std::io::Result<SmtpReply> {
        self.lines.clear();
        let io = async {
            let mut last = String::new();
            loop {
                let mut line = String::new();
                if self.stream.read_line(&mut line).await? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("connection closed (last line {last:?})"),
                    ));
                }
                last = line.trim_end().to_string();
                self.lines.push(last.clone());
                if last.len() < 4 || last.as_bytes()[3] != b'-' {
                    return Ok(SmtpReply::parse(&last));
                }
            }
        };
        tokio::time::timeout(IO_TIMEOUT, io)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "SMTP reply"))?
    }

    /// Sends one command line and reads the reply.
    pub async fn command(&mut self, line: &str) -> std::io::Result<SmtpReply> {
        let stream = self.stream.get_mut();
        stream.write_all(format!("{line}\r\n").as_bytes()).await?;
        // TLS keeps written bytes in its own buffer until flushed.
        stream.flush().await?;
        self.reply().await
    }

    /// One whole transaction. After a refusal before the end the transaction is reset, so
    /// the session can go on.
    pub async fn send(
        &mut self,
        mail_from: &str,
        rcpts: &[&str],
        message: &[u8],
    ) -> std::io::Result<Outcome> {
        let size = if self.size_extension && self.declare_size {
            format!(" SIZE={}", message.len())
        } else {
            String::new()
        };
        let reply = self
            .command(&format!("MAIL FROM:<{mail_from}>{size}"))
            .await?;
        if !reply.is_positive() {
            self.command("RSET").await?;
            return Ok(Outcome::Refused(Stage::MailFrom, reply));
        }
        for rcpt in rcpts {
            let reply = self.command(&format!("RCPT TO:<{rcpt}>")).await?;
            if !reply.is_positive() {
                self.command("RSET").await?;
                return Ok(Outcome::Refused(Stage::RcptTo, reply));
            }
        }
        let reply = self.command("DATA").await?;
        if reply.code != 354 {
            self.command("RSET").await?;
            return Ok(Outcome::Refused(Stage::Data, reply));
        }
        let data = dot_stuff(message);
        let stream = self.stream.get_mut();
        // Flushed too: without it, under load, the last TLS records of a large message
        // stayed in the client's buffer and the server waited for the end forever.
        let write = async {
            stream.write_all(&data).await?;
            stream.flush().await
        };
        let written = tokio::time::timeout(IO_TIMEOUT, write)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "writing DATA"))?;
        // A server may answer and close before it has read everything (a size limit):
        // its reply still counts.
        let reply = match (written, self.reply().await) {
            (_, Ok(reply)) => reply,
            (Err(e), Err(_)) | (Ok(()), Err(e)) => return Err(e),
        };
        Ok(if reply.is_positive() {
            Outcome::Accepted(reply)
        } else {
            Outcome::Refused(Stage::EndOfData, reply)
        })
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT").await;
    }
}

/// The DATA payload for `message`: lines starting with "." doubled, a CRLF added if the
/// message does not end with one, and the final ".".
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Every message in `user`'s INBOX, whole (`BODY.PEEK[]`), over IMAPS (certificate not
/// checked), in the order stored.
pub async fn imap_inbox(
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> std::io::Result<Vec<Vec<u8>>> {
    let io = async {
        let stream = connect_tls(addr, "localhost", &Trust::Anything, &[]).await?;
        let mut imap = Imap {
            stream: BufReader::new(stream),
            tag: 0,
        };
        imap.line().await?; // greeting
        let login = format!(
            "LOGIN {} {}",
            crate::tls_client::imap_quote(user),
            crate::tls_client::imap_quote(password)
        );
        let (ok, _) = imap.command(&login).await?;
        if !ok.contains(" OK") {
            return Err(std::io::Error::other(format!("IMAP LOGIN {user}: {ok}")));
        }
        let (ok, untagged) = imap.command("SELECT INBOX").await?;
        if !ok.contains(" OK") {
            return Err(std::io::Error::other(format!("SELECT: {ok}")));
        }
        let exists = untagged
            .iter()
            .find_map(|(line, _)| {
                line.strip_prefix("* ")?
                    .strip_suffix(" EXISTS")?
                    .parse::<u32>()
                    .ok()
            })
            .unwrap_or(0);
        let mut messages = Vec::new();
        if exists > 0 {
            let (ok, untagged) = imap.command("FETCH 1:* (BODY.PEEK[])").await?;
            if !ok.contains(" OK") {
                return Err(std::io::Error::other(format!("FETCH: {ok}")));
            }
            for (line, literal) in untagged {
                if line.contains("FETCH") {
                    if let Some(literal) = literal {
                        messages.push(literal);
                    }
                }
            }
        }
        let _ = imap.command("LOGOUT").await;
        Ok(messages)
    };
    tokio::time::timeout(IO_TIMEOUT, io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "IMAP"))?
}

/// Logs `user` in over IMAPS (certificate not checked) and sends `commands` in turn;
/// returns each command's tagged reply. Fails if the login fails.
pub async fn imap_session(
    addr: SocketAddr,
    user: &str,
    password: &str,
    commands: &[&str],
) -> std::io::Result<Vec<String>> {
    let io = async {
        let stream = connect_tls(addr, "localhost", &Trust::Anything, &[]).await?;
        let mut imap = Imap {
            stream: BufReader::new(stream),
            tag: 0,
        };
        imap.line().await?; // greeting
        let login = format!(
            "LOGIN {} {}",
            crate::tls_client::imap_quote(user),
            crate::tls_client::imap_quote(password)
        );
        let (ok, _) = imap.command(&login).await?;
        if !ok.contains(" OK") {
            return Err(std::io::Error::other(format!("IMAP LOGIN {user}: {ok}")));
        }
        let mut replies = Vec::new();
        for command in commands {
            replies.push(imap.command(command).await?.0);
        }
        let _ = imap.command("LOGOUT").await;
        Ok(replies)
    };
    tokio::time::timeout(IO_TIMEOUT, io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "IMAP"))?
}

struct Imap {
    stream: BufReader<tokio_rustls::client::TlsStream<TcpStream>>,
    tag: u32,
}

impl Imap {
    async fn line(&mut self) -> std::io::Result<String> {
        let mut line = Vec::new();
        if self.stream.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "IMAP connection closed",
            ));
        }
        Ok(String::from_utf8_lossy(&line).trim_end().to_string())
    }

    /// Sends a command; returns the tagged reply and the untagged responses, each with the
    /// literal it carried (one per response is enough for FETCH of one item).
    #[allow(clippy::type_complexity)]
    async fn command(
        &mut self,
        command: &str,
    ) -> std::io::Result<(String, Vec<(String, Option<Vec<u8>>)>)> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let stream = self.stream.get_mut();
        stream
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        stream.flush().await?;
        let mut untagged = Vec::new();
        loop {
            let line = self.line().await?;
            if line.starts_with(&format!("{tag} ")) {
                return Ok((line, untagged));
            }
            let mut literal = None;
            if let Some(n) = line
                .strip_suffix('}')
                .and_then(|l| l.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                let mut data = vec![0u8; n];
                self.stream.read_exact(&mut data).await?;
                literal = Some(data);
                // The rest of the response after the literal (e.g. ")").
                self.line().await?;
            }
            untagged.push((line, literal));
        }
    }
}
