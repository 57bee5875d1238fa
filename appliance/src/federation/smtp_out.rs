//! SMTP delivery to another relay's port 25, the fallback when HTTPS does not work:
//! STARTTLS required and verified (unless the destination's policy relaxes it), EHLO with
//! our mail domain (research/chatmail.md §1.3, §6 `smtp_tls_security_level=verify`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chatmail_appliance::mail_rules::Reply;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::smtp::client::{Client, ClientError, Dialect};

/// Per command; a remote server may take long for DATA.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How an SMTP attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// The server answered the transaction: one reply per recipient (2xx = accepted).
    Answered(Vec<Reply>),
    /// No SMTP answer (connection, TLS, I/O): try the next host.
    Failed(String),
}

/// Delivers over SMTP to `host` at `ip:port`. `tls` is `None` for plain SMTP.
#[allow(clippy::too_many_arguments)]
pub async fn deliver(
    tls: Option<Arc<rustls::ClientConfig>>,
    ehlo: &str,
    host: &str,
    ip: IpAddr,
    port: u16,
    from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Outcome {
    match attempt(tls, ehlo, host, ip, port, from, rcpts, message).await {
        Ok(replies) => Outcome::Answered(replies),
        Err(e) => Outcome::Failed(e),
    }
}

fn io(e: ClientError) -> String {
    e.to_string()
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    tls: Option<Arc<rustls::ClientConfig>>,
    ehlo: &str,
    host: &str,
    ip: IpAddr,
    port: u16,
    from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Result<Vec<Reply>, String> {
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect(SocketAddr::new(ip, port)),
    )
    .await
    .map_err(|_| format!("connect to {ip}:{port}: timed out"))?
    .map_err(|e| format!("connect to {ip}:{port}: {e}"))?;
    let mut plain = Client::new(tcp, COMMAND_TIMEOUT);
    let greeting = plain.read_reply().await.map_err(io)?;
    if !greeting.is_success() {
        return Err(format!("greeting: {}", greeting.line));
    }
    let extensions = match plain.hello(Dialect::Smtp, ehlo).await.map_err(io)? {
        Ok(e) => e,
        Err(reply) => return Err(format!("EHLO: {}", reply.line)),
    };
    match tls {
        None => transaction(plain, from, rcpts, message).await,
        Some(config) => {
            if !extensions.iter().any(|e| e == "STARTTLS") {
                return Err(format!("{host} does not offer STARTTLS"));
            }
            let reply = plain.command("STARTTLS").await.map_err(io)?;
            if reply.code != 220 {
                return Err(format!("STARTTLS: {}", reply.line));
            }
            let tcp = plain.into_inner();
            let name =
                ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
            let stream = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}: {e}"))?;
            let mut secure = Client::new(stream, COMMAND_TIMEOUT);
            if let Err(reply) = secure.hello(Dialect::Smtp, ehlo).await.map_err(io)? {
                return Err(format!("EHLO after STARTTLS: {}", reply.line));
            }
            transaction(secure, from, rcpts, message).await
        }
    }
}

/// MAIL, RCPT…, DATA. A refusal is an answer (returned per recipient); only I/O errors
/// are `Err`.
async fn transaction<S>(
    mut client: Client<S>,
    from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Result<Vec<Reply>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let reply = client
        .command(&format!("MAIL FROM:<{from}>"))
        .await
        .map_err(io)?;
    if !reply.is_success() {
        client.quit().await;
        return Ok(vec![reply; rcpts.len()]);
    }
    let mut replies: Vec<Option<Reply>> = Vec::with_capacity(rcpts.len());
    for rcpt in rcpts {
        let reply = client
            .command(&format!("RCPT TO:<{rcpt}>"))
            .await
            .map_err(io)?;
        replies.push((!reply.is_success()).then_some(reply));
    }
    let accepted = replies.iter().filter(|r| r.is_none()).count();
    if accepted == 0 {
        client.quit().await;
        return Ok(replies.into_iter().flatten().collect());
    }
    let go = client.command("DATA").await.map_err(io)?;
    let result = if go.code != 354 {
        go
    } else {
        client
            .send_data(message, Dialect::Smtp, 1)
            .await
            .map_err(io)?
            .remove(0)
    };
    client.quit().await;
    Ok(replies
        .into_iter()
        .map(|r| r.unwrap_or_else(|| result.clone()))
        .collect())
}
