//! The page data behind every portal page (the app crate's `Backend`): each method finds
//! the signed-in account, checks it may see what it asks for, and reads the database.
//! Someone outside a group gets `NotFound`, exactly as for a group that does not exist.

use std::net::IpAddr;

use async_trait::async_trait;
use chatmail_portal_app::api::{
    backend::Backend, AppError, AuditRow, ChangeRow, ConflictRow, ConnectionInfo, DetectedProvider,
    DiffView, FreeZone, GroupPage, GroupSummary, GuideField, Hardware, InviteInfo, InviteLinkState,
    InvitePage, InviteState, JobView, Member, MyGroups, OperatorGroupRow, OperatorPage,
    OperatorSettings, OperatorZone, PageContext, PlannedRecordRow, ProviderChoice, Role,
    SettingsForm, SetupPage, SetupStep, StepData, TokenGuide, Viewer,
};
use chatmail_shared::{
    public_address::check_public, DeviceFacts, DnsPlan, MailDomain, PlannedValue, RelayConfig,
    Requirement,
};
use http::request::Parts;
use tower_sessions::Session;
use uuid::Uuid;

use crate::{
    auth::{ClientIp, CurrentAccount},
    db::{self, invites::LinkState, relays::RelayRow},
    dns_apply, relay_config, AppState,
};
use chatmail_dns_providers::{
    detect::{detect, ConnectWay, Resolvers},
    Diff,
};

pub struct PortalBackend {
    pub state: AppState,
}

fn account(request: &Parts) -> Result<CurrentAccount, AppError> {
    request
        .extensions
        .get::<CurrentAccount>()
        .cloned()
        .ok_or(AppError::NotSignedIn)
}

fn db_error(err: sqlx::Error) -> AppError {
    tracing::error!("page data: {err}");
    AppError::Internal
}

fn role(text: &str) -> Role {
    Role::parse(text).unwrap_or(Role::Admin)
}

#[async_trait]
impl Backend for PortalBackend {
    async fn page_context(&self, request: &Parts) -> Result<PageContext, AppError> {
        let flash = match request.extensions.get::<Session>() {
            Some(session) => crate::forms::take_flash(session).await,
            None => Default::default(),
        };
        let viewer = request
            .extensions
            .get::<CurrentAccount>()
            .map(|account| Viewer {
                email: account.email.clone(),
                is_operator: account.is_operator,
                csrf: account.csrf.clone(),
            });
        Ok(PageContext { viewer, flash })
    }

    async fn my_groups(&self, request: &Parts) -> Result<MyGroups, AppError> {
        let account = account(request)?;
        let pool = &self.state.pool;
        let rows = db::groups::of_account(pool, account.id)
            .await
            .map_err(db_error)?;
        let settings = db::operator::settings(pool).await.map_err(db_error)?;
        let zones = db::operator::enabled_zones(pool).await.map_err(db_error)?;
        Ok(MyGroups {
            free_zones: free_zones(zones),
            visitor_ip: public_visitor_ip(request),
            groups: rows
                .into_iter()
                .map(|row| GroupSummary {
                    id: row.id.to_string(),
                    name: row.name,
                    role: role(&row.role),
                    mail_domain: row.mail_domain.map(|d| unicode(&d)),
                    completed_step: row.completed_step.clamp(0, 7) as u8,
                    disabled: row.disabled_reason.is_some(),
                    broken: row.health.as_deref() == Some("broken"),
                })
                .collect(),
            limit: settings.max_groups_per_account.max(0) as u32,
        })
    }

