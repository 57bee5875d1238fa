//! Go-live: the step between "image downloaded" and "scan the QR code".
//!
//! One check of a relay: check its DNS, probe its device from the outside, and once the
//! device's status document is trusted, take over the public facts it proved (DKIM key,
//! ACME account) so the DNS plan gains the DKIM and CAA records, and queue a DNS job that
//! publishes them through the group's provider (with the usual diff and ownership rules).
//! Then note which go-live phases are reached and whether the relay's health changed.
//! A background loop repeats this for every relay.

use std::{net::IpAddr, time::Duration};

use chatmail_shared::{
    dns_report::{CheckReport, Severity},
    probe_report::ProbeReport,
    MailDomain,
};
use sqlx::PgPool;

use crate::{
    db::{self, relays::RelayRow},
    dns_status,
    probes::{self, ProbeSettings, Target},
    AppState,
};

/// The go-live phases, in order, with their names for people.
pub const PHASES: [(&str, &str); 5] = [
    ("dns", "DNS records published"),
    ("reachable", "Device reachable from the Internet"),
    ("certificate", "HTTPS certificate valid"),
    ("dns_complete", "Device keys published in DNS"),
    ("ready", "Ready to chat"),
];

/// A stored probe report is re-used for this long on page views.
pub const FRESH_FOR: Duration = Duration::from_secs(60);

/// As [`FRESH_FOR`] while the relay is not ready yet: someone is probably watching the
/// status page for the moment the device comes up, and a probe costs the device little.
pub const FRESH_WHILE_WAITING: Duration = Duration::from_secs(15);

/// What one check found.
pub struct Checked {
    pub dns: Option<CheckReport>,
    pub probe: ProbeReport,
    /// The phases reached in this check (not those reached before).
    pub reached: Vec<&'static str>,
    /// Whether a DNS job was queued to publish new device facts.
    pub publishing: bool,
}

/// The phases `dns` and `probe` show as reached now.
pub fn phases_reached(dns: Option<&CheckReport>, probe: &ProbeReport) -> Vec<&'static str> {
    let fine = |purposes_wanted: &dyn Fn(&str) -> bool| {
        dns.is_some_and(|report| {
            report
                .records
                .iter()
                .filter(|record| purposes_wanted(&record.purpose))
                .all(|record| record.severity != Some(Severity::Error))
        })
    };
    let base_dns = fine(&|purpose| purpose != "dkim" && purpose != "caa");
    let reachable = !probe.addresses.is_empty()
        && probe
            .addresses
            .iter()
            .all(|address| address.ports.iter().all(|port| port.open));
    let certificate = probe.certificate.as_ref().is_some_and(|c| c.valid);
    let dns_complete = probe.status.is_some()
        && dns.is_some_and(|report| {
            report.summary.errors == 0
                && report
                    .records
                    .iter()
                    .any(|record| record.purpose == "dkim" && record.severity.is_none())
        });
    let ready = base_dns && reachable && certificate && dns_complete && probe.is_ready();
    let mut out = Vec::new();
    for (phase, done) in [
        ("dns", base_dns),
        ("reachable", reachable),
        ("certificate", certificate),
        ("dns_complete", dns_complete),
        ("ready", ready),
    ] {
        if done {
            out.push(phase);
        }
    }
    out
}

fn addresses(relay: &RelayRow) -> Vec<IpAddr> {
    [relay.ipv4.as_deref(), relay.ipv6.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(|address| address.parse().ok())
        .collect()
}

/// Checks one relay now (DNS and device) and acts on what it finds. `None` when the relay
/// has no name yet.
pub async fn check(
    pool: &PgPool,
    dns: &dns_status::DnsSettings,
    probe_settings: &ProbeSettings,
    relay: &RelayRow,
) -> Result<Option<Checked>, sqlx::Error> {
    let Some(domain) = relay
        .mail_domain
        .as_deref()
        .and_then(|d| MailDomain::parse(d).ok())
    else {
        return Ok(None);
    };
    let target = Target {
        domain: &domain,
        addresses: addresses(relay),
        hardware: relay.hardware.as_deref(),
    };
    let (dns_report, probe) = tokio::join!(
        dns_status::check_now(pool, dns, relay),
        probes::probe(&target, probe_settings)
    );
    let mut dns_report = dns_report?;
    db::probes::store(pool, relay.group_id, &probe).await?;

    let mut publishing = false;
    if let Some(status) = &probe.status {
        let changed = db::relays::set_device_facts(
            pool,
            relay.group_id,
            &status.dkim_public_key,
            status.acme_account_url.as_deref(),
            &status.version,
        )
        .await?;
        if changed {
            tracing::info!(domain = %domain, "device facts changed; publishing DKIM and CAA");
            // Nothing is written for a relay whose records are kept by hand or applied at
            // the provider (Domain Connect); the DNS check then shows the records to add.
            let managed = relay.free_zone_id.is_some()
                || relay
                    .dns_mode
                    .as_deref()
                    .is_some_and(|mode| matches!(mode, "connected" | "portal"));
            if managed {
                publishing = db::probes::enqueue_publish(pool, relay.group_id).await?;
            }
            // Check again with the new facts in the plan.
            if let Some(updated) = db::relays::by_group(pool, relay.group_id).await? {
                dns_report = dns_status::check_now(pool, dns, &updated).await?;
            }
        }
    }

    let reached = phases_reached(dns_report.as_ref(), &probe);
    for phase in &reached {
        db::probes::reach(pool, relay.group_id, phase).await?;
    }
    let ready = reached.contains(&"ready");
    if let Some(health) = db::probes::settle_health(pool, relay.group_id, ready).await? {
        tracing::info!(domain = %domain, health, "relay health changed");
        db::audit::record(
            pool,
            None,
            Some(relay.group_id),
            "relay.health",
            &health,
            None,
        )
        .await;
    }
    Ok(Some(Checked {
        dns: dns_report,
        probe,
        reached,
        publishing,
    }))
}

/// Re-checks every named relay every `interval`, one after the other, until the process
/// ends. Errors are logged and the loop goes on.
pub async fn run_rechecks(state: AppState, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let relays = match db::relays::all_named(&state.pool).await {
            Ok(relays) => relays,
            Err(err) => {
                tracing::warn!("periodic re-check: cannot list relays: {err}");
                continue;
            }
        };
        for relay in relays {
            let checked = check(
                &state.pool,
                &state.settings.dns,
                &state.settings.probes,
                &relay,
            )
            .await;
            match checked {
                Ok(Some(checked)) if checked.publishing => state.jobs_wake.notify_one(),
                Ok(_) => {}
                Err(err) => tracing::warn!(group = %relay.group_id, "re-check failed: {err}"),
            }
        }
    }
}

