//! The wizard's two DNS steps: connecting the provider (step 2: the detected provider
//! first, a sign-in button or a guided token form per provider this portal offers, then
//! self-hosted servers and "by hand") and reviewing and writing the records (step 5), with
//! the dry run shown in words before anything is written.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::{
    api::{
        ConnectionInfo, DetectedProvider, DiffView, DomainConnectChoice, Flash, JobView,
        PlannedRecordRow, ProviderChoice, TokenGuide,
    },
    components::{CopyButton, CsrfField, Field},
    pages::status::Refresh,
};

#[component]
#[allow(clippy::too_many_arguments)]
pub fn ConnectStep(
    mail_domain: String,
    managed_by_portal: bool,
    nameservers: Vec<String>,
    provider: Option<DetectedProvider>,
    lookup_problem: Option<String>,
    connection: Option<ConnectionInfo>,
    mode: Option<String>,
    choices: Vec<ProviderChoice>,
    domain_connect: Option<DomainConnectChoice>,
    action: String,
    csrf: String,
    group_id: String,
    flash: Flash,
) -> impl IntoView {
    if managed_by_portal {
        return view! {
            <p>{format!("{mail_domain} is a free name from this portal, so the portal writes its DNS records itself. Nothing to connect.")}</p>
            <form method="post" action=action>
                <CsrfField token=csrf />
                <button type="submit" class="button button-primary">"Continue"</button>
            </form>
        }
        .into_any();
    }
    let connect = format!("/groups/{group_id}/dns/connect");
    let done = connection.is_some() || matches!(mode.as_deref(), Some("manual" | "domain_connect"));
    // Self-hosted software detected: its own form (below) is the way to connect.
    let self_hosted = provider
        .as_ref()
        .map(|p| p.id.clone())
        .filter(|id| SELF_HOSTED_FORMS.contains(&id.as_str()));
    let supported = self_hosted.is_some()
        || provider
            .as_ref()
            .is_some_and(|p| choices.iter().any(|c| c.detected && c.name == p.name));
    let (detected_choices, other_choices): (Vec<ProviderChoice>, Vec<ProviderChoice>) =
        choices.iter().cloned().partition(|c| c.detected);
    let reconnect_choice = connection
        .as_ref()
        .filter(|c| c.problem.is_some())
        .and_then(|c| c.provider.clone())
        .and_then(|id| choices.iter().find(|c| c.id == id).cloned());
    view! {
        <p>{format!("The DNS records of {mail_domain} must say where your relay is. They live at your DNS provider.")}</p>
        {lookup_problem.map(|problem| view! { <div class="flash flash-error" role="alert"><p>{problem}</p></div> })}
        {(!nameservers.is_empty()).then(|| view! {
            <p>"Its name servers are:"</p>
            <ul id="nameservers">{nameservers.iter().map(|ns| view! { <li><code>{ns.clone()}</code></li> }).collect_view()}</ul>
        })}
        {match provider {
            Some(provider) => view! {
                <p id="dns-provider">"Your DNS provider is " <strong>{provider.name.clone()}</strong> "."
                    {provider.domain_connect.then_some(" It supports Domain Connect.")}
                </p>
                <p class="hint">{if supported {
                    format!("Connect {} below: the portal then writes the records itself, after showing you what it will change.", provider.name)
                } else {
                    format!(
                        "Connecting {} directly is not available on this portal; choose \u{201c}I will enter the records myself\u{201d} and the portal lists each record for you.",
                        provider.name
                    )
                }}</p>
            }.into_any(),
            None => view! { <p id="dns-provider">"The portal does not recognise this DNS provider."</p> }.into_any(),
        }}
        {connection.clone().map(|connection| match connection.problem.clone() {
            None => view! {
                <div class="flash flash-success" role="status" id="dns-connection">
                    <p>{format!("Connected: {}, zone {}.", connection.label, connection.zone)}</p>
                </div>
            }.into_any(),
            Some(problem) => {
                let sign_in = reconnect_choice.as_ref().filter(|c| c.sign_in && connection.signed_in).cloned();
                view! {
                    <div class="flash flash-error" role="alert" id="dns-reconnect">
                        <p>{format!("The connection to {} stopped working: {problem}", connection.label)}</p>
                        {match sign_in {
                            Some(choice) => view! {
                                <form method="post" action=format!("/groups/{group_id}/dns/oauth/{}", choice.id)>
                                    <CsrfField token=csrf.clone() />
                                    <button type="submit" class="button button-primary" id="dns-reconnect-button">{format!("Reconnect {}", choice.name)}</button>
                                </form>
                            }.into_any(),
                            None => view! { <p>"Connect it again below with a new key."</p> }.into_any(),
                        }}
                    </div>
                }.into_any()
            }
        })}
        {connection.is_some().then(|| view! {
            <form method="post" action=format!("/groups/{group_id}/dns/disconnect")>
                <CsrfField token=csrf.clone() />
                <button type="submit" class="button" id="dns-disconnect">"Disconnect"</button>
            </form>
        })}
        {(mode.as_deref() == Some("manual")).then(|| view! {
            <div class="flash flash-info" role="status" id="dns-connection"><p>"You chose to enter the records yourself."</p></div>
        })}
        {(mode.as_deref() == Some("domain_connect")).then(|| view! {
            <div class="flash flash-info" role="status" id="dns-connection"><p>"Your DNS provider writes the records through Domain Connect: you confirm them on its page from the records step."</p></div>
        })}

        <h2>{if done { "Change how the records are written" } else { "How should the portal write the records?" }}</h2>
        // The detected provider first, then self-hosted servers and "by hand", then every
        // other provider this portal can connect.
        <div class="provider-choices" id="detected-provider-choice">
            {domain_connect.map(|choice| {
                let name = choice.name.clone();
                view! {
                    <details class="provider-choice" id="provider-domain-connect" open=true>
                        <summary>{format!("{name}, by Domain Connect (recommended)")}</summary>
                        {choice.grant.then(|| view! {
                            <p>{format!("Allow the portal once on {name}'s page: it then writes the relay's records itself, and updates them when your device's keys change. You can withdraw the access at {name} at any time.")}</p>
                            <form method="post" action=connect.clone()>
                                <CsrfField token=csrf.clone() />
                                <input type="hidden" name="method" value="domain_connect_async" />
                                <button type="submit" class="button button-primary" id="grant-domain-connect">{format!("Connect {name} by Domain Connect")}</button>
                            </form>
                        })}
                        {choice.confirm_each.then(|| view! {
                            <p>{format!("{}{name} writes every record itself: in the records step a button opens {name}'s page, where you check the records and confirm. The portal keeps no password or key for your DNS.", if choice.grant { "Or confirm each change yourself: " } else { "" })}</p>
                            <form method="post" action=connect.clone()>
                                <CsrfField token=csrf.clone() />
                                <input type="hidden" name="method" value="domain_connect" />
                                <button type="submit" class=if choice.grant { "button" } else { "button button-primary" } id="choose-domain-connect">{format!("Use Domain Connect with {name}")}</button>
                            </form>
                        })}
                    </details>
                }
            })}
            {detected_choices.into_iter().map(|choice| view! {
                <ProviderChoiceForm choice group_id=group_id.clone() action=connect.clone() csrf=csrf.clone() flash=flash.clone() />
            }).collect_view()}
        </div>
        <ProviderForms action=connect.clone() csrf=csrf.clone() flash=flash.clone() by_hand=true detected=self_hosted />
        {(!other_choices.is_empty()).then(|| view! {
            <h3>"Other DNS providers"</h3>
            <div class="provider-choices" id="provider-choices">
                {other_choices.into_iter().map(|choice| view! {
                    <ProviderChoiceForm choice group_id=group_id.clone() action=connect.clone() csrf=csrf.clone() flash=flash.clone() />
                }).collect_view()}
            </div>
        })}
        {done.then(|| view! {
            <form method="post" action=action>
                <CsrfField token=csrf />
                <button type="submit" class="button button-primary">"Continue"</button>
            </form>
        })}
    }
    .into_any()
}

