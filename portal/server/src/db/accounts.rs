//! Accounts: people who sign in to the portal.

use sqlx::{FromRow, PgPool};
use uuid::Uuid;

#[derive(Clone, Debug, FromRow)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub session_epoch: i32,
    pub is_operator: bool,
}

pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, password_hash, session_epoch, is_operator FROM accounts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, password_hash, session_epoch, is_operator FROM accounts WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Creates an account; `Ok(None)` when the address is already taken.
pub async fn create(
    pool: &PgPool,
    email: &str,
    password_hash: &str,
    is_operator: bool,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO accounts (id, email, password_hash, is_operator) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (email) DO NOTHING \
         RETURNING id, email, password_hash, session_epoch, is_operator",
    )
    .bind(Uuid::new_v4())
    .bind(email)
    .bind(password_hash)
    .bind(is_operator)
    .fetch_optional(pool)
    .await
}

/// Sets a new password and ends every session made with the old one; returns the new epoch.
pub async fn change_password(
    pool: &PgPool,
    id: Uuid,
    password_hash: &str,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE accounts SET password_hash = $2, session_epoch = session_epoch + 1 \
         WHERE id = $1 RETURNING session_epoch",
    )
    .bind(id)
    .bind(password_hash)
    .fetch_one(pool)
    .await
}

pub async fn set_operator(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE accounts SET is_operator = TRUE WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Why an account cannot be deleted yet.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteBlocked {
    /// The person is the only owner of these groups, which have other members.
    SoleOwner(Vec<String>),
}

/// Deletes the account and everything that is only theirs: memberships, and groups in which
/// they are the only member (with those groups' relays and invites). Groups that other
/// people share must get another owner first.
pub async fn delete(pool: &PgPool, id: Uuid) -> Result<Result<(), DeleteBlocked>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Lock this person's memberships so a concurrent invite acceptance cannot slip in.
    let blocking: Vec<String> = sqlx::query_scalar(
        "SELECT g.name FROM groups g JOIN group_members m ON m.group_id = g.id \
         WHERE m.account_id = $1 AND m.role = 'owner' \
           AND NOT EXISTS (SELECT 1 FROM group_members o WHERE o.group_id = g.id \
                           AND o.account_id <> $1 AND o.role = 'owner') \
           AND EXISTS (SELECT 1 FROM group_members o WHERE o.group_id = g.id AND o.account_id <> $1) \
         ORDER BY g.name FOR UPDATE OF g",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    if !blocking.is_empty() {
        return Ok(Err(DeleteBlocked::SoleOwner(blocking)));
    }
    sqlx::query(
        "DELETE FROM groups g WHERE EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.id AND m.account_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM group_members o WHERE o.group_id = g.id AND o.account_id <> $1)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM auth_attempts WHERE email = (SELECT email FROM accounts WHERE id = $1)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Ok(()))
}
