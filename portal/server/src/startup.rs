//! Bringing the portal up and down: data directory, database, listener, signals.
//!
//! Every way start-up can fail ends in one [`StartupError`] whose message says what is
//! wrong and what to do; `main` prints it as a single line.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use leptos::prelude::LeptosOptions;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_sessions_sqlx_store::PostgresStore;

use crate::{
    config::Config,
    data_dir::{DataDir, DataDirError},
    db::{self, DbError},
    embedded_pg::{EmbeddedPgError, EmbeddedPostgres},
    router, AppState, Assets, Settings,
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    EmbeddedPostgres(#[from] EmbeddedPgError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error("preparing the session store failed: {0}")]
    Sessions(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("serving HTTP failed: {0}")]
    Serve(io::Error),
    #[error(transparent)]
    Images(#[from] crate::images::ImagesError),
    #[error("the probe CA file {0}")]
    ProbeCa(String),
    #[error("DNS provider settings: {0}")]
    DnsProviders(String),
    #[error("the release public key {0}")]
    ReleaseKey(String),
    #[error(
        "a running portal owns the private database in {}; stop it for this command, or run the portal with DATABASE_URL so that commands can run beside it",
        .0.display()
    )]
    PrivateDatabaseInUse(std::path::PathBuf),
}

/// The database the portal works on, and what must stay alive while it is used.
pub struct Database {
    pub pool: PgPool,
    embedded: Option<EmbeddedPostgres>,
    data_dir: DataDir,
}

impl Database {
    /// Opens the data directory and the database (starting the private PostgreSQL when
    /// no DATABASE_URL is given), and brings the schema up to date.
    pub async fn open(config: &Config) -> Result<Database, StartupError> {
        Database::open_with(config, DataDir::open(&config.data_dir())?).await
    }

    /// As [`Database::open`] for an operator command: with an external database
    /// (DATABASE_URL) it runs beside a running portal; the private database has one owner,
    /// so then the portal must be stopped first, which the error says.
    pub async fn open_for_command(config: &Config) -> Result<Database, StartupError> {
        let data_dir = if config.database_url.is_some() {
            DataDir::open_shared(&config.data_dir())?
        } else {
            DataDir::open(&config.data_dir()).map_err(|err| match err {
                DataDirError::InUse { path } => StartupError::PrivateDatabaseInUse(path),
                other => other.into(),
            })?
        };
        Database::open_with(config, data_dir).await
    }

    async fn open_with(config: &Config, data_dir: DataDir) -> Result<Database, StartupError> {
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
                embedded = Some(postgres);
                (
                    options,
                    "the private PostgreSQL in the data directory".to_string(),
                )
            }
        };
        match db::connect(options, &target).await {
            Ok(pool) => Ok(Database {
                pool,
                embedded,
                data_dir,
            }),
            Err(err) => {
                if let Some(postgres) = embedded {
                    postgres.stop().await;
                }
                Err(err.into())
            }
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// Closes every connection, then stops the private PostgreSQL if there is one.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.pool.close()).await;
        if let Some(postgres) = self.embedded {
            postgres.stop().await;
        }
    }
}

/// Runs the portal until SIGTERM or SIGINT, then shuts down in order: stop taking
/// requests, finish those in flight, close the pool, stop the private database.
pub async fn run(config: Config) -> Result<(), StartupError> {
    // Base images first: a corrupt one stops the start before anything else runs.
    let images = load_images(&config).await?;
    let database = Database::open(&config).await?;
    let keyring = match crate::secrets::load(config.secret_keys.as_deref(), database.data_dir()) {
        Ok(keyring) => keyring,
        Err(err) => {
            database.close().await;
            return Err(err.into());
        }
    };
    let result = serve(&config, database.pool.clone(), keyring, images).await;
    database.close().await;
    result
}

