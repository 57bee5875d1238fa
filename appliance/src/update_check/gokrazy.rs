//! A client of gokrazy's local update API, the one `gok update` and gokrazy's selfupdate
//! use (facts: research/gokrazy.md §5.1, from gokrazy's `update.go` and `authenticated.go`).
//!
//! gokrazy's init always serves it on `/run/gokrazy-http.sock` (for local root processes,
//! `listeners.go`), and on its HTTP port (1080 in our instance config) on private addresses
//! only once the device has a password. With a password, both want HTTP Basic auth as user
//! `gokrazy` (`authenticated.go`); without one (the first boot of an image: our first boot
//! writes /perm/gokr-pw.txt, which gokrazy reads from the next boot on) the socket is open
//! to local root processes. Each `PUT /update/<piece>` answers with the hex sha256 of what
//! it wrote, which we compare with the manifest's.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `http://127.0.0.1:<port>`.
    Tcp(String),
    /// A unix socket path.
    Unix(PathBuf),
}

impl Endpoint {
    /// `unix:/run/gokrazy-http.sock` or `http://127.0.0.1:1080`.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = text
            .strip_prefix("http://")
            .ok_or_else(|| format!("{text:?} is neither unix:<path> nor http://<host:port>"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(format!("{text:?}: give only http://<host:port>"));
        }
        Ok(Endpoint::Tcp(authority.to_string()))
    }
}

/// The API client.
#[derive(Debug, Clone)]
pub struct GokrazyApi {
    endpoint: Endpoint,
    /// Files to take the password from, first existing one wins.
    password_files: Vec<PathBuf>,
}

impl GokrazyApi {
    /// A client of `endpoint` that reads the password from the first of `password_files`.
    pub fn new(endpoint: Endpoint, password_files: Vec<PathBuf>) -> GokrazyApi {
        GokrazyApi {
            endpoint,
            password_files,
        }
    }

    /// Basic auth from the first password file there is; none without one (gokrazy then
    /// has no password either and serves only its socket, without auth).
    fn authorization(&self) -> Result<Option<String>, String> {
        for file in &self.password_files {
            match std::fs::read_to_string(file) {
                Ok(text) => {
                    let password = text.trim();
                    return Ok(Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("gokrazy:{password}"))
                    )));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{}: {e}", file.display())),
            }
        }
        Ok(None)
    }

    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: RequestBody,
    ) -> Result<String, String> {
        let authorization = self.authorization()?;
        let host = match &self.endpoint {
            Endpoint::Tcp(authority) => authority.clone(),
            Endpoint::Unix(_) => "localhost".to_string(),
        };
        let mut request = hyper::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, host);
        if let Some(authorization) = authorization {
            request = request.header(hyper::header::AUTHORIZATION, authorization);
        }
        if let Some(len) = body.len {
            request = request.header(hyper::header::CONTENT_LENGTH, len);
        }
        let request = request.body(body).map_err(|e| e.to_string())?;
        let response = match &self.endpoint {
            Endpoint::Tcp(authority) => {
                let stream = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(|e| format!("gokrazy's update API at {authority}: {e}"))?;
                send(TokioIo::new(stream), request).await?
            }
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| format!("gokrazy's update API at {}: {e}", path.display()))?;
                send(TokioIo::new(stream), request).await?
            }
        };
        let status = response.status();
        let text = response
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        if !status.is_success() {
            let first = text.lines().next().unwrap_or("");
            return Err(format!("{method} {path} answered HTTP {status}: {first}"));
        }
        Ok(text)
    }

    /// `GET /update/features`: the comma-separated feature list.
    pub async fn features(&self) -> Result<String, String> {
        self.call(hyper::Method::GET, "/update/features", RequestBody::empty())
            .await
    }

    /// `PUT /update/<target>` with the file's bytes; returns the hex hash gokrazy computed.
    pub async fn put(&self, target: &str, file: &Path) -> Result<String, String> {
        let body = RequestBody::file(file)
            .await
            .map_err(|e| format!("{}: {e}", file.display()))?;
        self.call(hyper::Method::PUT, &format!("/update/{target}"), body)
            .await
    }

    /// `POST <path>` without a body (`/update/testboot`, `/update/switch`, `/reboot`).
    pub async fn post(&self, path: &str) -> Result<String, String> {
        self.call(hyper::Method::POST, path, RequestBody::empty())
            .await
    }
}

async fn send<S>(
    io: TokioIo<S>,
    request: hyper::Request<RequestBody>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("gokrazy's update API: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("gokrazy's update API: {e}"))
}

/// A request body read from a file a step at a time (pieces are up to 500 MiB), or empty.
pub struct RequestBody {
    rx: Option<tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>>,
    len: Option<u64>,
}

impl RequestBody {
    fn empty() -> RequestBody {
        RequestBody {
            rx: None,
            len: Some(0),
        }
    }

    async fn file(path: &Path) -> std::io::Result<RequestBody> {
        let mut file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match file.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx
                            .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                }
            }
        });
        Ok(RequestBody {
            rx: Some(rx),
            len: Some(len),
        })
    }
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.rx.as_mut() {
            None => Poll::Ready(None),
            Some(rx) => rx
                .poll_recv(cx)
                .map(|item| item.map(|r| r.map(Frame::data))),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self.len {
            Some(n) => hyper::body::SizeHint::with_exact(n),
            None => hyper::body::SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("unix:/run/gokrazy-http.sock"),
            Ok(Endpoint::Unix("/run/gokrazy-http.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:1080/"),
            Ok(Endpoint::Tcp("127.0.0.1:1080".into()))
        );
        assert!(Endpoint::parse("https://x").is_err());
        assert!(Endpoint::parse("http://x/update").is_err());
    }

    /// gokrazy always listens on its unix socket too (`listeners.go`); the same Basic auth
    /// applies there (`authenticated.go`).
    #[tokio::test]
    async fn speaks_over_the_unix_socket_with_basic_auth() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("gokrazy-http.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = "partuuid,updatehash,gpt,";
            stream
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await
                .unwrap();
            head
        });
        std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
        let api = GokrazyApi::new(
            Endpoint::Unix(socket),
            vec![dir.path().join("missing"), dir.path().join("pw")],
        );
        assert_eq!(api.features().await.unwrap(), "partuuid,updatehash,gpt,");
        let head = server.await.unwrap();
        assert!(
            head.starts_with("GET /update/features HTTP/1.1\r\n"),
            "{head}"
        );
        // base64("gokrazy:secret")
        assert!(
            head.contains("authorization: Basic Z29rcmF6eTpzZWNyZXQ=\r\n"),
            "{head}"
        );
        // No password file (an image's first boot): no auth header, and the call is made.
        let none = GokrazyApi::new(Endpoint::Tcp("127.0.0.1:1".into()), vec![]);
        assert!(none.authorization().unwrap().is_none());
        assert!(none
            .features()
            .await
            .unwrap_err()
            .contains("gokrazy's update API at 127.0.0.1:1"));
    }
}
