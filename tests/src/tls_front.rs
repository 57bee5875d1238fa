//! A TLS front for a plain-HTTP service started by a test (the portal serves HTTP and
//! leaves TLS to whatever runs in front of it): it terminates TLS with a given certificate
//! on a free loopback port, forwards the bytes to the service, and keeps the head of each
//! connection's first request, so that tests can check what a client sent.

use std::sync::{Arc, Mutex};

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

pub struct TlsFront {
    pub port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// Serves `cert_pem`/`key_pem` and forwards to 127.0.0.1:`backend_port`.
    pub async fn start(backend_port: u16, cert_pem: &str, key_pem: &str) -> TlsFront {
        crate::tls_ready();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("TLS server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", crate::free_port()))
            .await
            .expect("bind the TLS front");
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(backend) = TcpStream::connect(("127.0.0.1", backend_port)).await else {
                        return;
                    };
                    forward(tls, backend, &recorded).await;
                });
            }
        });
        TlsFront { port, heads, task }
    }

    /// The head (request line and header fields) of each connection's first request.
    pub fn request_heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Copies the first request head while passing it on, then forwards both ways.
async fn forward<C>(mut client: C, mut backend: TcpStream, heads: &Mutex<Vec<String>>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                if backend.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len());
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head[..end]).to_string());
    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
