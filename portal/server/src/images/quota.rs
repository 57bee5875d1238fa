//! Who may download how often: each group may start `operator_settings.downloads_per_day`
//! downloads in any 24 hours. A request that continues a download (a Range that does not
//! start at byte 0) of an image the group already fetched in that window is not counted
//! again, so resuming is free; starting over is a new download.
//!
//! Also the per-group Raspberry Pi Imager link: a random token in the URL stands in for the
//! session Imager cannot carry.

use rand::RngCore;
use sqlx::PgPool;
use uuid::Uuid;

/// One download about to start.
pub struct Start<'a> {
    pub group: Uuid,
    pub account: Option<Uuid>,
    pub target: &'a str,
    pub format: &'a str,
    pub image_sha256: &'a str,
    pub via: &'a str,
    /// The request continues an earlier one (Range from a later byte).
    pub continues: bool,
}

/// The outcome of [`admit`].
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// A new download, counted.
    Counted,
    /// The continuation of a counted download.
    Resumed,
    /// The group used up its downloads for now.
    QuotaUsed { per_day: i32 },
}

/// Counts the download against the group's quota, or refuses it. Serialized per group
/// (the group's row is locked), so parallel requests cannot overrun the quota.
pub async fn admit(pool: &PgPool, start: &Start<'_>) -> Result<Admission, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM groups WHERE id = $1 FOR UPDATE")
        .bind(start.group)
        .execute(&mut *tx)
        .await?;
    if start.continues {
        let earlier: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM image_downloads WHERE group_id = $1 AND target = $2 \
             AND format = $3 AND image_sha256 = $4 AND started_at > now() - interval '1 day')",
        )
        .bind(start.group)
        .bind(start.target)
        .bind(start.format)
        .bind(start.image_sha256)
        .fetch_one(&mut *tx)
        .await?;
        if earlier {
            tx.commit().await?;
            return Ok(Admission::Resumed);
        }
    }
    let per_day: i32 = sqlx::query_scalar("SELECT downloads_per_day FROM operator_settings")
        .fetch_one(&mut *tx)
        .await?;
    let used = used_today_in(&mut tx, start.group).await?;
    if used >= i64::from(per_day) {
        tx.commit().await?;
        return Ok(Admission::QuotaUsed { per_day });
    }
    sqlx::query(
        "INSERT INTO image_downloads (group_id, account_id, target, format, image_sha256, via) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(start.group)
    .bind(start.account)
    .bind(start.target)
    .bind(start.format)
    .bind(start.image_sha256)
    .bind(start.via)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Admission::Counted)
}

async fn used_today_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    group: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM image_downloads WHERE group_id = $1 AND started_at > now() - interval '1 day'",
    )
    .bind(group)
    .fetch_one(&mut **tx)
    .await
}

/// Downloads the group started in the last 24 hours, and its quota.
pub async fn usage(pool: &PgPool, group: Uuid) -> Result<(i64, i32), sqlx::Error> {
    let used: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM image_downloads WHERE group_id = $1 AND started_at > now() - interval '1 day'",
    )
    .bind(group)
    .fetch_one(pool)
    .await?;
    let per_day: i32 = sqlx::query_scalar("SELECT downloads_per_day FROM operator_settings")
        .fetch_one(pool)
        .await?;
    Ok((used, per_day))
}

/// The group's Imager link token, if it has one.
pub async fn imager_token(pool: &PgPool, group: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT token FROM imager_links WHERE group_id = $1")
        .bind(group)
        .fetch_optional(pool)
        .await
}

/// Makes (or replaces) the group's Imager link; the old link stops working.
pub async fn new_imager_token(pool: &PgPool, group: Uuid) -> Result<String, sqlx::Error> {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    use base64::Engine;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    sqlx::query(
        "INSERT INTO imager_links (group_id, token) VALUES ($1, $2) \
         ON CONFLICT (group_id) DO UPDATE SET token = EXCLUDED.token, created_at = now()",
    )
    .bind(group)
    .bind(&token)
    .execute(pool)
    .await?;
    Ok(token)
}

/// The group an Imager link belongs to (and whether the group is disabled).
pub async fn group_of_token(
    pool: &PgPool,
    token: &str,
) -> Result<Option<(Uuid, bool)>, sqlx::Error> {
    if token.len() > 64 {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT l.group_id, g.disabled_reason IS NOT NULL FROM imager_links l \
         JOIN groups g ON g.id = l.group_id WHERE l.token = $1",
    )
    .bind(token)
    .fetch_optional(pool)
    .await
}
