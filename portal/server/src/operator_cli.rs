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
    let database = Database::open(config).await?;
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
