//! The "get a profile" QR code on the relay's home page.
//!
//! Scanning it in Delta Chat creates an account on the relay: the app POSTs to
//! `https://<domain>/new` and gets an address and password back (research/
//! deltachat-client.md §1.2 (a); the payload is upstream's, research/chatmail.md §3).
//! Rendered as inline SVG so the page needs no image file and no script.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use crate::domain::MailDomain;

/// `DCACCOUNT:https://<domain>/new`, with the domain in ASCII form.
pub fn account_payload(domain: &MailDomain) -> String {
    format!("DCACCOUNT:{}", new_account_url(domain))
}

/// `https://<domain>/new`, where Delta Chat asks for a new account.
pub fn new_account_url(domain: &MailDomain) -> String {
    format!("https://{}/new", domain.as_str())
}

/// The QR code for `payload` as an `<svg>` element (no XML declaration), ready to be
/// placed inside HTML. `label` becomes its accessible name.
///
/// Error correction level M: upstream uses H because it pastes a logo into the middle; a
/// code without a logo scans reliably with M and has bigger modules.
pub fn svg(payload: &str, label: &str) -> String {
    // A mail domain is at most 233 bytes, so the payload always fits (a version-40 code at
    // level M holds 2331 bytes); the fallback only guards against misuse with other data.
    let code = match QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M) {
        Ok(code) => code,
        Err(_) => return String::new(),
    };
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    let image = match image.find("<svg") {
        Some(start) => &image[start..],
        None => &image[..],
    };
    let label = html_escape::encode_double_quoted_attribute(label);
    image.replacen(
        "<svg ",
        &format!(r#"<svg role="img" aria-label="{label}" class="qr" "#),
        1,
    )
}

/// The account QR code for `domain` as inline SVG.
pub fn account_svg(domain: &MailDomain) -> String {
    svg(
        &account_payload(domain),
        &format!(
            "QR code to get a {} chat profile in Delta Chat",
            domain.to_unicode()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_upstreams() {
        let d = MailDomain::parse("Bücher.example").unwrap();
        assert_eq!(
            account_payload(&d),
            "DCACCOUNT:https://xn--bcher-kva.example/new"
        );
    }

    #[test]
    fn svg_is_inline_element() {
        let d = MailDomain::parse("chat.example.org").unwrap();
        let s = account_svg(&d);
        assert!(s.starts_with("<svg role=\"img\""), "{}", &s[..80]);
        assert!(s.ends_with("</svg>"));
        assert!(!s.contains("<?xml"));
    }
}