async fn serve(
    config: &Config,
    pool: PgPool,
    keyring: chatmail_dns_providers::credentials::Keyring,
    images: crate::images::Images,
) -> Result<(), StartupError> {
    let sessions = PostgresStore::new(pool.clone());
    sessions
        .migrate()
        .await
        .map_err(|err| StartupError::Sessions(err.to_string()))?;
    // Expired sessions are removed in the background, hourly.
    let cleanup = tokio::spawn({
        let sessions = sessions.clone();
        async move {
            use tower_sessions::ExpiredDeletion;
            let _ = sessions
                .continuously_delete_expired(Duration::from_secs(3600))
                .await;
        }
    });

    let keyring = Arc::new(keyring);
    let jobs_wake = Arc::new(tokio::sync::Notify::new());
    let dns_providers = Arc::new(
        crate::dns_providers::Providers::new(&config.dns_providers, &config.base_url())
            .map_err(StartupError::DnsProviders)?,
    );
    let jobs = tokio::spawn(crate::dns_apply::run_jobs(
        pool.clone(),
        keyring.clone(),
        dns_providers.clone(),
        jobs_wake.clone(),
    ));
    let assets = Assets::load(&config.site_root());
    let leptos_options = LeptosOptions::builder()
        .output_name("portal")
        .site_addr(config.listen)
        .site_root(config.site_root().to_string_lossy().to_string())
        .build();
    let probes = probe_settings(config)?;
    if let (Some(directory), Some(caa_issuer)) =
        (&config.relay_acme_directory, &config.relay_acme_caa_issuer)
    {
        crate::relay_config::set_operator_acme(crate::relay_config::OperatorAcme {
            directory: directory.clone(),
            caa_issuer: caa_issuer.clone(),
        });
    }
    let state = AppState {
        leptos_options,
        pool,
        assets,
        keyring,
        jobs_wake,
        dns_providers,
        images,
        settings: Arc::new(Settings {
            base_url: config.base_url(),
            behind_proxy: config.behind_proxy,
            dns: crate::dns_status::DnsSettings::new(
                config.dns_resolver,
                config.dns_nameserver_port,
            ),
            probes,
            releases_dir: config.releases_dir(),
            update_source: update_source(config)?,
        }),
    };
    let rechecks = tokio::spawn(crate::go_live::run_rechecks(
        state.clone(),
        Duration::from_secs(config.recheck_interval_secs),
    ));
    let app = router(state, sessions);

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
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    tracing::info!("shutting down");
    cleanup.abort();
    jobs.abort();
    rechecks.abort();
    served.map_err(StartupError::Serve)
}

/// Loads and verifies the base images (hashing each in full) on a blocking thread.
pub async fn load_images(config: &Config) -> Result<crate::images::Images, StartupError> {
    let Some(dir) = config.images_dir.clone() else {
        return Ok(crate::images::Images::none());
    };
    let limits = crate::images::Limits {
        concurrent: config.max_downloads.max(1),
        ..Default::default()
    };
    tokio::task::spawn_blocking(move || crate::images::Images::load(&dir, limits))
        .await
        .map_err(|err| StartupError::Serve(io::Error::other(err.to_string())))?
        .map_err(StartupError::from)
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

/// The probes' trust anchors (the system's plus `--probe-ca-file`) and port map.
fn probe_settings(config: &Config) -> Result<crate::probes::ProbeSettings, StartupError> {
    let mut extra = Vec::new();
    if let Some(path) = &config.probe_ca_file {
        let pem = std::fs::read(path).map_err(|err| {
            StartupError::ProbeCa(format!("{} cannot be read: {err}", path.display()))
        })?;
        for cert in
            <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
                &pem,
            )
        {
            extra.push(cert.map_err(|err| {
                StartupError::ProbeCa(format!("{} is not PEM certificates: {err}", path.display()))
            })?);
        }
        if extra.is_empty() {
            return Err(StartupError::ProbeCa(format!(
                "{} holds no certificate",
                path.display()
            )));
        }
    }
    let mut settings = crate::probes::ProbeSettings::new(&extra, config.probe_port_map.0.clone());
    settings.enabled = config.device_probes;
    settings.blocklist_resolver = config.blocklist_resolver;
    Ok(settings)
}

/// The release key offered to relays: `--release-public-key`, else the key file that
/// `release-key` wrote into the data directory, else none.
fn update_source(config: &Config) -> Result<Option<crate::UpdateSource>, StartupError> {
    use chatmail_shared::{signing_key::UpdateSigningKey, web_url::HttpsUrl};
    let text = match &config.release_public_key {
        Some(text) => text.clone(),
        None => {
            let file = crate::updates::keys::default_dir(&config.data_dir())
                .join(crate::updates::keys::PUBLIC_FILE);
            match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(_) => return Ok(None),
            }
        }
    };
    let key = UpdateSigningKey::parse(&text)
        .map_err(|err| StartupError::ReleaseKey(format!("{text:?}: {err}")))?;
    match HttpsUrl::parse(&format!("{}/", config.base_url())) {
        Ok(portal_url) => Ok(Some(crate::UpdateSource { portal_url, key })),
        Err(err) => {
            tracing::warn!(
                "relays are not offered update checks: this portal's URL {} {err}",
                config.base_url()
            );
            Ok(None)
        }
    }
}
