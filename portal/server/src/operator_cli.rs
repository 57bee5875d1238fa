//! `chatmail-portal create-operator --email …`: the first community operator is made on
//! the command line, by whoever runs the portal.

use crate::{
    auth::{password, session::random_token},
    config::Config,
    db,
    startup::{Database, StartupError},
};

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Key(#[from] crate::updates::keys::KeyError),
    #[error(transparent)]
    Publish(#[from] crate::updates::publish::PublishError),
    #[error("{0}")]
    Usage(String),
    #[error("version {0} was published on this channel for this target before")]
    AlreadyPublished(String),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0} is not an e-mail address")]
    BadEmail(String),
    #[error("PORTAL_OPERATOR_PASSWORD: {0}")]
    BadPassword(&'static str),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Creates or promotes the operator account; returns what to tell the person.
pub async fn create_operator(config: &Config, email: &str) -> Result<String, OperatorError> {
    let email = email.trim().to_lowercase();
    if chatmail_shared::EmailAddress::parse(&email).is_err() || email.len() > 254 {
        return Err(OperatorError::BadEmail(email));
    }
    let database = Database::open_for_command(config).await?;
    let result = async {
        if let Some(account) = db::accounts::by_email(&database.pool, &email).await? {
            db::accounts::set_operator(&database.pool, account.id).await?;
            db::audit::record(
                &database.pool,
                Some(account.id),
                None,
                "operator.granted",
                "command line",
                None,
            )
            .await;
            return Ok(format!("{email} is now a community operator."));
        }
        let (chosen, generated) = match std::env::var("PORTAL_OPERATOR_PASSWORD") {
            Ok(given) => {
                password::check_new(&given, &email).map_err(OperatorError::BadPassword)?;
                (given, false)
            }
            Err(_) => (random_token(), true),
        };
        let hash = password::hash(&chosen).await;
        let account = db::accounts::create(&database.pool, &email, &hash, true)
            .await?
            .expect("the address was free a moment ago");
        db::audit::record(
            &database.pool,
            Some(account.id),
            None,
            "operator.granted",
            "command line",
            None,
        )
        .await;
        Ok(if generated {
            format!("Created the operator account {email}. Its password, shown only now: {chosen}")
        } else {
            format!("Created the operator account {email}.")
        })
    }
    .await;
    database.close().await;
    result
}

/// `chatmail-portal release-key`: makes the release key pair; returns what to tell the
/// operator.
pub fn release_key(
    config: &Config,
    out: Option<&std::path::Path>,
) -> Result<String, OperatorError> {
    let dir = out
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| crate::updates::keys::default_dir(&config.data_dir()));
    let public = crate::updates::keys::generate(&dir)?;
    Ok(format!(
        "Made the release key pair in {dir}.\n\
         The secret key {secret} signs releases: keep it private and backed up; it is not in the database.\n\
         Public key (for updates.signing_public_key in relay configs):\n{public}",
        dir = dir.display(),
        secret = dir.join(crate::updates::keys::SECRET_FILE).display(),
    ))
}

/// `chatmail-portal publish-release`: cuts, signs and publishes a release.
pub async fn publish_release(
    config: &Config,
    channel: &str,
    target: &str,
    from: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<String, OperatorError> {
    use chatmail_shared::update_manifest::{Channel, UpdateTarget};
    let channel =
        Channel::parse(channel).map_err(|e| OperatorError::Usage(format!("--channel {e}")))?;
    let target =
        UpdateTarget::parse(target).map_err(|e| OperatorError::Usage(format!("--target {e}")))?;
    let images_dir = from
        .map(std::path::Path::to_path_buf)
        .or_else(|| config.images_dir.clone())
        .ok_or_else(|| {
            OperatorError::Usage("give --from <images dir> (or PORTAL_IMAGES_DIR)".into())
        })?;
    let key_file = key.map(std::path::Path::to_path_buf).unwrap_or_else(|| {
        crate::updates::keys::default_dir(&config.data_dir())
            .join(crate::updates::keys::SECRET_FILE)
    });
    let releases_dir = config.releases_dir();
    let database = Database::open_for_command(config).await?;
    let result = async {
        let current = db::releases::current(&database.pool, channel.id(), target.id()).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let published = tokio::task::spawn_blocking(move || {
            crate::updates::publish::prepare(
                &images_dir,
                channel,
                target,
                &key_file,
                &releases_dir,
                current.as_ref().map(|r| r.version.as_str()),
                now,
            )
        })
        .await
        .expect("publishing does not panic")?;
        let version = published.manifest.version.to_string();
        let stored = db::releases::insert(
            &database.pool,
            &db::releases::ReleaseRow {
                channel: channel.id().to_string(),
                target: target.id().to_string(),
                version: version.clone(),
                manifest: published.manifest_bytes.clone(),
                signature: published.signature.clone(),
            },
        )
        .await?;
        if !stored {
            return Err(OperatorError::AlreadyPublished(version));
        }
        db::audit::record(
            &database.pool,
            None,
            None,
            "release.published",
            &format!("{channel} {target} {version}"),
            None,
        )
        .await;
        let pieces = published
            .manifest
            .pieces
            .in_order()
            .iter()
            .map(|p| format!("{} {} bytes sha256 {}", p.name, p.size, p.sha256))
            .collect::<Vec<_>>()
            .join("\n  ");
        Ok(format!(
            "Published {version} on {channel} for {target}: {}/{}\n  {pieces}",
            config.base_url(),
            chatmail_shared::update_manifest::manifest_path(channel, target)
        ))
    }
    .await;
    database.close().await;
    result
}
