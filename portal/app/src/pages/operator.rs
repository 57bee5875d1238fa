//! The community operator's page: quotas, free-subdomain zones, every group, the audit log.

use crate::components::PageTitle;
use leptos::prelude::*;

use crate::{
    api::{load_operator_page, Flash, OperatorPage, Viewer},
    components::{CsrfField, Field, FlashMessage, LoadError, WithContext},
};

#[component]
pub fn Operator() -> impl IntoView {
    let page = Resource::new(|| (), |_| load_operator_page());
    view! {
        <PageTitle text="Operator" />
        <WithContext children=move |context| {
            let flash = context.flash.clone();
            let viewer = context.viewer.clone();
            view! {
                <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                    {move || {
                        let flash = flash.clone();
                        let viewer = viewer.clone();
                        Suspend::new(async move {
                            match (page.await, viewer) {
                                (Ok(page), Some(viewer)) => view! { <OperatorView page viewer flash /> }.into_any(),
                                (Err(error), _) => view! { <LoadError error /> }.into_any(),
                                (Ok(_), None) => view! { <LoadError error=crate::api::AppError::NotSignedIn /> }.into_any(),
                            }
                        })
                    }}
                </Suspense>
            }
        } />
    }
}

#[component]
fn OperatorView(page: OperatorPage, viewer: Viewer, flash: Flash) -> impl IntoView {
    let csrf = viewer.csrf.clone();
    view! {
        <h1>"Operator"</h1>
        <FlashMessage flash=flash.clone() />

        <section aria-labelledby="settings-heading">
            <h2 id="settings-heading">"Quotas and sign-up"</h2>
            <form method="post" action="/operator/settings" class="stack" novalidate>
                <CsrfField token=csrf.clone() />
                <Field name="max_groups_per_account" label="Groups one person may own" kind="number" value=page.settings.max_groups_per_account.to_string() flash=flash.clone() />
                <Field name="downloads_per_day" label="Image downloads per group and day" kind="number" value=page.settings.downloads_per_day.to_string() flash=flash.clone() />
                <div class="choice">
                    <input type="checkbox" id="field-open_sign_up" name="open_sign_up" checked=page.settings.open_sign_up />
                    <label for="field-open_sign_up">"Anyone may create an account (otherwise only people with an invite link)"</label>
                </div>
                <button type="submit" class="button">"Save"</button>
            </form>
        </section>

        <section aria-labelledby="zones-heading">
            <h2 id="zones-heading">"Free names"</h2>
            <p>"Groups can take a free name under these zones, e.g. family.chat.example.org."</p>
            <table class="table">
                <thead><tr><th scope="col">"Zone"</th><th scope="col">"Relays"</th><th scope="col">"Offered"</th><th scope="col">"DNS"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                <tbody>
                    {page.zones.iter().map(|zone| view! {
                        <tr>
                            <td>{zone.zone.clone()}</td>
                            <td>{zone.relays}</td>
                            <td>{if zone.enabled { "yes" } else { "no" }}</td>
                            <td>
                                {zone.connection.clone().unwrap_or_else(|| "not connected: the portal cannot write its records".into())}
                                <details>
                                    <summary>{if zone.connection.is_some() { "Connect again" } else { "Connect" }}</summary>
                                    <crate::pages::dns_steps::ProviderForms
                                        action=format!("/operator/zones/{}/connect", zone.id)
                                        csrf=csrf.clone()
                                        flash=flash.clone()
                                        by_hand=false
                                    />
                                </details>
                            </td>
                            <td>
                                <form method="post" action=format!("/operator/zones/{}/toggle", zone.id)>
                                    <CsrfField token=csrf.clone() />
                                    <button type="submit" class="button button-small">{if zone.enabled { "Stop offering" } else { "Offer again" }}</button>
                                </form>
                            </td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            <form method="post" action="/operator/zones" class="stack" novalidate>
                <CsrfField token=csrf.clone() />
                <Field name="zone" label="Add a zone" maxlength=253 hint="A zone whose DNS this portal can write." flash=flash.clone() />
                <button type="submit" class="button">"Add zone"</button>
            </form>
        </section>

        <section aria-labelledby="groups-heading">
            <h2 id="groups-heading">"All groups"</h2>
            <table class="table" id="all-groups">
                <thead><tr><th scope="col">"Group"</th><th scope="col">"Members"</th><th scope="col">"Relay"</th><th scope="col">"Setup"</th><th scope="col">"Health"</th><th scope="col">"Created"</th><th scope="col">"State"</th></tr></thead>
                <tbody>
                    {page.groups.iter().map(|group| {
                        let field = format!("reason-{}", group.id);
                        view! {
                            <tr>
                                <td>{group.name.clone()}</td>
                                <td>{group.members}</td>
                                <td>{group.mail_domain.clone().unwrap_or_else(|| "\u{2014}".into())}</td>
                                <td>{format!("{} of 7", group.completed_step)}</td>
                                <td class=if group.unhealthy { "state-error" } else { "" }>
                                    {group.health.clone().unwrap_or_else(|| "not checked yet".into())}
                                </td>
                                <td>{group.created.clone()}</td>
                                <td>{match group.disabled_reason.clone() {
                                    Some(reason) => view! {
                                        <p>"Disabled: "{reason}</p>
                                        <form method="post" action=format!("/operator/groups/{}/enable", group.id)>
                                            <CsrfField token=csrf.clone() />
                                            <button type="submit" class="button button-small">"Enable"</button>
                                        </form>
                                    }.into_any(),
                                    None => view! {
                                        <form method="post" action=format!("/operator/groups/{}/disable", group.id) class="inline-form">
                                            <CsrfField token=csrf.clone() />
                                            <label for=field.clone() class="visually-hidden">"Reason"</label>
                                            <input id=field.clone() name="reason" type="text" maxlength="500" placeholder="Reason" />
                                            {flash.error_for(&field).map(|e| view! { <p class="field-error">{e}</p> })}
                                            <button type="submit" class="button button-small button-danger">"Disable"</button>
                                        </form>
                                    }.into_any(),
                                }}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>

        <section aria-labelledby="audit-heading">
            <h2 id="audit-heading">"Audit log"</h2>
            <table class="table" id="audit-log">
                <thead><tr><th scope="col">"When"</th><th scope="col">"Who"</th><th scope="col">"Group"</th><th scope="col">"What"</th><th scope="col">"Detail"</th><th scope="col">"From"</th></tr></thead>
                <tbody>
                    {page.audit.into_iter().map(|entry| view! {
                        <tr>
                            <td>{entry.at}</td>
                            <td>{entry.actor.unwrap_or_else(|| "\u{2014}".into())}</td>
                            <td>{entry.group.unwrap_or_default()}</td>
                            <td>{entry.action}</td>
                            <td>{entry.detail}</td>
                            <td>{entry.ip.unwrap_or_default()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}