/// One cloud provider: "Sign in with …" where the portal offers it, and the guided token
/// form (where to click, the least permission, what the portal does with it).
#[component]
fn ProviderChoiceForm(
    choice: ProviderChoice,
    group_id: String,
    action: String,
    csrf: String,
    flash: Flash,
) -> impl IntoView {
    let chosen = flash.value_of("method").as_deref() == Some(choice.id.as_str());
    let id = choice.id.clone();
    let name = choice.name.clone();
    let sign_in = choice.sign_in.then(|| {
        view! {
            <form method="post" action=format!("/groups/{group_id}/dns/oauth/{id}")>
                <CsrfField token=csrf.clone() />
                <button type="submit" class="button button-primary" id=format!("sign-in-{id}")>{format!("Sign in with {name}")}</button>
                <span class="hint">" The portal asks only for access to DNS records; you can withdraw it at any time."</span>
            </form>
        }
    });
    let token = choice.token.map(|guide| {
        token_form(
            &choice.id,
            &choice.name,
            guide,
            choice.sign_in,
            action,
            csrf.clone(),
            &flash,
            chosen,
        )
    });
    view! {
        <details class="provider-choice" id=format!("provider-{}", choice.id) open=choice.detected || chosen>
            <summary>{choice.name.clone()}{choice.detected.then_some(" (your DNS provider)")}</summary>
            {sign_in}
            {token}
        </details>
    }
}

