//! DNS connections, the values the portal wrote, and apply jobs.

use std::collections::BTreeSet;

use chatmail_dns_providers::OwnedValue;
use sqlx::{FromRow, PgPool, Postgres, Transaction};
use uuid::Uuid;

#[derive(Clone, Debug, FromRow)]
pub struct Connection {
    pub id: Uuid,
    pub kind: String,
    pub label: String,
    pub zone: String,
    pub sealed_credentials: String,
    /// The provider's id (`cloudflare`, …) for cloud connections.
    pub provider: Option<String>,
    /// Why the connection stopped working (a refused key, a withdrawn sign-in).
    pub problem: Option<String>,
}

/// The connection a relay's records go through: the group's own, or for a free name the
/// operator's connection of that zone.
pub async fn connection_for_group(
    pool: &PgPool,
    group: Uuid,
) -> Result<Option<Connection>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.kind, c.label, c.zone, c.sealed_credentials, c.provider, c.problem FROM dns_connections c \
         WHERE c.group_id = $1 \
            OR c.free_zone_id = (SELECT free_zone_id FROM relays WHERE group_id = $1) \
         ORDER BY c.group_id NULLS LAST LIMIT 1",
    )
    .bind(group)
    .fetch_optional(pool)
    .await
}

pub async fn connection_for_zone(
    pool: &PgPool,
    free_zone: Uuid,
) -> Result<Option<Connection>, sqlx::Error> {
    sqlx::query_as("SELECT id, kind, label, zone, sealed_credentials, provider, problem FROM dns_connections WHERE free_zone_id = $1")
        .bind(free_zone)
        .fetch_optional(pool)
        .await
}

/// Who a new connection belongs to.
#[derive(Clone, Copy, Debug)]
pub enum Owner {
    Group(Uuid),
    FreeZone(Uuid),
}

/// Saves (or replaces) a connection. `seal` receives the connection id, to bind the
/// sealed credentials to it.
pub async fn save_connection(
    pool: &PgPool,
    owner: Owner,
    kind: &str,
    label: &str,
    zone: &str,
    seal: impl FnOnce(Uuid) -> String,
) -> Result<Uuid, sqlx::Error> {
    save_provider_connection(pool, owner, kind, None, label, zone, seal).await
}

/// [`save_connection`] for a cloud provider (`provider` is its id).
pub async fn save_provider_connection(
    pool: &PgPool,
    owner: Owner,
    kind: &str,
    provider: Option<&str>,
    label: &str,
    zone: &str,
    seal: impl FnOnce(Uuid) -> String,
) -> Result<Uuid, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (group, free_zone) = match owner {
        Owner::Group(id) => (Some(id), None),
        Owner::FreeZone(id) => (None, Some(id)),
    };
    sqlx::query("DELETE FROM dns_connections WHERE group_id = $1 OR free_zone_id = $2")
        .bind(group)
        .bind(free_zone)
        .execute(&mut *tx)
        .await?;
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO dns_connections (id, group_id, free_zone_id, kind, label, zone, sealed_credentials, provider) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(group)
    .bind(free_zone)
    .bind(kind)
    .bind(label)
    .bind(zone)
    .bind(seal(id))
    .bind(provider)
    .execute(&mut *tx)
    .await?;
    if let Some(group) = group {
        sqlx::query("UPDATE relays SET dns_mode = 'connected' WHERE group_id = $1")
            .bind(group)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Stores new sealed credentials (refreshed sign-in tokens) for a connection.
pub async fn update_credentials(pool: &PgPool, id: Uuid, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dns_connections SET sealed_credentials = $2, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(sealed)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Records (or with `None` clears) why a connection stopped working.
pub async fn set_problem(
    pool: &PgPool,
    id: Uuid,
    problem: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dns_connections SET problem = $2 WHERE id = $1 AND problem IS DISTINCT FROM $2",
    )
    .bind(id)
    .bind(problem)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Forgets a group's connection; the relay then has no way chosen.
pub async fn disconnect(pool: &PgPool, group: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM dns_connections WHERE group_id = $1")
        .bind(group)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE relays SET dns_mode = NULL WHERE group_id = $1")
        .bind(group)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

pub async fn set_mode(pool: &PgPool, group: Uuid, mode: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    if mode != "connected" {
        sqlx::query("DELETE FROM dns_connections WHERE group_id = $1")
            .bind(group)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE relays SET dns_mode = $2 WHERE group_id = $1")
        .bind(group)
        .bind(mode)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

pub async fn owned(pool: &PgPool, group: Uuid) -> Result<Vec<OwnedValue>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT name, rtype, value FROM dns_owned_values WHERE group_id = $1 ORDER BY 1, 2, 3",
    )
    .bind(group)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, rtype, value)| OwnedValue { name, rtype, value })
        .collect())
}

