//! The data each page shows, as the server sends it to the page (and, serialized, to the
//! hydrating browser). Plain serde types: no database ids beyond opaque strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The signed-in person, as pages need to know them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    pub email: String,
    pub is_operator: bool,
    /// The anti-forgery token every form of this session must carry.
    pub csrf: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlashLevel {
    Success,
    Info,
    Error,
}

/// A message from the last form submission, shown once on the page it redirected to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    pub level: Option<FlashLevel>,
    pub message: String,
    /// Problems per form field name.
    pub errors: BTreeMap<String, String>,
    /// What the person typed, to fill the form in again (never passwords).
    pub values: BTreeMap<String, String>,
}

impl Flash {
    pub fn error_for(&self, field: &str) -> Option<String> {
        self.errors.get(field).cloned()
    }

    pub fn value_of(&self, field: &str) -> Option<String> {
        self.values.get(field).cloned()
    }
}

/// A flash value the records step gets right after the person asked for the records to be
/// written: the page then goes on to the next step by itself once they are.
pub const CONTINUE_WHEN_WRITTEN: &str = "continue_when_written";

/// What every page needs: who is looking, and the message from the last form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageContext {
    pub viewer: Option<Viewer>,
    pub flash: Flash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Owner,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Admin => "Admin",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub mail_domain: Option<String>,
    pub completed_step: u8,
    pub disabled: bool,
    /// The relay was ready and a re-check found it no longer is.
    pub broken: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyGroups {
    pub groups: Vec<GroupSummary>,
    /// How many groups one person may own on this portal.
    pub limit: u32,
    /// Zones offered for free names, for the new relay's name.
    #[serde(default)]
    pub free_zones: Vec<FreeZone>,
    /// The visitor's address when it is public: the new relay's address, prefilled.
    #[serde(default)]
    pub visitor_ip: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub account_id: String,
    pub email: String,
    pub role: Role,
    pub is_me: bool,
    pub joined: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InviteState {
    Open,
    Used,
    Expired,
    Revoked,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    pub id: String,
    pub created: String,
    pub expires: String,
    pub state: InviteState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPage {
    pub id: String,
    pub name: String,
    pub my_role: Role,
    pub disabled_reason: Option<String>,
    pub members: Vec<Member>,
    pub invites: Vec<InviteInfo>,
    pub mail_domain: Option<String>,
    pub completed_step: u8,
}

/// What someone holding an invite link sees before joining.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitePage {
    pub group_name: Option<String>,
    pub state: InviteLinkState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InviteLinkState {
    Valid,
    AlreadyMember,
    Used,
    Expired,
    Revoked,
    Unknown,
}

/// The setup wizard's steps, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SetupStep {
    Domain,
    Dns,
    Settings,
    Hardware,
    Records,
    Download,
    Status,
}

impl SetupStep {
    pub const ALL: [SetupStep; 7] = [
        SetupStep::Domain,
        SetupStep::Dns,
        SetupStep::Settings,
        SetupStep::Hardware,
        SetupStep::Records,
        SetupStep::Download,
        SetupStep::Status,
    ];

    /// 1-based position.
    pub fn number(self) -> u8 {
        SetupStep::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8 + 1
    }

    pub fn slug(self) -> &'static str {
        match self {
            SetupStep::Domain => "domain",
            SetupStep::Dns => "dns",
            SetupStep::Settings => "settings",
            SetupStep::Hardware => "hardware",
            SetupStep::Records => "records",
            SetupStep::Download => "download",
            SetupStep::Status => "status",
        }
    }

    pub fn from_slug(slug: &str) -> Option<SetupStep> {
        SetupStep::ALL.into_iter().find(|s| s.slug() == slug)
    }

    pub fn title(self) -> &'static str {
        match self {
            SetupStep::Domain => "Name",
            SetupStep::Dns => "DNS provider",
            SetupStep::Settings => "Relay settings",
            SetupStep::Hardware => "Hardware",
            SetupStep::Records => "DNS records",
            SetupStep::Download => "Download",
            SetupStep::Status => "Status",
        }
    }

    pub fn next(self) -> Option<SetupStep> {
        SetupStep::ALL.get(self.number() as usize).copied()
    }
}

/// The free subdomain zones a group may choose from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeZone {
    pub id: String,
    pub zone: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hardware {
    RaspberryPi,
    VirtualMachine,
}

impl Hardware {
    pub fn as_str(self) -> &'static str {
        match self {
            Hardware::RaspberryPi => "raspberry_pi",
            Hardware::VirtualMachine => "virtual_machine",
        }
    }

    pub fn parse(text: &str) -> Option<Hardware> {
        match text {
            "raspberry_pi" => Some(Hardware::RaspberryPi),
            "virtual_machine" => Some(Hardware::VirtualMachine),
            _ => None,
        }
    }
}