#[allow(clippy::too_many_arguments)]
fn token_form(
    id: &str,
    name: &str,
    guide: TokenGuide,
    has_sign_in: bool,
    action: String,
    csrf: String,
    flash: &Flash,
    chosen: bool,
) -> impl IntoView + use<> {
    let fields = guide
        .fields
        .into_iter()
        .map(|field| {
            let input_id = format!("{id}-{}", field.name);
            let error = chosen.then(|| flash.error_for(&field.name)).flatten();
            let value = (chosen && !field.secret)
                .then(|| flash.value_of(&field.name))
                .flatten()
                .unwrap_or_default();
            let error_id = format!("{input_id}-error");
            view! {
                <div class="field">
                    <label for=input_id.clone()>{field.label.clone()}</label>
                    <input id=input_id name=field.name.clone() type=if field.secret { "password" } else { "text" }
                        autocomplete="off" maxlength="500" required=true value=value
                        aria-invalid=error.is_some().then_some("true")
                        aria-describedby=error.is_some().then(|| error_id.clone()) />
                    {(!field.help.is_empty()).then(|| view! { <p class="hint">{field.help.clone()}</p> })}
                    {error.map(|e| view! { <p class="field-error" id=error_id>{e}</p> })}
                </div>
            }
        })
        .collect_view();
    view! {
        <div class="token-guide">
            {has_sign_in.then_some(view! { <p>"Or use a key you make yourself:"</p> })}
            <ol class="steps">{guide.steps.into_iter().map(|s| view! { <li>{s}</li> }).collect_view()}</ol>
            <p><strong>"Permission to give: "</strong>{guide.permission}</p>
            <p class="hint"><strong>"What the portal does with it: "</strong>{guide.portal_does}</p>
            {guide.note.map(|n| view! { <p class="flash flash-info">{n}</p> })}
            <p><a href=guide.help_url rel="noopener noreferrer" target="_blank">{format!("{name}'s help page")}</a></p>
            <form method="post" action=action class="stack" novalidate>
                <CsrfField token=csrf />
                <input type="hidden" name="method" value=id.to_string() />
                {fields}
                <button type="submit" class="button button-primary" id=format!("connect-{id}")>{format!("Connect {name}")}</button>
            </form>
        </div>
    }
}

/// Detected software with a form of its own in [`ProviderForms`].
const SELF_HOSTED_FORMS: &[&str] = &["powerdns"];