/// Relays whose device check runs right now (started from a page view), so a busy page
/// does not start one check per view.
static CHECKING: std::sync::Mutex<Vec<uuid::Uuid>> = std::sync::Mutex::new(Vec::new());

fn checking(group: uuid::Uuid) -> bool {
    CHECKING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&group)
}

/// Starts a check in the background unless one runs already.
pub fn check_in_background(state: &AppState, relay: &RelayRow) {
    {
        let mut running = CHECKING.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains(&relay.group_id) {
            return;
        }
        running.push(relay.group_id);
    }
    let state = state.clone();
    let relay = relay.clone();
    tokio::spawn(async move {
        let checked = check(
            &state.pool,
            &state.settings.dns,
            &state.settings.probes,
            &relay,
        )
        .await;
        match checked {
            Ok(Some(checked)) if checked.publishing => state.jobs_wake.notify_one(),
            Ok(_) => {}
            Err(err) => tracing::warn!(group = %relay.group_id, "device check failed: {err}"),
        }
        CHECKING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|g| *g != relay.group_id);
    });
}

/// `2026-11-29 12:00 UTC`.
pub fn when(unix_secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The status page's device part: the latest probe (starting a new one in the background
/// when it is missing or stale) and the phases.
pub async fn device_view(
    state: &AppState,
    relay: &RelayRow,
    dns: Option<&CheckReport>,
) -> Result<chatmail_portal_app::api::DeviceView, sqlx::Error> {
    let latest = db::probes::latest(&state.pool, relay.group_id).await?;
    let reached_now = latest
        .as_ref()
        .map(|(probe, _)| phases_reached(dns, probe))
        .unwrap_or_default();
    let fresh_for = if reached_now.contains(&"ready") {
        FRESH_FOR
    } else {
        FRESH_WHILE_WAITING
    };
    let stale = latest.as_ref().is_none_or(|(_, age)| *age > fresh_for);
    if stale && relay.mail_domain.is_some() {
        check_in_background(state, relay);
    }
    let probe = latest.map(|(report, _)| report);
    let first_reached = db::probes::phases(&state.pool, relay.group_id).await?;
    let phases = PHASES
        .iter()
        .map(|(id, label)| chatmail_portal_app::api::PhaseView {
            id: id.to_string(),
            label: label.to_string(),
            done: reached_now.contains(id),
            reached_at: first_reached
                .iter()
                .find(|(phase, _)| phase == id)
                .map(|(_, at)| when(*at)),
        })
        .collect();
    let health = db::probes::health(&state.pool, relay.group_id).await?;
    Ok(chatmail_portal_app::api::DeviceView {
        phases,
        checked_at: probe.as_ref().map(|p| when(p.checked_at_unix_secs as i64)),
        checking: checking(relay.group_id),
        update_available: update_available(state, relay).await,
        version: relay.device_version.clone(),
        health: health.map(|(health, _)| health),
        ready: reached_now.contains(&"ready"),
        probe,
    })
}

/// A release newer than the version the device last reported, on the relay's update
/// channel and for its hardware (either, when the hardware is not known yet).
async fn update_available(state: &AppState, relay: &RelayRow) -> Option<String> {
    use chatmail_shared::update_manifest::{Channel, ReleaseVersion, UpdateTarget};
    let running = ReleaseVersion::parse(relay.device_version.as_deref()?).ok()?;
    let channel = relay
        .config_toml
        .as_deref()
        .and_then(|text| chatmail_shared::RelayConfig::from_toml(text).ok())
        .map(|config| config.updates.channel)
        .unwrap_or(Channel::Stable);
    let target = match relay.hardware.as_deref() {
        Some("raspberry_pi") => Some(UpdateTarget::Rpi),
        Some("virtual_machine") => Some(UpdateTarget::Amd64),
        _ => None,
    };
    match crate::updates::newest_for(state, channel, target).await {
        Ok(Some(newest)) if newest > running => Some(newest.to_string()),
        Ok(_) => None,
        Err(err) => {
            tracing::warn!("reading releases for the status page: {err}");
            None
        }
    }
}
