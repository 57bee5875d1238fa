//! Bringing the portal up and down: data directory, database, listener, signals.
//!
//! Every way start-up can fail ends in one [`StartupError`] whose message says what is
//! wrong and what to do; `main` prints it as a single line.

use std::{io, net::SocketAddr, time::Duration};

use leptos::prelude::LeptosOptions;
use tokio::net::TcpListener;

use crate::{
    config::Config,
    data_dir::{DataDir, DataDirError},
    db::{self, DbError},
    embedded_pg::{EmbeddedPgError, EmbeddedPostgres},
    router, AppState, Assets,
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    EmbeddedPostgres(#[from] EmbeddedPgError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("serving HTTP failed: {0}")]
    Serve(io::Error),
}

/// Runs the portal until SIGTERM or SIGINT, then shuts down in order: stop taking
/// requests, finish those in flight, close the pool, stop the private database.
pub async fn run(config: Config) -> Result<(), StartupError> {
    let data_dir = DataDir::open(&config.data_dir())?;
    tracing::info!(data_dir = %data_dir.path().display(), "data directory ready");

    let mut embedded = None;
    let (options, target) = match &config.database_url {
        Some(url) => {
            let options = db::parse_url(url)?;
            let target = db::describe_target(&options);
            (options, target)
        }
        None => {
            let postgres = EmbeddedPostgres::start(&data_dir.postgres_dir()).await?;
            tracing::info!(
                version = %postgres.programs.major,
                created = postgres.created,
                "private PostgreSQL running"
            );
            let options = postgres.connect_options();
            let target = "the private PostgreSQL in the data directory".to_string();
            embedded = Some(postgres);
            (options, target)
        }
    };

    let result = serve(&config, options, &target).await;
    if let Some(postgres) = embedded {
        postgres.stop().await;
    }
    drop(data_dir);
    result
}

async fn serve(
    config: &Config,
    options: sqlx::postgres::PgConnectOptions,
    target: &str,
) -> Result<(), StartupError> {
    let pool = db::connect(options, target).await?;
    let assets = Assets::load(&config.site_root());
    let leptos_options = LeptosOptions::builder()
        .output_name("portal")
        .site_addr(config.listen)
        .site_root(config.site_root().to_string_lossy().to_string())
        .build();
    let app = router(AppState {
        leptos_options,
        pool: pool.clone(),
        assets,
    });

    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartupError::Listen {
                addr: config.listen,
                source,
            })?;
    let local = listener.local_addr().map_err(StartupError::Serve)?;
    tracing::info!(url = %config.base_url(), listen = %local, "portal ready");
    // The one line a person running the portal by hand needs, on standard output.
    println!("Portal ready: open {}/ in your browser", config.base_url());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    tracing::info!("shutting down");
    // Give in-flight queries a moment, then close every connection before the database stops.
    let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
    served.map_err(StartupError::Serve)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
    }
}