/// The ways to connect a DNS provider, each a form of its own that posts to `action`
/// (`by_hand` adds "I will enter the records myself"). The form last sent, or else the
/// detected software's (`detected`, e.g. `powerdns`), shows open.
#[component]
pub fn ProviderForms(
    action: String,
    csrf: String,
    flash: Flash,
    by_hand: bool,
    #[prop(default = None)] detected: Option<String>,
) -> impl IntoView {
    let chosen = flash.value_of("method").or(detected);
    let open = |method: &str| chosen.as_deref() == Some(method);
    let connect = action;
    view! {
        <details class="connect-choice" open=open("powerdns")>
            <summary>"PowerDNS (HTTP API)"</summary>
            <form method="post" action=connect.clone() class="stack" novalidate>
                <CsrfField token=csrf.clone() />
                <input type="hidden" name="method" value="powerdns" />
                <Field name="url" label="API address" kind="url" required=true maxlength=500 hint="For example https://dns.example.net:8081 (the webserver of PowerDNS)." flash=flash.clone() />
                <Field name="api_key" label="API key" kind="password" required=true autocomplete="off" maxlength=500 hint="The api-key from pdns.conf. It is stored encrypted and never shown again." flash=flash.clone() />
                <Field name="server_id" label="Server id" value="localhost" maxlength=100 flash=flash.clone() />
                <button type="submit" class="button button-primary">"Connect PowerDNS"</button>
            </form>
        </details>
        <details class="connect-choice" open=open("rfc2136")>
            <summary>"My own DNS server (BIND, Knot, PowerDNS: dynamic updates with a TSIG key)"</summary>
            <form method="post" action=connect.clone() class="stack" novalidate>
                <CsrfField token=csrf.clone() />
                <input type="hidden" name="method" value="rfc2136" />
                <Field name="server" label="Primary server (address:port)" required=true maxlength=60 hint="For example 192.0.2.53:53." flash=flash.clone() />
                <Field name="zone" label="Zone" maxlength=253 hint="Leave empty to use the relay's name." flash=flash.clone() />
                <Field name="key_name" label="TSIG key name" required=true maxlength=253 flash=flash.clone() />
                <div class="field">
                    <label for="field-algorithm">"TSIG algorithm"</label>
                    <select id="field-algorithm" name="algorithm">
                        <option value="hmac-sha256">"hmac-sha256"</option>
                        <option value="hmac-sha512">"hmac-sha512"</option>
                    </select>
                </div>
                <Field name="secret" label="TSIG secret" kind="password" required=true autocomplete="off" maxlength=200 hint="Base64, as in the server's key file. Stored encrypted." flash=flash.clone() />
                <button type="submit" class="button button-primary">"Connect my DNS server"</button>
            </form>
        </details>
        {by_hand.then(|| view! {
        <details class="connect-choice" open=open("manual")>
            <summary>"I will enter the records myself"</summary>
            <p>"The records step lists every record, with copy buttons and a zone file to import; the status page then checks them."</p>
            <form method="post" action=connect>
                <CsrfField token=csrf.clone() />
                <input type="hidden" name="method" value="manual" />
                <button type="submit" class="button">"Enter records myself"</button>
            </form>
        </details>
        })}
        {flash.error_for("method").map(|e| view! { <p class="field-error">{e}</p> })}
    }
}

fn change_list(
    title: &'static str,
    id: &'static str,
    rows: Vec<crate::api::ChangeRow>,
) -> impl IntoView {
    (!rows.is_empty()).then(|| {
        view! {
            <h3>{title}</h3>
            <ul class="changes" id=id>
                {rows.into_iter().map(|row| view! {
                    <li>{row.description}" "<code class="muted">{format!("{} {}", row.name, row.rtype)}</code></li>
                }).collect_view()}
            </ul>
        }
    })
}

fn job_box(job: &JobView) -> impl IntoView + use<> {
    let (class, text) = match job.state.as_str() {
        "pending" => (
            "flash flash-info",
            match (&job.error, job.retry_in_secs) {
                (Some(error), Some(secs)) => format!(
                    "Waiting to try again in {secs} s (attempt {}): {error}",
                    job.attempts
                ),
                _ => "Queued: the portal will write the records in a moment.".to_string(),
            },
        ),
        "running" => (
            "flash flash-info",
            "Writing the records now\u{2026}".to_string(),
        ),
        "done" => (
            "flash flash-success",
            format!(
                "{} {}",
                if job.action == "remove" {
                    "Removed."
                } else {
                    "Done."
                },
                job.summary.clone().unwrap_or_default()
            ),
        ),
        _ => (
            "flash flash-error",
            format!(
                "The records could not be written: {}",
                job.error.clone().unwrap_or_default()
            ),
        ),
    };
    view! { <div class=class role="status" id="dns-job" data-state=job.state.clone()><p>{text}</p></div> }
}

