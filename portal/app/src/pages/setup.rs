//! The setup wizard: one step per page, with the progress indicator on top. Every step is
//! a plain form that posts, so the whole setup works without JavaScript.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_params_map};

use crate::{
    api::{
        load_setup_page, Flash, Hardware, SetupPage, SetupStep, StepData, Viewer,
        CONTINUE_WHEN_WRITTEN,
    },
    components::{CsrfField, Field, FlashMessage, LoadError, SetupProgress, WithContext},
    pages::relay_fields::{AddressFields, DomainChoice},
};

#[component]
pub fn Setup() -> impl IntoView {
    let params = use_params_map();
    let key = move || {
        let params = params.read();
        (
            params.get("id").unwrap_or_default(),
            params.get("step").unwrap_or_default(),
        )
    };
    let page = Resource::new(key, |(group, step)| load_setup_page(group, step));
    // The status step refreshes itself while something is still on its way.
    provide_context(crate::pages::status::Refresh(page));
    view! {
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
                                (Ok(page), Some(viewer)) => view! { <SetupView page viewer flash /> }.into_any(),
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
fn SetupView(page: SetupPage, viewer: Viewer, flash: Flash) -> impl IntoView {
    let step = page.step;
    let action = format!("/groups/{}/setup/{}", page.group_id, step.slug());
    let locked = step.number() > page.completed_step + 1;
    let title = format!("{} · {}", step.title(), page.group_name);
    let form = if locked {
        let open = SetupStep::ALL[(page.completed_step as usize).min(6)];
        view! {
            <p>"This step opens once the steps before it are done."</p>
            <A href=format!("/groups/{}/setup/{}", page.group_id, open.slug()) attr:class="button button-primary">
                {format!("Go to \u{201c}{}\u{201d}", open.title())}
            </A>
        }
        .into_any()
    } else {
        step_form(
            page.data.clone(),
            action,
            viewer.csrf.clone(),
            flash.clone(),
            page.group_id.clone(),
        )
    };
    view! {
        <PageTitle text=title />
        <p class="breadcrumb">
            <A href="/groups">"Your groups"</A>" › "<A href=format!("/groups/{}", page.group_id)>{page.group_name.clone()}</A>
        </p>
        <SetupProgress group_id=page.group_id.clone() current=step completed=page.completed_step />
        <h1>{format!("Step {}: {}", step.number(), step.title())}</h1>
        <FlashMessage flash=flash.clone() />
        {page.disabled_reason.clone().map(|reason| view! {
            <div class="flash flash-error" role="alert"><p>"The portal's operator disabled this group, so nothing can be changed: "{reason}</p></div>
        })}
        {form}
    }
}

fn continue_button(label: &'static str) -> impl IntoView {
    view! { <button type="submit" class="button button-primary">{label}</button> }
}

fn step_form(
    data: StepData,
    action: String,
    csrf: String,
    flash: Flash,
    group_id: String,
) -> AnyView {
    match data {
        StepData::Domain { mail_domain, free_zones, free_label, free_zone_id } => {
            let own_domain = if free_label.is_some() { None } else { mail_domain.clone() };
            view! {
                <p>"Every address on your relay ends in this name, like " <code>"k7xq2vzm3@chat.example.org"</code> ". Choose it carefully: changing it later means new addresses for everyone."</p>
                {mail_domain.clone().map(|domain| view! { <p>"Current name: " <strong id="current-domain">{domain}</strong></p> })}
                <form method="post" action=action class="stack" novalidate>
                    <CsrfField token=csrf />
                    <DomainChoice free_zones own_domain free_label free_zone_id flash=flash.clone() />
                    {continue_button("Save and continue")}
                </form>
            }
            .into_any()
        }
        StepData::Dns { mail_domain, managed_by_portal, nameservers, provider, lookup_problem, connection, mode, choices, domain_connect } => view! {
            <crate::pages::dns_steps::ConnectStep
                mail_domain managed_by_portal nameservers provider lookup_problem connection mode choices domain_connect
                action csrf group_id flash
            />
        }
        .into_any(),
        StepData::Settings(settings) => view! {
            <p>"These settings go onto your relay's device. The defaults are those of the chatmail project; most groups keep them."</p>
            <form method="post" action=action class="stack" novalidate>
                <CsrfField token=csrf />
                <fieldset>
                    <legend>"Privacy contacts (shown on the relay's privacy page)"</legend>
                    <Field name="contact_mail" label="Contact e-mail" kind="email" value=settings.contact_mail required=true maxlength=254 hint="Where people can reach whoever runs the relay." flash=flash.clone() />
                    <Field name="postal_address" label="Postal address" value=settings.postal_address maxlength=500 hint="Required in some countries for the privacy notice." flash=flash.clone() />
                    <Field name="data_officer" label="Data-protection officer" value=settings.data_officer maxlength=500 flash=flash.clone() />
                    <Field name="supervisory_authority" label="Supervisory authority" value=settings.supervisory_authority maxlength=500 flash=flash.clone() />
                </fieldset>
                <fieldset>
                    <legend>"Accounts"</legend>
                    <div class="choice">
                        <input type="checkbox" id="field-registration_open" name="registration_open" checked=settings.registration_open />
                        <label for="field-registration_open">"Anyone with the QR code may create an account"</label>
                    </div>
                    <p class="hint">"Turn this off once everyone has joined, to stop new accounts."</p>
                </fieldset>
                <fieldset>
                    <legend>"Limits"</legend>
                    <Field name="max_mailbox_size_mb" label="Mailbox size per person (MB)" kind="number" value=settings.max_mailbox_size_mb required=true flash=flash.clone() />
                    <Field name="max_message_size_mb" label="Largest message (MB)" kind="number" value=settings.max_message_size_mb required=true flash=flash.clone() />
                    <Field name="delete_mails_after_days" label="Delete messages after (days)" kind="number" value=settings.delete_mails_after_days required=true flash=flash.clone() />
                    <Field name="delete_inactive_users_after_days" label="Delete unused accounts after (days)" kind="number" value=settings.delete_inactive_users_after_days required=true flash=flash.clone() />
                </fieldset>
                <fieldset>
                    <legend>"Updates"</legend>
                    {if settings.updates_offered {
                        view! {
                            <div class="choice">
                                <input type="checkbox" id="field-update_checks" name="update_checks" checked=settings.update_checks />
                                <label for="field-update_checks">"Check this portal for signed updates and install them"</label>
                            </div>
                            <p class="hint">"About once a day the relay asks this portal for the current release. The request names nothing about your relay; the relay's privacy page says that the check exists. Only releases signed with this portal's key are installed, and the relay goes back to its previous version if a new one does not start properly."</p>
                        }.into_any()
                    } else {
                        view! {
                            <p>"Your relay can ask this portal once a day whether a signed update exists. This portal does not publish updates yet, so the check stays off; you can turn it on here once it does."</p>
                        }.into_any()
                    }}
                </fieldset>
                {continue_button("Save and continue")}
            </form>
        }
        .into_any(),
        StepData::Hardware { hardware, ipv4, ipv6, visitor_ip } => {
            let chosen = flash.value_of("hardware").as_deref().and_then(Hardware::parse).or(hardware);
            view! {
                <form method="post" action=action class="stack" novalidate>
                    <CsrfField token=csrf />
                    <fieldset>
                        <legend>"Where will the relay run?"</legend>
                        <div class="choice">
                            <input type="radio" id="hardware-pi" name="hardware" value="raspberry_pi" checked=chosen == Some(Hardware::RaspberryPi) />
                            <label for="hardware-pi">"A Raspberry Pi 4 or 5 at home"</label>
                        </div>
                        <div class="choice">
                            <input type="radio" id="hardware-vm" name="hardware" value="virtual_machine" checked=chosen == Some(Hardware::VirtualMachine) />
                            <label for="hardware-vm">"A virtual server (VPS) or PC with a public address"</label>
                        </div>
                        {flash.error_for("hardware").map(|e| view! { <p class="field-error">{e}</p> })}
                    </fieldset>
                    <AddressFields ipv4 ipv6 visitor_ip flash=flash.clone() />
                    {continue_button("Save and continue")}
                </form>
            }
            .into_any()
        }
        StepData::Records { mail_domain, records, mode, connection, preview, preview_problem, job } => {
            let continue_when_done = flash.value_of(CONTINUE_WHEN_WRITTEN).is_some();
            view! {
                <crate::pages::dns_steps::RecordsStep
                    mail_domain records mode connection preview preview_problem job continue_when_done
                    action csrf group_id
                />
            }
            .into_any()
        }
        StepData::Download(data) => view! {
            <crate::pages::download::DownloadView data action csrf group_id />
        }
        .into_any(),
        StepData::Status { mail_domain, report, ignored, qr_svg, device } => {
            view! { <crate::pages::status::StatusView mail_domain report ignored qr_svg device action=action csrf group_id /> }
                .into_any()
        }
    }
}
