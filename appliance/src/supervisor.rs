//! Keeps each component running: a component that fails (returns an error, stops or
//! panics) is started again after a pause that doubles up to a minute, without touching the
//! others. A clean shutdown cancels every component and waits for them.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metrics::{ComponentLabel, Metrics};

/// First pause before a restart.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run this long resets the pause.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// Runs `start` until `shutdown`, restarting it whenever it ends before that.
pub async fn supervise<F, Fut>(
    name: &'static str,
    metrics: Metrics,
    shutdown: CancellationToken,
    mut start: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        let result = tokio::spawn(start(shutdown.clone())).await;
        if shutdown.is_cancelled() {
            if let Ok(Err(e)) = result {
                tracing::warn!(component = name, "stopped with an error: {e:#}");
            }
            return;
        }
        match result {
            Ok(Ok(())) => tracing::error!(component = name, "stopped unexpectedly"),
            Ok(Err(e)) => tracing::error!(component = name, "failed: {e:#}"),
            Err(e) => tracing::error!(component = name, "panicked: {e}"),
        }
        metrics
            .component_restarts
            .get_or_create(&ComponentLabel { component: name })
            .inc();
        if started.elapsed() >= STABLE_RUN {
            backoff = MIN_BACKOFF;
        }
        tracing::info!(component = name, ?backoff, "restarting after a pause");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn restarts_a_failing_component_until_shutdown() {
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let task = {
            let runs = runs.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(supervise(
                "flaky",
                metrics.clone(),
                shutdown,
                move |token| {
                    let runs = runs.clone();
                    async move {
                        if runs.fetch_add(1, Ordering::SeqCst) < 3 {
                            anyhow::bail!("boom");
                        }
                        token.cancelled().await;
                        Ok(())
                    }
                },
            ))
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        shutdown.cancel();
        task.await.unwrap();
        assert!(metrics
            .encode()
            .contains("chatmail_component_restarts_total{component=\"flaky\"} 3"));
    }
}