#[component]
#[allow(clippy::too_many_arguments)]
pub fn RecordsStep(
    mail_domain: String,
    records: Vec<PlannedRecordRow>,
    mode: Option<String>,
    connection: Option<ConnectionInfo>,
    preview: Option<DiffView>,
    preview_problem: Option<String>,
    job: Option<JobView>,
    /// The person just asked for the records to be written: once they are, go on by itself.
    continue_when_done: bool,
    action: String,
    csrf: String,
    group_id: String,
) -> impl IntoView {
    let written = job
        .as_ref()
        .is_some_and(|job| job.state == "done" && job.action == "apply");
    let continue_form = NodeRef::<leptos::html::Form>::new();
    if continue_when_done && written {
        // In the browser only, once the form is on the page: the same post as its button,
        // so the step is marked done alike.
        Effect::new(move |_| {
            if let Some(_form) = continue_form.get() {
                #[cfg(feature = "hydrate")]
                let _ = _form.submit();
            }
        });
    }
    let busy = job
        .as_ref()
        .is_some_and(|job| matches!(job.state.as_str(), "pending" | "running"));
    if busy {
        if let Some(Refresh(resource)) = use_context::<Refresh>() {
            Effect::new(move |_| {
                let handle = set_interval_with_handle(
                    move || resource.refetch(),
                    std::time::Duration::from_secs(3),
                );
                on_cleanup(move || {
                    if let Ok(handle) = handle {
                        handle.clear();
                    }
                });
            });
        }
    }
    let table = record_table(&mail_domain, records.clone());
    let continue_form = view! {
        <form method="post" action=action.clone() node_ref=continue_form>
            <CsrfField token=csrf.clone() />
            <button type="submit" class="button button-primary" id="records-continue">
                {if mode.as_deref() == Some("manual") { "I have entered these records" } else { "Continue" }}
            </button>
        </form>
    };
    let body = match (mode.as_deref(), connection) {
        (Some("connected") | Some("portal"), Some(connection)) => {
            let apply = format!("/groups/{group_id}/dns/apply");
            let remove = format!("/groups/{group_id}/dns/remove");
            let preview_view = match (preview, preview_problem) {
                (_, Some(problem)) => view! { <div class="flash flash-error" role="alert" id="dns-preview-problem"><p>{problem}</p></div> }.into_any(),
                (Some(diff), None) => {
                    let nothing = diff.creates.is_empty() && diff.updates.is_empty() && diff.deletes.is_empty() && diff.conflicts.is_empty();
                    let conflicts = diff.conflicts.clone();
                    view! {
                        <section id="dns-preview">
                            <h2>"What the portal will change"</h2>
                            {nothing.then(|| view! { <p id="dns-nothing-to-do">{format!("Every record is in place ({} checked). Nothing to write.", diff.unchanged)}</p> })}
                            {change_list("Add", "dns-creates", diff.creates)}
                            {change_list("Change", "dns-updates", diff.updates)}
                            {change_list("Remove (records this portal made earlier)", "dns-deletes", diff.deletes)}
                            {(diff.unchanged > 0 && !nothing).then(|| view! { <p class="muted">{format!("{} record(s) are already right.", diff.unchanged)}</p> })}
                            <form method="post" action=apply class="stack">
                                <CsrfField token=csrf.clone() />
                                {(!conflicts.is_empty()).then(|| view! {
                                    <h3>"Records of others in the way"</h3>
                                    <p>"These records were not made by this portal. They stay as they are unless you tick them."</p>
                                    {conflicts.into_iter().map(|conflict| {
                                        let field = format!("confirm-{}", conflict.id);
                                        view! {
                                            <article class="finding state-warning conflict" data-conflict=conflict.id.clone()>
                                                <p><strong>{format!("{} {}", conflict.name, conflict.rtype)}</strong>": "{conflict.problem.clone()}</p>
                                                <p>"Now: "<code>{conflict.existing.join(", ")}</code></p>
                                                <p>"Wanted: "<code>{conflict.wanted.join(", ")}</code></p>
                                                <div class="choice">
                                                    <input type="checkbox" id=field.clone() name=field.clone() />
                                                    <label for=field>{conflict.description.clone()}</label>
                                                </div>
                                            </article>
                                        }
                                    }).collect_view()}
                                })}
                                {(!nothing).then(|| view! { <button type="submit" class="button button-primary" id="dns-apply" disabled=busy>"Write these changes"</button> })}
                            </form>
                        </section>
                    }.into_any()
                }
                (None, None) => view! { <p>"The zone could not be read."</p> }.into_any(),
            };
            view! {
                <p id="dns-connection">{format!("Records are written through {} (zone {}).", connection.label, connection.zone)}</p>
                {job.as_ref().map(job_box)}
                {busy.then(|| view! { <noscript><meta http-equiv="refresh" content="5" /></noscript> })}
                {preview_view}
                {continue_form}
                <details class="danger-zone">
                    <summary>"Remove the relay's records"</summary>
                    <p>"Removes only the records this portal wrote; everything else in the zone stays."</p>
                    <form method="post" action=remove>
                        <CsrfField token=csrf.clone() />
                        <button type="submit" class="button button-danger" id="dns-remove">"Remove the portal's records"</button>
                    </form>
                </details>
                <details><summary>"All planned records"</summary>{table}</details>
            }
            .into_any()
        }
        (Some("portal"), None) => view! {
            <div class="flash flash-info" role="status" id="dns-connection">
                <p>"The portal's operator has not connected this zone's DNS yet, so the records cannot be written. Ask them, then come back."</p>
            </div>
            {table}
        }
        .into_any(),
        (Some("domain_connect"), _) => view! {
            <p id="dns-connection">"Your DNS provider writes these records through Domain Connect. The button opens its page, where you check them and confirm; come back here afterwards. Records marked \u{201c}later\u{201d} need a second visit once your device has started."</p>
            <form method="post" action=format!("/groups/{group_id}/dns/domain-connect")>
                <CsrfField token=csrf.clone() />
                <button type="submit" class="button button-primary" id="dc-apply">"Confirm the records at your DNS provider"</button>
            </form>
            {table}
            {continue_form}
        }
        .into_any(),
        (Some("manual"), _) => view! {
            <p>"Enter each record below at your DNS provider. Most providers ask for the name without the domain, the type, and the value."</p>
            <p><a href=format!("/groups/{group_id}/zone-file") class="button" id="zone-file" download="">"Download as a zone file"</a></p>
            {table}
            {continue_form}
        }
        .into_any(),
        _ => view! {
            <p>"Choose in step 2 how the records reach your DNS."</p>
            <A href=format!("/groups/{group_id}/setup/dns") attr:class="button button-primary">"Go to step 2"</A>
            {table}
        }
        .into_any(),
    };
    view! {
        <p>{format!("These are the DNS records {mail_domain} needs. Records marked \u{201c}later\u{201d} wait for facts your device creates when it first starts.")}</p>
        {body}
    }
}

