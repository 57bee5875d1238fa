//! HTTPS delivery to another relay: `POST https://<mx host>/mxdeliv` with the envelope in
//! `X-MAIL-FROM` (left out for the null sender) and one `X-MAIL-TO` per recipient, the
//! message as the body; any 2xx is success (research/chatmail.md §1.3).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Upstream's timeout for one HTTPS delivery.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What the other relay answered: its status and the first line of its body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub text: String,
}

/// Posts the message to `host` at `ip:port`, checking its certificate with `tls`.
pub async fn post(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    ip: IpAddr,
    port: u16,
    from: &str,
    rcpts: &[String],
    message: Vec<u8>,
) -> Result<Answer, String> {
    tokio::time::timeout(
        TIMEOUT,
        post_inner(tls, host, ip, port, from, rcpts, message),
    )
    .await
    .map_err(|_| "timed out".to_string())?
}

async fn post_inner(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    ip: IpAddr,
    port: u16,
    from: &str,
    rcpts: &[String],
    message: Vec<u8>,
) -> Result<Answer, String> {
    let tcp = TcpStream::connect(SocketAddr::new(ip, port))
        .await
        .map_err(|e| format!("connect to {ip}:{port}: {e}"))?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {host}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP with {host}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let authority = if port == 443 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    let mut request = hyper::Request::post("/mxdeliv")
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "message/rfc822");
    if !from.is_empty() {
        request = request.header("X-MAIL-FROM", from);
    }
    for rcpt in rcpts {
        request = request.header("X-MAIL-TO", rcpt.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(message)))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP with {host}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(512)])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    Ok(Answer { status, text })
}