/// The relay settings form, as strings so a rejected submission can be shown again as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsForm {
    pub postal_address: String,
    pub contact_mail: String,
    pub data_officer: String,
    pub supervisory_authority: String,
    pub registration_open: bool,
    pub max_mailbox_size_mb: String,
    pub max_message_size_mb: String,
    pub delete_mails_after_days: String,
    pub delete_inactive_users_after_days: String,
    pub update_checks: bool,
    /// The portal publishes signed releases, so relays may opt in to update checks.
    #[serde(default)]
    pub updates_offered: bool,
}

/// One record of the relay's DNS plan, for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRecordRow {
    pub name: String,
    pub rtype: String,
    pub value: String,
    pub ttl: u32,
    pub required: bool,
    pub reason: String,
    /// The record waits for a fact the device publishes once it runs.
    pub pending: Option<String>,
}

/// A DNS provider recognised from the domain's name servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectedProvider {
    /// The provider's id, e.g. `cloudflare` or `powerdns`.
    #[serde(default)]
    pub id: String,
    pub name: String,
    /// How the provider lets others write records (e.g. "API token", "Domain Connect").
    pub methods: Vec<String>,
    /// The provider announces Domain Connect for this domain (`_domainconnect` TXT).
    pub domain_connect: bool,
}

/// The DNS connection a relay uses, as people may see it (never a secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub label: String,
    pub zone: String,
    /// The cloud provider's id (`cloudflare`, …), for a cloud connection.
    #[serde(default)]
    pub provider: Option<String>,
    /// The connection was made by signing in with the provider.
    #[serde(default)]
    pub signed_in: bool,
    /// Why it stopped working (a withdrawn sign-in, a refused key): connect again.
    #[serde(default)]
    pub problem: Option<String>,
}

/// A DNS provider that can apply the relay's records through Domain Connect here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainConnectChoice {
    /// The provider's name.
    pub name: String,
    /// The person confirms each change on the provider's page (synchronous flow).
    pub confirm_each: bool,
    /// The person grants access once and the portal applies changes itself (asynchronous).
    pub grant: bool,
}

/// One DNS provider the portal can connect, with the ways this portal offers for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderChoice {
    /// Stable id, e.g. `hetzner`.
    pub id: String,
    pub name: String,
    /// It serves the relay's domain (found from the name servers).
    pub detected: bool,
    /// "Sign in with …" is offered (the portal has OAuth client credentials for it).
    pub sign_in: bool,
    /// The token or key form, if offered.
    pub token: Option<TokenGuide>,
}

/// A guided token or key form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGuide {
    /// Where to click at the provider, step by step.
    pub steps: Vec<String>,
    /// The least permission to grant.
    pub permission: String,
    /// What the portal will do with it.
    pub portal_does: String,
    /// The provider's own page about it.
    pub help_url: String,
    pub fields: Vec<GuideField>,
    /// Something to enter at the provider, e.g. the portal's address for an allow-list.
    pub note: Option<String>,
}

/// One field of a token form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuideField {
    pub name: String,
    pub label: String,
    pub secret: bool,
    pub help: String,
}

/// One change the portal would make, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRow {
    pub name: String,
    pub rtype: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub description: String,
}

/// A record of someone else's in the way of the relay's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRow {
    pub id: String,
    pub name: String,
    pub rtype: String,
    pub existing: Vec<String>,
    pub wanted: Vec<String>,
    pub problem: String,
    pub description: String,
}

/// What applying the plan would do to the zone right now (a dry run).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffView {
    pub creates: Vec<ChangeRow>,
    pub updates: Vec<ChangeRow>,
    pub deletes: Vec<ChangeRow>,
    pub conflicts: Vec<ConflictRow>,
    pub unchanged: usize,
}

/// The latest DNS job of a relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// `pending`, `running`, `done` or `failed`.
    pub state: String,
    /// `apply` or `remove`.
    pub action: String,
    pub attempts: u32,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub retry_in_secs: Option<u64>,
}

