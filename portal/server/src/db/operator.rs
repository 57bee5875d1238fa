//! What community operators configure: quotas, free-subdomain zones, and their view of
//! every group.

use sqlx::{FromRow, PgPool};
use uuid::Uuid;

#[derive(Clone, Debug, FromRow)]
pub struct Settings {
    pub max_groups_per_account: i32,
    pub downloads_per_day: i32,
    pub open_sign_up: bool,
}

pub async fn settings(pool: &PgPool) -> Result<Settings, sqlx::Error> {
    sqlx::query_as(
        "SELECT max_groups_per_account, downloads_per_day, open_sign_up FROM operator_settings",
    )
    .fetch_one(pool)
    .await
}

pub async fn save_settings(pool: &PgPool, settings: &Settings) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE operator_settings SET max_groups_per_account = $1, downloads_per_day = $2, open_sign_up = $3",
    )
    .bind(settings.max_groups_per_account)
    .bind(settings.downloads_per_day)
    .bind(settings.open_sign_up)
    .execute(pool)
    .await
    .map(|_| ())
}

#[derive(Clone, Debug, FromRow)]
pub struct Zone {
    pub id: Uuid,
    pub zone: String,
    pub enabled: bool,
    pub relays: i64,
    pub connection: Option<String>,
}

pub async fn zones(pool: &PgPool) -> Result<Vec<Zone>, sqlx::Error> {
    sqlx::query_as(
        "SELECT z.id, z.zone, z.enabled, (SELECT count(*) FROM relays r WHERE r.free_zone_id = z.id) AS relays, \
                (SELECT c.label FROM dns_connections c WHERE c.free_zone_id = z.id) AS connection \
         FROM free_zones z ORDER BY z.zone",
    )
    .fetch_all(pool)
    .await
}

pub async fn enabled_zones(pool: &PgPool) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, zone FROM free_zones WHERE enabled ORDER BY zone")
        .fetch_all(pool)
        .await
}

/// Adds a zone; `false` when it is already offered.
pub async fn add_zone(pool: &PgPool, zone: &str) -> Result<bool, sqlx::Error> {
    let added = sqlx::query(
        "INSERT INTO free_zones (id, zone) VALUES ($1, $2) ON CONFLICT (zone) DO NOTHING",
    )
    .bind(Uuid::new_v4())
    .bind(zone)
    .execute(pool)
    .await?;
    Ok(added.rows_affected() == 1)
}

pub async fn toggle_zone(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query("UPDATE free_zones SET enabled = NOT enabled WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() == 1)
}

#[derive(Clone, Debug, FromRow)]
pub struct GroupOverview {
    pub id: Uuid,
    pub name: String,
    pub members: i64,
    pub mail_domain: Option<String>,
    pub completed_step: i16,
    pub disabled_reason: Option<String>,
    pub created: String,
    /// From the latest DNS check: errors and warnings, and how long ago it ran.
    pub dns_errors: Option<i64>,
    pub dns_warnings: Option<i64>,
    pub dns_checked: Option<String>,
    /// `healthy` or `broken` once the relay was first ready.
    pub relay_health: Option<String>,
}

pub async fn all_groups(pool: &PgPool) -> Result<Vec<GroupOverview>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.id, g.name, (SELECT count(*) FROM group_members m WHERE m.group_id = g.id) AS members, \
                r.mail_domain, coalesce(r.completed_step, 0::smallint) AS completed_step, g.disabled_reason, \
                to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS created, \
                (c.report -> 'summary' ->> 'errors')::bigint AS dns_errors, \
                (c.report -> 'summary' ->> 'warnings')::bigint AS dns_warnings, \
                to_char(c.checked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC' AS dns_checked, \
                r.health AS relay_health \
         FROM groups g LEFT JOIN relays r ON r.group_id = g.id LEFT JOIN dns_checks c ON c.group_id = g.id \
         ORDER BY g.created_at DESC LIMIT 500",
    )
    .fetch_all(pool)
    .await
}

pub async fn zone_name(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT zone FROM free_zones WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}
