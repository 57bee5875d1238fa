//! The setup wizard's form posts, one branch per step. Each validates what was entered,
//! stores it on the group's relay, and moves on to the next step.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::{
    extract::{Path, State},
    response::Response,
    Extension,
};
use chatmail_portal_app::api::{Hardware, SettingsForm, SetupStep};
use chatmail_shared::{
    config::FreeText, public_address::check_public, DomainName, EmailAddress, MailDomain,
    RelayConfig,
};
use tower_sessions::Session;
use uuid::Uuid;

use super::{groups::access, groups::refuse_if_disabled, internal, FlashBuilder, FormFields};
use crate::{
    auth::{ClientIp, CurrentAccount},
    db::{self, relays::RelayRow},
    relay_config, AppState,
};

/// Labels a free subdomain may not take: they name the relay's own services.
const RESERVED_LABELS: &[&str] = &[
    "www",
    "mta-sts",
    "mail",
    "smtp",
    "imap",
    "autoconfig",
    "autodiscover",
    "admin",
    "portal",
    "api",
    "ns",
    "ns1",
    "ns2",
    "_dmarc",
];

pub async fn save(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path((group, step)): Path<(String, String)>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let Some(step) = SetupStep::from_slug(&step) else {
        return super::problem(
            axum::http::StatusCode::NOT_FOUND,
            "There is no such setup step.",
        );
    };
    let back = format!("/groups/{group}/setup/{}", step.slug());
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    if let Err(response) = refuse_if_disabled(&access, &session, &back).await {
        return response;
    }
    let relay = match db::relays::of_group(&state.pool, access.account.id, access.group).await {
        Ok(Some(relay)) => relay,
        Ok(None) => {
            return super::problem(axum::http::StatusCode::NOT_FOUND, "There is no such group.")
        }
        Err(err) => return internal(err),
    };
    // Steps build on each other: a step opens once the one before it is done.
    if step.number() > relay.completed_step as u8 + 1 {
        let open = SetupStep::ALL[relay.completed_step.clamp(0, 6) as usize];
        return FlashBuilder::error(format!(
            "Please finish the step \u{201c}{}\u{201d} first.",
            open.title()
        ))
        .redirect(&session, &format!("/groups/{group}/setup/{}", open.slug()))
        .await;
    }
    let result = match step {
        SetupStep::Domain => save_domain(&state, access.group, &relay, &fields).await,
        SetupStep::Settings => save_settings(&state, access.group, &relay, &fields).await,
        SetupStep::Hardware => save_hardware(&state, access.group, &relay, &fields).await,
        SetupStep::Dns if relay.free_zone_id.is_none() && relay.dns_mode.is_none() => Ok(Err(FlashBuilder::error(
            "Choose how the records reach your DNS: connect your provider, or enter them yourself.",
        ))),
        // These steps have nothing to enter: confirming moves on.
        SetupStep::Dns | SetupStep::Records | SetupStep::Download | SetupStep::Status => Ok(Ok(())),
    };
    match result {
        Ok(Ok(())) => {
            let next = if step == SetupStep::Dns {
                finish_dns_step(&state.pool, access.group).await
            } else {
                db::relays::complete_step(&state.pool, access.group, step.number() as i16)
                    .await
                    .map(|()| step.next().unwrap_or(SetupStep::Status))
            };
            let next = match next {
                Ok(next) => next,
                Err(err) => return internal(err),
            };
            db::audit::record(
                &state.pool,
                Some(access.account.id),
                Some(access.group),
                "setup.saved",
                step.slug(),
                Some(ip),
            )
            .await;
            see_next(&session, &group, next).await
        }
        Ok(Err(flash)) => {
            flash
                .keep(&fields, KEEP_FIELDS)
                .redirect(&session, &back)
                .await
        }
        Err(err) => internal(err),
    }
}

