//! Small clients for the appliance suites: HTTP(S) with a chosen `Host`/SNI and trust
//! anchors, and just enough IMAP and SMTP to log in.
//!
//! The relay's test domain does not resolve on this machine, so every request connects
//! to 127.0.0.1 and names the relay in SNI and `Host`, as a client that resolved the
//! domain would. Certificates are checked against the roots given (the test CA), or not
//! at all where a test only looks at protocol behaviour.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpStream,
};
use tokio_rustls::{client::TlsStream, TlsConnector};

const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Which server certificates to accept.
#[derive(Clone)]
pub enum Trust {
    /// Only chains to these roots, for the name given.
    Roots(Vec<CertificateDer<'static>>),
    /// Anything (protocol tests that do not look at certificates).
    Anything,
}

impl Trust {
    /// Trust the certificates in a PEM text.
    pub fn pem(pem: &str) -> Trust {
        use rustls_pki_types::pem::PemObject;
        Trust::Roots(
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("PEM certificates"),
        )
    }

    /// A client configuration with this trust, offering `alpn` (e.g. for STARTTLS on a
    /// connection the test opened itself).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let mut config = match self {
            Trust::Roots(roots) => {
                let mut store = RootCertStore::empty();
                for root in roots {
                    store.add(root.clone()).expect("root certificate");
                }
                builder.with_root_certificates(store).with_no_client_auth()
            }
            Trust::Anything => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
                .with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens a TLS connection to `addr` naming `server_name`.
pub async fn connect_tls(
    addr: SocketAddr,
    server_name: &str,
    trust: &Trust,
    alpn: &[&[u8]],
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    TlsConnector::from(trust.client_config(alpn))
        .connect(name, tcp)
        .await
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request over `stream` (`Connection: close`), the whole response read.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    method: &str,
    host: &str,
    path: &str,
    body: &[u8],
) -> Response {
    exchange_with_headers(stream, method, host, path, &[], body).await
}

/// [`exchange`] with extra header fields.
async fn exchange_with_headers<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: chatmail-tests\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    let io = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        let mut raw = Vec::new();
        // A TLS peer may close without close_notify; keep what arrived.
        match stream.read_to_end(&mut raw).await {
            Ok(_) => {}
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e),
        }
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(IO_TIMEOUT, io)
        .await
        .expect("HTTP response in time")
        .expect("HTTP exchange");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
}

/// An HTTPS request to `addr` for `host` (SNI and `Host`).
pub async fn https(
    addr: SocketAddr,
    host: &str,
    trust: &Trust,
    method: &str,
    path: &str,
) -> Response {
    let stream = connect_tls(addr, host, trust, &[b"http/1.1"])
        .await
        .unwrap_or_else(|e| panic!("TLS to {addr} as {host}: {e}"));
    exchange(stream, method, host, path, b"").await
}

/// An HTTPS request offering exactly the ALPN protocols `alpn` (none if empty).
pub async fn https_with_alpn(
    addr: SocketAddr,
    host: &str,
    trust: &Trust,
    alpn: &[&[u8]],
    method: &str,
    path: &str,
) -> Response {
    let stream = connect_tls(addr, host, trust, alpn)
        .await
        .unwrap_or_else(|e| panic!("TLS to {addr} as {host}: {e}"));
    exchange(stream, method, host, path, b"").await
}

/// An HTTPS request with a body.
pub async fn https_with_body(
    addr: SocketAddr,
    host: &str,
    trust: &Trust,
    method: &str,
    path: &str,
    body: &[u8],
) -> Response {
    let stream = connect_tls(addr, host, trust, &[b"http/1.1"])
        .await
        .unwrap_or_else(|e| panic!("TLS to {addr} as {host}: {e}"));
    exchange(stream, method, host, path, body).await
}

/// An HTTPS request with extra header fields (repeated names allowed) and a body.
pub async fn https_with_headers(
    addr: SocketAddr,
    host: &str,
    trust: &Trust,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let stream = connect_tls(addr, host, trust, &[b"http/1.1"])
        .await
        .unwrap_or_else(|e| panic!("TLS to {addr} as {host}: {e}"));
    exchange_with_headers(stream, method, host, path, headers, body).await
}

/// The certificate chain `addr` presents for `host`.
pub async fn peer_certificates(
    addr: SocketAddr,
    host: &str,
    trust: &Trust,
) -> Result<Vec<CertificateDer<'static>>, std::io::Error> {
    let stream = connect_tls(addr, host, trust, &[]).await?;
    Ok(stream
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect())
}

/// A plain HTTP request to `addr` with `Host: host`.
pub async fn http(addr: SocketAddr, host: &str, method: &str, path: &str) -> Response {
    let stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("TCP to {addr}: {e}"));
    exchange(stream, method, host, path, b"").await
}

/// An IMAP string literal in quoted form.
pub fn imap_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Logs in over IMAPS (implicit TLS, certificate not checked) and returns the tagged
/// reply line, e.g. `a1 OK ...` or `a1 NO ...`, or a description of a connection failure
/// in parentheses.
pub async fn imap_login(addr: SocketAddr, user: &str, password: &str) -> String {
    let io = async {
        let stream = connect_tls(addr, "localhost", &Trust::Anything, &[]).await?;
        let mut stream = BufReader::new(stream);
        let mut line = String::new();
        stream.read_line(&mut line).await?; // greeting
        let command = format!("a1 LOGIN {} {}\r\n", imap_quote(user), imap_quote(password));
        stream.get_mut().write_all(command.as_bytes()).await?;
        stream.get_mut().flush().await?;
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Ok(String::from("(connection closed)"));
            }
            if line.starts_with("a1 ") {
                let _ = stream.get_mut().write_all(b"a2 LOGOUT\r\n").await;
                return Ok::<_, std::io::Error>(line.trim_end().to_string());
            }
        }
    };
    match tokio::time::timeout(IO_TIMEOUT, io).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => format!("(IMAP connection failed: {e})"),
        Err(_) => "(IMAP login timed out)".to_string(),
    }
}

/// Reads one (possibly multi-line) SMTP reply; returns its last line.
async fn smtp_reply(
    stream: &mut BufReader<TlsStream<TcpStream>>,
) -> Result<String, std::io::Error> {
    let mut last = String::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(last);
        }
        last = line.trim_end().to_string();
        if last.len() < 4 || last.as_bytes()[3] != b'-' {
            return Ok(last);
        }
    }
}

/// AUTH PLAIN over SMTP with implicit TLS; returns the reply line to AUTH (e.g. `235 …`
/// or `535 …`).
pub async fn smtp_auth(addr: SocketAddr, user: &str, password: &str) -> String {
    use base64::Engine as _;
    let io = async {
        let stream = connect_tls(addr, "localhost", &Trust::Anything, &[]).await?;
        let mut stream = BufReader::new(stream);
        smtp_reply(&mut stream).await?; // greeting
        stream
            .get_mut()
            .write_all(b"EHLO tests.invalid\r\n")
            .await?;
        stream.get_mut().flush().await?;
        smtp_reply(&mut stream).await?;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        stream
            .get_mut()
            .write_all(format!("AUTH PLAIN {token}\r\n").as_bytes())
            .await?;
        stream.get_mut().flush().await?;
        let reply = smtp_reply(&mut stream).await?;
        let _ = stream.get_mut().write_all(b"QUIT\r\n").await;
        Ok::<_, std::io::Error>(reply)
    };
    match tokio::time::timeout(IO_TIMEOUT, io).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => format!("(SMTP connection failed: {e})"),
        Err(_) => "(SMTP AUTH timed out)".to_string(),
    }
}
