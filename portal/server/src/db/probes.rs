//! The device probes' latest report per relay, the go-live phases and the relay's health.

use std::time::Duration;

use chatmail_shared::probe_report::ProbeReport;
use sqlx::PgPool;
use uuid::Uuid;

/// Stores the latest probe report of a relay.
pub async fn store(pool: &PgPool, group: Uuid, report: &ProbeReport) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO device_probes (group_id, checked_at, report) VALUES ($1, now(), $2) \
         ON CONFLICT (group_id) DO UPDATE SET checked_at = now(), report = EXCLUDED.report",
    )
    .bind(group)
    .bind(sqlx::types::Json(report))
    .execute(pool)
    .await?;
    Ok(())
}

/// The latest probe report and its age.
pub async fn latest(
    pool: &PgPool,
    group: Uuid,
) -> Result<Option<(ProbeReport, Duration)>, sqlx::Error> {
    let row: Option<(sqlx::types::Json<ProbeReport>, f64)> = sqlx::query_as(
        "SELECT report, extract(epoch FROM now() - checked_at)::float8 FROM device_probes WHERE group_id = $1",
    )
    .bind(group)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(report, age)| (report.0, Duration::from_secs_f64(age.max(0.0)))))
}

/// Records that `phase` was reached now, unless it was reached before.
pub async fn reach(pool: &PgPool, group: Uuid, phase: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO relay_phases (group_id, phase) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(group)
    .bind(phase)
    .execute(pool)
    .await?;
    Ok(())
}

/// The phases reached so far, with when (seconds since the Unix epoch).
pub async fn phases(pool: &PgPool, group: Uuid) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT phase, extract(epoch FROM reached_at)::int8 FROM relay_phases \
         WHERE group_id = $1 ORDER BY reached_at",
    )
    .bind(group)
    .fetch_all(pool)
    .await
}

/// Sets the relay's health after a check: `healthy` when ready; `broken` when it is not
/// ready although it was healthy before. A relay that never was ready stays unset. Returns
/// the new health when it changed.
pub async fn settle_health(
    pool: &PgPool,
    group: Uuid,
    ready: bool,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE relays SET health = $2, health_changed_at = now() \
         WHERE group_id = $1 AND health IS DISTINCT FROM $2 AND ($3 OR health IS NOT NULL) \
         RETURNING health",
    )
    .bind(group)
    .bind(if ready { "healthy" } else { "broken" })
    .bind(ready)
    .fetch_optional(pool)
    .await
}

/// The relay's health and since when (seconds since the Unix epoch).
pub async fn health(pool: &PgPool, group: Uuid) -> Result<Option<(String, i64)>, sqlx::Error> {
    let row: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT health, extract(epoch FROM health_changed_at)::int8 FROM relays WHERE group_id = $1",
    )
    .bind(group)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(health, since)| Some((health?, since.unwrap_or(0)))))
}

/// Queues a DNS job that publishes the relay's plan (now with the device's facts), on
/// nobody's behalf. Returns false when a job is already queued or running.
pub async fn enqueue_publish(pool: &PgPool, group: Uuid) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO dns_jobs (id, group_id, action, confirmed, created_by) \
         VALUES ($1, $2, 'apply', '{}', NULL)",
    )
    .bind(Uuid::new_v4())
    .bind(group)
    .execute(pool)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
        Err(err) => Err(err),
    }
}
