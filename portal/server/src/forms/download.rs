//! Downloading the relay's personalized disk image, and the group's Raspberry Pi Imager
//! repository.
//!
//! - `GET|HEAD /groups/{id}/download/{target}.{img|img.gz|img.zst}`: members only (404 for
//!   anyone else, as for a group that does not exist); refused for a disabled group.
//! - `GET /imager/{token}/os-list.json` and `GET|HEAD /imager/{token}/{target}.{format}`:
//!   the same images for Raspberry Pi Imager, which cannot sign in; the token is the
//!   group's Imager link, shown to members only.
//! - `POST /groups/{id}/imager-link`: makes or replaces that link.
//!
//! Every download counts against the group's daily quota (resuming does not), takes one of
//! a few download slots (429 when all are busy), and is written to the audit log.

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use chatmail_portal_app::api::{DownloadProgress, DownloadStep, Hardware, ImageFile, ImageOffer};
use chatmail_shared::{MailDomain, RelayConfig};
use tower_sessions::Session;
use uuid::Uuid;

use super::{groups::access, internal, problem, FlashBuilder, FormFields};
use crate::{
    auth::{ClientIp, CurrentAccount},
    db::{self, relays::RelayRow},
    images::{
        imager,
        personalize::PersonalizeError,
        quota::{self, Admission},
        stream::{self, Format, RangeAsk},
        Target,
    },
    relay_config, AppState,
};

/// `amd64.img.gz` → (amd64, .img.gz).
fn parse_file(file: &str) -> Option<(Target, Format)> {
    let (target, suffix) = file.split_once('.')?;
    Some((Target::from_id(target)?, Format::from_suffix(suffix)?))
}

/// The configuration that goes into the image, as TOML: the saved one exactly, or (before
/// the settings step was saved) the defaults for the relay's name. A saved configuration
/// that cannot be read is refused rather than replaced by defaults. The portal's operator
/// may name another CA for every relay (`--relay-acme-directory`).
pub fn image_config(relay: &RelayRow) -> Result<String, String> {
    relay_config::with_operator_acme(saved_or_default_config(relay)?)
        .to_toml()
        .map_err(|err| format!("The relay's configuration is not valid ({err})."))
}

fn saved_or_default_config(relay: &RelayRow) -> Result<RelayConfig, String> {
    let domain = relay
        .mail_domain
        .as_deref()
        .and_then(|d| MailDomain::parse(d).ok())
        .ok_or_else(|| "Choose the relay's name first (step 1).".to_string())?;
    let config = match relay.config_toml.as_deref() {
        Some(text) => {
            if text.len() > chatmail_shared::config::MAX_CONFIG_BYTES {
                return Err(format!(
                    "The relay's saved configuration is {} bytes long; an image holds at most {} bytes. Save the relay settings (step 3) again.",
                    text.len(),
                    chatmail_shared::config::MAX_CONFIG_BYTES
                ));
            }
            RelayConfig::from_toml(text).map_err(|err| {
                format!(
                    "The relay's saved configuration is not valid ({}). Save the relay settings (step 3) again.",
                    relay_config::explain(&err)
                )
            })?
        }
        None => relay_config::load_or_new(relay, domain),
    };
    Ok(config)
}

/// The file name people see: `chatmail-<domain>-<target>.<suffix>`.
pub fn file_name(relay: &RelayRow, target: Target, format: Format) -> String {
    let domain: String = relay
        .mail_domain
        .as_deref()
        .unwrap_or("relay")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    format!("chatmail-{domain}-{}.{}", target.id(), format.suffix())
}

/// Who is downloading.
struct Requester {
    group: Uuid,
    account: Option<Uuid>,
    via: &'static str,
    ip: std::net::IpAddr,
}

