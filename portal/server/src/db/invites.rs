//! Invite links. The link carries a random token; only its SHA-256 is stored, so a copy of
//! the database cannot be turned into working links. Each link works once, until it expires.

use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

/// How long a new invite link works.
pub const VALID_DAYS: i32 = 7;

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates an invite and returns its token (shown once, never stored).
pub async fn create(pool: &PgPool, group: Uuid, created_by: Uuid) -> Result<String, sqlx::Error> {
    let token = crate::auth::session::random_token();
    sqlx::query(
        "INSERT INTO invites (id, group_id, token_hash, created_by, expires_at) \
         VALUES ($1, $2, $3, $4, now() + make_interval(days => $5))",
    )
    .bind(Uuid::new_v4())
    .bind(group)
    .bind(hash(&token))
    .bind(created_by)
    .bind(VALID_DAYS)
    .execute(pool)
    .await?;
    Ok(token)
}

#[derive(Debug, FromRow)]
pub struct InviteRow {
    pub id: Uuid,
    pub created: String,
    pub expires: String,
    pub used: bool,
    pub expired: bool,
    pub revoked: bool,
}

pub async fn of_group(pool: &PgPool, group: Uuid) -> Result<Vec<InviteRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC' AS created, \
                to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC' AS expires, \
                used_at IS NOT NULL AS used, expires_at <= now() AS expired, revoked_at IS NOT NULL AS revoked \
         FROM invites WHERE group_id = $1 ORDER BY created_at DESC LIMIT 50",
    )
    .bind(group)
    .fetch_all(pool)
    .await
}

pub async fn revoke(pool: &PgPool, group: Uuid, invite: Uuid) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE invites SET revoked_at = now() WHERE id = $1 AND group_id = $2 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(invite)
    .bind(group)
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Valid,
    Used,
    Expired,
    Revoked,
    Unknown,
}

#[derive(Debug, FromRow)]
struct LinkRow {
    group_id: Uuid,
    group_name: String,
    used: bool,
    expired: bool,
    revoked: bool,
}

impl LinkRow {
    fn state(&self) -> LinkState {
        if self.revoked {
            LinkState::Revoked
        } else if self.used {
            LinkState::Used
        } else if self.expired {
            LinkState::Expired
        } else {
            LinkState::Valid
        }
    }
}

/// What a link leads to, without using it.
pub async fn peek(
    pool: &PgPool,
    token: &str,
) -> Result<(LinkState, Option<(Uuid, String)>), sqlx::Error> {
    let row: Option<LinkRow> = sqlx::query_as(
        "SELECT i.group_id, g.name AS group_name, i.used_at IS NOT NULL AS used, \
                i.expires_at <= now() AS expired, i.revoked_at IS NOT NULL AS revoked \
         FROM invites i JOIN groups g ON g.id = i.group_id WHERE i.token_hash = $1",
    )
    .bind(hash(token))
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some(row) => (row.state(), Some((row.group_id, row.group_name))),
        None => (LinkState::Unknown, None),
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    Joined(Uuid),
    AlreadyMember(Uuid),
    Refused(LinkState),
}

/// Uses a link: the account joins as an admin and the link stops working, atomically, so
/// two people racing for one link cannot both get in.
pub async fn accept(pool: &PgPool, token: &str, account: Uuid) -> Result<Accepted, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<(Uuid, LinkRow)> = sqlx::query_as::<_, (Uuid, Uuid, String, bool, bool, bool)>(
        "SELECT i.id, i.group_id, g.name, i.used_at IS NOT NULL, i.expires_at <= now(), i.revoked_at IS NOT NULL \
         FROM invites i JOIN groups g ON g.id = i.group_id WHERE i.token_hash = $1 FOR UPDATE OF i",
    )
    .bind(hash(token))
    .fetch_optional(&mut *tx)
    .await?
    .map(|(id, group_id, group_name, used, expired, revoked)| {
        (
            id,
            LinkRow {
                group_id,
                group_name,
                used,
                expired,
                revoked,
            },
        )
    });
    let Some((invite_id, link)) = row else {
        return Ok(Accepted::Refused(LinkState::Unknown));
    };
    let already: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM group_members WHERE group_id = $1 AND account_id = $2)",
    )
    .bind(link.group_id)
    .bind(account)
    .fetch_one(&mut *tx)
    .await?;
    if already {
        return Ok(Accepted::AlreadyMember(link.group_id));
    }
    if link.state() != LinkState::Valid {
        return Ok(Accepted::Refused(link.state()));
    }
    sqlx::query("INSERT INTO group_members (group_id, account_id, role) VALUES ($1, $2, 'admin')")
        .bind(link.group_id)
        .bind(account)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE invites SET used_at = now(), used_by = $2 WHERE id = $1")
        .bind(invite_id)
        .bind(account)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Accepted::Joined(link.group_id))
}
