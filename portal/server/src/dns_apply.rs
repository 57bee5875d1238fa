//! Writing a relay's records to its DNS provider, as jobs in PostgreSQL.
//!
//! A job never replays a stored list of changes: every run reads the zone, computes the
//! diff against the plan and the portal's ownership records, and applies what is still
//! missing. That makes a job idempotent (running it twice changes nothing the second
//! time) and resumable (a run cut short by a crash, a dead DNS server or a killed portal
//! just runs again). Ownership is claimed before writing and settled after, so a crash in
//! between never leaves a record the portal wrote looking foreign.
//!
//! Every portal process runs one [`run_jobs`] loop; `FOR UPDATE SKIP LOCKED` hands each
//! job to one of them, and a running job whose heartbeat stops is taken over.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use chatmail_dns_providers::{
    credentials::{Credentials, Keyring},
    diff, Diff, DnsProvider, ProviderError,
};
use chatmail_shared::{DnsPlan, DnsRecord, MailDomain};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::{
    db::{self, dns::Connection, relays::RelayRow},
    dns_apply_domain_connect,
    dns_providers::Providers,
    relay_config,
};

/// A running job's heartbeat; another portal takes over after [`STALE_AFTER_SECS`] without.
const HEARTBEAT: Duration = Duration::from_secs(5);
pub const STALE_AFTER_SECS: i32 = 30;
/// How often an idle runner looks for due jobs (a local enqueue wakes it at once).
const POLL: Duration = Duration::from_secs(2);
/// After this many failed attempts a job stops retrying and reports the problem.
const MAX_ATTEMPTS: i32 = 12;

/// Why the relay's records cannot be compared or written right now.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Provider(#[from] ProviderError),
    #[error("the stored credentials cannot be opened ({0}); connect the DNS provider again")]
    Credentials(String),
    #[error("this relay has no DNS connection")]
    NoConnection,
    #[error("the relay has no name yet")]
    NoDomain,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl ApplyError {
    fn retry_delay(&self, attempt: u32) -> Option<Duration> {
        match self {
            ApplyError::Provider(err) => err.retry_delay(attempt),
            ApplyError::Database(_) => Some(chatmail_dns_providers::error::backoff(attempt)),
            _ => None,
        }
    }
}

/// What the portal would change in the relay's zone, read live from the provider.
pub struct Preview {
    pub connection: Connection,
    pub diff: Diff,
}

/// Opens the connection's credentials and makes its provider. Sign-in tokens that expire
/// soon are refreshed first and stored again, sealed; a refused refresh (access withdrawn
/// at the provider) is recorded as the connection's problem, so the wizard asks the person
/// to connect again.
pub async fn provider_for(
    pool: &PgPool,
    keyring: &Keyring,
    providers: &Providers,
    connection: &Connection,
) -> Result<Box<dyn DnsProvider>, ApplyError> {
    let context = connection.id.to_string();
    let mut credentials: Credentials = keyring
        .open(&connection.sealed_credentials, &context)
        .map_err(|err| ApplyError::Credentials(err.to_string()))?;
    if let Credentials::OAuth(tokens) = &credentials {
        let Some(client) = providers.oauth(tokens.provider) else {
            let err = ProviderError::WrongCredentials {
                advice: Some(format!(
                    "Signing in with {} is no longer set up on this portal. Connect your DNS \
                     provider again in step 2.",
                    tokens.provider.display_name()
                )),
            };
            return Err(noted(pool, connection, err).await);
        };
        // Providers rotate refresh tokens: two refreshes with the same one (the dry run on
        // a page and a job, or two portal processes) would make the second fail as if
        // access had been withdrawn. So refresh under the connection's row lock, with the
        // tokens as stored now (someone may just have refreshed them).
        let refreshed = async {
            let mut tx = pool.begin().await?;
            let sealed: String = sqlx::query_scalar(
                "SELECT sealed_credentials FROM dns_connections WHERE id = $1 FOR UPDATE",
            )
            .bind(connection.id)
            .fetch_one(&mut *tx)
            .await?;
            let current: Credentials = keyring
                .open(&sealed, &context)
                .map_err(|err| ApplyError::Credentials(err.to_string()))?;
            let Credentials::OAuth(current_tokens) = &current else {
                return Err(ApplyError::Credentials("the connection changed kind".into()));
            };
            let outcome = match client.fresh(current_tokens).await {
                Ok(None) => Ok(current.clone()),
                Ok(Some(new)) => {
                    let new = Credentials::OAuth(new);
                    let sealed = keyring
                        .seal(&new, &context)
                        .map_err(|err| ApplyError::Credentials(err.to_string()))?;
                    sqlx::query(
                        "UPDATE dns_connections SET sealed_credentials = $2, updated_at = now() WHERE id = $1",
                    )
                    .bind(connection.id)
                    .bind(&sealed)
                    .execute(&mut *tx)
                    .await?;
                    Ok(new)
                }
                Err(err) => Err(err),
            };
            tx.commit().await?;
            Ok::<_, ApplyError>(outcome)
        }
        .await?;
        match refreshed {
            Ok(fresh) => credentials = fresh,
            Err(err) => {
                let err = err.to_provider_error();
                return Err(if err.needs_person() {
                    noted(pool, connection, err).await
                } else {
                    err.into()
                });
            }
        }
    }
    Ok(providers.provider(&credentials)?)
}