/// `GET|HEAD /groups/{id}/download/{file}`.
pub async fn group_image(
    State(state): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path((group, file)): Path<(String, String)>,
    account: Option<Extension<CurrentAccount>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(Extension(account)) = account else {
        return super::see_other(&format!(
            "/signin?next={}",
            super::urlencode(&format!("/groups/{group}/setup/download"))
        ));
    };
    let not_found = || problem(StatusCode::NOT_FOUND, "There is no such group.");
    let Ok(group) = group.parse::<Uuid>() else {
        return not_found();
    };
    let membership = match db::groups::membership(&state.pool, account.id, group).await {
        Ok(Some(m)) => m,
        Ok(None) => return not_found(),
        Err(err) => return internal(err),
    };
    if let Some(reason) = membership.disabled_reason {
        return problem(
            StatusCode::FORBIDDEN,
            &format!("The portal's operator disabled this group, so its image cannot be downloaded: {reason}"),
        );
    }
    let relay = match db::relays::of_group(&state.pool, account.id, group).await {
        Ok(Some(relay)) => relay,
        Ok(None) => return not_found(),
        Err(err) => return internal(err),
    };
    let requester = Requester {
        group,
        account: Some(account.id),
        via: "portal",
        ip,
    };
    serve_image(&state, &relay, &file, requester, &method, &headers).await
}

/// `GET|HEAD /imager/{token}/{file}`.
pub async fn imager_image(
    State(state): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path((token, file)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let (group, relay) = match imager_group(&state, &token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let requester = Requester {
        group,
        account: None,
        via: "imager",
        ip,
    };
    serve_image(&state, &relay, &file, requester, &method, &headers).await
}

/// The group and relay of an Imager link, or the response refusing it.
async fn imager_group(state: &AppState, token: &str) -> Result<(Uuid, RelayRow), Response> {
    let unknown = || {
        problem(
            StatusCode::NOT_FOUND,
            "This Imager link is not valid (any more). Copy the current one from the relay's download page.",
        )
    };
    let (group, disabled) = match quota::group_of_token(&state.pool, token).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(unknown()),
        Err(err) => return Err(internal(err)),
    };
    if disabled {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "The portal's operator disabled this group, so its image cannot be downloaded.",
        ));
    }
    match db::relays::by_group(&state.pool, group).await {
        Ok(Some(relay)) => Ok((group, relay)),
        Ok(None) => Err(unknown()),
        Err(err) => Err(internal(err)),
    }
}

async fn serve_image(
    state: &AppState,
    relay: &RelayRow,
    file: &str,
    who: Requester,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let Some((target, format)) = parse_file(file) else {
        return problem(StatusCode::NOT_FOUND, "There is no such image.");
    };
    if state.images.base(target).is_none() {
        return problem(
            StatusCode::NOT_FOUND,
            "This portal has no image for that device.",
        );
    }
    let config = match image_config(relay) {
        Ok(config) => config,
        Err(message) => return problem(StatusCode::CONFLICT, &message),
    };
    let (base, personal) = match state.images.personalized(target, &config).await {
        Ok(found) => found,
        Err(PersonalizeError::ConfigTooLarge { len, max }) => {
            return problem(
                StatusCode::CONFLICT,
                &format!("The relay's configuration is {len} bytes long; an image holds at most {max} bytes."),
            )
        }
        Err(err) => return internal(err),
    };
    let sources = match stream::Sources::open(&base, &personal) {
        Ok(sources) => sources,
        Err(err) => return internal(err),
    };
    let download = stream::layout(&base, &personal, &sources, format);
    let etag = format!("\"{}.{}\"", personal.meta.sha256, format.suffix());
    let head = method == Method::HEAD;

    // What the request asks for decides whether it counts: HEAD never, a resumption of an
    // image fetched before not again.
    let ask = if stream::range_applies(headers, &etag) {
        stream::parse_range(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            download.len(),
        )
    } else {
        RangeAsk::Whole
    };
    let mut guard: Box<dyn Send + Sync> = Box::new(());
    if !head && ask != RangeAsk::Unsatisfiable {
        let Some(slots) = state.images.try_slot(who.group) else {
            let mut response = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many downloads are running at the moment. Please try again in a minute.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            return response;
        };
        guard = Box::new(slots);
        let continues = matches!(ask, RangeAsk::Part { start, .. } if start > 0);
        let start = quota::Start {
            group: who.group,
            account: who.account,
            target: target.id(),
            format: format.suffix(),
            image_sha256: &personal.meta.sha256,
            via: who.via,
            continues,
        };
        match quota::admit(&state.pool, &start).await {
            Ok(Admission::Counted) => {
                db::audit::record(
                    &state.pool,
                    who.account,
                    Some(who.group),
                    "image.download",
                    &format!(
                        "{} {} via {} (sha256 {})",
                        target.id(),
                        format.suffix(),
                        who.via,
                        &personal.meta.sha256[..16]
                    ),
                    Some(who.ip),
                )
                .await;
            }
            Ok(Admission::Resumed) => {}
            Ok(Admission::QuotaUsed { per_day }) => {
                let mut response = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("This group has used its {per_day} image downloads for the last 24 hours. Please try again later."),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
                return response;
            }
            Err(err) => return internal(err),
        }
    }
    stream::respond(
        stream::Serve {
            download,
            format,
            etag,
            filename: file_name(relay, target, format),
            guard,
            progress: Some((state.images.clone(), who.group)),
        },
        headers,
        head,
    )
}

