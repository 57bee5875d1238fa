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
    /// The device's DKIM public key (base64), once its status document was trusted.
    pub device_dkim_public_key: Option<String>,
    /// The device's ACME account URL, once it has one and its status was trusted.
    pub device_acme_account_url: Option<String>,
    /// The software version the device last reported.
    pub device_version: Option<String>,
}

/// The columns of [`RelayRow`], for `FROM relays r LEFT JOIN free_zones z …`.
const COLUMNS: &str =
    "r.group_id, r.mail_domain, r.free_zone_id, z.zone AS free_zone, r.config_toml, \
    r.hardware, host(r.ipv4) AS ipv4, host(r.ipv6) AS ipv6, r.completed_step, r.ignored_warnings, \
    r.dns_mode, r.device_dkim_public_key, r.device_acme_account_url, r.device_version";

impl RelayRow {
    /// What the device proved about itself, for the DNS plan (DKIM and CAA records). A
    /// stored value that no longer parses counts as unknown.
    pub fn device_facts(&self) -> chatmail_shared::DeviceFacts {
        chatmail_shared::DeviceFacts {
            dkim_public_key: self
                .device_dkim_public_key
                .as_deref()
                .and_then(|key| chatmail_shared::device_facts::DkimPublicKey::rsa(key).ok()),
            acme_account_url: self
                .device_acme_account_url
                .as_deref()
                .and_then(|url| chatmail_shared::device_facts::AcmeAccountUrl::parse(url).ok()),
        }
    }
}

/// The relay of a group the account belongs to.
pub async fn of_group(
    pool: &PgPool,
    account: Uuid,
    group: Uuid,
) -> Result<Option<RelayRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM relays r LEFT JOIN free_zones z ON z.id = r.free_zone_id \
         WHERE r.group_id = $1 \
           AND EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = $1 AND m.account_id = $2)"
    ))
    .bind(group)
    .bind(account)
    .fetch_optional(pool)
    .await
}

/// The relay of a group, for background work that acts on nobody's behalf (jobs).
pub async fn by_group(pool: &PgPool, group: Uuid) -> Result<Option<RelayRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM relays r LEFT JOIN free_zones z ON z.id = r.free_zone_id \
         WHERE r.group_id = $1"
    ))
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

/// Stores the settings; the wizard marks its step done (a relay made with defaults has them
/// before its DNS step).
pub async fn set_config(pool: &PgPool, group: Uuid, config_toml: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE relays SET config_toml = $2, updated_at = now() \
         WHERE group_id = $1",
    )
    .bind(group)
    .bind(config_toml)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Stores the device and its addresses; as with the settings, the wizard marks the step done.
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
                config_toml = coalesce($5, config_toml), updated_at = now() \
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

/// Every relay that has a name, for the periodic re-checks.
pub async fn all_named(pool: &PgPool) -> Result<Vec<RelayRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM relays r LEFT JOIN free_zones z ON z.id = r.free_zone_id \
         WHERE r.mail_domain IS NOT NULL ORDER BY r.group_id"
    ))
    .fetch_all(pool)
    .await
}

/// Stores what the device proved about itself; returns whether the published facts (DKIM
/// key, ACME account) changed.
pub async fn set_device_facts(
    pool: &PgPool,
    group: Uuid,
    dkim_public_key: &str,
    acme_account_url: Option<&str>,
    version: &str,
) -> Result<bool, sqlx::Error> {
    let changed: Option<bool> = sqlx::query_scalar(
        "WITH old AS (SELECT device_dkim_public_key, device_acme_account_url FROM relays WHERE group_id = $1 FOR UPDATE) \
         UPDATE relays r SET device_dkim_public_key = $2, device_acme_account_url = $3, \
                device_version = $4, device_seen_at = now() \
         FROM old WHERE r.group_id = $1 \
         RETURNING old.device_dkim_public_key IS DISTINCT FROM $2 \
                OR old.device_acme_account_url IS DISTINCT FROM $3",
    )
    .bind(group)
    .bind(dkim_public_key)
    .bind(acme_account_url)
    .bind(version)
    .fetch_optional(pool)
    .await?;
    Ok(changed.unwrap_or(false))
}
