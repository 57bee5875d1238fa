//! DNS jobs for a Domain Connect grant: the provider's API applies the relay's template
//! with the variables of the records that are ready. The zone cannot be read through
//! Domain Connect, so the dry run lists every ready record as one to add (applying the
//! template again is harmless: the provider sets the same records), and removal is left
//! to the provider's own pages.

use std::time::{SystemTime, UNIX_EPOCH};

use chatmail_dns_providers::credentials::Keyring;
use chatmail_dns_providers::domain_connect::{self, DcError, DcTokens, TemplateVars};
use chatmail_dns_providers::records::ZoneContents;
use chatmail_dns_providers::{diff, Diff, ProviderError};
use chatmail_shared::{DnsPlan, MailDomain};
use sqlx::PgPool;

use crate::db::{self, dns::Connection, relays::RelayRow};
use crate::dns_apply::ApplyError;
use crate::dns_providers::Providers;
use crate::relay_config;

/// The connection kind of a Domain Connect grant.
pub const KIND: &str = "domain_connect";

/// Refresh an access token that expires within this many seconds.
const REFRESH_AHEAD_SECS: u64 = 120;

fn plan_of(relay: &RelayRow) -> Result<DnsPlan, ApplyError> {
    let domain = relay
        .mail_domain
        .as_deref()
        .and_then(|d| MailDomain::parse(d).ok())
        .ok_or(ApplyError::NoDomain)?;
    let config = relay_config::load_or_new(relay, domain);
    Ok(DnsPlan::new(&config, &relay.device_facts()))
}

/// The dry run: every ready record in the zone, as an addition.
pub fn preview(relay: &RelayRow, zone: &str, removing: bool) -> Result<Diff, ApplyError> {
    if removing {
        return Err(cannot_remove());
    }
    let wanted: Vec<_> = plan_of(relay)?
        .ready_records()
        .into_iter()
        .filter(|record| chatmail_dns_providers::provider::in_zone(&record.name, zone))
        .collect();
    Ok(diff(&wanted, &ZoneContents::default(), &[]))
}

fn cannot_remove() -> ApplyError {
    ApplyError::Provider(ProviderError::Rejected(
        "Domain Connect cannot remove records; remove them on your DNS provider's pages".into(),
    ))
}

/// How a Domain Connect failure reaches the job and the person.
fn provider_error(err: DcError) -> ProviderError {
    match err {
        DcError::Unauthorized(_) => ProviderError::WrongCredentials {
            advice: Some(err.to_string()),
        },
        DcError::Unreachable(reason) => ProviderError::Unreachable(reason),
        other => ProviderError::Rejected(other.to_string()),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The grant's tokens, refreshed first when they expire soon. The refresh runs under
/// the connection's row lock from the tokens as stored now, so two runs never spend the
/// same refresh token.
async fn fresh_tokens(
    pool: &PgPool,
    keyring: &Keyring,
    providers: &Providers,
    connection: &Connection,
) -> Result<DcTokens, ApplyError> {
    let context = connection.id.to_string();
    let mut tx = pool.begin().await?;
    let sealed: String = sqlx::query_scalar(
        "SELECT sealed_credentials FROM dns_connections WHERE id = $1 FOR UPDATE",
    )
    .bind(connection.id)
    .fetch_one(&mut *tx)
    .await?;
    let tokens: DcTokens = keyring
        .open_value(&sealed, &context)
        .map_err(|err| ApplyError::Credentials(err.to_string()))?;
    if tokens
        .expires_at
        .is_none_or(|at| at > now() + REFRESH_AHEAD_SECS)
    {
        tx.commit().await?;
        return Ok(tokens);
    }
    let Some(client) = providers.domain_connect_client(&tokens.dns_provider_id) else {
        return Err(ApplyError::Provider(ProviderError::WrongCredentials {
            advice: Some(
                "Domain Connect with this provider is no longer set up on this portal. Connect \
                 your DNS provider again in step 2."
                    .into(),
            ),
        }));
    };
    let refreshed = client
        .refresh(&tokens)
        .await
        .map_err(|err| ApplyError::Provider(provider_error(err)))?;
    let sealed = keyring
        .seal_value(&refreshed, &context)
        .map_err(|err| ApplyError::Credentials(err.to_string()))?;
    sqlx::query(
        "UPDATE dns_connections SET sealed_credentials = $2, updated_at = now() WHERE id = $1",
    )
    .bind(connection.id)
    .bind(&sealed)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(refreshed)
}

/// One run of a job: applies the template with the ready records' variables. `force`
/// (the person confirmed replacing records in the way) is passed on to the provider.
pub async fn run(
    pool: &PgPool,
    keyring: &Keyring,
    providers: &Providers,
    relay: &RelayRow,
    connection: &Connection,
    action: &str,
    force: bool,
) -> Result<String, ApplyError> {
    if action == "remove" {
        return Err(cannot_remove());
    }
    let tokens = fresh_tokens(pool, keyring, providers, connection).await?;
    let client = providers
        .domain_connect_client(&tokens.dns_provider_id)
        .ok_or_else(|| {
            ApplyError::Provider(ProviderError::WrongCredentials {
                advice: Some(
                    "Domain Connect with this provider is no longer set up on this portal.".into(),
                ),
            })
        })?;
    let (host, vars) = TemplateVars::from_plan(&plan_of(relay)?, &connection.zone)
        .map_err(|err| ApplyError::Provider(provider_error(err)))?;
    if host != tokens.host {
        return Err(ApplyError::Provider(ProviderError::WrongCredentials {
            advice: Some(format!(
                "The Domain Connect access was granted for another name ({}). Connect your DNS \
                 provider again in step 2.",
                if tokens.host.is_empty() {
                    tokens.domain.clone()
                } else {
                    format!("{}.{}", tokens.host, tokens.domain)
                }
            )),
        }));
    }
    if vars.groups.is_empty() {
        return Ok("nothing ready to write yet".into());
    }
    client
        .apply(
            &tokens,
            providers.domain_connect_provider_id(),
            domain_connect::SERVICE_ID,
            &vars,
            force,
        )
        .await
        .map_err(|err| ApplyError::Provider(provider_error(err)))?;
    // The grant works: any earlier problem is solved.
    db::dns::set_problem(pool, connection.id, None).await?;
    Ok(format!(
        "applied through Domain Connect ({})",
        vars.groups.join(", ")
    ))
}