/// `GET /imager/{token}/os-list.json`.
pub async fn imager_list(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let (_, relay) = match imager_group(&state, &token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let config = match image_config(&relay) {
        Ok(config) => config,
        Err(message) => return problem(StatusCode::CONFLICT, &message),
    };
    let base_url = &state.settings.base_url;
    let mut os_list = Vec::new();
    if state.images.base(Target::Rpi).is_some() {
        let (base, personal) = match state.images.personalized(Target::Rpi, &config).await {
            Ok(found) => found,
            Err(err) => return internal(err),
        };
        let domain = relay.mail_domain.clone().unwrap_or_default();
        os_list.push(imager::OsEntry {
            name: format!("Chatmail relay {domain}"),
            description: format!(
                "The chatmail relay for {domain}, made for this group (gokrazy, version {})",
                base.manifest.version
            ),
            icon: format!("{base_url}{}", state.assets.bundle.favicon),
            url: format!(
                "{base_url}/imager/{token}/{}.{}",
                Target::Rpi.id(),
                Format::ImgGz.suffix()
            ),
            extract_size: personal.meta.size,
            extract_sha256: personal.meta.sha256.clone(),
            image_download_size: personal.meta.gz_size,
            release_date: imager::release_date(&base.manifest.build_timestamp),
            devices: imager::PI_DEVICES.to_vec(),
            website: format!("{base_url}/"),
        });
    }
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(imager::OsList { os_list }),
    )
        .into_response()
}

/// `POST /groups/{id}/imager-link`: a new Imager link (the old one stops working).
pub async fn new_imager_link(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(group): Path<String>,
    account: Option<Extension<CurrentAccount>>,
    fields: FormFields,
) -> Response {
    let back = format!("/groups/{group}/setup/download");
    let access = match access(&state, account, &group, &fields, &back).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    if let Err(response) = super::groups::refuse_if_disabled(&access, &session, &back).await {
        return response;
    }
    if let Err(err) = quota::new_imager_token(&state.pool, access.group).await {
        return internal(err);
    }
    db::audit::record(
        &state.pool,
        Some(access.account.id),
        Some(access.group),
        "image.imager_link",
        "new link",
        Some(ip),
    )
    .await;
    FlashBuilder::success(
        "A new Raspberry Pi Imager link is ready; any earlier link no longer works.",
    )
    .redirect(&session, &back)
    .await
}

