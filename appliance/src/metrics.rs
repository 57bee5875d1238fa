//! The appliance's own metrics, in OpenMetrics text, on a separate listener.
//!
//! Maddy's metrics say nothing about accounts (research/maddy-gochatmail.md B.7), and
//! upstream counted creations and refusals from its logs (research/chatmail.md §1.10).
//! Here the daemons count directly. The listener is loopback-only by default: the numbers
//! are for the operator, not the public.

use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::auth::rules::Refusal;

/// Labels of the login counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `failed`.
    pub result: &'static str,
}

/// Labels of the refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// [`Refusal::label`].
    pub reason: &'static str,
}

/// Every metric, shared by the components. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Accounts in the store.
    pub accounts: Gauge,
    /// Logins by result.
    pub logins: Family<ResultLabel, Counter>,
    /// Accounts created (first login or `/new`).
    pub creations: Counter,
    /// Refused logins and account creations, by reason.
    pub refusals: Family<ReasonLabel, Counter>,
    /// Unix time at which the served certificate expires.
    pub certificate_expiry: Gauge<i64, AtomicI64>,
    /// 1 while the served certificate is the self-signed placeholder.
    pub certificate_placeholder: Gauge,
    /// Times Maddy had to be restarted after it stopped on its own.
    pub maddy_restarts: Counter,
    /// Component restarts by the supervisor.
    pub component_restarts: Family<ComponentLabel, Counter>,
    /// Verdicts of chatmail's mail rules (Appliance III).
    pub mail_rules: Family<MailRuleLabel, Counter>,
    /// Deliveries by way (local, https, smtp) and result (Appliance III).
    pub deliveries: Family<DeliveryLabel, Counter>,
    /// Push notifications by outcome (Appliance II).
    pub push_notifications: Family<PushLabel, Counter>,
    /// Messages removed by the expiry, by rule (Appliance II).
    pub expiry_messages: Family<ExpiryLabel, Counter>,
    /// Inactive accounts removed by the expiry.
    pub expiry_accounts: Counter,
    /// Bytes of messages the expiry removed (removed accounts' mail not included).
    pub expiry_bytes: Counter,
    /// Unix time the last expiry run finished.
    pub expiry_last_run: Gauge<i64, AtomicI64>,
    /// IMAP sessions that turned on COMPRESS=DEFLATE at the front.
    pub imap_compressed_sessions: Counter,
}

/// Labels of the expiry's message counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExpiryLabel {
    /// `old`, `large` or `quota` (expiry/rules.rs).
    pub rule: &'static str,
}

/// Labels of the push notification counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabel {
    /// `sent` (200), `gone` (410, token removed), `retried` (a retry scheduled after a
    /// failure) or `dropped` (past the deadline, or not queued).
    pub result: &'static str,
}

/// Labels of the mail-rule counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MailRuleLabel {
    /// `outgoing`, `incoming` or `mxdeliv`.
    pub direction: &'static str,
    /// The kind accepted (`encrypted`, `securejoin`, …), `unencrypted` or `refused`.
    pub verdict: &'static str,
}

/// Labels of the delivery counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabel {
    /// `local`, `https` or `smtp`.
    pub via: &'static str,
    /// `ok`, `temporary` or `permanent`.
    pub result: &'static str,
}

/// Labels of the component restart counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabel {
    /// Component name.
    pub component: &'static str,
}

