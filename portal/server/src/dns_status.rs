//! The DNS part of a relay's status: runs the checker against the relay's DNS plan, keeps
//! the latest report in PostgreSQL, and re-checks when the report is stale.

use std::{net::SocketAddr, time::Duration};

use std::sync::Arc;

use chatmail_dns_check::{CheckContext, Checker, CheckerConfig, ConnectionKind};
use chatmail_shared::{dns_report::CheckReport, DnsPlan, MailDomain};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{db::relays::RelayRow, relay_config};

/// A report older than this is refreshed when someone looks at it.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// Where the checker asks (the resolver given to the portal, or the system's), and the one
/// checker every request shares, so repeated checks of a relay reuse what it learned about
/// the zone's servers.
#[derive(Clone)]
pub struct DnsSettings {
    pub resolver: Option<SocketAddr>,
    /// The port authoritative name servers answer on (53 but in tests).
    pub nameserver_port: u16,
    checker: Result<Arc<Checker>, String>,
}

impl DnsSettings {
    pub fn new(resolver: Option<SocketAddr>, nameserver_port: u16) -> DnsSettings {
        let config = match resolver {
            Some(resolver) => Ok(CheckerConfig::with_resolvers(vec![resolver])),
            None => CheckerConfig::from_system(),
        };
        let checker = config.map(|mut config| {
            config.nameserver_port = nameserver_port;
            Arc::new(Checker::new(config))
        });
        if let Err(err) = &checker {
            tracing::warn!("DNS checks are not possible: {err}");
        }
        DnsSettings {
            resolver,
            nameserver_port,
            checker,
        }
    }

    fn checker(&self) -> Result<&Checker, &str> {
        self.checker.as_deref().map_err(String::as_str)
    }
}

/// The latest stored report and its age.
pub async fn latest(
    pool: &PgPool,
    group: Uuid,
) -> Result<Option<(CheckReport, Duration)>, sqlx::Error> {
    let row: Option<(sqlx::types::Json<CheckReport>, f64)> = sqlx::query_as(
        "SELECT report, extract(epoch FROM now() - checked_at)::float8 FROM dns_checks WHERE group_id = $1",
    )
    .bind(group)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(report, age)| (report.0, Duration::from_secs_f64(age.max(0.0)))))
}

/// Checks the relay's DNS now and stores the report. `None` when the relay has no name yet.
pub async fn check_now(
    pool: &PgPool,
    settings: &DnsSettings,
    relay: &RelayRow,
) -> Result<Option<CheckReport>, sqlx::Error> {
    let Some(domain) = relay
        .mail_domain
        .as_deref()
        .and_then(|d| MailDomain::parse(d).ok())
    else {
        return Ok(None);
    };
    let config = relay_config::load_or_new(relay, domain);
    let plan = DnsPlan::new(&config, &relay.device_facts());
    let context = CheckContext {
        connection: match relay.hardware.as_deref() {
            Some("raspberry_pi") => ConnectionKind::Home,
            Some("virtual_machine") => ConnectionKind::Hosted,
            _ => ConnectionKind::Unknown,
        },
        ..CheckContext::default()
    };
    let checker = match settings.checker() {
        Ok(checker) => checker,
        Err(err) => {
            tracing::warn!("DNS check impossible: {err}");
            return Ok(None);
        }
    };
    let report = checker.check_with(&plan, &context).await;
    sqlx::query(
        "INSERT INTO dns_checks (group_id, checked_at, report) VALUES ($1, now(), $2) \
         ON CONFLICT (group_id) DO UPDATE SET checked_at = now(), report = EXCLUDED.report",
    )
    .bind(relay.group_id)
    .bind(sqlx::types::Json(&report))
    .execute(pool)
    .await?;
    Ok(Some(report))
}

/// The stored report if it is fresh, otherwise a new one.
pub async fn current(
    pool: &PgPool,
    settings: &DnsSettings,
    relay: &RelayRow,
) -> Result<Option<CheckReport>, sqlx::Error> {
    match latest(pool, relay.group_id).await? {
        Some((report, age))
            if age < STALE_AFTER
                && report.mail_domain == relay.mail_domain.clone().unwrap_or_default() =>
        {
            Ok(Some(report))
        }
        _ => check_now(pool, settings, relay).await,
    }
}

/// The key under which a finding is ignored: its id and what it is about.
pub fn ignore_key(id: &str, subject: Option<&str>) -> String {
    match subject {
        Some(subject) => format!("{id}|{subject}"),
        None => id.to_string(),
    }
}