    async fn group(&self, request: &Parts, group_id: &str) -> Result<GroupPage, AppError> {
        let account = account(request)?;
        let group: Uuid = group_id.parse().map_err(|_| AppError::NotFound)?;
        let pool = &self.state.pool;
        let membership = db::groups::membership(pool, account.id, group)
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound)?;
        let members = db::groups::members(pool, account.id, group)
            .await
            .map_err(db_error)?;
        let invites = db::invites::of_group(pool, group).await.map_err(db_error)?;
        let relay = db::relays::of_group(pool, account.id, group)
            .await
            .map_err(db_error)?;
        Ok(GroupPage {
            id: group.to_string(),
            name: membership.name,
            my_role: role(&membership.role),
            disabled_reason: membership.disabled_reason,
            members: members
                .into_iter()
                .map(|m| Member {
                    is_me: m.account_id == account.id,
                    account_id: m.account_id.to_string(),
                    email: m.email,
                    role: role(&m.role),
                    joined: m.joined,
                })
                .collect(),
            invites: invites
                .into_iter()
                .map(|i| InviteInfo {
                    id: i.id.to_string(),
                    created: i.created,
                    expires: i.expires,
                    state: if i.revoked {
                        InviteState::Revoked
                    } else if i.used {
                        InviteState::Used
                    } else if i.expired {
                        InviteState::Expired
                    } else {
                        InviteState::Open
                    },
                })
                .collect(),
            mail_domain: relay
                .as_ref()
                .and_then(|r| r.mail_domain.as_deref().map(unicode)),
            completed_step: relay
                .map(|r| r.completed_step.clamp(0, 7) as u8)
                .unwrap_or(0),
        })
    }

    async fn invite(&self, request: &Parts, token: &str) -> Result<InvitePage, AppError> {
        if token.len() > 100 {
            return Ok(InvitePage {
                group_name: None,
                state: InviteLinkState::Unknown,
            });
        }
        let pool = &self.state.pool;
        let (state, group) = db::invites::peek(pool, token).await.map_err(db_error)?;
        let viewer = request.extensions.get::<CurrentAccount>();
        let already = match (viewer, &group) {
            (Some(viewer), Some((group_id, _))) => {
                db::groups::membership(pool, viewer.id, *group_id)
                    .await
                    .map_err(db_error)?
                    .is_some()
            }
            _ => false,
        };
        let state = match state {
            _ if already => InviteLinkState::AlreadyMember,
            LinkState::Valid => InviteLinkState::Valid,
            LinkState::Used => InviteLinkState::Used,
            LinkState::Expired => InviteLinkState::Expired,
            LinkState::Revoked => InviteLinkState::Revoked,
            LinkState::Unknown => InviteLinkState::Unknown,
        };
        // The group's name is shown only for a link that still works.
        let group_name = match state {
            InviteLinkState::Valid | InviteLinkState::AlreadyMember => group.map(|(_, name)| name),
            _ => None,
        };
        Ok(InvitePage { group_name, state })
    }

    async fn setup(
        &self,
        request: &Parts,
        group_id: &str,
        step: SetupStep,
    ) -> Result<SetupPage, AppError> {
        let account = account(request)?;
        let group: Uuid = group_id.parse().map_err(|_| AppError::NotFound)?;
        let pool = &self.state.pool;
        let membership = db::groups::membership(pool, account.id, group)
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound)?;
        let relay = db::relays::of_group(pool, account.id, group)
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound)?;
        let data = self.step_data(request, &relay, step).await?;
        Ok(SetupPage {
            group_id: group.to_string(),
            group_name: membership.name,
            step,
            completed_step: relay.completed_step.clamp(0, 7) as u8,
            disabled_reason: membership.disabled_reason,
            data,
        })
    }

    async fn operator(&self, request: &Parts) -> Result<OperatorPage, AppError> {
        let account = account(request)?;
        if !account.is_operator {
            return Err(AppError::NotOperator);
        }
        let pool = &self.state.pool;
        let settings = db::operator::settings(pool).await.map_err(db_error)?;
        let zones = db::operator::zones(pool).await.map_err(db_error)?;
        let groups = db::operator::all_groups(pool).await.map_err(db_error)?;
        let audit = db::audit::recent(pool, 200).await.map_err(db_error)?;
        Ok(OperatorPage {
            settings: OperatorSettings {
                max_groups_per_account: settings.max_groups_per_account.max(0) as u32,
                downloads_per_day: settings.downloads_per_day.max(0) as u32,
                open_sign_up: settings.open_sign_up,
            },
            zones: zones
                .into_iter()
                .map(|z| OperatorZone {
                    id: z.id.to_string(),
                    zone: unicode(&z.zone),
                    enabled: z.enabled,
                    relays: z.relays.max(0) as u32,
                    connection: z.connection,
                })
                .collect(),
            groups: groups
                .into_iter()
                .map(|g| OperatorGroupRow {
                    id: g.id.to_string(),
                    name: g.name,
                    members: g.members.max(0) as u32,
                    mail_domain: g.mail_domain.map(|d| unicode(&d)),
                    completed_step: g.completed_step.clamp(0, 7) as u8,
                    disabled_reason: g.disabled_reason,
                    created: g.created,
                    unhealthy: g.dns_errors.unwrap_or(0) > 0
                        || g.relay_health.as_deref() == Some("broken"),
                    health: g.dns_checked.map(|checked| {
                        let device = match g.relay_health.as_deref() {
                            Some("healthy") => "; relay ready",
                            Some("broken") => "; relay NOT working (was ready)",
                            _ => "; relay not ready yet",
                        };
                        format!(
                            "DNS: {} problem(s), {} warning(s) (checked {checked}){device}",
                            g.dns_errors.unwrap_or(0),
                            g.dns_warnings.unwrap_or(0)
                        )
                    }),
                })
                .collect(),
            audit: audit
                .into_iter()
                .map(|e| AuditRow {
                    at: e.at,
                    actor: e.actor,
                    group: e.group_name,
                    action: e.action,
                    detail: e.detail,
                    ip: e.ip,
                })
                .collect(),
        })
    }
}

