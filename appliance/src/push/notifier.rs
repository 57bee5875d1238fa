//! The notifier: on every new message for an account, one notification per valid token,
//! sent and retried on upstream's schedule.
//!
//! Upstream (research/chatmail.md §1.4, "New-mail trigger" and "Notifier"):
//!
//! * a message triggers nothing when the recipient is its sender (the sender's own copy);
//! * each valid token of the recipient becomes a persistent item (address, start time,
//!   token) and is POSTed at once;
//! * 200 means done; 410 means the token is gone: remove it, done; anything else
//!   (another status, no connection, no answer in 60 s) is tried again after 8^n seconds
//!   for retry n = 1..4 (8, 64, 512, 4096 s after the failure), at most 5 tries in all;
//! * an item whose next try would come later than 5 hours after its start is dropped
//!   ("notification exceeded deadline");
//! * first tries run 4 at a time, and each retry number 2 at a time;
//! * at start, every pending item is tried again from the first try (its retry count is
//!   not kept, its deadline is).
//!
//! [`PushHook`] is the [`DeliveryHook`]: it must not block inside a delivery, so it only
//! hands the recipient to [`Notifier::run`], the supervised worker, over a bounded channel.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::post::Transport;
use super::queue::{Pending, PendingQueue};
use super::tokens::TokenStore;
use super::Clock;
use crate::delivery::hook::{Delivered, DeliveryHook};
use crate::metrics::Metrics;

/// The base of the exponential back-off (upstream: 8 s).
pub const BASE_DELAY_SECS: u64 = 8;

/// An item is dropped rather than tried later than this after its start (upstream: 5 h).
pub const DROP_DEADLINE_SECS: u64 = 5 * 60 * 60;

/// Tries per item: the first and retries 1..=4, as upstream derives it from the deadline
/// (`int(log(5 h, 8)) + 1`).
pub const TRIES: usize = 5;

/// Requests in flight at once, per try number (upstream: 4 threads for first tries, 2 for
/// each retry number).
const CONCURRENCY: [usize; TRIES] = [4, 2, 2, 2, 2];

/// Deliveries waiting for the worker; beyond this, notifications are dropped (with a log
/// line and a count) rather than holding up deliveries.
const TRIGGER_BACKLOG: usize = 10_000;

/// The wait before try `n` (0-based): none for the first, then 8^n seconds.
pub fn delay_before_try(n: usize) -> Duration {
    match n {
        0 => Duration::ZERO,
        n => Duration::from_secs(BASE_DELAY_SECS.pow(n as u32)),
    }
}

/// The delivery hook: hands each notified recipient to the worker.
#[derive(Clone)]
pub struct PushHook {
    trigger: mpsc::Sender<String>,
    metrics: Metrics,
}

impl DeliveryHook for PushHook {
    fn delivered(&self, delivery: &Delivered<'_>) {
        // Upstream's rule: no notification for the sender's own copy.
        if delivery.sender.eq_ignore_ascii_case(delivery.recipient) {
            return;
        }
        if self
            .trigger
            .try_send(delivery.recipient.to_string())
            .is_err()
        {
            tracing::warn!(
                recipient = delivery.recipient,
                "push notifier is behind; this message is not notified"
            );
            self.metrics.count_push("dropped");
        }
    }
}

/// The worker that queues, sends and retries notifications. Cheap to clone.
pub struct Notifier<T> {
    shared: Arc<Shared<T>>,
    triggers: Arc<Mutex<mpsc::Receiver<String>>>,
}

impl<T> Clone for Notifier<T> {
    fn clone(&self) -> Self {
        Notifier {
            shared: self.shared.clone(),
            triggers: self.triggers.clone(),
        }
    }
}

struct Shared<T> {
    tokens: TokenStore,
    queue: PendingQueue,
    transport: T,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    /// One limit per try number.
    in_flight: [Semaphore; TRIES],
}