/// Records a problem the person must solve on the connection, and passes it on.
async fn noted(pool: &PgPool, connection: &Connection, err: ProviderError) -> ApplyError {
    if let Err(db) = db::dns::set_problem(pool, connection.id, Some(&err.to_string())).await {
        return db.into();
    }
    err.into()
}

/// Records the outcome of using a connection: a key or sign-in problem is kept for the
/// wizard; success clears an earlier one.
async fn settle<T>(
    pool: &PgPool,
    connection: &Connection,
    result: Result<T, ProviderError>,
) -> Result<T, ApplyError> {
    match result {
        Ok(value) => {
            if connection.problem.is_some() {
                db::dns::set_problem(pool, connection.id, None).await?;
            }
            Ok(value)
        }
        Err(err) if err.needs_person() => Err(noted(pool, connection, err).await),
        Err(err) => Err(err.into()),
    }
}

/// The records the relay needs, within the connection's zone.
fn desired(relay: &RelayRow, zone: &str) -> Result<Vec<DnsRecord>, ApplyError> {
    let domain = relay
        .mail_domain
        .as_deref()
        .and_then(|d| MailDomain::parse(d).ok())
        .ok_or(ApplyError::NoDomain)?;
    let config = relay_config::load_or_new(relay, domain);
    let plan = DnsPlan::new(&config, &relay.device_facts());
    Ok(plan
        .ready_records()
        .into_iter()
        .filter(|record| chatmail_dns_providers::provider::in_zone(&record.name, zone))
        .collect())
}

/// The records as this provider stores them: TTLs raised to its minimum (or its fixed
/// steps), so the next comparison does not see a difference that cannot go away, and
/// without the records it cannot hold (e.g. SRV at Namecheap), which the records step
/// lists for entering by hand.
fn fit(provider: &dyn DnsProvider, zone: &str, wanted: Vec<DnsRecord>) -> Vec<DnsRecord> {
    chatmail_dns_providers::with_effective_ttls(provider, &wanted)
        .into_iter()
        .filter(|record| provider.unsupported(zone, record).is_none())
        .collect()
}

