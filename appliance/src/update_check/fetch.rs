//! The update check's only requests to the outside: plain GETs of the manifest, its
//! signature and the pieces, with hard size limits.
//!
//! The request carries nothing that names the relay: no cookies, no query, a generic
//! User-Agent ([`USER_AGENT`]) and only the headers HTTP/1.1 needs (Host). Redirects are
//! not followed (the manifest names where its pieces are). Bodies larger than expected are
//! cut off and refused, so a hostile or broken portal cannot fill memory or /perm.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

/// The same for every relay and every version, so it says nothing about the device.
pub const USER_AGENT: &str = "chatmail-relay";

/// Connecting and each read must make progress within this time.
const STALL: Duration = Duration::from_secs(60);

/// Why a fetch failed. `Unreachable` is retried sooner than the rest.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No connection, TLS failure, timeout, or the server hung up.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered, but not with 200.
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    /// More bytes than allowed.
    #[error("{url} sent more than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    /// Fewer bytes than announced or expected.
    #[error("{url} sent {got} bytes, {wanted} were expected")]
    Short { url: String, got: u64, wanted: u64 },
    /// Writing the download to /perm failed.
    #[error("cannot store the download: {0}")]
    Disk(#[from] std::io::Error),
}

/// Makes the GET requests.
#[derive(Clone)]
pub struct Fetcher {
    tls: Arc<rustls::ClientConfig>,
}

type Body = hyper::body::Incoming;

impl Fetcher {
    /// Verifies HTTPS servers with `tls` (http:// is only accepted for loopback by the config).
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Fetcher {
        Fetcher { tls }
    }

    async fn open(&self, url: &Url) -> Result<hyper::Response<Body>, FetchError> {
        let unreachable = |what: String| FetchError::Unreachable(format!("{url}: {what}"));
        let host = url
            .host_str()
            .ok_or_else(|| unreachable("no host".into()))?
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| unreachable("no port".into()))?;
        let connect_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tcp = tokio::time::timeout(STALL, TcpStream::connect((connect_host.as_str(), port)))
            .await
            .map_err(|_| unreachable("connecting timed out".into()))?
            .map_err(|e| unreachable(format!("cannot connect: {e}")))?;
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(|e| unreachable(format!("request: {e}")))?;
        let response = match url.scheme() {
            "https" => {
                let name = ServerName::try_from(connect_host.clone())
                    .map_err(|e| unreachable(format!("{e}")))?;
                let stream = tokio::time::timeout(
                    STALL,
                    TlsConnector::from(self.tls.clone()).connect(name, tcp),
                )
                .await
                .map_err(|_| unreachable("TLS timed out".into()))?
                .map_err(|e| unreachable(format!("TLS: {e}")))?;
                send(TokioIo::new(stream), request).await
            }
            "http" => send(TokioIo::new(tcp), request).await,
            other => return Err(unreachable(format!("scheme {other} is not supported"))),
        }
        .map_err(unreachable)?;
        if response.status() != hyper::StatusCode::OK {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: response.status().as_u16(),
            });
        }
        Ok(response)
    }

    /// The whole body, at most `limit` bytes.
    pub async fn bytes(&self, url: &Url, limit: u64) -> Result<Vec<u8>, FetchError> {
        let response = self.open(url).await?;
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit,
        };
        if content_length(&response).is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = response.into_body();
        let mut out = Vec::new();
        while let Some(frame) = next_frame(&mut body, url).await? {
            if let Ok(data) = frame.into_data() {
                if out.len() as u64 + data.len() as u64 > limit {
                    return Err(too_large());
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    }

    /// Streams exactly `size` bytes into `path` and returns their sha256.
    pub async fn to_file(
        &self,
        url: &Url,
        size: u64,
        path: &std::path::Path,
    ) -> Result<[u8; 32], FetchError> {
        let response = self.open(url).await?;
        if let Some(n) = content_length(&response) {
            if n > size {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                    limit: size,
                });
            }
        }
        let mut file = tokio::fs::File::create(path).await?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        let mut body = response.into_body();
        while let Some(frame) = next_frame(&mut body, url).await? {
            if let Ok(data) = frame.into_data() {
                got += data.len() as u64;
                if got > size {
                    return Err(FetchError::TooLarge {
                        url: url.to_string(),
                        limit: size,
                    });
                }
                hasher.update(&data);
                file.write_all(&data).await?;
            }
        }
        if got != size {
            return Err(FetchError::Short {
                url: url.to_string(),
                got,
                wanted: size,
            });
        }
        file.sync_all().await?;
        Ok(hasher.finalize().into())
    }
}

async fn send<S>(
    io: TokioIo<S>,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<hyper::Response<Body>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    tokio::time::timeout(STALL, sender.send_request(request))
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|e| format!("HTTP: {e}"))
}

fn content_length(response: &hyper::Response<Body>) -> Option<u64> {
    response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn next_frame(
    body: &mut Body,
    url: &Url,
) -> Result<Option<hyper::body::Frame<Bytes>>, FetchError> {
    match tokio::time::timeout(STALL, body.frame()).await {
        Err(_) => Err(FetchError::Unreachable(format!(
            "{url}: the download stalled"
        ))),
        Ok(None) => Ok(None),
        Ok(Some(Ok(frame))) => Ok(Some(frame)),
        Ok(Some(Err(e))) => Err(FetchError::Unreachable(format!("{url}: {e}"))),
    }
}