const KEEP_FIELDS: &[&str] = &[
    "kind",
    "domain",
    "label",
    "zone",
    "postal_address",
    "contact_mail",
    "data_officer",
    "supervisory_authority",
    "registration_open",
    "max_mailbox_size_mb",
    "max_message_size_mb",
    "delete_mails_after_days",
    "delete_inactive_users_after_days",
    "hardware",
    "ipv4",
    "ipv6",
];

async fn see_next(session: &Session, group: &str, next: SetupStep) -> Response {
    FlashBuilder::success("Saved.")
        .redirect(session, &format!("/groups/{group}/setup/{}", next.slug()))
        .await
}

type StepResult = Result<Result<(), FlashBuilder>, sqlx::Error>;

/// A refused field and why, for the form to show next to it.
pub(super) type FieldProblem = (&'static str, String);

/// Marks the DNS step done and says where the wizard goes on: the first step whose data is
/// still missing. A relay made with its settings and addresses (the groups page's form) skips
/// the settings and hardware steps, which stay open for changes.
pub(super) async fn finish_dns_step(
    pool: &sqlx::PgPool,
    group: Uuid,
) -> Result<SetupStep, sqlx::Error> {
    db::relays::complete_step(pool, group, SetupStep::Dns.number() as i16).await?;
    let Some(relay) = db::relays::by_group(pool, group).await? else {
        return Ok(SetupStep::Settings);
    };
    let has_settings = relay.config_toml.is_some();
    let has_hardware = relay.hardware.is_some() && (relay.ipv4.is_some() || relay.ipv6.is_some());
    if !(has_settings && has_hardware) {
        return Ok(SetupStep::Settings);
    }
    db::relays::complete_step(pool, group, SetupStep::Hardware.number() as i16).await?;
    Ok(SetupStep::Records)
}

async fn save_domain(
    state: &AppState,
    group: Uuid,
    relay: &RelayRow,
    fields: &FormFields,
) -> StepResult {
    let refuse = |field: &str, problem: String| {
        Ok(Err(
            FlashBuilder::error("The name was not saved.").field(field, problem)
        ))
    };
    let (domain, free_zone) = match choose_domain(state, group, fields).await? {
        Ok(choice) => choice,
        Err((field, problem)) => return refuse(field, problem),
    };
    if !db::relays::set_domain(&state.pool, group, domain.as_str(), free_zone).await? {
        return refuse(
            "domain",
            "Someone took this name a moment ago. Choose another.".into(),
        );
    }
    // Keep the saved settings in step with the new name.
    if let Some(config) = relay
        .config_toml
        .as_deref()
        .and_then(|text| RelayConfig::from_toml(text).ok())
    {
        let mut config = config;
        config.mail_domain = domain;
        if let Ok(text) = config.to_toml() {
            db::relays::set_config(&state.pool, group, &text).await?;
        }
    }
    Ok(Ok(()))
}

/// The relay name a form asks for (a domain of one's own, or a free name under a zone this
/// portal offers), checked and not used by any relay but `group`'s.
pub(super) async fn choose_domain(
    state: &AppState,
    group: Uuid,
    fields: &FormFields,
) -> Result<Result<(MailDomain, Option<Uuid>), FieldProblem>, sqlx::Error> {
    let refuse = |field: &'static str, problem: String| Ok(Err((field, problem)));
    let zones = db::operator::enabled_zones(&state.pool).await?;
    let (domain, free_zone) = match fields.get("kind") {
        "free" => {
            let Some((zone_id, zone)) = zones
                .iter()
                .find(|(id, _)| id.to_string() == fields.get("zone"))
            else {
                return refuse("zone", "Choose one of the offered zones.".into());
            };
            let label = fields.trimmed("label").to_lowercase();
            if let Err(problem) = check_label(&label) {
                return refuse("label", problem.into());
            }
            match MailDomain::parse(&format!("{label}.{zone}")) {
                Ok(domain) => (domain, Some(*zone_id)),
                Err(err) => return refuse("label", format!("That name {err}.")),
            }
        }
        "own" => {
            let text = fields.trimmed("domain");
            let domain = match MailDomain::parse(text) {
                Ok(domain) => domain,
                Err(err) => return refuse("domain", format!("This name {err}.")),
            };
            // Names under an offered zone are handed out through the free-subdomain choice only.
            let inside_offered = zones.iter().any(|(_, zone)| {
                DomainName::parse(zone)
                    .map(|zone| domain.as_domain_name().is_within(&zone))
                    .unwrap_or(false)
            });
            if inside_offered {
                return refuse(
                    "domain",
                    "This name is under a zone this portal offers; choose \u{201c}a free name\u{201d} instead.".into(),
                );
            }
            (domain, None)
        }
        _ => return refuse("kind", "Choose your own domain or a free name.".into()),
    };
    if db::relays::domain_taken(&state.pool, domain.as_str(), group).await? {
        let field = if free_zone.is_some() {
            "label"
        } else {
            "domain"
        };
        return refuse(
            field,
            format!(
                "{} is already used by another relay on this portal.",
                domain.to_unicode()
            ),
        );
    }
    Ok(Ok((domain, free_zone)))
}

/// A free subdomain label: 3–40 of a–z, 0–9 and inner hyphens, and not reserved.
fn check_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("Enter a name, for example \u{201c}family-chat\u{201d}.");
    }
    if label.len() < 3 || label.len() > 40 {
        return Err("Use 3 to 40 characters.");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("Use only letters a\u{2013}z, digits and hyphens.");
    }
    if label.starts_with('-') || label.ends_with('-') || label.contains("--") {
        return Err("Hyphens may only stand between letters or digits, one at a time.");
    }
    if RESERVED_LABELS.contains(&label) {
        return Err("This name is reserved. Choose another.");
    }
    Ok(())
}

