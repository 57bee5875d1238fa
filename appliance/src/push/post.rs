//! The one request of a notification: `POST <url>` with the raw token as the body.
//!
//! Upstream sends nothing else, no JSON and no fields (research/chatmail.md §1.4,
//! "Request"), and gives up after 60 s. Only the status code matters to the notifier, so
//! the answer's body is never read. The notifier talks to a [`Transport`], so its tests
//! can answer without a network; [`HttpsPoster`] is the real one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatmail_shared::web_url::HttpsUrl;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Delta Chat's notification service, upstream's default.
pub const DEFAULT_URL: &str = "https://notifications.delta.chat/notify";

/// The whole request (connect, TLS, answer) must finish within this (upstream: 60 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The same for every relay, so it says nothing about the device.
const USER_AGENT: &str = "chatmail-relay";

/// Sends one notification; `Ok` is the HTTP status, `Err` why there was none.
pub trait Transport: Send + Sync + 'static {
    fn post(&self, token: &str) -> impl Future<Output = Result<u16, String>> + Send;
}

/// POSTs over HTTPS (verified) or, to loopback only, plain HTTP ([`HttpsUrl`] allows no
/// other). One connection per request.
#[derive(Clone)]
pub struct HttpsPoster {
    url: HttpsUrl,
    tls: Arc<rustls::ClientConfig>,
}

impl HttpsPoster {
    /// Posts to `url`, verifying its certificate with `tls`.
    pub fn new(url: HttpsUrl, tls: Arc<rustls::ClientConfig>) -> HttpsPoster {
        HttpsPoster { url, tls }
    }

    async fn request(&self, token: &str) -> Result<u16, String> {
        let url = self.url.as_url();
        let host = url.host_str().ok_or("no host")?.to_string();
        let port = url.port_or_known_default().ok_or("no port")?;
        let connect_host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((connect_host, port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .body(Full::new(Bytes::copy_from_slice(token.as_bytes())))
            .map_err(|e| format!("request: {e}"))?;
        if url.scheme() == "https" {
            let name = ServerName::try_from(connect_host.to_string()).map_err(|e| e.to_string())?;
            let stream = TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            send(TokioIo::new(stream), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        }
    }
}

impl Transport for HttpsPoster {
    async fn post(&self, token: &str) -> Result<u16, String> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.request(token))
            .await
            .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
            .map_err(|e| format!("{}: {e}", self.url.as_str()))
    }
}

async fn send<S>(io: TokioIo<S>, request: hyper::Request<Full<Bytes>>) -> Result<u16, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let connection = tokio::spawn(connection);
    let response = sender.send_request(request).await;
    // The answer's body is not needed: close the connection instead of reading it.
    connection.abort();
    response
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("HTTP: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server on loopback: returns what it read, answers `status`.
    async fn server(status: &'static str) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then the body by its Content-Length.
            loop {
                let n = conn.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
                assert!(n > 0, "client closed early");
            }
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            conn.write_all(answer.as_bytes()).await.unwrap();
            got
        });
        (port, task)
    }

    fn poster(port: u16) -> HttpsPoster {
        let tls = crate::federation::tls::ClientTls::new(None).unwrap();
        let url = HttpsUrl::parse(&format!("http://127.0.0.1:{port}/notify")).unwrap();
        HttpsPoster::new(url, tls.https_verified)
    }

    #[tokio::test]
    async fn posts_exactly_the_token_and_reports_the_status() {
        for (status, code) in [("200 OK", 200), ("410 Gone", 410), ("500 Oops", 500)] {
            let (port, server) = server(status).await;
            let token = "openpgp:wcFMA+/9Zz0=";
            assert_eq!(poster(port).post(token).await, Ok(code));
            let request = String::from_utf8(server.await.unwrap()).unwrap();
            let (head, body) = request.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("POST /notify HTTP/1.1\r\n"), "{head}");
            assert!(
                head.contains(&format!("content-length: {}", token.len())),
                "{head}"
            );
            assert_eq!(body, token);
        }
    }

    #[tokio::test]
    async fn no_server_is_an_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = poster(port).post("t").await.unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }
}