impl<T: Transport> Notifier<T> {
    /// The worker and the hook that feeds it.
    pub fn new(
        tokens: TokenStore,
        queue: PendingQueue,
        transport: T,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> (Notifier<T>, PushHook) {
        let (trigger, triggers) = mpsc::channel(TRIGGER_BACKLOG);
        let notifier = Notifier {
            shared: Arc::new(Shared {
                tokens,
                queue,
                transport,
                clock,
                metrics: metrics.clone(),
                in_flight: CONCURRENCY.map(Semaphore::new),
            }),
            triggers: Arc::new(Mutex::new(triggers)),
        };
        (notifier, PushHook { trigger, metrics })
    }

    /// Re-queues what was pending, then queues a notification per token for every
    /// recipient the hook reports, until `shutdown`. Items in progress stay in the queue
    /// when it stops, and are tried again by the next run.
    pub async fn run(&self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shared = &self.shared;
        let mut sending = JoinSet::new();
        let queue = shared.queue.clone();
        let pending = blocking(move || queue.load()).await??;
        if !pending.is_empty() {
            tracing::info!(
                count = pending.len(),
                "re-queued pending push notifications"
            );
        }
        for item in pending {
            sending.spawn(shared.clone().send(item));
        }
        // One run at a time takes deliveries (a restarted run waits for the old one).
        let mut triggers = self.triggers.lock().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(recipient) = triggers.recv() => {
                    for item in shared.queue_for(recipient).await {
                        sending.spawn(shared.clone().send(item));
                    }
                }
                Some(_) = sending.join_next(), if !sending.is_empty() => {}
            }
        }
    }
}

impl<T: Transport> Shared<T> {
    /// Makes the persistent items for `recipient`'s valid tokens.
    async fn queue_for(&self, recipient: String) -> Vec<Pending> {
        let tokens = self.tokens.clone();
        let queue = self.queue.clone();
        let start = self.clock.now();
        let made = blocking(move || -> anyhow::Result<Vec<Pending>> {
            let valid = tokens.valid(&recipient)?;
            if valid.is_empty() {
                return Ok(Vec::new());
            }
            Ok(queue.create(&recipient, start, &valid)?)
        })
        .await
        .and_then(|r| r);
        made.unwrap_or_else(|e| {
            tracing::error!("cannot queue push notifications: {e:#}");
            self.metrics.count_push("dropped");
            Vec::new()
        })
    }

    /// Tries `item` until it is done, gone, or past its deadline.
    async fn send(self: Arc<Self>, item: Pending) {
        let mut tries = 0;
        loop {
            let wait = delay_before_try(tries);
            let when = self.clock.now() + wait.as_secs();
            if tries >= TRIES || when > item.start + DROP_DEADLINE_SECS {
                tracing::error!(recipient = item.address, "notification exceeded deadline");
                self.metrics.count_push("dropped");
                self.finish(&item).await;
                return;
            }
            if tries > 0 {
                self.metrics.count_push("retried");
            }
            tokio::time::sleep(wait).await;
            let answer = {
                let _slot = self.in_flight[tries].acquire().await;
                self.transport.post(&item.token).await
            };
            match answer {
                Ok(200) => {
                    self.metrics.count_push("sent");
                    self.finish(&item).await;
                    return;
                }
                Ok(410) => {
                    tracing::info!(
                        recipient = item.address,
                        "notification service: device token gone; removed"
                    );
                    self.metrics.count_push("gone");
                    let (tokens, address, token) = (
                        self.tokens.clone(),
                        item.address.clone(),
                        item.token.clone(),
                    );
                    match blocking(move || tokens.remove(&address, &token)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::error!("removing a gone device token: {e}"),
                        Err(e) => tracing::error!("removing a gone device token: {e}"),
                    }
                    self.finish(&item).await;
                    return;
                }
                Ok(status) => tracing::warn!(
                    recipient = item.address,
                    "notification request failed: HTTP {status}"
                ),
                Err(e) => {
                    tracing::warn!(recipient = item.address, "notification request failed: {e}")
                }
            }
            tries += 1;
        }
    }

