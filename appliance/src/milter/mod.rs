//! The milter Maddy asks about every message (`check.milter`): one Unix socket for
//! submission (outgoing rules), one for port 25 (incoming rules).
//!
//! [`protocol`] is the wire format (in the library, fuzzed on its own), [`session`] the
//! conversation with chatmail's rules, and this module the sockets: accept, read packets,
//! answer, until the MTA says QUIT. A packet that does not decode ends the connection, so
//! Maddy answers `451 4.7.1 I/O error during policy check` (it is configured to fail
//! closed): malformed input is never accepted.

pub mod session;

pub use chatmail_appliance::milter_protocol as protocol;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use protocol::{decode, Framer};
use session::{Policy, Session, Step};

/// How long the MTA may stay silent within a session (Maddy's own timeouts are 10 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Binds `socket` (replacing a stale one) with owner-only access.
pub fn bind_unix(socket: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the milter on `socket` until `shutdown`.
pub async fn serve(
    socket: &Path,
    policy: Arc<Policy>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = bind_unix(socket)?;
    tracing::info!(socket = %socket.display(), direction = policy.direction.label(), "milter listening");
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("milter accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        };
        let policy = policy.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                result = connection(stream, policy) => {
                    if let Err(e) = result {
                        tracing::warn!("milter connection: {e:#}");
                    }
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// One MTA connection: packets in, answers out.
pub async fn connection(mut stream: UnixStream, policy: Arc<Policy>) -> anyhow::Result<()> {
    let mut session = Session::new(policy);
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(256);
    loop {
        let n = tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf))
            .await
            .map_err(|_| anyhow::anyhow!("the MTA was silent too long"))??;
        if n == 0 {
            return Ok(());
        }
        framer.extend(&buf[..n]);
        let mut close = false;
        while let Some((code, data)) = framer.next_packet()? {
            let command = decode(code, data)?;
            match session.handle(command).await {
                Step::Answer(response) => response.encode(&mut out),
                Step::Silent => {}
                Step::Close => {
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if close {
            return Ok(());
        }
    }
}
