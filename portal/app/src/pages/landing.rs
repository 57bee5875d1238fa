//! The landing page: what the product does, the four steps, and the way in.
//!
//! The device chooser is a pair of links (`?device=pi`, `?device=vm`), so it works without
//! JavaScript; once hydrated, the router switches between them without reloading the page.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_meta::Meta;
use leptos_router::{components::A, hooks::use_query_map};

/// The kind of device the group will run its relay on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    RaspberryPi,
    VirtualMachine,
}

impl Device {
    /// Reads the `device` query parameter; anything unknown means the default, a Raspberry Pi.
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("vm") => Device::VirtualMachine,
            _ => Device::RaspberryPi,
        }
    }

    fn query_value(self) -> &'static str {
        match self {
            Device::RaspberryPi => "pi",
            Device::VirtualMachine => "vm",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Device::RaspberryPi => "Raspberry Pi",
            Device::VirtualMachine => "Virtual machine or PC",
        }
    }
}

#[component]
pub fn Landing() -> impl IntoView {
    let query = use_query_map();
    let device = Memo::new(move |_| Device::from_query(query.read().get("device").as_deref()));

    view! {
        <PageTitle text="" />
        <Meta
            name="description"
            content="Run your own chatmail relay for Delta Chat: pick a name, connect your DNS, boot a ready-made image, scan a QR code."
        />
        <section class="hero">
            <h1>"Your own chat server, for you and your friends, in under 30 minutes."</h1>
            <p class="lead">
                "A chatmail relay is a small, private mail server that only carries end-to-end encrypted messages for the "
                <a href="https://delta.chat">"Delta Chat"</a>
                " messenger. This portal sets one up for your group: it writes the DNS records for you and hands you a disk image that is already configured. No terminal, no server administration."
            </p>
            <A href="/start" attr:class="button button-primary" attr:id="start-button">
                "Start setting up"
            </A>
        </section>

        <section aria-labelledby="steps-heading">
            <h2 id="steps-heading">"Four steps"</h2>
            <ol class="steps">
                <li>
                    <h3>"Pick a name"</h3>
                    <p>
                        "Use a domain you own, such as chat.example.org, or a free subdomain this portal offers. Addresses on your relay will end in that name."
                    </p>
                </li>
                <li>
                    <h3>"Connect your DNS provider"</h3>
                    <p>
                        "Sign in to your DNS provider from here, or paste a token. The portal shows you every record it will add or change and writes nothing until you confirm."
                    </p>
                </li>
                <li>
                    <h3>"Download and boot your image"</h3>
                    <p>
                        "You get a disk image made for your relay. Put it on your device and switch it on; it creates its own keys and certificates, which never leave it."
                    </p>
                </li>
                <li>
                    <h3>"Scan the QR code"</h3>
                    <p>
                        "When every check is green, scan the code with Delta Chat and you are chatting on your own relay. Share the code with your friends."
                    </p>
                </li>
            </ol>
        </section>

        <section aria-labelledby="device-heading" class="device-chooser">
            <h2 id="device-heading">"What will it run on?"</h2>
            <div class="segmented" role="group" aria-label="Device">
                {[Device::RaspberryPi, Device::VirtualMachine]
                    .into_iter()
                    .map(|choice| {
                        let href = format!("?device={}", choice.query_value());
                        view! {
                            <A
                                href=href
                                attr:class=move || if device.get() == choice { "segment selected" } else { "segment" }
                                attr:aria-pressed=move || (device.get() == choice).to_string()
                                attr:data-device=choice.query_value()
                            >
                                {choice.label()}
                            </A>
                        }
                    })
                    .collect_view()}
            </div>
            <div id="device-details" class="device-details" aria-live="polite">
                {move || match device.get() {
                    Device::RaspberryPi => view! { <RaspberryPiNeeds /> }.into_any(),
                    Device::VirtualMachine => view! { <VirtualMachineNeeds /> }.into_any(),
                }}
            </div>
        </section>
    }
}

#[component]
fn RaspberryPiNeeds() -> impl IntoView {
    view! {
        <h3>"Raspberry Pi 4 or 5"</h3>
        <ul>
            <li>"A Raspberry Pi 4 or 5 with its power supply, connected to your router by cable."</li>
            <li>"A microSD card of at least 4 GB, and a card reader for your computer."</li>
            <li>
                "Raspberry Pi Imager or balenaEtcher to write the image; both open the download as it is."
            </li>
            <li>
                "A router on which you can forward ports 25, 80, 443, 465, 587 and 993 to the Pi, and an internet provider that does not block port 25."
            </li>
        </ul>
    }
}

#[component]
fn VirtualMachineNeeds() -> impl IntoView {
    view! {
        <h3>"Virtual machine or PC (x86-64)"</h3>
        <ul>
            <li>"A virtual server or an old PC with a 64-bit Intel or AMD processor and 1 GB of memory."</li>
            <li>"A public IPv4 address; IPv6 is welcome too."</li>
            <li>
                "A hosting provider that allows outgoing mail on port 25, or will unblock it when asked."
            </li>
            <li>"A way to boot a raw disk image: most providers let you upload one as a custom image."</li>
        </ul>
    }
}