    /// Deletes `item` from the persistent queue.
    async fn finish(&self, item: &Pending) {
        let (queue, id) = (self.queue.clone(), item.id);
        match blocking(move || queue.finish(id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("removing a finished push notification: {e}"),
            Err(e) => tracing::error!("removing a finished push notification: {e}"),
        }
    }
}

/// Runs blocking store work on the blocking pool.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> anyhow::Result<R> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("push store task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PushLabel;
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
    use tokio::time::Instant;

    const BOB: &str = "bob@chat.example";
    const ALICE: &str = "alice@chat.example";
    const DAY: u64 = 86_400;

    /// Wall time that follows tokio's (paused) clock, with a settable error.
    struct TestClock {
        base: u64,
        started: Instant,
        error: AtomicI64,
    }

    impl Clock for TestClock {
        fn now(&self) -> u64 {
            let now = self.base + self.started.elapsed().as_secs();
            now.saturating_add_signed(self.error.load(Ordering::SeqCst))
        }
    }

    type Answer = Box<dyn Fn(usize, &str) -> Result<u16, String> + Send + Sync>;

    /// A notification service that records each request (seconds since the test's start,
    /// token) and answers by `answer(number of the request, token)` after `hold`.
    #[derive(Clone)]
    struct FakeService(Arc<FakeInner>);

    struct FakeInner {
        started: Instant,
        answer: Answer,
        hold: Duration,
        posts: std::sync::Mutex<Vec<(u64, String)>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl FakeService {
        fn new(
            started: Instant,
            answer: impl Fn(usize, &str) -> Result<u16, String> + Send + Sync + 'static,
        ) -> FakeService {
            FakeService::holding(started, Duration::ZERO, answer)
        }

        fn holding(
            started: Instant,
            hold: Duration,
            answer: impl Fn(usize, &str) -> Result<u16, String> + Send + Sync + 'static,
        ) -> FakeService {
            FakeService(Arc::new(FakeInner {
                started,
                answer: Box::new(answer),
                hold,
                posts: Default::default(),
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
            }))
        }

        fn posts(&self) -> Vec<(u64, String)> {
            self.0.posts.lock().unwrap().clone()
        }

        fn times(&self) -> Vec<u64> {
            self.posts().into_iter().map(|(t, _)| t).collect()
        }
    }

    impl Transport for FakeService {
        async fn post(&self, token: &str) -> Result<u16, String> {
            let s = &self.0;
            let n = {
                let mut posts = s.posts.lock().unwrap();
                posts.push((s.started.elapsed().as_secs(), token.to_string()));
                posts.len() - 1
            };
            let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            s.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(s.hold).await;
            s.in_flight.fetch_sub(1, Ordering::SeqCst);
            (s.answer)(n, token)
        }
    }

    /// The push database and a clock, shared by successive notifiers (a restart).
    struct Rig {
        _dir: tempfile::TempDir,
        started: Instant,
        clock: Arc<TestClock>,
        tokens: TokenStore,
        queue: PendingQueue,
        metrics: Metrics,
    }

    /// A running notifier.
    struct Running {
        hook: PushHook,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    }

    impl Running {
        fn deliver(&self, recipient: &str, sender: &str) {
            self.hook.delivered(&Delivered { recipient, sender });
        }

        async fn stop(self) {
            self.stop.cancel();
            self.task.await.unwrap().unwrap();
        }
    }

    impl Rig {
        fn new() -> Rig {
            let dir = tempfile::tempdir().unwrap();
            let clock = Arc::new(TestClock {
                base: 1_800_000_000,
                started: Instant::now(),
                error: AtomicI64::new(0),
            });
            let (tokens, queue) =
                super::super::open(&dir.path().join("push.redb"), clock.clone()).unwrap();
            Rig {
                _dir: dir,
                started: clock.started,
                clock,
                tokens,
                queue,
                metrics: Metrics::new(),
            }
        }

