//! The connection pool, the schema migrations, and the database facts `/healthz` reports.
//! One submodule per table family holds its queries.

pub mod accounts;
pub mod audit;
pub mod dns;
pub mod groups;
pub mod invites;
pub mod operator;
pub mod probes;
pub mod relays;
pub mod releases;

use std::time::Duration;

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Connection, PgPool,
};

/// The schema, from the workspace's `migrations/` directory, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot reach the database at {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error("updating the database schema failed: {0}")]
    Migrate(String),
}

/// Parses a `DATABASE_URL`, explaining what is wrong with it.
pub fn parse_url(url: &str) -> Result<PgConnectOptions, DbError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("postgres" | "postgresql")) {
        return Err(DbError::BadUrl(
            "it must start with postgres:// or postgresql://".to_string(),
        ));
    }
    url.parse::<PgConnectOptions>()
        .map_err(|err| DbError::BadUrl(one_line(&err.to_string())))
}

/// Opens a pool and brings the schema up to date.
pub async fn connect(options: PgConnectOptions, target: &str) -> Result<PgPool, DbError> {
    // One direct attempt first: a pool only reports "timed out", while a single
    // connection says why (refused, unknown host, wrong password).
    let unreachable = |reason: String| DbError::Unreachable {
        target: target.to_string(),
        reason,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        Ok(Err(err)) => return Err(unreachable(describe(&err))),
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {} seconds",
                CONNECT_TIMEOUT.as_secs()
            )))
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|err| DbError::Unreachable {
            target: target.to_string(),
            reason: describe(&err),
        })?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|err| DbError::Migrate(one_line(&err.to_string())))?;
    // The first start stamps the installation; later starts find the same row.
    sqlx::query("INSERT INTO portal_installation (id) VALUES (TRUE) ON CONFLICT (id) DO NOTHING")
        .execute(&pool)
        .await
        .map_err(|err| DbError::Migrate(one_line(&err.to_string())))?;
    Ok(pool)
}

/// What `/healthz` says about the database.
#[derive(Debug, serde::Serialize)]
pub struct DbHealth {
    pub reachable: bool,
    /// The newest migration applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
    /// When this installation's database was first set up (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed_at: Option<String>,
}

pub async fn health(pool: &PgPool) -> DbHealth {
    let query = sqlx::query_as::<_, (Option<i64>, String)>(
        "SELECT (SELECT max(version) FROM _sqlx_migrations WHERE success), \
                to_char(installed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
         FROM portal_installation",
    )
    .fetch_one(pool);
    match tokio::time::timeout(Duration::from_secs(3), query).await {
        Ok(Ok((schema_version, installed_at))) => DbHealth {
            reachable: true,
            schema_version,
            installed_at: Some(installed_at),
        },
        _ => DbHealth {
            reachable: false,
            schema_version: None,
            installed_at: None,
        },
    }
}

/// A connection error in words, without sqlx's nesting or a password.
fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(io) => one_line(&io.to_string()),
        sqlx::Error::PoolTimedOut => "no answer within 10 seconds".to_string(),
        sqlx::Error::Database(db) => one_line(db.message()),
        other => one_line(&other.to_string()),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where a URL points, for messages: scheme, host, port and database, never the password.
pub fn describe_target(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or("postgres");
    match options.get_socket() {
        Some(socket) => format!("{} (database {database})", socket.display()),
        None => format!(
            "{}:{} (database {database})",
            options.get_host(),
            options.get_port()
        ),
    }
}
