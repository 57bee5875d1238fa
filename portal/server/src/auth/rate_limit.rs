//! Limits on guessing: sign-in attempts per account and per network address, and sign-ups
//! per address. Attempts are kept in PostgreSQL so every portal process sees them.

use std::net::IpAddr;

use sqlx::PgPool;

/// Failed sign-ins for one account (since its last successful one) before it is locked
/// for [`WINDOW_MINUTES`].
pub const ACCOUNT_FAILURES: i64 = 5;
/// Failed sign-ins from one address (any account) before that address must wait.
pub const ADDRESS_FAILURES: i64 = 30;
/// Sign-ups from one address per window.
pub const ADDRESS_SIGN_UPS: i64 = 10;
pub const WINDOW_MINUTES: i64 = 15;

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Locked; the number of minutes until the oldest counted attempt leaves the window.
    AccountLocked {
        minutes: i64,
    },
    AddressLimited {
        minutes: i64,
    },
}

pub async fn check_sign_in(pool: &PgPool, email: &str, ip: IpAddr) -> Result<Verdict, sqlx::Error> {
    let (account_failures, account_wait): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM min(at) + make_interval(mins => $2) - now())::float8 \
         FROM auth_attempts \
         WHERE kind = 'sign_in' AND email = $1 AND NOT succeeded \
           AND at > now() - make_interval(mins => $2) \
           AND at > coalesce((SELECT max(at) FROM auth_attempts \
                              WHERE kind = 'sign_in' AND email = $1 AND succeeded), '-infinity')",
    )
    .bind(email)
    .bind(WINDOW_MINUTES as i32)
    .fetch_one(pool)
    .await?;
    if account_failures >= ACCOUNT_FAILURES {
        return Ok(Verdict::AccountLocked {
            minutes: minutes(account_wait),
        });
    }
    let (address_failures, address_wait) = count_for_address(pool, "sign_in", ip, true).await?;
    if address_failures >= ADDRESS_FAILURES {
        return Ok(Verdict::AddressLimited {
            minutes: minutes(address_wait),
        });
    }
    Ok(Verdict::Allowed)
}

pub async fn check_sign_up(pool: &PgPool, ip: IpAddr) -> Result<Verdict, sqlx::Error> {
    let (sign_ups, wait) = count_for_address(pool, "sign_up", ip, false).await?;
    if sign_ups >= ADDRESS_SIGN_UPS {
        return Ok(Verdict::AddressLimited {
            minutes: minutes(wait),
        });
    }
    Ok(Verdict::Allowed)
}

async fn count_for_address(
    pool: &PgPool,
    kind: &str,
    ip: IpAddr,
    failures_only: bool,
) -> Result<(i64, Option<f64>), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), extract(epoch FROM min(at) + make_interval(mins => $3) - now())::float8 \
         FROM auth_attempts \
         WHERE kind = $1 AND ip = $2::inet AND (NOT $4 OR NOT succeeded) \
           AND at > now() - make_interval(mins => $3)",
    )
    .bind(kind)
    .bind(ip.to_string())
    .bind(WINDOW_MINUTES as i32)
    .bind(failures_only)
    .fetch_one(pool)
    .await
}

pub async fn record(
    pool: &PgPool,
    kind: &str,
    email: Option<&str>,
    ip: IpAddr,
    succeeded: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth_attempts (kind, email, ip, succeeded) VALUES ($1, $2, $3::inet, $4)",
    )
    .bind(kind)
    .bind(email)
    .bind(ip.to_string())
    .bind(succeeded)
    .execute(pool)
    .await?;
    // Old attempts count for nothing; drop them now and then.
    if rand::random::<u8>() == 0 {
        sqlx::query("DELETE FROM auth_attempts WHERE at < now() - interval '1 day'")
            .execute(pool)
            .await?;
    }
    Ok(())
}

fn minutes(seconds: Option<f64>) -> i64 {
    ((seconds.unwrap_or(60.0).max(1.0)) / 60.0).ceil() as i64
}