impl PortalBackend {
    async fn step_data(
        &self,
        request: &Parts,
        relay: &RelayRow,
        step: SetupStep,
    ) -> Result<StepData, AppError> {
        let pool = &self.state.pool;
        let domain = relay
            .mail_domain
            .as_deref()
            .and_then(|d| MailDomain::parse(d).ok());
        Ok(match step {
            SetupStep::Domain => {
                let zones = db::operator::enabled_zones(pool).await.map_err(db_error)?;
                let free_label = match (&relay.mail_domain, &relay.free_zone) {
                    (Some(domain), Some(zone)) => {
                        domain.strip_suffix(&format!(".{zone}")).map(str::to_string)
                    }
                    _ => None,
                };
                StepData::Domain {
                    mail_domain: relay.mail_domain.as_deref().map(unicode),
                    free_zones: free_zones(zones),
                    free_label,
                    free_zone_id: relay.free_zone_id.map(|id| id.to_string()),
                }
            }
            SetupStep::Dns => {
                let domain = domain.ok_or(AppError::NotFound)?;
                let connection = db::dns::connection_for_group(pool, relay.group_id)
                    .await
                    .map_err(db_error)?
                    .map(connection_info);
                if relay.free_zone_id.is_some() {
                    StepData::Dns {
                        mail_domain: domain.to_unicode(),
                        managed_by_portal: true,
                        nameservers: Vec::new(),
                        provider: None,
                        lookup_problem: None,
                        connection,
                        mode: Some("portal".into()),
                        choices: Vec::new(),
                        domain_connect: None,
                    }
                } else {
                    let resolvers = match self.state.settings.dns.resolver {
                        Some(resolver) => Resolvers::Servers(vec![resolver]),
                        None => Resolvers::System,
                    };
                    let mut detected_id = None;
                    let detection = detect(
                        domain.as_str(),
                        &resolvers,
                        self.state.settings.dns.nameserver_port,
                    )
                    .await;
                    let domain_connect = match &detection {
                        Ok(found) => crate::forms::dns_domain_connect::offer_for(
                            &self.state,
                            &found.zone,
                            found.domain_connect.as_deref(),
                        )
                        .await
                        .map(|offer| offer.choice()),
                        Err(_) => None,
                    };
                    let (nameservers, provider, lookup_problem) = match detection {
                        Ok(found) => (
                            found.nameservers,
                            found.provider.map(|p| DetectedProvider {
                                id: p.id.to_string(),
                                name: {
                                    detected_id = Some(p.id);
                                    p.name.to_string()
                                },
                                methods: p.ways.iter().map(|w| way_label(*w).to_string()).collect(),
                                domain_connect: found.domain_connect.is_some(),
                            }),
                            None,
                        ),
                        Err(err) => (Vec::new(), None, Some(err.to_string())),
                    };
                    StepData::Dns {
                        mail_domain: domain.to_unicode(),
                        managed_by_portal: false,
                        nameservers,
                        provider,
                        lookup_problem,
                        connection,
                        mode: relay.dns_mode.clone(),
                        choices: provider_choices(&self.state.dns_providers, detected_id),
                        domain_connect,
                    }
                }
            }
            SetupStep::Settings => {
                let domain = domain.ok_or(AppError::NotFound)?;
                let viewer = request.extensions.get::<CurrentAccount>();
                StepData::Settings(prefilled_settings(
                    &self.state,
                    relay,
                    domain,
                    viewer.map(|v| v.email.as_str()),
                ))
            }
            SetupStep::Hardware => {
                let visitor_ip = public_visitor_ip(request);
                StepData::Hardware {
                    hardware: relay.hardware.as_deref().and_then(Hardware::parse),
                    ipv4: relay.ipv4.clone(),
                    ipv6: relay.ipv6.clone(),
                    visitor_ip,
                }
            }
            SetupStep::Records => {
                let domain = domain.ok_or(AppError::NotFound)?;
                let config = relay_config::load_or_new(relay, domain);
                let connection = db::dns::connection_for_group(pool, relay.group_id)
                    .await
                    .map_err(db_error)?;
                let (preview, preview_problem) = if connection.is_some() {
                    match dns_apply::preview(
                        pool,
                        &self.state.keyring,
                        &self.state.dns_providers,
                        relay,
                        false,
                    )
                    .await
                    {
                        Ok(preview) => (Some(diff_view(&preview.diff)), None),
                        Err(err) => (None, Some(err.to_string())),
                    }
                } else {
                    (None, None)
                };
                let job = db::dns::latest_job(pool, relay.group_id)
                    .await
                    .map_err(db_error)?
                    .map(|job| JobView {
                        state: job.state,
                        action: job.action,
                        attempts: job.attempts.max(0) as u32,
                        summary: job.summary,
                        error: job.last_error,
                        retry_in_secs: job.retry_in.map(|s| s.max(0.0).ceil() as u64),
                    });
                StepData::Records {
                    mail_domain: config.mail_domain.to_unicode(),
                    records: plan_rows(&config, &relay.device_facts()),
                    mode: if relay.free_zone_id.is_some() {
                        Some("portal".into())
                    } else {
                        relay.dns_mode.clone()
                    },
                    connection: connection.map(connection_info),
                    preview,
                    preview_problem,
                    job,
                }
            }
            SetupStep::Download => {
                StepData::Download(crate::forms::download::step_data(&self.state, relay).await)
            }
            SetupStep::Status => {
                let report = crate::dns_status::current(pool, &self.state.settings.dns, relay)
                    .await
                    .map_err(db_error)?;
                let ready = report
                    .as_ref()
                    .is_some_and(|report| report.summary.errors == 0);
                let device = crate::go_live::device_view(&self.state, relay, report.as_ref())
                    .await
                    .map_err(db_error)?;
                StepData::Status {
                    mail_domain: domain.as_ref().map(|d| d.to_unicode()).unwrap_or_default(),
                    qr_svg: domain
                        .filter(|_| ready)
                        .map(|d| chatmail_shared::qr::account_svg(&d)),
                    report,
                    ignored: relay.ignored_warnings.clone(),
                    device,
                }
            }
        })
    }
}