        fn start(&self, service: &FakeService) -> Running {
            let (notifier, hook) = Notifier::new(
                self.tokens.clone(),
                self.queue.clone(),
                service.clone(),
                self.clock.clone(),
                self.metrics.clone(),
            );
            let stop = CancellationToken::new();
            let task = tokio::spawn({
                let stop = stop.clone();
                async move { notifier.run(stop).await }
            });
            Running { hook, stop, task }
        }

        fn count(&self, result: &'static str) -> u64 {
            self.metrics
                .push_notifications
                .get_or_create(&PushLabel { result })
                .get()
        }

        fn pending(&self) -> u64 {
            self.queue.len().unwrap()
        }
    }

    /// Lets the paused clock run for `secs` seconds (tasks run as their timers fire).
    async fn wait(secs: u64) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }

    fn failing(_: usize, _: &str) -> Result<u16, String> {
        Ok(500)
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_after_0_8_64_512_4096_s_then_dropped() {
        let rig = Rig::new();
        rig.tokens.add(BOB, "tok").unwrap();
        // Connection errors count as failures as much as error statuses do.
        let service = FakeService::new(rig.started, |n, _| {
            if n % 2 == 0 {
                Ok(503)
            } else {
                Err("connection refused".into())
            }
        });
        let running = rig.start(&service);
        running.deliver(BOB, ALICE);
        wait(6 * 3600).await;
        let times = service.times();
        assert_eq!(times, [0, 8, 8 + 64, 8 + 64 + 512, 8 + 64 + 512 + 4096]);
        assert!(service.posts().iter().all(|(_, t)| t == "tok"));
        assert_eq!(rig.pending(), 0);
        assert_eq!((rig.count("retried"), rig.count("dropped")), (4, 1));
        assert_eq!(rig.count("sent"), 0);
        // The token itself stays: only 410 removes it.
        assert_eq!(rig.tokens.valid(BOB).unwrap(), ["tok"]);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn items_are_dropped_5_hours_after_their_start() {
        let rig = Rig::new();
        let now = rig.clock.now();
        let deadline = DROP_DEADLINE_SECS;
        // Left pending by an earlier run: one with 10 s left, one past its deadline.
        rig.queue
            .create(BOB, now - deadline + 10, &["ten-seconds-left".into()])
            .unwrap();
        rig.queue
            .create(BOB, now - deadline - 1, &["too-late".into()])
            .unwrap();
        let service = FakeService::new(rig.started, failing);
        let running = rig.start(&service);
        wait(6 * 3600).await;
        // First try at once, the retry after 8 s still fits, the one after 64 s would not.
        assert_eq!(
            service.posts(),
            [
                (0, "ten-seconds-left".into()),
                (8, "ten-seconds-left".into())
            ]
        );
        assert_eq!(rig.count("dropped"), 2);
        assert_eq!(rig.pending(), 0);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn answer_200_is_done_and_keeps_the_token() {
        let rig = Rig::new();
        rig.tokens.add(BOB, "tok").unwrap();
        let service = FakeService::new(rig.started, |_, _| Ok(200));
        let running = rig.start(&service);
        running.deliver(BOB, ALICE);
        wait(100).await;
        running.deliver(BOB, ALICE);
        wait(3600).await;
        assert_eq!(service.posts(), [(0, "tok".into()), (100, "tok".into())]);
        assert_eq!(rig.count("sent"), 2);
        assert_eq!(rig.count("retried"), 0);
        assert_eq!(rig.pending(), 0);
        assert_eq!(rig.tokens.valid(BOB).unwrap(), ["tok"]);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn answer_410_removes_the_token_and_it_is_not_posted_again() {
        let rig = Rig::new();
        rig.tokens.add(BOB, "gone").unwrap();
        rig.tokens.add(BOB, "alive").unwrap();
        let service = FakeService::new(rig.started, |_, token| {
            Ok(if token == "gone" { 410 } else { 200 })
        });
        let running = rig.start(&service);
        running.deliver(BOB, ALICE);
        wait(10).await;
        assert_eq!(rig.tokens.valid(BOB).unwrap(), ["alive"]);
        assert_eq!(rig.count("gone"), 1);
        running.deliver(BOB, ALICE);
        wait(3600).await;
        let mut tokens: Vec<String> = service.posts().into_iter().map(|(_, t)| t).collect();
        tokens.sort();
        assert_eq!(tokens, ["alive", "alive", "gone"]);
        assert_eq!(rig.pending(), 0);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_during_retries_resumes_the_pending_item() {
        let rig = Rig::new();
        rig.tokens.add(BOB, "tok").unwrap();
        let down = FakeService::new(rig.started, failing);
        let first = rig.start(&down);
        first.deliver(BOB, ALICE);
        // Tries at 0 and 8 s fail; the next would be at 72 s.
        wait(30).await;
        assert_eq!(down.times(), [0, 8]);
        first.stop().await;
        assert_eq!(rig.pending(), 1);
        // The next run (the service is back) tries it at once, from the persistent queue.
        let up = FakeService::new(rig.started, |_, _| Ok(200));
        let second = rig.start(&up);
        wait(3600).await;
        assert_eq!(up.posts(), [(30, "tok".into())]);
        assert_eq!(down.times(), [0, 8]);
        assert_eq!(rig.pending(), 0);
        assert_eq!(rig.count("sent"), 1);
        second.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_senders_own_copy_is_not_notified() {
        let rig = Rig::new();
        rig.tokens.add(BOB, "tok").unwrap();
        let service = FakeService::new(rig.started, |_, _| Ok(200));
        let running = rig.start(&service);
        running.deliver(BOB, "Bob@Chat.Example");
        wait(60).await;
        assert!(service.posts().is_empty());
        // A bounce (empty sender) and anyone else's message are.
        running.deliver(BOB, "");
        running.deliver(BOB, ALICE);
        wait(60).await;
        assert_eq!(service.times(), [60, 60]);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn expired_and_future_tokens_are_skipped() {
        let rig = Rig::new();
        rig.tokens.add(BOB, "expired").unwrap();
        wait(10 * DAY).await;
        rig.tokens.add(BOB, "fresh").unwrap();
        wait(85 * DAY).await;
        // Set while the clock ran 2 minutes fast, then corrected.
        rig.clock.error.store(120, Ordering::SeqCst);
        rig.tokens.add(BOB, "future").unwrap();
        rig.clock.error.store(0, Ordering::SeqCst);
        let service = FakeService::new(rig.started, |_, _| Ok(200));
        let running = rig.start(&service);
        running.deliver(BOB, ALICE);
        running.deliver(ALICE, BOB); // no tokens: nothing
        wait(60).await;
        let tokens: Vec<String> = service.posts().into_iter().map(|(_, t)| t).collect();
        assert_eq!(tokens, ["fresh"]);
        assert_eq!(rig.pending(), 0);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_4_first_tries_run_at_once() {
        let rig = Rig::new();
        for i in 0..10 {
            rig.tokens.add(BOB, &format!("tok-{i}")).unwrap();
        }
        let service = FakeService::holding(rig.started, Duration::from_secs(1), |_, _| Ok(200));
        let running = rig.start(&service);
        running.deliver(BOB, ALICE);
        wait(60).await;
        assert_eq!(service.times(), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]);
        assert_eq!(service.0.most_in_flight.load(Ordering::SeqCst), 4);
        assert_eq!(rig.count("sent"), 10);
        running.stop().await;
    }

    #[test]
    fn the_schedule_is_upstreams() {
        let delays: Vec<u64> = (0..TRIES).map(|n| delay_before_try(n).as_secs()).collect();
        assert_eq!(delays, [0, 8, 64, 512, 4096]);
        // Upstream derives the number of tries from the deadline: int(log_8(5 h)) + 1.
        assert_eq!(TRIES, (DROP_DEADLINE_SECS as f64).log(8.0) as usize + 1);
    }
}
