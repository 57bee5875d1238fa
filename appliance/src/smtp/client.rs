//! A small SMTP/LMTP client: to Maddy's loopback storage listener (LMTP over a Unix
//! socket) and to other relays' port 25 (SMTP, after STARTTLS).
//!
//! It reads multi-line replies, sends commands, and transmits a message with
//! dot-stuffing. TLS is the caller's business: [`Client::into_inner`] gives the stream
//! back after STARTTLS was answered, and a new client continues on the TLS stream.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use chatmail_appliance::mail_rules::Reply;

/// Whether the server speaks LMTP (one DATA reply per recipient) or SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Lmtp,
    Smtp,
}

/// An error below the SMTP level (connection, I/O, timeout, garbage).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// A client on stream `S`.
pub struct Client<S> {
    stream: BufReader<S>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Wraps a connected stream; nothing is read yet.
    pub fn new(stream: S, timeout: Duration) -> Client<S> {
        Client {
            stream: BufReader::new(stream),
            timeout,
        }
    }

    /// The stream (for STARTTLS). Bytes the server sent after its last reply are lost,
    /// which is correct after a STARTTLS reply.
    pub fn into_inner(self) -> S {
        self.stream.into_inner()
    }

    /// Reads one (possibly multi-line) reply. The text of all lines is joined by "\n" in
    /// `line`, which starts with the code.
    pub async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let mut full = String::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(self.timeout, self.stream.read_until(b'\n', &mut line))
                .await
                .map_err(|_| ClientError::Timeout)??;
            if n == 0 {
                return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.len() < 3 || !text.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                return Err(ClientError::Malformed(text.to_string()));
            }
            let code: u16 = text[..3].parse().unwrap_or(0);
            let more = text.as_bytes().get(3) == Some(&b'-');
            if full.is_empty() {
                full.push_str(text);
            } else {
                full.push('\n');
                full.push_str(text.get(4..).unwrap_or(""));
            }
            if !more {
                if full.len() > 3 && full.as_bytes()[3] == b'-' {
                    full.replace_range(3..4, " ");
                }
                return Ok(Reply::new(code, full));
            }
        }
    }

    /// Sends one command line and reads the reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply, ClientError> {
        let data = format!("{line}\r\n");
        tokio::time::timeout(
            self.timeout,
            self.stream.get_mut().write_all(data.as_bytes()),
        )
        .await
        .map_err(|_| ClientError::Timeout)??;
        self.read_reply().await
    }

    /// LHLO or EHLO; the extension keywords (upper-cased) on success.
    pub async fn hello(
        &mut self,
        dialect: Dialect,
        name: &str,
    ) -> Result<Result<Vec<String>, Reply>, ClientError> {
        let verb = match dialect {
            Dialect::Lmtp => "LHLO",
            Dialect::Smtp => "EHLO",
        };
        let reply = self.command(&format!("{verb} {name}")).await?;
        if !reply.is_success() {
            return Ok(Err(reply));
        }
        Ok(Ok(reply
            .line
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(|k| k.to_ascii_uppercase())
            .collect()))
    }

    /// Sends the message after a positive DATA reply, dot-stuffed, and reads the final
    /// reply (SMTP) or `recipients` replies (LMTP).
    pub async fn send_data(
        &mut self,
        message: &[u8],
        dialect: Dialect,
        recipients: usize,
    ) -> Result<Vec<Reply>, ClientError> {
        let stuffed = dot_stuff(message);
        tokio::time::timeout(self.timeout, self.stream.get_mut().write_all(&stuffed))
            .await
            .map_err(|_| ClientError::Timeout)??;
        let count = match dialect {
            Dialect::Lmtp => recipients,
            Dialect::Smtp => 1,
        };
        let mut replies = Vec::with_capacity(count);
        for _ in 0..count {
            replies.push(self.read_reply().await?);
        }
        Ok(replies)
    }

    /// QUIT, ignoring the outcome.
    pub async fn quit(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.command("QUIT")).await;
    }
}

/// Transparency (RFC 5321 §4.5.2) and the end-of-data line. A message without a final
/// line break gets one.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !message.is_empty() && !message.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff(b"x"), b"x\r\n.\r\n");
    }

    #[tokio::test]
    async fn multi_line_replies() {
        let (a, mut b) = tokio::io::duplex(1024);
        b.write_all(b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n552 too big\r\n")
            .await
            .unwrap();
        let mut c = Client::new(a, Duration::from_secs(5));
        let r = c.read_reply().await.unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.line, "250 mx.example\nPIPELINING\nSIZE 10");
        let r = c.read_reply().await.unwrap();
        assert_eq!((r.code, r.text()), (552, "too big"));
    }
}
