//! The relay's status: every DNS check with a state icon and colour, grouped by who has
//! to act, a re-check button, "ignore this warning", and the join QR code once ready.
//! While anything is still on its way the page refreshes itself (with JavaScript every
//! 10 s until the device is ready, then every 30 s; every 60 s without).

use chatmail_shared::dns_report::{CheckReport, Finding, RecordStatus, Severity, WhoActs};
use leptos::prelude::*;

use crate::{
    api::{AppError, DeviceView, SetupPage},
    components::CsrfField,
};

/// The page's data resource, so the status view can reload it.
#[derive(Clone, Copy)]
pub struct Refresh(pub Resource<Result<SetupPage, AppError>>);

fn key(finding: &Finding) -> String {
    match &finding.subject {
        Some(subject) => format!("{}|{subject}", finding.id),
        None => finding.id.clone(),
    }
}

fn icon(severity: Option<Severity>) -> (&'static str, &'static str, &'static str) {
    match severity {
        None => ("\u{2713}", "state-ok", "OK"),
        Some(Severity::Info) => ("i", "state-info", "Note"),
        Some(Severity::Warning) => ("!", "state-warning", "Warning"),
        Some(Severity::Error) => ("\u{2717}", "state-error", "Problem"),
    }
}

fn who_heading(who: WhoActs) -> &'static str {
    match who {
        WhoActs::YouAtDnsProvider => "To do at your DNS provider",
        WhoActs::YouAtRegistrar => "To do at your registrar (where you bought the domain)",
        WhoActs::HostingProvider => "Ask your hosting provider",
        WhoActs::Isp => "Ask your internet provider",
        WhoActs::YouAtRouter => "To do in your router's settings",
        WhoActs::YouAtDevice => "To do at the device",
        WhoActs::PortalAdmin => "For whoever runs this portal",
        WhoActs::Wait => "Nothing to do: this fixes itself, please wait",
        WhoActs::Nobody => "Good to know",
    }
}

const WHO_ORDER: [WhoActs; 9] = [
    WhoActs::YouAtDevice,
    WhoActs::YouAtRouter,
    WhoActs::YouAtDnsProvider,
    WhoActs::YouAtRegistrar,
    WhoActs::HostingProvider,
    WhoActs::Isp,
    WhoActs::PortalAdmin,
    WhoActs::Wait,
    WhoActs::Nobody,
];

fn record_state(status: &RecordStatus) -> (&'static str, &'static str, String) {
    match status {
        RecordStatus::Ok => ("\u{2713}", "state-ok", "In place".into()),
        RecordStatus::Missing => ("\u{2717}", "state-error", "Missing".into()),
        RecordStatus::Wrong { .. } => ("\u{2717}", "state-error", "Wrong value".into()),
        RecordStatus::NotYetPropagated {
            remaining_ttl_secs, ..
        } => (
            "\u{231b}",
            "state-waiting",
            match remaining_ttl_secs {
                Some(secs) => format!("Correct, still spreading (up to {} min)", secs.div_ceil(60)),
                None => "Correct, still spreading".into(),
            },
        ),
        RecordStatus::ServersDisagree { .. } => ("!", "state-warning", "Servers disagree".into()),
        RecordStatus::ResolverFails { .. } => {
            ("\u{2717}", "state-error", "Cannot be looked up".into())
        }
        RecordStatus::Unknown { .. } => ("?", "state-warning", "Could not be checked".into()),
        RecordStatus::Pending { .. } => {
            ("\u{2026}", "state-waiting", "Waits for your device".into())
        }
    }
}

/// Whether the page should keep refreshing: some record is not in place yet.
pub fn still_on_its_way(report: &CheckReport) -> bool {
    report
        .records
        .iter()
        .any(|record| record.status != RecordStatus::Ok)
}