/// What the download step shows: the personalized images (made now if needed, which
/// takes well under a second per device), the quota, the Imager address and progress.
pub async fn step_data(state: &AppState, relay: &RelayRow) -> DownloadStep {
    let mut step = DownloadStep {
        mail_domain: relay
            .mail_domain
            .as_deref()
            .and_then(|d| MailDomain::parse(d).ok())
            .map(|d| d.to_unicode())
            .unwrap_or_default(),
        ..Default::default()
    };
    match quota::usage(&state.pool, relay.group_id).await {
        Ok((used, per_day)) => {
            step.downloads_used = used.clamp(0, i64::from(u32::MAX)) as u32;
            step.downloads_per_day = per_day.max(0) as u32;
        }
        Err(err) => tracing::error!("download quota: {err}"),
    }
    step.progress = state
        .images
        .progress_of(relay.group_id)
        .into_iter()
        .map(|(file, sent, total, done)| DownloadProgress {
            file,
            sent,
            total,
            done,
        })
        .collect();
    let targets = state.images.targets();
    if targets.is_empty() {
        step.problem = Some(
            "This portal has no device images yet. The rest of the setup is saved; ask the portal's operator, or come back later."
                .into(),
        );
        return step;
    }
    let config = match image_config(relay) {
        Ok(config) => config,
        Err(message) => {
            step.problem = Some(message);
            return step;
        }
    };
    let hardware = relay.hardware.as_deref().and_then(Hardware::parse);
    for target in targets {
        let (base, personal) = match state.images.personalized(target, &config).await {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(target = target.id(), "personalizing: {err}");
                step.problem = Some(match err {
                    PersonalizeError::ConfigTooLarge { len, max } => format!(
                        "The relay's configuration is {len} bytes long; an image holds at most {max} bytes."
                    ),
                    _ => "The image could not be made just now. Please try again in a moment.".into(),
                });
                continue;
            }
        };
        let url = |format: Format| {
            format!(
                "/groups/{}/download/{}.{}",
                relay.group_id,
                target.id(),
                format.suffix()
            )
        };
        let note = |format: Format| -> String {
            match format {
                Format::ImgGz => "for Raspberry Pi Imager, balenaEtcher, or gunzip and dd".into(),
                Format::ImgZst => "smaller; for Raspberry Pi Imager, or zstd -d and dd".into(),
                Format::Img => "uncompressed; for dd, or as a virtual machine's disk".into(),
            }
        };
        step.images.push(ImageOffer {
            target: target.id().into(),
            label: target.label().into(),
            recommended: matches!(
                (hardware, target),
                (Some(Hardware::RaspberryPi), Target::Rpi)
                    | (Some(Hardware::VirtualMachine), Target::Amd64)
            ),
            version: base.manifest.version.clone(),
            sha256: personal.meta.sha256.clone(),
            raw_size: personal.meta.size,
            files: [
                (Format::ImgGz, personal.meta.gz_size),
                (Format::ImgZst, personal.meta.zst_size),
                (Format::Img, personal.meta.size),
            ]
            .into_iter()
            .map(|(format, size)| ImageFile {
                format: format.suffix().into(),
                url: url(format),
                size,
                note: note(format),
            })
            .collect(),
        });
        if target == Target::Rpi {
            step.imager_available = true;
        }
    }
    // The device chosen in step 4 first.
    step.images.sort_by_key(|offer| !offer.recommended);
    if step.imager_available {
        match quota::imager_token(&state.pool, relay.group_id).await {
            Ok(token) => {
                step.imager_url = token
                    .map(|token| format!("{}/imager/{token}/os-list.json", state.settings.base_url))
            }
            Err(err) => tracing::error!("imager link: {err}"),
        }
    }
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file("amd64.img.gz"),
            Some((Target::Amd64, Format::ImgGz))
        );
        assert_eq!(parse_file("rpi.img"), Some((Target::Rpi, Format::Img)));
        assert_eq!(
            parse_file("rpi.img.zst"),
            Some((Target::Rpi, Format::ImgZst))
        );
        assert_eq!(parse_file("rpi.img.xz"), None);
        assert_eq!(parse_file("arm.img"), None);
        assert_eq!(parse_file("amd64"), None);
    }
}