// One value per page load: its size does not matter, boxing would only clutter the pages.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepData {
    Domain {
        mail_domain: Option<String>,
        free_zones: Vec<FreeZone>,
        /// The label and zone when the current name is a free subdomain.
        free_label: Option<String>,
        free_zone_id: Option<String>,
    },
    Dns {
        mail_domain: String,
        managed_by_portal: bool,
        nameservers: Vec<String>,
        provider: Option<DetectedProvider>,
        lookup_problem: Option<String>,
        connection: Option<ConnectionInfo>,
        /// `connected`, `manual`, `portal` or `domain_connect`, once chosen.
        mode: Option<String>,
        /// The cloud providers offered: the detected one first.
        #[serde(default)]
        choices: Vec<ProviderChoice>,
        /// The DNS provider, when it can apply the relay's records through Domain Connect
        /// on this portal.
        #[serde(default)]
        domain_connect: Option<DomainConnectChoice>,
    },
    Settings(SettingsForm),
    Hardware {
        hardware: Option<Hardware>,
        ipv4: Option<String>,
        ipv6: Option<String>,
        /// The address the visitor's browser came from, when it is a public one.
        visitor_ip: Option<String>,
    },
    Records {
        mail_domain: String,
        records: Vec<PlannedRecordRow>,
        /// `connected`, `manual`, `portal` or `domain_connect`.
        mode: Option<String>,
        connection: Option<ConnectionInfo>,
        /// The dry run against the live zone, when connected.
        preview: Option<DiffView>,
        /// Why the dry run could not be made.
        preview_problem: Option<String>,
        job: Option<JobView>,
    },
    Download(DownloadStep),
    Status {
        mail_domain: String,
        /// The latest DNS check, `None` when none could be made.
        report: Option<chatmail_shared::dns_report::CheckReport>,
        /// Findings (`id|subject`) the group chose to ignore.
        ignored: Vec<String>,
        /// The join QR code (inline SVG), once everything needed is in place.
        qr_svg: Option<String>,
        /// The device as the portal's probes see it, and the go-live phases.
        device: DeviceView,
    },
}

/// The relay's device seen from the Internet, and how far going live has come.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    /// The go-live phases in order.
    pub phases: Vec<PhaseView>,
    /// The latest probe report.
    pub probe: Option<chatmail_shared::probe_report::ProbeReport>,
    /// When it was made, e.g. `2026-11-29 12:00 UTC`.
    pub checked_at: Option<String>,
    /// A check of the device is under way (the page refreshes).
    pub checking: bool,
    /// The software version the device last reported.
    pub version: Option<String>,
    /// A newer release on the relay's update channel, if one is published.
    #[serde(default)]
    pub update_available: Option<String>,
    /// `healthy`, `broken`, or `None` before the relay was first ready.
    pub health: Option<String>,
    /// Every phase is done.
    pub ready: bool,
}

/// One go-live phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseView {
    pub id: String,
    pub label: String,
    /// Done according to the latest checks.
    pub done: bool,
    /// When it was first reached, e.g. `2026-11-29 12:00 UTC`.
    pub reached_at: Option<String>,
}

/// The download step: the relay's personalized images.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadStep {
    pub mail_domain: String,
    /// Why no image can be offered, when none can.
    pub problem: Option<String>,
    /// One entry per device the portal has a base image for.
    pub images: Vec<ImageOffer>,
    /// Downloads the group started in the last 24 hours, and how many it may.
    pub downloads_used: u32,
    pub downloads_per_day: u32,
    /// The group's Raspberry Pi Imager repository address, once made.
    pub imager_url: Option<String>,
    /// Whether there is a Raspberry Pi image (and so an Imager repository).
    pub imager_available: bool,
    /// Downloads of this group now running or just finished, as the portal sends them.
    pub progress: Vec<DownloadProgress>,
}

/// A personalized image for one kind of device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageOffer {
    /// `rpi` or `amd64`.
    pub target: String,
    /// What people call the device.
    pub label: String,
    /// Matches the hardware chosen in step 4.
    pub recommended: bool,
    /// The base image's version.
    pub version: String,
    /// sha256 of the raw (uncompressed) personalized image.
    pub sha256: String,
    /// Size of the raw image in bytes.
    pub raw_size: u64,
    pub files: Vec<ImageFile>,
}

/// One download format of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFile {
    /// `img`, `img.gz` or `img.zst`.
    pub format: String,
    pub url: String,
    /// Exact size of the download in bytes.
    pub size: u64,
    /// Which tools take it.
    pub note: String,
}

/// A download as far as the portal has sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadProgress {
    pub file: String,
    pub sent: u64,
    pub total: u64,
    pub done: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupPage {
    pub group_id: String,
    pub group_name: String,
    pub step: SetupStep,
    /// Steps up to and including this number are done.
    pub completed_step: u8,
    pub disabled_reason: Option<String>,
    pub data: StepData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSettings {
    pub max_groups_per_account: u32,
    pub downloads_per_day: u32,
    pub open_sign_up: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorZone {
    pub id: String,
    pub zone: String,
    pub enabled: bool,
    pub relays: u32,
    /// How the portal writes this zone's records, if connected.
    pub connection: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorGroupRow {
    pub id: String,
    pub name: String,
    pub members: u32,
    pub mail_domain: Option<String>,
    pub completed_step: u8,
    pub disabled_reason: Option<String>,
    pub created: String,
    /// The relay's health from its latest DNS check, in words; `None` before any check.
    pub health: Option<String>,
    /// Whether that check found errors.
    pub unhealthy: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub at: String,
    pub actor: Option<String>,
    pub group: Option<String>,
    pub action: String,
    pub detail: String,
    pub ip: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorPage {
    pub settings: OperatorSettings,
    pub zones: Vec<OperatorZone>,
    pub groups: Vec<OperatorGroupRow>,
    pub audit: Vec<AuditRow>,
}
