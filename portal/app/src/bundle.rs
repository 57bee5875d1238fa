//! Where the browser finds the compiled stylesheet and the hydration bundle.
//!
//! The build names every file after a hash of its content, so browsers may cache them for a
//! year; the server reads those names from the bundle's manifest and hands them to the shell
//! here. When no bundle was built the pages still render and work, just without the
//! interactive extras.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// URLs of the built assets, as written by `portal/scripts/build.sh` into `manifest.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The stylesheet, e.g. `/pkg/portal.1a2b3c4d.css`.
    pub css: String,
    /// The favicon, e.g. `/pkg/favicon.1a2b3c4d.svg`.
    pub favicon: String,
    /// The JavaScript glue of the WASM bundle; `None` when the bundle was not built.
    pub js: Option<String>,
    /// The WASM module itself; present exactly when `js` is.
    pub wasm: Option<String>,
}

impl Bundle {
    /// Unhashed fallbacks used when no manifest exists (development without a build).
    pub fn unbuilt() -> Self {
        Bundle {
            css: "/pkg/portal.css".into(),
            favicon: "/pkg/favicon.svg".into(),
            js: None,
            wasm: None,
        }
    }

    /// True when every URL is a plain site-relative path, so it can go into a `<script>` and
    /// attributes without escaping concerns. The server refuses manifests that fail this.
    pub fn is_well_formed(&self) -> bool {
        let ok = |url: &str| {
            url.starts_with("/pkg/")
                && url.len() < 200
                && !url.contains("..")
                && url
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_'))
        };
        ok(&self.css)
            && ok(&self.favicon)
            && self.js.is_some() == self.wasm.is_some()
            && self.js.as_deref().is_none_or(ok)
            && self.wasm.as_deref().is_none_or(ok)
    }
}

/// Preloads the bundle and starts hydration once it has loaded.
#[component]
pub fn BundleScripts(bundle: Bundle) -> impl IntoView {
    let (Some(js), Some(wasm)) = (bundle.js, bundle.wasm) else {
        return None;
    };
    // Both URLs passed `is_well_formed`, so they are safe inside a JS string literal.
    let boot = format!(
        "import init, {{ hydrate }} from '{js}';\
         init({{ module_or_path: '{wasm}' }}).then(() => hydrate());"
    );
    Some(view! {
        <link rel="modulepreload" href=js.clone() />
        <link rel="preload" href=wasm.clone() r#as="fetch" r#type="application/wasm" crossorigin="" />
        <script type="module" inner_html=boot></script>
    })
}
