//! How pages get their data: one server function per page, each a thin call into the
//! server's [`backend::Backend`], which does the database work and all access checks.
//!
//! Reads only. Every change goes through a plain HTML form that posts to the server and
//! redirects (see the server crate's `forms`), so the portal works without JavaScript.

mod error;
mod types;

pub use error::AppError;
pub use types::*;

use leptos::prelude::*;

#[cfg(feature = "ssr")]
pub mod backend {
    //! The server's side of the page data, implemented by the server crate.

    use std::sync::Arc;

    use super::*;

    /// Everything pages can ask for. `request` is the incoming request's head; the
    /// implementation finds the session and signed-in person in it.
    #[async_trait::async_trait]
    pub trait Backend: Send + Sync + 'static {
        async fn page_context(
            &self,
            request: &http::request::Parts,
        ) -> Result<PageContext, AppError>;
        async fn my_groups(&self, request: &http::request::Parts) -> Result<MyGroups, AppError>;
        async fn group(
            &self,
            request: &http::request::Parts,
            group_id: &str,
        ) -> Result<GroupPage, AppError>;
        async fn invite(
            &self,
            request: &http::request::Parts,
            token: &str,
        ) -> Result<InvitePage, AppError>;
        async fn setup(
            &self,
            request: &http::request::Parts,
            group_id: &str,
            step: SetupStep,
        ) -> Result<SetupPage, AppError>;
        async fn operator(&self, request: &http::request::Parts) -> Result<OperatorPage, AppError>;
    }

    pub type SharedBackend = Arc<dyn Backend>;

    /// Gives a failed page-data request the HTTP status that matches its error.
    pub fn with_status<T>(result: Result<T, AppError>) -> Result<T, AppError> {
        if let (Err(error), Some(response)) =
            (&result, use_context::<leptos_axum::ResponseOptions>())
        {
            response.set_status(match error {
                AppError::NotFound | AppError::NotOperator => http::StatusCode::NOT_FOUND,
                AppError::NotSignedIn => http::StatusCode::UNAUTHORIZED,
                AppError::Internal | AppError::Transport(_) => {
                    http::StatusCode::INTERNAL_SERVER_ERROR
                }
            });
        }
        result
    }

    /// The backend and request head for the server function being run.
    pub fn current() -> Result<(SharedBackend, http::request::Parts), AppError> {
        let backend = use_context::<SharedBackend>().ok_or(AppError::Internal)?;
        let parts = use_context::<http::request::Parts>().ok_or(AppError::Internal)?;
        Ok((backend, parts))
    }
}

#[server(input = server_fn::codec::GetUrl, prefix = "/api", endpoint = "page_context")]
pub async fn load_page_context() -> Result<PageContext, AppError> {
    let (backend, request) = backend::current()?;
    backend::with_status(backend.page_context(&request).await)
}

#[server(input = server_fn::codec::GetUrl, prefix = "/api", endpoint = "my_groups")]
pub async fn load_my_groups() -> Result<MyGroups, AppError> {
    let (backend, request) = backend::current()?;
    backend::with_status(backend.my_groups(&request).await)
}

#[server(input = server_fn::codec::GetUrl, prefix = "/api", endpoint = "group_page")]
pub async fn load_group_page(group_id: String) -> Result<GroupPage, AppError> {
    let (backend, request) = backend::current()?;
    backend::with_status(backend.group(&request, &group_id).await)
}

#[server(input = server_fn::codec::GetUrl, prefix = "/api", endpoint = "invite_page")]
pub async fn load_invite_page(token: String) -> Result<InvitePage, AppError> {
    let (backend, request) = backend::current()?;
    backend::with_status(backend.invite(&request, &token).await)
}

#[server(input = server_fn::codec::GetUrl, prefix = "/api", endpoint = "setup_page")]
pub async fn load_setup_page(group_id: String, step: String) -> Result<SetupPage, AppError> {
    let Some(step) = SetupStep::from_slug(&step) else {
        return backend::with_status(Err(AppError::NotFound));
    };
    let (backend, request) = backend::current()?;
    backend::with_status(backend.setup(&request, &group_id, step).await)
}

#[server(input = server_fn::codec::GetUrl, prefix = "/api", endpoint = "operator_page")]
pub async fn load_operator_page() -> Result<OperatorPage, AppError> {
    let (backend, request) = backend::current()?;
    backend::with_status(backend.operator(&request).await)
}