fn unicode(domain: &str) -> String {
    MailDomain::parse(domain)
        .map(|d| d.to_unicode())
        .unwrap_or_else(|_| domain.to_string())
}

/// The settings step's form as it first shows: the saved settings or chatmail's defaults.
pub(crate) fn prefilled_settings(
    state: &AppState,
    relay: &RelayRow,
    domain: MailDomain,
    viewer_email: Option<&str>,
) -> SettingsForm {
    let mut form = settings_form(&relay_config::load_or_new(relay, domain));
    form.updates_offered = state.settings.update_source.is_some();
    // Most groups are run by whoever sets them up: offer their own address (shown in the
    // field, so it is a choice, not a surprise on the privacy page).
    if form.contact_mail.is_empty() {
        if let Some(email) = viewer_email {
            form.contact_mail = email.to_string();
        }
    }
    form
}

fn settings_form(config: &RelayConfig) -> SettingsForm {
    let text = |value: &Option<chatmail_shared::config::FreeText>| {
        value
            .as_ref()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default()
    };
    SettingsForm {
        postal_address: text(&config.privacy.postal_address),
        contact_mail: config
            .privacy
            .contact_mail
            .as_ref()
            .map(|m| m.to_unicode())
            .unwrap_or_default(),
        data_officer: text(&config.privacy.data_protection_officer),
        supervisory_authority: text(&config.privacy.supervisory_authority),
        registration_open: config.registration.open,
        max_mailbox_size_mb: config.limits.max_mailbox_size_mb.to_string(),
        max_message_size_mb: (config.limits.max_message_size_bytes / (1024 * 1024)).to_string(),
        delete_mails_after_days: config.limits.delete_mails_after_days.to_string(),
        delete_inactive_users_after_days: config
            .limits
            .delete_inactive_users_after_days
            .to_string(),
        update_checks: config.updates.enabled,
        updates_offered: false,
    }
}

/// The zones offered for free names, for a domain choice.
fn free_zones(zones: Vec<(Uuid, String)>) -> Vec<FreeZone> {
    zones
        .into_iter()
        .map(|(id, zone)| FreeZone {
            id: id.to_string(),
            zone: unicode(&zone),
        })
        .collect()
}

