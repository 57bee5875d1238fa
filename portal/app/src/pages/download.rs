//! Step 6: download the relay's disk image, made for this relay by the portal.
//!
//! Every download is a plain link (`<a download>`), so the page works without JavaScript
//! and the browser's own download manager shows progress and can resume. With JavaScript
//! the page also shows a progress bar: after a download link is clicked it reloads its data
//! every second, and the portal reports how far it has sent each of the group's running
//! downloads. (The portal counts bytes handed to the network, so the bar runs at most a few
//! megabytes ahead of what arrived.) Without JavaScript, reloading the page shows the same
//! bars.

use leptos::prelude::*;

use crate::api::{DownloadProgress, DownloadStep, ImageOffer};
use crate::components::{CopyButton, CsrfField};

/// Bytes for people: "1.33 GiB", "84.2 MiB", "512 bytes".
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

std::thread_local! {
    /// Reloads still to do while no download shows up yet (the page is re-made on every
    /// reload, so this lives outside it).
    static POLLS_LEFT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Reloads the step's data in a second, while something is worth watching.
fn keep_watching(active: bool) {
    let left = POLLS_LEFT.with(|p| p.get());
    let go_on = if active {
        POLLS_LEFT.with(|p| p.set(5));
        true
    } else if left > 0 {
        POLLS_LEFT.with(|p| p.set(left - 1));
        true
    } else {
        false
    };
    if !go_on {
        return;
    }
    if let Some(crate::pages::status::Refresh(resource)) =
        use_context::<crate::pages::status::Refresh>()
    {
        let handle = set_timeout_with_handle(
            move || resource.refetch(),
            std::time::Duration::from_secs(1),
        );
        on_cleanup(move || {
            if let Ok(handle) = handle {
                handle.clear();
            }
        });
    }
}

#[component]
pub fn DownloadView(
    data: DownloadStep,
    action: String,
    csrf: String,
    group_id: String,
) -> impl IntoView {
    let active = data.progress.iter().any(|p| !p.done);
    let clicked = RwSignal::new(false);
    // In the browser only: keep reloading while a download runs or was just started.
    Effect::new(move |_| {
        let _ = clicked.get();
        keep_watching(active);
    });
    let on_download = move |_| {
        POLLS_LEFT.with(|p| p.set(10));
        clicked.set(true);
    };
    let DownloadStep {
        mail_domain,
        problem,
        images,
        downloads_used,
        downloads_per_day,
        imager_url,
        imager_available,
        progress,
    } = data;
    let quota_left = downloads_per_day.saturating_sub(downloads_used);
    let imager_action = format!("/groups/{group_id}/imager-link");
    view! {
        <p>"This is your relay's disk image, made for "<strong>{mail_domain.clone()}</strong>
            ": flash it to a memory card or disk (or use it as a virtual machine's disk) and start the device. It contains only settings that are not secret; the device makes its own keys and passwords when it first starts."</p>
        {problem.map(|problem| view! {
            <div class="flash flash-error" role="alert"><p>{problem}</p></div>
        })}
        {images
            .into_iter()
            .map(|offer| view! { <ImageSection offer on_download /> })
            .collect_view()}
        <p class="hint" id="download-quota">
            {format!(
                "Downloads in the last 24 hours: {downloads_used} of {downloads_per_day} for this group ({quota_left} left). Resuming an interrupted download does not count."
            )}
        </p>
        {(!progress.is_empty()).then(|| view! { <ProgressList progress /> })}
        {imager_available.then(|| view! {
            <section class="image-offer" id="imager">
                <h2>"Raspberry Pi Imager"</h2>
                <p>"Raspberry Pi Imager can list, download and check this relay's image itself: in Imager choose \u{201c}App Options\u{201d} › \u{201c}Content Repository\u{201d} › \u{201c}Use custom URL\u{201d} and enter the address below (or start it as "<code>"rpi-imager --repo <address>"</code>"). Anyone with this address can download the image, so keep it within the group."</p>
                {imager_url.clone().map(|url| view! {
                    <p><code id="imager-url">{url.clone()}</code>" "<CopyButton text=url /></p>
                })}
                <form method="post" action=imager_action>
                    <CsrfField token=csrf.clone() />
                    <button type="submit" class="button">
                        {if imager_url.is_some() { "Make a new address (the old one stops working)" } else { "Make an Imager address" }}
                    </button>
                </form>
            </section>
        })}
        <form method="post" action=action>
            <CsrfField token=csrf />
            <button type="submit" class="button button-primary">"Continue to the status page"</button>
        </form>
    }
}

#[component]
fn ImageSection(
    offer: ImageOffer,
    on_download: impl Fn(leptos::ev::MouseEvent) + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let id = format!("image-{}", offer.target);
    let sha = offer.sha256.clone();
    view! {
        <section class="image-offer" id=id>
            <h2>
                {offer.label.clone()}
                {offer.recommended.then(|| view! { " "<span class="badge">"For your hardware"</span> })}
            </h2>
            <p>{format!("Version {}. Uncompressed size: {} ({} bytes).", offer.version, human_size(offer.raw_size), offer.raw_size)}</p>
            <p>"SHA-256 of the uncompressed image: "<code class="sha256">{sha.clone()}</code>" "<CopyButton text=sha /></p>
            <ul class="image-files">
                {offer
                    .files
                    .into_iter()
                    .map(|file| {
                        let on_download = on_download.clone();
                        view! {
                            <li>
                                <a class="button" href=file.url.clone() download="" on:click=on_download>
                                    {format!("Download .{}", file.format)}
                                </a>
                                " "{human_size(file.size)}" \u{2013} "{file.note.clone()}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}

#[component]
fn ProgressList(progress: Vec<DownloadProgress>) -> impl IntoView {
    view! {
        <section class="download-progress" aria-live="polite">
            <h2>"Downloads"</h2>
            {progress
                .into_iter()
                .map(|p| {
                    let percent = (p.sent.saturating_mul(100)).checked_div(p.total).unwrap_or(100);
                    let state = if p.done && p.sent >= p.total {
                        "sent completely".to_string()
                    } else if p.done {
                        "stopped".to_string()
                    } else {
                        format!("{percent}%")
                    };
                    view! {
                        <div class="download-row">
                            <span class="download-file">{p.file.clone()}</span>
                            <progress max=p.total.to_string() value=p.sent.to_string()>{format!("{percent}%")}</progress>
                            <span class="download-state">{format!("{} of {} \u{2013} {state}", human_size(p.sent), human_size(p.total))}</span>
                        </div>
                    }
                })
                .collect_view()}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1_426_063_360), "1.3 GiB");
        assert_eq!(human_size(150 * 1024 * 1024), "150 MiB");
    }
}