/// The names whose records matter: what the relay needs and what the portal wrote before.
/// (Reading only these also works where the key may update but not transfer the zone.)
fn names(wanted: &[DnsRecord], owned: &[chatmail_dns_providers::OwnedValue]) -> Vec<String> {
    let mut names: Vec<String> = wanted
        .iter()
        .map(|record| record.name.clone())
        .chain(owned.iter().map(|value| value.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Compares the plan (or, for `removing`, nothing) with the zone as the provider serves it.
pub async fn preview(
    pool: &PgPool,
    keyring: &Keyring,
    providers: &Providers,
    relay: &RelayRow,
    removing: bool,
) -> Result<Preview, ApplyError> {
    let connection = db::dns::connection_for_group(pool, relay.group_id)
        .await?
        .ok_or(ApplyError::NoConnection)?;
    if connection.kind == dns_apply_domain_connect::KIND {
        return Ok(Preview {
            diff: dns_apply_domain_connect::preview(relay, &connection.zone, removing)?,
            connection,
        });
    }
    let provider = provider_for(pool, keyring, providers, &connection).await?;
    let current = settle(pool, &connection, provider.read(&connection.zone).await).await?;
    let owned = db::dns::owned(pool, relay.group_id).await?;
    let wanted = if removing {
        Vec::new()
    } else {
        desired(relay, &connection.zone)?
    };
    let wanted = fit(provider.as_ref(), &connection.zone, wanted);
    Ok(Preview {
        diff: diff(&wanted, &current, &owned),
        connection,
    })
}

/// One run of a job: read, compare, claim, write, settle. Returns a summary for people.
async fn run_once(
    pool: &PgPool,
    keyring: &Keyring,
    providers: &Providers,
    job: &db::dns::Job,
) -> Result<String, ApplyError> {
    let relay = db::relays::by_group(pool, job.group_id)
        .await?
        .ok_or(ApplyError::NoDomain)?;
    let connection = db::dns::connection_for_group(pool, job.group_id)
        .await?
        .ok_or(ApplyError::NoConnection)?;
    if connection.kind == dns_apply_domain_connect::KIND {
        let force = !job.confirmed.is_empty();
        let outcome = dns_apply_domain_connect::run(
            pool,
            keyring,
            providers,
            &relay,
            &connection,
            &job.action,
            force,
        )
        .await;
        return match outcome {
            Err(ApplyError::Provider(err)) if err.needs_person() => {
                Err(noted(pool, &connection, err).await)
            }
            other => other,
        };
    }
    let provider = provider_for(pool, keyring, providers, &connection).await?;
    let owned = db::dns::owned(pool, job.group_id).await?;
    let wanted = if job.action == "remove" {
        Vec::new()
    } else {
        desired(&relay, &connection.zone)?
    };
    let wanted = fit(provider.as_ref(), &connection.zone, wanted);
    let current = settle(
        pool,
        &connection,
        provider
            .read_names(&connection.zone, &names(&wanted, &owned))
            .await,
    )
    .await?;
    let confirmed: BTreeSet<String> = job.confirmed.iter().cloned().collect();
    let plan = diff(&wanted, &current, &owned);
    let changes = plan.changes(&confirmed);
    let after = plan.ownership_after(&confirmed);
    db::dns::claim(pool, job.group_id, &after).await?;
    if !changes.is_empty() {
        settle(
            pool,
            &connection,
            provider.apply(&connection.zone, &changes).await,
        )
        .await?;
    }
    db::dns::replace_owned(pool, job.group_id, &after).await?;
    let open = plan
        .conflicts
        .iter()
        .filter(|conflict| !confirmed.contains(&conflict.id))
        .count();
    let mut summary = format!(
        "{} added, {} changed, {} removed",
        plan.creates.len(),
        plan.updates.len(),
        plan.deletes.len()
    );
    if open > 0 {
        summary.push_str(&format!("; {open} record(s) of others left in place"));
    }
    Ok(summary)
}

/// Runs jobs until the process ends. `wake` is notified when this process queues one.
pub async fn run_jobs(
    pool: PgPool,
    keyring: Arc<Keyring>,
    providers: Arc<Providers>,
    wake: Arc<Notify>,
) {
    loop {
        match db::dns::claim_next(&pool, STALE_AFTER_SECS).await {
            Ok(Some(job)) => run_job(&pool, &keyring, &providers, job).await,
            Ok(None) => {
                let _ = tokio::time::timeout(POLL, wake.notified()).await;
            }
            Err(err) => {
                tracing::warn!("cannot look for DNS jobs: {err}");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

async fn run_job(pool: &PgPool, keyring: &Keyring, providers: &Providers, job: db::dns::Job) {
    tracing::info!(job = %job.id, group = %job.group_id, action = %job.action, attempt = job.attempts, "DNS job started");
    let beat = {
        let pool = pool.clone();
        let id = job.id;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let _ = db::dns::heartbeat(&pool, id).await;
            }
        })
    };
    let outcome = run_once(pool, keyring, providers, &job).await;
    beat.abort();
    let recorded = match outcome {
        Ok(summary) => {
            tracing::info!(job = %job.id, %summary, "DNS job done");
            db::audit::record(
                pool,
                None,
                Some(job.group_id),
                "dns.applied",
                &summary,
                None,
            )
            .await;
            db::dns::finish(pool, job.id, &summary).await
        }
        Err(err) => {
            let message = err.to_string();
            match err.retry_delay(job.attempts.max(1) as u32) {
                Some(delay) if job.attempts < MAX_ATTEMPTS => {
                    tracing::warn!(job = %job.id, retry_in = ?delay, "DNS job will retry: {message}");
                    db::dns::retry_later(pool, job.id, &message, delay.as_secs_f64()).await
                }
                _ => {
                    tracing::warn!(job = %job.id, "DNS job failed: {message}");
                    db::audit::record(pool, None, Some(job.group_id), "dns.failed", &message, None)
                        .await;
                    db::dns::fail(pool, job.id, &message).await
                }
            }
        }
    };
    if let Err(err) = recorded {
        tracing::error!(job = %job.id, "cannot record the DNS job's outcome: {err}");
    }
}