/// Adds ownership of `values` (before writing them: a crash then leaves a harmless claim).
pub async fn claim(pool: &PgPool, group: Uuid, values: &[OwnedValue]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    insert_owned(&mut tx, group, values).await?;
    tx.commit().await
}

/// Makes `values` exactly what the group owns (after writing).
pub async fn replace_owned(
    pool: &PgPool,
    group: Uuid,
    values: &[OwnedValue],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM dns_owned_values WHERE group_id = $1")
        .bind(group)
        .execute(&mut *tx)
        .await?;
    insert_owned(&mut tx, group, values).await?;
    tx.commit().await
}

async fn insert_owned(
    tx: &mut Transaction<'_, Postgres>,
    group: Uuid,
    values: &[OwnedValue],
) -> Result<(), sqlx::Error> {
    for value in values {
        sqlx::query(
            "INSERT INTO dns_owned_values (group_id, name, rtype, value) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(group)
        .bind(&value.name)
        .bind(&value.rtype)
        .bind(&value.value)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[derive(Clone, Debug, FromRow)]
pub struct Job {
    pub id: Uuid,
    pub group_id: Uuid,
    pub action: String,
    pub confirmed: Vec<String>,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub summary: Option<String>,
    /// Seconds until the next attempt of a pending job.
    pub retry_in: Option<f64>,
}

const JOB_COLUMNS: &str = "id, group_id, action, confirmed, state, attempts, last_error, summary, \
     CASE WHEN state = 'pending' THEN extract(epoch FROM next_attempt_at - now())::float8 END AS retry_in";

/// Queues a job; `Ok(false)` when one is already queued or running for this relay.
pub async fn enqueue(
    pool: &PgPool,
    group: Uuid,
    action: &str,
    confirmed: &BTreeSet<String>,
    by: Uuid,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO dns_jobs (id, group_id, action, confirmed, created_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4())
    .bind(group)
    .bind(action)
    .bind(confirmed.iter().cloned().collect::<Vec<_>>())
    .bind(by)
    .execute(pool)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
        Err(err) => Err(err),
    }
}

/// The newest job of a group.
pub async fn latest_job(pool: &PgPool, group: Uuid) -> Result<Option<Job>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM dns_jobs WHERE group_id = $1 ORDER BY created_at DESC LIMIT 1"
    ))
    .bind(group)
    .fetch_optional(pool)
    .await
}

/// Takes the next due job: a pending one whose time has come, or a running one whose
/// portal stopped beating (it crashed). `SKIP LOCKED` lets several portals share the queue.
pub async fn claim_next(pool: &PgPool, stale_after_secs: i32) -> Result<Option<Job>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE dns_jobs SET state = 'running', heartbeat_at = now(), attempts = attempts + 1 \
         WHERE id = (SELECT id FROM dns_jobs \
                     WHERE (state = 'pending' AND next_attempt_at <= now()) \
                        OR (state = 'running' AND heartbeat_at < now() - make_interval(secs => $1)) \
                     ORDER BY next_attempt_at FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING {JOB_COLUMNS}"
    ))
    .bind(stale_after_secs as f64)
    .fetch_optional(pool)
    .await
}

pub async fn heartbeat(pool: &PgPool, job: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dns_jobs SET heartbeat_at = now() WHERE id = $1 AND state = 'running'")
        .bind(job)
        .execute(pool)
        .await
        .map(|_| ())
}

pub async fn finish(pool: &PgPool, job: Uuid, summary: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dns_jobs SET state = 'done', summary = $2, last_error = NULL, finished_at = now() WHERE id = $1",
    )
    .bind(job)
    .bind(summary)
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn fail(pool: &PgPool, job: Uuid, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dns_jobs SET state = 'failed', last_error = $2, finished_at = now() WHERE id = $1",
    )
    .bind(job)
    .bind(error)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Puts a job back in the queue after a passing problem, to try again after `delay_secs`.
pub async fn retry_later(
    pool: &PgPool,
    job: Uuid,
    error: &str,
    delay_secs: f64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dns_jobs SET state = 'pending', last_error = $2, \
                next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
    )
    .bind(job)
    .bind(error)
    .bind(delay_secs)
    .execute(pool)
    .await
    .map(|_| ())
}