impl Metrics {
    /// Registers every metric under the `chatmail_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chatmail");
        let accounts = Gauge::default();
        let logins = Family::<ResultLabel, Counter>::default();
        let creations = Counter::default();
        let refusals = Family::<ReasonLabel, Counter>::default();
        let certificate_expiry = Gauge::<i64, AtomicI64>::default();
        let certificate_placeholder = Gauge::default();
        let maddy_restarts = Counter::default();
        let component_restarts = Family::<ComponentLabel, Counter>::default();
        let mail_rules = Family::<MailRuleLabel, Counter>::default();
        let deliveries = Family::<DeliveryLabel, Counter>::default();
        let push_notifications = Family::<PushLabel, Counter>::default();
        let expiry_messages = Family::<ExpiryLabel, Counter>::default();
        let expiry_accounts = Counter::default();
        let expiry_bytes = Counter::default();
        let imap_compressed_sessions = Counter::default();
        let expiry_last_run = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "expiry_messages_removed",
            "Messages removed by the expiry by rule",
            expiry_messages.clone(),
        );
        for rule in ["old", "large", "quota"] {
            let _ = expiry_messages.get_or_create(&ExpiryLabel { rule });
        }
        registry.register(
            "expiry_accounts_removed",
            "Inactive accounts removed by the expiry",
            expiry_accounts.clone(),
        );
        registry.register_with_unit(
            "expiry_freed",
            "Bytes of messages removed by the expiry",
            prometheus_client::registry::Unit::Bytes,
            expiry_bytes.clone(),
        );
        registry.register(
            "imap_compressed_sessions",
            "IMAP sessions that turned on COMPRESS=DEFLATE",
            imap_compressed_sessions.clone(),
        );
        registry.register(
            "expiry_last_run_timestamp_seconds",
            "Unix time the last expiry run finished",
            expiry_last_run.clone(),
        );
        registry.register(
            "mail_rules",
            "Verdicts of the mail rules by direction",
            mail_rules.clone(),
        );
        registry.register(
            "deliveries",
            "Message deliveries by way and result",
            deliveries.clone(),
        );
        registry.register(
            "push_notifications",
            "Push notifications by outcome",
            push_notifications.clone(),
        );
        for result in ["sent", "gone", "retried", "dropped"] {
            let _ = push_notifications.get_or_create(&PushLabel { result });
        }
        registry.register("accounts", "Accounts in the store", accounts.clone());
        registry.register("logins", "Logins by result", logins.clone());
        registry.register("account_creations", "Accounts created", creations.clone());
        registry.register(
            "refusals",
            "Refused logins and account creations by reason",
            refusals.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "Unix time at which the served TLS certificate expires",
            certificate_expiry.clone(),
        );
        registry.register(
            "certificate_placeholder",
            "1 while the self-signed placeholder certificate is served",
            certificate_placeholder.clone(),
        );
        registry.register(
            "maddy_restarts",
            "Restarts of Maddy after it stopped on its own",
            maddy_restarts.clone(),
        );
        registry.register(
            "component_restarts",
            "Restarts of appliance components after a failure",
            component_restarts.clone(),
        );
        // Show every refusal reason and both login results from the start, at zero.
        for r in Refusal::ALL {
            let _ = refusals.get_or_create(&ReasonLabel { reason: r.label() });
        }
        for result in ["ok", "failed"] {
            let _ = logins.get_or_create(&ResultLabel { result });
        }
        Metrics {
            registry: Arc::new(registry),
            accounts,
            logins,
            creations,
            refusals,
            certificate_expiry,
            certificate_placeholder,
            maddy_restarts,
            component_restarts,
            mail_rules,
            deliveries,
            push_notifications,
            expiry_messages,
            expiry_accounts,
            expiry_bytes,
            expiry_last_run,
            imap_compressed_sessions,
        }
    }

    /// Counts a push notification outcome ([`PushLabel`]).
    pub fn count_push(&self, result: &'static str) {
        self.push_notifications
            .get_or_create(&PushLabel { result })
            .inc();
    }

    /// Counts a verdict of the mail rules.
    pub fn count_mail_rule(&self, direction: &'static str, verdict: &'static str) {
        self.mail_rules
            .get_or_create(&MailRuleLabel { direction, verdict })
            .inc();
    }

    /// Counts a delivery (per recipient).
    pub fn count_delivery(&self, via: &'static str, result: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabel { via, result })
            .inc();
    }

    /// Counts a refusal.
    pub fn refused(&self, reason: Refusal) {
        self.refusals
            .get_or_create(&ReasonLabel {
                reason: reason.label(),
            })
            .inc();
    }

    /// Counts a login.
    pub fn login(&self, ok: bool) {
        self.logins
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `addr` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
                    metrics.encode(),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics listener on {addr}: {e}"))?;
    tracing::info!(%addr, "metrics listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_openmetrics() {
        let m = Metrics::new();
        m.creations.inc();
        m.refused(Refusal::PasswordTooShort);
        m.login(true);
        m.accounts.set(3);
        let text = m.encode();
        assert!(
            text.contains("chatmail_account_creations_total 1"),
            "{text}"
        );
        assert!(
            text.contains("chatmail_refusals_total{reason=\"password_too_short\"} 1"),
            "{text}"
        );
        assert!(text.contains("chatmail_refusals_total{reason=\"low_disk\"} 0"));
        assert!(text.contains("chatmail_logins_total{result=\"ok\"} 1"));
        assert!(text.contains("chatmail_accounts 3"));
        assert!(text.contains("chatmail_maddy_restarts_total 0"));
        assert!(text.ends_with("# EOF\n"));
    }
}