fn parse_count(
    fields: &FormFields,
    name: &str,
    range: std::ops::RangeInclusive<u32>,
    unit: &str,
) -> Result<u32, String> {
    let text = fields.trimmed(name);
    match text.parse::<u32>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(format!(
            "Enter a whole number of {unit} from {} to {}.",
            range.start(),
            range.end()
        )),
    }
}

async fn save_settings(
    state: &AppState,
    group: Uuid,
    relay: &RelayRow,
    fields: &FormFields,
) -> StepResult {
    let Some(domain) = relay
        .mail_domain
        .as_deref()
        .and_then(|d| MailDomain::parse(d).ok())
    else {
        return Ok(Err(FlashBuilder::error("Choose the relay's name first.")));
    };
    let mut config = relay_config::load_or_new(relay, domain);
    let mut flash =
        FlashBuilder::error("The settings were not saved. Please correct the fields marked below.");

    let free_text = |name: &str| -> Result<Option<FreeText>, String> {
        let text = fields.trimmed(name);
        if text.is_empty() {
            return Ok(None);
        }
        FreeText::new(text)
            .map(Some)
            .map_err(|err| format!("This text {err}."))
    };
    for (name, slot) in [
        ("postal_address", &mut config.privacy.postal_address),
        ("data_officer", &mut config.privacy.data_protection_officer),
        (
            "supervisory_authority",
            &mut config.privacy.supervisory_authority,
        ),
    ] {
        match free_text(name) {
            Ok(value) => *slot = value,
            Err(problem) => flash = flash.field(name, problem),
        }
    }
    let contact = fields.trimmed("contact_mail");
    if contact.is_empty() {
        flash = flash.field(
            "contact_mail",
            "Enter an address where people can reach whoever runs this relay; the privacy page shows it.",
        );
    } else {
        match EmailAddress::parse(contact) {
            Ok(mail) => {
                config.acme.contact_email = Some(mail.clone());
                config.privacy.contact_mail = Some(mail);
            }
            Err(_) => {
                flash = flash.field("contact_mail", "That does not look like an e-mail address.")
            }
        }
    }
    config.registration.open = fields.checked("registration_open");
    match parse_count(fields, "max_mailbox_size_mb", 10..=100_000, "megabytes") {
        Ok(value) => config.limits.max_mailbox_size_mb = value,
        Err(problem) => flash = flash.field("max_mailbox_size_mb", problem),
    }
    match parse_count(fields, "max_message_size_mb", 1..=1024, "megabytes") {
        Ok(value) => config.limits.max_message_size_bytes = value * 1024 * 1024,
        Err(problem) => flash = flash.field("max_message_size_mb", problem),
    }
    match parse_count(fields, "delete_mails_after_days", 1..=3650, "days") {
        Ok(value) => config.limits.delete_mails_after_days = value,
        Err(problem) => flash = flash.field("delete_mails_after_days", problem),
    }
    match parse_count(fields, "delete_inactive_users_after_days", 1..=3650, "days") {
        Ok(value) => config.limits.delete_inactive_users_after_days = value,
        Err(problem) => flash = flash.field("delete_inactive_users_after_days", problem),
    }
    if !flash.has_errors()
        && config.limits.max_message_size_bytes / (1024 * 1024) > config.limits.max_mailbox_size_mb
    {
        flash = flash.field(
            "max_message_size_mb",
            format!(
                "The largest message must not exceed the mailbox size ({} MB).",
                config.limits.max_mailbox_size_mb
            ),
        );
    }
    // Update checks: only towards this portal and its release key, and only if asked for.
    match &state.settings.update_source {
        Some(source) if fields.checked("update_checks") => {
            config.updates.enabled = true;
            config.updates.portal_url = Some(source.portal_url.clone());
            config.updates.signing_public_key = Some(source.key.clone());
        }
        _ => config.updates.enabled = false,
    }
    if flash.has_errors() {
        return Ok(Err(flash));
    }
    if let Err(err) = config.validate() {
        let field = match err.field() {
            Some("limits.max_message_size_bytes") => "max_message_size_mb",
            _ => "max_mailbox_size_mb",
        };
        return Ok(Err(flash.field(field, relay_config::explain(&err))));
    }
    let text = match config.to_toml() {
        Ok(text) => text,
        Err(err) => {
            return Ok(Err(
                flash.field("max_mailbox_size_mb", relay_config::explain(&err))
            ))
        }
    };
    db::relays::set_config(&state.pool, group, &text).await?;
    Ok(Ok(()))
}

