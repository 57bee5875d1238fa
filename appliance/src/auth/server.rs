//! The Dovecot authentication socket that Maddy's `auth.dovecot_sasl` connects to.
//!
//! Maddy opens one connection per login (and one at start-up to learn the mechanisms, which
//! is why the socket must exist before Maddy starts; research/maddy-gochatmail.md B.1 and
//! B.10). Each connection gets the handshake, then `AUTH` requests are answered in order.
//! Lines over the protocol limit, malformed lines and idle connections end the connection;
//! nothing a client sends can make the server allocate more than one line's worth.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::RngCore;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, ClientLine, ServerLine, MAX_LINE_LEN, VERSION_MAJOR};
use super::rules::Refusal;
use super::Accounts;

/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Listens on `socket` until `shutdown`; `ready` turns true once the socket accepts
/// connections.
pub async fn serve(
    socket: &Path,
    accounts: Accounts,
    ready: &watch::Sender<bool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("removing stale socket {}: {e}", socket.display()),
    }
    let listener = UnixListener::bind(socket)
        .map_err(|e| anyhow::anyhow!("auth socket {}: {e}", socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::info!(socket = %socket.display(), "auth service listening");
    let _ = ready.send(true);
    let connection_ids = AtomicU64::new(1);
    let tasks = tokio_util::task::TaskTracker::new();
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let id = connection_ids.fetch_add(1, Ordering::Relaxed);
                    let accounts = accounts.clone();
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move {
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            result = handle(stream, id, &accounts) => {
                                if let Err(e) = result {
                                    tracing::debug!(connection = id, "auth connection ended: {e}");
                                }
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("auth socket accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    let _ = ready.send(false);
    tasks.close();
    tasks.wait().await;
    let _ = std::fs::remove_file(socket);
    result
}

/// Why a connection was closed.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(#[from] protocol::ProtocolError),
    #[error("idle for {IDLE_TIMEOUT:?}")]
    Idle,
    #[error("{0}")]
    Sequence(&'static str),
}

async fn handle(stream: UnixStream, id: u64, accounts: &Accounts) -> Result<(), ConnectionError> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut cookie = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut cookie);
    let cookie: String = cookie.iter().map(|b| format!("{b:02x}")).collect();
    write
        .write_all(protocol::handshake(std::process::id(), id, &cookie).as_bytes())
        .await?;

    let mut version_seen = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader, &mut line))
            .await
            .map_err(|_| ConnectionError::Idle)??;
        if !read {
            return Ok(());
        }
        match ClientLine::parse(&line)? {
            ClientLine::Version { major, .. } => {
                if major != VERSION_MAJOR {
                    return Err(ConnectionError::Sequence("unsupported protocol version"));
                }
                version_seen = true;
            }
            ClientLine::Cpid(_) => {}
            ClientLine::Cont { .. } => {
                return Err(ConnectionError::Sequence("CONT without a pending request"));
            }
            ClientLine::Auth(request) => {
                if !version_seen {
                    return Err(ConnectionError::Sequence("AUTH before VERSION"));
                }
                let answer = if request.mechanism != "PLAIN" {
                    fail(request.id, None, false)
                } else {
                    let data = match request.initial_response {
                        Some(data) => data,
                        None => {
                            // No initial response: ask for it with an empty challenge.
                            write
                                .write_all(
                                    ServerLine::Cont {
                                        id: request.id,
                                        data: Vec::new(),
                                    }
                                    .format()
                                    .as_bytes(),
                                )
                                .await?;
                            line.clear();
                            let read = tokio::time::timeout(
                                IDLE_TIMEOUT,
                                read_line(&mut reader, &mut line),
                            )
                            .await
                            .map_err(|_| ConnectionError::Idle)??;
                            if !read {
                                return Ok(());
                            }
                            match ClientLine::parse(&line)? {
                                ClientLine::Cont { id, data } if id == request.id => data,
                                _ => return Err(ConnectionError::Sequence("expected CONT")),
                            }
                        }
                    };
                    answer_plain(request.id, &data, accounts).await
                };
                write.write_all(answer.format().as_bytes()).await?;
            }
        }
    }
}

async fn answer_plain(id: u32, data: &[u8], accounts: &Accounts) -> ServerLine {
    let credentials = match protocol::decode_plain(data) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!("refusing a malformed PLAIN response: {e}");
            return fail(id, None, false);
        }
    };
    match accounts
        .login(&credentials.username, &credentials.password)
        .await
    {
        Ok(_) => ServerLine::Ok {
            id,
            user: credentials.username,
        },
        Err(refusal) => fail(
            id,
            Some(credentials.username),
            refusal == Refusal::StoreUnavailable,
        ),
    }
}

fn fail(id: u32, user: Option<String>, temporary: bool) -> ServerLine {
    ServerLine::Fail {
        id,
        user,
        temporary,
    }
}

/// Reads one LF-terminated line (LF removed) into `line`. Returns `false` at a clean end
/// of stream, an error for a line over [`MAX_LINE_LEN`] or a stream that ends mid-line.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> Result<bool, ConnectionError> {
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(false);
            }
            return Err(ConnectionError::Sequence("stream ended inside a line"));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(pos) => (pos + 1, true),
            None => (buf.len(), false),
        };
        let end = if done { take - 1 } else { take };
        if line.len() + end > MAX_LINE_LEN {
            return Err(protocol::ProtocolError::LineTooLong.into());
        }
        line.extend_from_slice(&buf[..end]);
        reader.consume(take);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_line_limits() {
        let data = b"one\ntwo\r\n".to_vec();
        let mut r = BufReader::new(&data[..]);
        let mut line = Vec::new();
        assert!(read_line(&mut r, &mut line).await.unwrap());
        assert_eq!(line, b"one");
        line.clear();
        assert!(read_line(&mut r, &mut line).await.unwrap());
        assert_eq!(line, b"two\r");
        line.clear();
        assert!(!read_line(&mut r, &mut line).await.unwrap());

        let long = vec![b'x'; MAX_LINE_LEN + 10];
        let mut r = BufReader::with_capacity(64, &long[..]);
        line.clear();
        assert!(matches!(
            read_line(&mut r, &mut line).await,
            Err(ConnectionError::Protocol(_))
        ));
        let partial = b"abc".to_vec();
        let mut r = BufReader::new(&partial[..]);
        line.clear();
        assert!(matches!(
            read_line(&mut r, &mut line).await,
            Err(ConnectionError::Sequence(_))
        ));
    }
}
