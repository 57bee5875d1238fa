//! `POST /mxdeliv`: other relays deliver here over HTTPS (research/chatmail.md §1.3,
//! "HTTP `/mxdeliv` receiver").
//!
//! The envelope sender comes from `X-MAIL-FROM` (missing: the null sender), the
//! recipients from repeated `X-MAIL-TO`, the body is the message. The incoming rules apply
//! exactly as on port 25 ([`mail_rules::check_incoming`]); accepted mail goes into
//! Maddy's storage through the local-delivery hop, which also fires the push hook.
//! Answers as upstream: `200` with the SMTP reply (`250 OK`), `400` with the SMTP error
//! (`523 …`, `554 5.7.1 …`), `413` with `552 Message exceeds maximum size`, `405` for
//! other methods. If the envelope sender differs from `From:` (forwarding, SRS), the
//! message is stored with the null sender, as upstream does, so it can never bounce.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use chatmail_appliance::mail_rules::{self, address, dkim::DkimVerifier, Limits, Reply};

use super::WebState;
use crate::delivery::local::LocalDelivery;
use crate::metrics::Metrics;

/// What `/mxdeliv` needs. Cheap to share.
pub struct Inbound {
    /// Off: `/mxdeliv` answers 404 (other relays then use SMTP).
    pub enabled: bool,
    pub mail_domain: String,
    pub limits: Limits,
    pub dkim: Arc<DkimVerifier>,
    pub local: LocalDelivery,
    pub metrics: Metrics,
}

fn answer(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_string(),
    )
        .into_response()
}

fn refuse(reply: &Reply) -> Response {
    answer(StatusCode::BAD_REQUEST, &reply.line)
}

/// The handler.
pub async fn handle(State(state): State<WebState>, request: Request) -> Response {
    let inbound = state.mxdeliv.clone();
    if !inbound.enabled {
        return answer(StatusCode::NOT_FOUND, "Not Found");
    }
    if request.method() != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let headers = request.headers();
    let mut mail_from = headers
        .get("x-mail-from")
        .and_then(|v| v.to_str().ok())
        .map(address::envelope_address)
        .unwrap_or_default();
    let rcpts: Vec<String> = headers
        .get_all("x-mail-to")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(address::envelope_address)
        .filter(|r| !r.is_empty())
        .collect();
    if rcpts.is_empty() {
        return refuse(&Reply::new(503, "503 5.5.1 No valid recipients".into()));
    }
    if let Some(foreign) = rcpts
        .iter()
        .find(|r| !address::domain_of(r).eq_ignore_ascii_case(&inbound.mail_domain))
    {
        tracing::info!(
            rcpt = foreign,
            "mxdeliv: refused a recipient of another domain"
        );
        return refuse(&Reply::new(
            554,
            format!("554 5.7.1 <{foreign}>: Relay access denied"),
        ));
    }
    let limit = inbound.limits.max_message_size;
    let body: Body = request.into_body();
    let message = match axum::body::to_bytes(body, limit.saturating_add(1)).await {
        Ok(bytes) if bytes.len() <= limit => bytes.to_vec(),
        _ => return answer(StatusCode::PAYLOAD_TOO_LARGE, &Reply::too_big().line),
    };
    let kind = match mail_rules::check_incoming(&message, &inbound.limits, &inbound.dkim).await {
        Ok(kind) => kind,
        Err(reply) => {
            tracing::info!(sender = mail_from, reply = %reply.line, "mxdeliv: rejected");
            inbound.metrics.count_mail_rule(
                "mxdeliv",
                if reply.code == 523 {
                    "unencrypted"
                } else {
                    "refused"
                },
            );
            return refuse(&reply);
        }
    };
    inbound.metrics.count_mail_rule("mxdeliv", kind.label());
    // A sender that is not the From: address (forwarding, SRS) is dropped.
    let from = mail_rules::mime::Entity::parse(&message)
        .ok()
        .and_then(|e| e.value("From").and_then(|v| address::first_address(&v)));
    if from
        .as_deref()
        .is_none_or(|f| !f.eq_ignore_ascii_case(&mail_from))
    {
        mail_from.clear();
    }
    let replies = inbound.local.deliver(&mail_from, &rcpts, message).await;
    if replies.iter().any(Reply::is_success) {
        tracing::info!(kind = kind.label(), "mxdeliv: delivered");
        answer(StatusCode::OK, "250 OK")
    } else {
        let first = replies
            .into_iter()
            .next()
            .unwrap_or_else(|| Reply::new(451, "451 4.3.0 Local error".into()));
        tracing::info!(reply = %first.line, "mxdeliv: storage refused");
        refuse(&first)
    }
}