async fn save_hardware(
    state: &AppState,
    group: Uuid,
    relay: &RelayRow,
    fields: &FormFields,
) -> StepResult {
    let mut flash =
        FlashBuilder::error("The hardware was not saved. Please correct the fields marked below.");
    let hardware = Hardware::parse(fields.get("hardware"));
    if hardware.is_none() {
        flash = flash.field("hardware", "Choose a Raspberry Pi or a virtual machine.");
    }
    let (ipv4, ipv6) = match parse_addresses(fields) {
        Ok(addresses) => addresses,
        Err(problems) => {
            for (field, problem) in problems {
                flash = flash.field(field, problem);
            }
            (None, None)
        }
    };
    let Some(hardware) = hardware.filter(|_| !flash.has_errors()) else {
        return Ok(Err(flash));
    };
    let config_toml = relay
        .config_toml
        .as_deref()
        .and_then(|text| RelayConfig::from_toml(text).ok())
        .and_then(|mut config| {
            config.addresses.ipv4 = ipv4;
            config.addresses.ipv6 = ipv6;
            config.to_toml().ok()
        });
    db::relays::set_hardware(
        &state.pool,
        group,
        hardware.as_str(),
        ipv4.map(|a| a.to_string()),
        ipv6.map(|a| a.to_string()),
        config_toml.as_deref(),
    )
    .await?;
    Ok(Ok(()))
}

