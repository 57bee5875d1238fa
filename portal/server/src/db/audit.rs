//! The audit log of security-relevant actions: sign-ins, credential changes, membership
//! changes, DNS applies, downloads, operator actions.

use std::net::IpAddr;

use sqlx::{FromRow, PgPool};
use uuid::Uuid;

/// Records one action. Failures to write the log are logged, never shown to the person.
pub async fn record(
    pool: &PgPool,
    actor: Option<Uuid>,
    group: Option<Uuid>,
    action: &str,
    detail: &str,
    ip: Option<IpAddr>,
) {
    let result = sqlx::query(
        "INSERT INTO audit_log (actor, group_id, action, detail, ip) VALUES ($1, $2, $3, $4, $5::inet)",
    )
    .bind(actor)
    .bind(group)
    .bind(action)
    .bind(detail)
    .bind(ip.map(|ip| ip.to_string()))
    .execute(pool)
    .await;
    if let Err(err) = result {
        tracing::error!(action, "cannot write the audit log: {err}");
    }
}

#[derive(Debug, FromRow)]
pub struct Entry {
    pub at: String,
    pub actor: Option<String>,
    pub group_name: Option<String>,
    pub action: String,
    pub detail: String,
    pub ip: Option<String>,
}

pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC' AS at, \
                a.email AS actor, g.name AS group_name, l.action, l.detail, host(l.ip) AS ip \
         FROM audit_log l LEFT JOIN accounts a ON a.id = l.actor LEFT JOIN groups g ON g.id = l.group_id \
         ORDER BY l.at DESC, l.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
