//! Published update releases (migration 0008): the signed manifest bytes and signature per
//! channel, target and version.

use sqlx::PgPool;

/// One published release.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReleaseRow {
    pub channel: String,
    pub target: String,
    pub version: String,
    pub manifest: Vec<u8>,
    pub signature: String,
}

/// The current (newest) release of a channel and target.
pub async fn current(
    pool: &PgPool,
    channel: &str,
    target: &str,
) -> Result<Option<ReleaseRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT channel, target, version, manifest, signature FROM update_releases \
         WHERE channel = $1 AND target = $2 ORDER BY published_at DESC, version DESC LIMIT 1",
    )
    .bind(channel)
    .bind(target)
    .fetch_optional(pool)
    .await
}

/// Every current release (one per channel and target that has any).
pub async fn all_current(pool: &PgPool) -> Result<Vec<ReleaseRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT ON (channel, target) channel, target, version, manifest, signature \
         FROM update_releases ORDER BY channel, target, published_at DESC, version DESC",
    )
    .fetch_all(pool)
    .await
}

/// Stores a release; `false` if that version was already published there.
pub async fn insert(pool: &PgPool, row: &ReleaseRow) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO update_releases (channel, target, version, manifest, signature) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&row.channel)
    .bind(&row.target)
    .bind(&row.version)
    .bind(&row.manifest)
    .bind(&row.signature)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