/// The visitor's own address when it is public: most relays run where their owner sits
/// (a Raspberry Pi at home), so it makes a good first guess for the relay's address.
fn public_visitor_ip(request: &Parts) -> Option<String> {
    request
        .extensions
        .get::<ClientIp>()
        .map(|ip| ip.0)
        .filter(|ip| check_public(*ip).is_ok())
        .map(|ip: IpAddr| ip.to_string())
}

/// The relay's DNS plan as rows for the records step.
pub fn plan_rows(config: &RelayConfig, facts: &DeviceFacts) -> Vec<PlannedRecordRow> {
    let plan = DnsPlan::new(config, facts);
    plan.records()
        .iter()
        .map(|record| {
            let (value, pending) = match &record.value {
                PlannedValue::Ready(data) => (data.presentation(), None),
                PlannedValue::Pending(pending) => {
                    (String::new(), Some(pending.explanation().to_string()))
                }
            };
            PlannedRecordRow {
                name: record.name.to_string(),
                rtype: record.rtype().to_string(),
                value,
                ttl: record.ttl,
                required: record.requirement == Requirement::Required,
                reason: record.reason.to_string(),
                pending,
            }
        })
        .collect()
}

/// A connection as people may see it.
fn connection_info(c: db::dns::Connection) -> ConnectionInfo {
    ConnectionInfo {
        signed_in: c.kind == "oauth",
        label: c.label,
        zone: c.zone,
        provider: c.provider,
        problem: c.problem,
    }
}

/// Every cloud provider this portal can connect, with the ways it offers (signing in only
/// where the portal has client credentials, Namecheap only with its allow-listed address),
/// the detected provider first.
fn provider_choices(
    providers: &crate::dns_providers::Providers,
    detected: Option<&str>,
) -> Vec<ProviderChoice> {
    use chatmail_dns_providers::{detect::PROVIDERS, guides};
    let mut out: Vec<ProviderChoice> = crate::dns_providers::TOKEN_PROVIDERS
        .iter()
        .filter_map(|id| {
            let known = PROVIDERS.iter().find(|p| p.id == *id)?;
            let offered = providers.offered(id, known.ways);
            let token = offered
                .contains(&ConnectWay::ApiToken)
                .then(|| guides::token_guide(id))
                .flatten()
                .map(|g| TokenGuide {
                    steps: g.steps.iter().map(|s| s.to_string()).collect(),
                    permission: g.permission.to_string(),
                    portal_does: g.portal_does.to_string(),
                    help_url: g.help_url.to_string(),
                    fields: g
                        .fields
                        .iter()
                        .map(|f| GuideField {
                            name: f.name.to_string(),
                            label: f.label.to_string(),
                            secret: f.secret,
                            help: f.help.to_string(),
                        })
                        .collect(),
                    note: (*id == "namecheap")
                        .then(|| providers.namecheap_client_ip())
                        .flatten()
                        .map(|ip| format!("The portal's address for the allow-list: {ip}")),
                });
            let sign_in = offered.contains(&ConnectWay::OAuth);
            (sign_in || token.is_some()).then(|| ProviderChoice {
                id: id.to_string(),
                name: known.name.to_string(),
                detected: detected == Some(*id),
                sign_in,
                token,
            })
        })
        .collect();
    out.sort_by_key(|c| !c.detected);
    out
}

fn way_label(way: ConnectWay) -> &'static str {
    match way {
        ConnectWay::OAuth => "Sign in with the provider",
        ConnectWay::ApiToken => "API token",
        ConnectWay::DomainConnect => "Domain Connect",
    }
}

/// The dry run as rows for the records step.
fn diff_view(diff: &Diff) -> DiffView {
    let rows = |items: &[chatmail_dns_providers::Item]| {
        items
            .iter()
            .map(|item| ChangeRow {
                name: item.name.clone(),
                rtype: item.rtype.clone(),
                before: item.before.clone(),
                after: item.after.clone(),
                description: item.description.clone(),
            })
            .collect()
    };
    DiffView {
        creates: rows(&diff.creates),
        updates: rows(&diff.updates),
        deletes: rows(&diff.deletes),
        conflicts: diff
            .conflicts
            .iter()
            .map(|c| ConflictRow {
                id: c.id.clone(),
                name: c.name.clone(),
                rtype: c.rtype.clone(),
                existing: c.existing.clone(),
                wanted: c.wanted.clone(),
                problem: c.problem.clone(),
                description: c.description.clone(),
            })
            .collect(),
        unchanged: diff.unchanged.len(),
    }
}
