//! The relay each group sets up, as the wizard fills it in.

use sqlx::{FromRow, PgPool};
use uuid::Uuid;

#[derive(Clone, Debug, FromRow)]
pub struct RelayRow {
    pub group_id: Uuid,
    pub mail_domain: Option<String>,
    pub free_zone_id: Option<Uuid>,
    pub free_zone: Option<String>,
    pub config_toml: Option<String>,
    pub hardware: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub completed_step: i16,
    pub ignored_warnings: Vec<String>,
    pub dns_mode: Option<String>,
}

/// The relay of a group the account belongs to.
pub async fn of_group(
    pool: &PgPool,
    account: Uuid,
    group: Uuid,
) -> Result<Option<RelayRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.group_id, r.mail_domain, r.free_zone_id, z.zone AS free_zone, r.config_toml, r.hardware, \
                host(r.ipv4) AS ipv4, host(r.ipv6) AS ipv6, r.completed_step, r.ignored_warnings, r.dns_mode \
         FROM relays r LEFT JOIN free_zones z ON z.id = r.free_zone_id \
         WHERE r.group_id = $1 \
           AND EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = $1 AND m.account_id = $2)",
    )
    .bind(group)
    .bind(account)
    .fetch_optional(pool)
    .await
}

/// The relay of a group, for background work that acts on nobody's behalf (jobs).
pub async fn by_group(pool: &PgPool, group: Uuid) -> Result<Option<RelayRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.group_id, r.mail_domain, r.free_zone_id, z.zone AS free_zone, r.config_toml, r.hardware, \
                host(r.ipv4) AS ipv4, host(r.ipv6) AS ipv6, r.completed_step, r.ignored_warnings, r.dns_mode \
         FROM relays r LEFT JOIN free_zones z ON z.id = r.free_zone_id WHERE r.group_id = $1",
    )
    .bind(group)
    .fetch_optional(pool)
    .await
}

/// Whether another relay already uses this mail domain.
pub async fn domain_taken(
    pool: &PgPool,
    domain: &str,
    except_group: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM relays WHERE mail_domain = $1 AND group_id <> $2)",
    )
    .bind(domain)
    .bind(except_group)
    .fetch_one(pool)
    .await
}

/// Sets the relay's name. Returns `false` when another relay took it in the meantime.
pub async fn set_domain(
    pool: &PgPool,
    group: Uuid,
    domain: &str,
    free_zone: Option<Uuid>,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE relays SET mail_domain = $2, free_zone_id = $3, completed_step = GREATEST(completed_step, 1), \
                dns_mode = CASE WHEN $3::uuid IS NOT NULL THEN 'portal' \
                                WHEN dns_mode = 'portal' THEN NULL ELSE dns_mode END, \
                updated_at = now() WHERE group_id = $1",
    )
    .bind(group)
    .bind(domain)
    .bind(free_zone)
    .execute(pool)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
        Err(err) => Err(err),
    }
}

pub async fn set_config(pool: &PgPool, group: Uuid, config_toml: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE relays SET config_toml = $2, completed_step = GREATEST(completed_step, 3), updated_at = now() \
         WHERE group_id = $1",
    )
    .bind(group)
    .bind(config_toml)
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn set_hardware(
    pool: &PgPool,
    group: Uuid,
    hardware: &str,
    ipv4: Option<String>,
    ipv6: Option<String>,
    config_toml: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE relays SET hardware = $2, ipv4 = $3::inet, ipv6 = $4::inet, \
                config_toml = coalesce($5, config_toml), \
                completed_step = GREATEST(completed_step, 4), updated_at = now() \
         WHERE group_id = $1",
    )
    .bind(group)
    .bind(hardware)
    .bind(ipv4)
    .bind(ipv6)
    .bind(config_toml)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Marks a wizard step done (steps only ever move forward).
pub async fn complete_step(pool: &PgPool, group: Uuid, step: i16) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE relays SET completed_step = GREATEST(completed_step, $2), updated_at = now() WHERE group_id = $1",
    )
    .bind(group)
    .bind(step)
    .execute(pool)
    .await
    .map(|_| ())
}
