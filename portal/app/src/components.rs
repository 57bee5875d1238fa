//! Small pieces the pages share: the page context, flash messages, form fields with their
//! errors, the anti-forgery field, copy buttons and the wizard's progress indicator.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_location};

use crate::api::{load_page_context, AppError, Flash, FlashLevel, PageContext, SetupStep};

/// The document title: the page's own title, then the product's name.
#[component]
pub fn PageTitle(#[prop(into)] text: String) -> impl IntoView {
    let full = if text.is_empty() {
        crate::PRODUCT_NAME.to_string()
    } else {
        format!("{text} \u{b7} {}", crate::PRODUCT_NAME)
    };
    view! { <leptos_meta::Title text=full /> }
}

/// The page context (who is signed in, the pending flash message), loaded once per page.
#[derive(Clone, Copy)]
pub struct PageContextResource(pub Resource<Result<PageContext, AppError>>);

pub fn provide_page_context() {
    let location = use_location();
    let resource = Resource::new(
        move || (location.pathname.get(), location.search.get()),
        |_| load_page_context(),
    );
    provide_context(PageContextResource(resource));
}

/// Renders children once the page context has loaded.
#[component]
pub fn WithContext<F, IV>(children: F) -> impl IntoView
where
    F: Fn(PageContext) -> IV + Send + Sync + 'static,
    IV: IntoView + 'static,
{
    let resource = expect_context::<PageContextResource>().0;
    let children = std::sync::Arc::new(children);
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let children = children.clone();
                Suspend::new(async move {
                    let context = resource.await.unwrap_or_default();
                    children(context)
                })
            }}
        </Suspense>
    }
}

#[component]
pub fn FlashMessage(flash: Flash) -> impl IntoView {
    let level = flash.level?;
    let (class, role) = match level {
        FlashLevel::Success => ("flash flash-success", "status"),
        FlashLevel::Info => ("flash flash-info", "status"),
        FlashLevel::Error => ("flash flash-error", "alert"),
    };
    Some(view! {
        <div class=class role=role id="flash">
            <p>{flash.message}</p>
        </div>
    })
}

/// The hidden field carrying the session's anti-forgery token.
#[component]
pub fn CsrfField(token: String) -> impl IntoView {
    view! { <input type="hidden" name="csrf" value=token /> }
}

/// A labelled input with its error message, refilled from the flash after a rejected post.
#[component]
pub fn Field(
    name: &'static str,
    label: &'static str,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional, into)] value: Option<String>,
    #[prop(optional)] hint: Option<&'static str>,
    #[prop(optional)] required: bool,
    #[prop(optional, into)] autocomplete: Option<&'static str>,
    #[prop(optional)] maxlength: Option<u32>,
    flash: Flash,
) -> impl IntoView {
    let error = flash.error_for(name);
    let value = flash.value_of(name).or(value).unwrap_or_default();
    let id = format!("field-{name}");
    let error_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = match (error.is_some(), hint.is_some()) {
        (true, true) => Some(format!("{error_id} {hint_id}")),
        (true, false) => Some(error_id.clone()),
        (false, true) => Some(hint_id.clone()),
        (false, false) => None,
    };
    let show_value = kind != "password";
    let invalid = error.is_some();
    view! {
        <div class="field" class:field-invalid=invalid>
            <label for=id.clone()>{label}</label>
            <input
                id=id
                name=name
                type=kind
                value=show_value.then_some(value)
                required=required
                autocomplete=autocomplete
                maxlength=maxlength
                aria-invalid=invalid.then_some("true")
                aria-describedby=described
            />
            {hint.map(|hint| view! { <p class="hint" id=hint_id>{hint}</p> })}
            {error.map(|error| view! { <p class="field-error" id=error_id>{error}</p> })}
        </div>
    }
}

/// A button that copies `text`; it appears only once the page is interactive, since
/// copying needs JavaScript (the text itself is always shown next to it).
#[component]
pub fn CopyButton(
    #[prop(into)] text: String,
    #[prop(default = "Copy")] label: &'static str,
) -> impl IntoView {
    let hydrated = RwSignal::new(false);
    let copied = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            if let Some(window) = web_sys::window() {
                let _ = window.navigator().clipboard().write_text(&text);
                copied.set(true);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &text;
    };
    view! {
        <Show when=move || hydrated.get()>
            <button type="button" class="button button-small copy-button" on:click=copy.clone()>
                {move || if copied.get() { "Copied" } else { label }}
            </button>
        </Show>
    }
}

/// The wizard's seven steps, with done, current and not-yet-open ones told apart.
#[component]
pub fn SetupProgress(group_id: String, current: SetupStep, completed: u8) -> impl IntoView {
    view! {
        <nav aria-label="Setup steps" class="progress">
            <ol>
                {SetupStep::ALL
                    .into_iter()
                    .map(|step| {
                        let number = step.number();
                        let state = if step == current {
                            "current"
                        } else if number <= completed {
                            "done"
                        } else if number == completed + 1 {
                            "open"
                        } else {
                            "locked"
                        };
                        let href = format!("/groups/{group_id}/setup/{}", step.slug());
                        let label = format!("{number}. {}", step.title());
                        let status = match state {
                            "done" => " (done)",
                            "locked" => " (not yet)",
                            _ => "",
                        };
                        view! {
                            <li class=format!("progress-step progress-{state}")>
                                {if state == "locked" {
                                    view! { <span>{label}<span class="visually-hidden">{status}</span></span> }.into_any()
                                } else {
                                    view! {
                                        <A href=href attr:aria-current=(step == current).then_some("step")>
                                            {label}
                                            <span class="visually-hidden">{status}</span>
                                        </A>
                                    }
                                        .into_any()
                                }}
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
        </nav>
    }
}

/// What to show when a page's data could not be loaded.
#[component]
pub fn LoadError(error: AppError) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        let status = match error {
            AppError::NotFound | AppError::NotOperator => http::StatusCode::NOT_FOUND,
            AppError::NotSignedIn => http::StatusCode::UNAUTHORIZED,
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        };
        response.set_status(status);
    }
    let sign_in = matches!(error, AppError::NotSignedIn);
    view! {
        <section class="not-found">
            <h1>{if sign_in { "Please sign in" } else { "Not available" }}</h1>
            <p>{error.to_string()}</p>
            <p>
                {if sign_in {
                    view! { <A href="/signin" attr:class="button button-primary">"Sign in"</A> }.into_any()
                } else {
                    view! { <A href="/groups" attr:class="button">"Your groups"</A> }.into_any()
                }}
            </p>
        </section>
    }
}
