//! Groups and their members. Every query that reads or changes a group takes the acting
//! account and checks membership in the same statement, so no caller can forget it.

use sqlx::{FromRow, PgPool};
use uuid::Uuid;

#[derive(Clone, Debug, FromRow)]
pub struct Membership {
    pub group_id: Uuid,
    pub name: String,
    pub role: String,
    pub disabled_reason: Option<String>,
}

#[derive(Clone, Debug, FromRow)]
pub struct GroupRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub disabled_reason: Option<String>,
    pub mail_domain: Option<String>,
    pub completed_step: i16,
    /// `healthy` or `broken` once the relay was first ready (periodic re-checks).
    pub health: Option<String>,
}

#[derive(Clone, Debug, FromRow)]
pub struct MemberRow {
    pub account_id: Uuid,
    pub email: String,
    pub role: String,
    pub joined: String,
}

/// The acting account's membership in a group; `None` when not a member (or no such group).
pub async fn membership(
    pool: &PgPool,
    account: Uuid,
    group: Uuid,
) -> Result<Option<Membership>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.id AS group_id, g.name, m.role, g.disabled_reason \
         FROM groups g JOIN group_members m ON m.group_id = g.id \
         WHERE g.id = $1 AND m.account_id = $2",
    )
    .bind(group)
    .bind(account)
    .fetch_optional(pool)
    .await
}

pub async fn of_account(pool: &PgPool, account: Uuid) -> Result<Vec<GroupRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.id, g.name, m.role, g.disabled_reason, r.mail_domain, coalesce(r.completed_step, 0::smallint) AS completed_step, r.health \
         FROM groups g JOIN group_members m ON m.group_id = g.id LEFT JOIN relays r ON r.group_id = g.id \
         WHERE m.account_id = $1 ORDER BY g.created_at",
    )
    .bind(account)
    .fetch_all(pool)
    .await
}

pub async fn members(
    pool: &PgPool,
    account: Uuid,
    group: Uuid,
) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.id AS account_id, a.email, m.role, to_char(m.joined_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS joined \
         FROM group_members m JOIN accounts a ON a.id = m.account_id \
         WHERE m.group_id = $1 \
           AND EXISTS (SELECT 1 FROM group_members me WHERE me.group_id = $1 AND me.account_id = $2) \
         ORDER BY m.role DESC, m.joined_at",
    )
    .bind(group)
    .bind(account)
    .fetch_all(pool)
    .await
}

#[derive(Debug, PartialEq, Eq)]
pub enum CreateRefused {
    /// The person already owns as many groups as the operator allows.
    Limit(i32),
}

/// Creates a group owned by `account`, with its (empty) relay, unless the quota is reached.
pub async fn create(
    pool: &PgPool,
    account: Uuid,
    name: &str,
) -> Result<Result<Uuid, CreateRefused>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Serialise group creation per account, so two parallel submissions cannot both pass the quota.
    sqlx::query("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(account)
        .execute(&mut *tx)
        .await?;
    let (owned, limit): (i64, i32) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM group_members WHERE account_id = $1 AND role = 'owner'), \
                (SELECT max_groups_per_account FROM operator_settings)",
    )
    .bind(account)
    .fetch_one(&mut *tx)
    .await?;
    if owned >= i64::from(limit) {
        return Ok(Err(CreateRefused::Limit(limit)));
    }
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO groups (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO group_members (group_id, account_id, role) VALUES ($1, $2, 'owner')")
        .bind(id)
        .bind(account)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO relays (group_id) VALUES ($1)")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Ok(id))
}

#[derive(Debug, PartialEq, Eq)]
pub enum MemberChangeRefused {
    NotAllowed,
    NoSuchMember,
    LastOwner,
}

/// Removes `target` from the group. Owners may remove anyone; admins may remove admins
/// and themselves. The last owner can never be removed.
pub async fn remove_member(
    pool: &PgPool,
    actor: Uuid,
    group: Uuid,
    target: Uuid,
) -> Result<Result<(), MemberChangeRefused>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let roles: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT account_id, role FROM group_members WHERE group_id = $1 FOR UPDATE")
            .bind(group)
            .fetch_all(&mut *tx)
            .await?;
    let role_of = |who: Uuid| {
        roles
            .iter()
            .find(|(id, _)| *id == who)
            .map(|(_, r)| r.as_str())
    };
    let (Some(actor_role), target_role) = (role_of(actor), role_of(target)) else {
        return Ok(Err(MemberChangeRefused::NotAllowed));
    };
    let Some(target_role) = target_role else {
        return Ok(Err(MemberChangeRefused::NoSuchMember));
    };
    if actor != target && actor_role != "owner" && target_role == "owner" {
        return Ok(Err(MemberChangeRefused::NotAllowed));
    }
    let owners = roles.iter().filter(|(_, r)| r == "owner").count();
    if target_role == "owner" && owners == 1 {
        return Ok(Err(MemberChangeRefused::LastOwner));
    }
    sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND account_id = $2")
        .bind(group)
        .bind(target)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Changes a member's role; only owners may, and the last owner stays an owner.
pub async fn set_role(
    pool: &PgPool,
    actor: Uuid,
    group: Uuid,
    target: Uuid,
    role: &str,
) -> Result<Result<(), MemberChangeRefused>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let roles: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT account_id, role FROM group_members WHERE group_id = $1 FOR UPDATE")
            .bind(group)
            .fetch_all(&mut *tx)
            .await?;
    let role_of = |who: Uuid| {
        roles
            .iter()
            .find(|(id, _)| *id == who)
            .map(|(_, r)| r.as_str())
    };
    if role_of(actor) != Some("owner") {
        return Ok(Err(MemberChangeRefused::NotAllowed));
    }
    let Some(current) = role_of(target) else {
        return Ok(Err(MemberChangeRefused::NoSuchMember));
    };
    let owners = roles.iter().filter(|(_, r)| r == "owner").count();
    if current == "owner" && role != "owner" && owners == 1 {
        return Ok(Err(MemberChangeRefused::LastOwner));
    }
    sqlx::query("UPDATE group_members SET role = $3 WHERE group_id = $1 AND account_id = $2")
        .bind(group)
        .bind(target)
        .bind(role)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Deletes a group with its relay and invites; only an owner may.
pub async fn delete(pool: &PgPool, actor: Uuid, group: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM groups WHERE id = $1 AND EXISTS \
         (SELECT 1 FROM group_members WHERE group_id = $1 AND account_id = $2 AND role = 'owner')",
    )
    .bind(group)
    .bind(actor)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Operator action: disable (with a reason) or enable a group.
pub async fn set_disabled(
    pool: &PgPool,
    group: Uuid,
    reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE groups SET disabled_reason = $2, disabled_at = CASE WHEN $2::text IS NULL THEN NULL ELSE now() END \
         WHERE id = $1",
    )
    .bind(group)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}
