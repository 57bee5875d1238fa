//! The fields that name a relay and give its addresses: shared by the wizard's steps and the
//! form that starts a new relay on the groups page, so both ask (and refill) the same way.

use leptos::prelude::*;

use crate::{
    api::{Flash, FreeZone},
    components::Field,
};

/// Own domain, or a free name under a zone the portal offers (only when it offers one).
#[component]
pub fn DomainChoice(
    free_zones: Vec<FreeZone>,
    /// The saved name when it is the group's own domain.
    own_domain: Option<String>,
    /// The saved free name's first label.
    free_label: Option<String>,
    free_zone_id: Option<String>,
    flash: Flash,
) -> impl IntoView {
    let chosen_kind = flash.value_of("kind").unwrap_or_else(|| {
        if free_label.is_some() {
            "free".into()
        } else {
            "own".into()
        }
    });
    let selected_zone = flash.value_of("zone").or(free_zone_id);
    let offers_free = !free_zones.is_empty();
    view! {
        <fieldset>
            <legend>"Which name?"</legend>
            <div class="choice">
                <input type="radio" id="kind-own" name="kind" value="own" checked=chosen_kind == "own" />
                <label for="kind-own">"A domain I own (or a subdomain of it)"</label>
            </div>
            <Field name="domain" label="Domain" value=own_domain.unwrap_or_default() maxlength=253 hint="For example chat.example.org. International names (IDN) work too." flash=flash.clone() />
            {offers_free.then(|| view! {
                <div class="choice">
                    <input type="radio" id="kind-free" name="kind" value="free" checked=chosen_kind == "free" />
                    <label for="kind-free">"A free name from this portal (no domain needed)"</label>
                </div>
                <div class="inline-fields">
                    <Field name="label" label="Name" value=free_label.clone().unwrap_or_default() maxlength=40 hint="3 to 40 letters, digits or hyphens." flash=flash.clone() />
                    <div class="field">
                        <label for="field-zone">"Under"</label>
                        <select id="field-zone" name="zone">
                            {free_zones.iter().map(|zone| view! {
                                <option value=zone.id.clone() selected=selected_zone.as_deref() == Some(zone.id.as_str())>{format!(".{}", zone.zone)}</option>
                            }).collect_view()}
                        </select>
                    </div>
                </div>
            })}
            {flash.error_for("kind").map(|e| view! { <p class="field-error">{e}</p> })}
            {flash.error_for("zone").map(|e| view! { <p class="field-error">{e}</p> })}
        </fieldset>
    }
}

/// The relay's public addresses; empty fields suggest the visitor's own public address.
#[component]
pub fn AddressFields(
    ipv4: Option<String>,
    ipv6: Option<String>,
    /// The visitor's address when it is public.
    visitor_ip: Option<String>,
    flash: Flash,
) -> impl IntoView {
    let suggested_v4 = visitor_ip.as_ref().filter(|ip| !ip.contains(':')).cloned();
    let suggested_v6 = visitor_ip.as_ref().filter(|ip| ip.contains(':')).cloned();
    view! {
        {visitor_ip.clone().map(|ip| view! {
            <p class="hint" id="visitor-ip">{format!("Your internet connection's address right now is {ip}. If the relay runs at home, that is usually its address too.")}</p>
        })}
        <Field name="ipv4" label="Public IPv4 address" value=ipv4.or(suggested_v4).unwrap_or_default() maxlength=15 hint="For a VPS: shown in your provider's control panel." flash=flash.clone() />
        <Field name="ipv6" label="Public IPv6 address (optional)" value=ipv6.or(suggested_v6).unwrap_or_default() maxlength=39 flash=flash.clone() />
    }
}