fn record_table(_mail_domain: &str, records: Vec<PlannedRecordRow>) -> impl IntoView {
    let zone_text: String = records
        .iter()
        .filter(|r| r.pending.is_none())
        .map(|r| format!("{}. {} IN {} {}\n", r.name, r.ttl, r.rtype, r.value))
        .collect();
    view! {
        <table class="table records" id="record-plan">
            <thead><tr><th scope="col">"Name"</th><th scope="col">"Type"</th><th scope="col">"Value"</th><th scope="col">"Why"</th></tr></thead>
            <tbody>
                {records.into_iter().map(|record| view! {
                    <tr>
                        <td><code>{record.name.clone()}</code></td>
                        <td>{record.rtype.clone()}{(!record.required).then_some(" (recommended)")}</td>
                        <td>{match record.pending.clone() {
                            Some(why) => view! { <em>{format!("later: {why}")}</em> }.into_any(),
                            None => view! { <code class="record-value">{record.value.clone()}</code> <CopyButton text=record.value.clone() /> }.into_any(),
                        }}</td>
                        <td>{record.reason.clone()}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        <details>
            <summary>"All records as zone-file lines"</summary>
            <pre id="zone-lines">{zone_text.clone()}</pre>
            <CopyButton text=zone_text label="Copy all" />
        </details>
    }
}