/// Saves the settings and hardware steps as their forms first show, as if the person had
/// confirmed both: chatmail's defaults with the person's own address as the contact, and a
/// Raspberry Pi at the given addresses (the download offers every device's image anyway).
pub(super) async fn save_prefilled_steps(
    state: &AppState,
    group: Uuid,
    contact_mail: &str,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
) -> StepResult {
    let not_named = || Ok(Err(FlashBuilder::error("Choose the relay's name first.")));
    let Some(relay) = db::relays::by_group(&state.pool, group).await? else {
        return not_named();
    };
    let Some(domain) = relay
        .mail_domain
        .as_deref()
        .and_then(|d| MailDomain::parse(d).ok())
    else {
        return not_named();
    };
    let form = crate::backend::prefilled_settings(state, &relay, domain, Some(contact_mail));
    if let Err(flash) = save_settings(state, group, &relay, &settings_fields(&form)).await? {
        return Ok(Err(flash));
    }
    let Some(relay) = db::relays::by_group(&state.pool, group).await? else {
        return not_named();
    };
    let show = |address: Option<String>| address.unwrap_or_default();
    let hardware: FormFields = [
        ("hardware", Hardware::RaspberryPi.as_str().to_string()),
        ("ipv4", show(ipv4.map(|a| a.to_string()))),
        ("ipv6", show(ipv6.map(|a| a.to_string()))),
    ]
    .into_iter()
    .collect();
    save_hardware(state, group, &relay, &hardware).await
}

/// The settings form's fields as the browser sends them (a checkbox only when ticked).
fn settings_fields(form: &SettingsForm) -> FormFields {
    let mut fields = vec![
        ("contact_mail", form.contact_mail.clone()),
        ("postal_address", form.postal_address.clone()),
        ("data_officer", form.data_officer.clone()),
        ("supervisory_authority", form.supervisory_authority.clone()),
        ("max_mailbox_size_mb", form.max_mailbox_size_mb.clone()),
        ("max_message_size_mb", form.max_message_size_mb.clone()),
        (
            "delete_mails_after_days",
            form.delete_mails_after_days.clone(),
        ),
        (
            "delete_inactive_users_after_days",
            form.delete_inactive_users_after_days.clone(),
        ),
    ];
    if form.registration_open {
        fields.push(("registration_open", "on".into()));
    }
    if form.updates_offered && form.update_checks {
        fields.push(("update_checks", "on".into()));
    }
    fields.into_iter().collect()
}

/// The relay's public addresses as a form gives them: at least one, each public.
pub(super) fn parse_addresses(
    fields: &FormFields,
) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let ipv4 = match fields.trimmed("ipv4") {
        "" => None,
        text => match text.parse::<Ipv4Addr>() {
            Ok(v4) => match check_public(IpAddr::V4(v4)) {
                Ok(()) => Some(v4),
                Err(why) => {
                    problems.push(("ipv4", format!("{v4} {why}.")));
                    None
                }
            },
            Err(_) => {
                problems.push((
                    "ipv4",
                    "Enter an IPv4 address like 93.184.216.34, or leave this empty.".into(),
                ));
                None
            }
        },
    };
    let ipv6 = match fields.trimmed("ipv6") {
        "" => None,
        text => match text.parse::<Ipv6Addr>() {
            Ok(v6) => match check_public(IpAddr::V6(v6)) {
                Ok(()) => Some(v6),
                Err(why) => {
                    problems.push(("ipv6", format!("{v6} {why}.")));
                    None
                }
            },
            Err(_) => {
                problems.push((
                    "ipv6",
                    "Enter an IPv6 address like 2a01:4f8::1, or leave this empty.".into(),
                ));
                None
            }
        },
    };
    if problems.is_empty() && ipv4.is_none() && ipv6.is_none() {
        problems.push((
            "ipv4",
            "Enter at least one public address, IPv4 or IPv6.".into(),
        ));
    }
    if problems.is_empty() {
        Ok((ipv4, ipv6))
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_labels() {
        assert!(check_label("family-chat").is_ok());
        assert!(check_label("abc").is_ok());
        for bad in [
            "",
            "ab",
            "-abc",
            "abc-",
            "a--b",
            "www",
            "Family",
            "fam_ily",
            "fam ily",
            &"a".repeat(41),
            "<script>",
        ] {
            assert!(check_label(bad).is_err(), "{bad}");
        }
    }
}