#[component]
pub fn StatusView(
    mail_domain: String,
    report: Option<CheckReport>,
    ignored: Vec<String>,
    qr_svg: Option<String>,
    device: DeviceView,
    action: String,
    csrf: String,
    group_id: String,
) -> impl IntoView {
    let refreshing = report.as_ref().is_none_or(still_on_its_way) || !device.ready;
    if refreshing {
        if let Some(Refresh(resource)) = use_context::<Refresh>() {
            Effect::new(move |_| {
                // Faster while the device is awaited, so "ready" shows within seconds.
                let every = if device.ready { 30 } else { 10 };
                let handle = set_interval_with_handle(
                    move || resource.refetch(),
                    std::time::Duration::from_secs(every),
                );
                on_cleanup(move || {
                    if let Ok(handle) = handle {
                        handle.clear();
                    }
                });
            });
        }
    }
    let recheck = format!("/groups/{group_id}/dns-check");
    let ignore_action = format!("/groups/{group_id}/dns-check/ignore");
    let unignore_action = format!("/groups/{group_id}/dns-check/unignore");
    let _ = action;

    let Some(report) = report else {
        return view! {
            <p>"The DNS of "{mail_domain}" could not be checked: the portal cannot reach any DNS resolver right now."</p>
            <form method="post" action=recheck>
                <CsrfField token=csrf />
                <button type="submit" class="button">"Check again"</button>
            </form>
        }
        .into_any();
    };

    let (shown, hidden): (Vec<Finding>, Vec<Finding>) =
        report.findings.iter().cloned().partition(|finding| {
            finding.severity == Severity::Error || !ignored.contains(&key(finding))
        });
    let errors = shown
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = shown
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    let headline = if errors == 0 && warnings == 0 && !still_on_its_way(&report) {
        "Every DNS record is in place.".to_string()
    } else if errors > 0 {
        format!("{errors} problem(s) to fix, {warnings} warning(s).")
    } else if warnings > 0 {
        format!("No problems, {warnings} warning(s).")
    } else {
        "No problems so far; some records are still on their way.".to_string()
    };
    let headline_class = if errors > 0 {
        "status-headline state-error"
    } else if warnings > 0 {
        "status-headline state-warning"
    } else {
        "status-headline state-ok"
    };

    view! {
        {refreshing.then(|| view! { <noscript><meta http-equiv="refresh" content="60" /></noscript> })}
        <DeviceSection device=device.clone() />
        <h2>"DNS"</h2>
        <p class=headline_class id="status-headline" role="status">{headline}</p>
        <p class="muted">
            {format!("Checked {} record(s) of {} in {} ms", report.records.len(), mail_domain, report.duration_ms)}
            {report.zone.clone().map(|zone| format!(" (zone {zone})"))}
            {refreshing.then_some("; this page checks again by itself while something is on its way.")}
        </p>
        <form method="post" action=recheck.clone()>
            <CsrfField token=csrf.clone() />
            <button type="submit" class="button" id="recheck">"Check again now"</button>
        </form>

        {WHO_ORDER.into_iter().filter_map(|who| {
            let group: Vec<Finding> = shown.iter().filter(|f| f.who_acts == who).cloned().collect();
            if group.is_empty() {
                return None;
            }
            Some(view! {
                <section class="findings" data-who=format!("{who:?}")>
                    <h2>{who_heading(who)}</h2>
                    {group.into_iter().map(|finding| {
                        let (symbol, class, label) = icon(Some(finding.severity));
                        let ignorable = finding.severity != Severity::Error;
                        let finding_key = key(&finding);
                        view! {
                            <article class=format!("finding {class}") data-finding=finding.id.clone()>
                                <h3><span class="state-icon" aria-hidden="true">{symbol}</span><span class="visually-hidden">{label}": "</span>{finding.title.clone()}</h3>
                                <p>{finding.explanation.clone()}</p>
                                {finding.expected.clone().map(|e| view! { <p>"Should be: "<code>{e}</code></p> })}
                                {finding.found.clone().map(|f| view! { <p>"Found: "<code>{f}</code></p> })}
                                <p class="fix"><strong>"What to do: "</strong>{finding.fix.clone()}</p>
                                {ignorable.then(|| view! {
                                    <form method="post" action=ignore_action.clone()>
                                        <CsrfField token=csrf.clone() />
                                        <input type="hidden" name="finding" value=finding_key />
                                        <button type="submit" class="button button-small">"Ignore this warning"</button>
                                    </form>
                                })}
                            </article>
                        }
                    }).collect_view()}
                </section>
            })
        }).collect_view()}

        {(!hidden.is_empty()).then(|| view! {
            <details class="ignored">
                <summary>{format!("{} ignored warning(s)", hidden.len())}</summary>
                {hidden.into_iter().map(|finding| {
                    let finding_key = key(&finding);
                    view! {
                        <p>{finding.title.clone()}</p>
                        <form method="post" action=unignore_action.clone()>
                            <CsrfField token=csrf.clone() />
                            <input type="hidden" name="finding" value=finding_key />
                            <button type="submit" class="button button-small">"Show again"</button>
                        </form>
                    }
                }).collect_view()}
            </details>
        })}

        <h2>"Records"</h2>
        <table class="table" id="record-status">
            <thead><tr><th scope="col">"State"</th><th scope="col">"Name"</th><th scope="col">"Type"</th><th scope="col">"Should be"</th><th scope="col">"Found"</th></tr></thead>
            <tbody>
                {report.records.iter().map(|record| {
                    let (symbol, class, label) = record_state(&record.status);
                    view! {
                        <tr class=class data-purpose=record.purpose.clone()>
                            <td><span class="state-icon" aria-hidden="true">{symbol}</span>" "{label}</td>
                            <td><code>{record.name.clone()}</code></td>
                            <td>{record.rtype.clone()}</td>
                            <td><code>{record.expected.clone().unwrap_or_default()}</code></td>
                            <td><code>{record.found.join(" ")}</code></td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>

        {(!report.nameservers.is_empty()).then(|| view! {
            <h2>"Name servers"</h2>
            <ul>
                {report.nameservers.iter().map(|ns| view! { <li><code>{ns.name.clone()}</code></li> }).collect_view()}
            </ul>
        })}

        <h2>"Join"</h2>
        {match qr_svg {
            Some(svg) => view! {
                {if device.ready {
                    view! { <p id="join-ready">"Your relay is ready. Scan this code with Delta Chat to create an account on it."</p> }.into_any()
                } else {
                    view! { <p>"Scan this code with Delta Chat to create an account on your relay. It works once every step under \"Going live\" is done."</p> }.into_any()
                }}
                <div class="qr" inner_html=svg></div>
                <p><a class="button" href=format!("/groups/{group_id}/invite-card") target="_blank">"Printable invitation"</a></p>
            }.into_any(),
            None => view! { <p>"The QR code to join appears here once the DNS problems above are fixed."</p> }.into_any(),
        }}
    }
    .into_any()
}

fn port_cell(probe: Option<&chatmail_shared::probe_report::PortProbe>) -> AnyView {
    match probe {
        Some(port) if port.open => view! {
            <td class="state-ok"><span class="state-icon" aria-hidden="true">"\u{2713}"</span><span class="visually-hidden">"open"</span></td>
        }
        .into_any(),
        Some(port) => view! {
            <td class="state-error" title=port.problem.clone().unwrap_or_default()><span class="state-icon" aria-hidden="true">"\u{2717}"</span><span class="visually-hidden">"closed"</span></td>
        }
        .into_any(),
        None => view! { <td>"?"</td> }.into_any(),
    }
}

/// Going live: the phases with when each was reached, then what the probes of the device
/// found, grouped by who has to act.
#[component]
fn DeviceSection(device: DeviceView) -> impl IntoView {
    let checked = match (&device.checked_at, device.checking) {
        (_, true) => "Checking your device now…".to_string(),
        (Some(at), false) => format!("Device last checked {at}."),
        (None, false) => "Your device has not been checked yet.".to_string(),
    };
    let findings: Vec<Finding> = device
        .probe
        .as_ref()
        .map(|probe| probe.findings.clone())
        .unwrap_or_default();
    view! {
        <section id="go-live" data-ready=device.ready.to_string()>
            <h2>"Going live"</h2>
            <ol class="phases">
                {device.phases.iter().map(|phase| {
                    let (symbol, class) = if phase.done { ("\u{2713}", "state-ok") } else { ("\u{2026}", "state-waiting") };
                    view! {
                        <li class=class data-phase=phase.id.clone() data-done=phase.done.to_string()>
                            <span class="state-icon" aria-hidden="true">{symbol}</span>" "{phase.label.clone()}
                            {phase.reached_at.clone().map(|at| view! { <span class="muted">" (first reached "{at}")"</span> })}
                        </li>
                    }
                }).collect_view()}
            </ol>
            <p class="muted" id="device-checked">
                {checked}
                {device.version.clone().map(|v| format!(" Software version {v}."))}
                {device.update_available.clone().map(|v| view! { " " <span id="update-available">{format!("Version {v} is available on its update channel.")}</span> })}
                {(device.health.as_deref() == Some("broken")).then_some(" It was ready before and is not any more.")}
            </p>
            {WHO_ORDER.into_iter().filter_map(|who| {
                let group: Vec<Finding> = findings.iter().filter(|f| f.who_acts == who).cloned().collect();
                if group.is_empty() {
                    return None;
                }
                Some(view! {
                    <section class="findings device-findings" data-who=format!("{who:?}")>
                        <h3>{who_heading(who)}</h3>
                        {group.into_iter().map(|finding| {
                            let (symbol, class, label) = icon(Some(finding.severity));
                            view! {
                                <article class=format!("finding {class}") data-finding=finding.id.clone()>
                                    <h4><span class="state-icon" aria-hidden="true">{symbol}</span><span class="visually-hidden">{label}": "</span>{finding.title.clone()}</h4>
                                    <p>{finding.explanation.clone()}</p>
                                    <p class="fix"><strong>"What to do: "</strong>{finding.fix.clone()}</p>
                                </article>
                            }
                        }).collect_view()}
                    </section>
                })
            }).collect_view()}
            {device.probe.as_ref().filter(|p| !p.addresses.is_empty()).map(|probe| view! {
                <table class="table" id="device-ports">
                    <thead><tr><th scope="col">"Address"</th>
                        {[25u16, 80, 443, 465, 587, 993].into_iter().map(|port| view! { <th scope="col">{port}</th> }).collect_view()}
                    </tr></thead>
                    <tbody>
                        {probe.addresses.iter().map(|address| view! {
                            <tr data-address=address.address.clone()>
                                <td><code>{address.address.clone()}</code>" "{address.family.clone()}</td>
                                {[25u16, 80, 443, 465, 587, 993].into_iter().map(|port| port_cell(address.ports.iter().find(|p| p.port == port))).collect_view()}
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {device.probe.as_ref().and_then(|p| p.certificate.clone()).map(|cert| view! {
                <p id="device-certificate" class=if cert.valid { "state-ok" } else { "state-error" }>
                    {if cert.valid { "HTTPS certificate valid" } else { "HTTPS certificate not valid" }}
                    {cert.days_left.map(|d| format!(", {d} day(s) left"))}
                    {cert.issuer.clone().map(|i| format!(", issued by {i}"))}
                    "."
                </p>
            })}
        </section>
    }
}
