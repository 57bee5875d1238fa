//! Why a page could not show what was asked for, in a form that survives the trip from the
//! server to the browser.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Please sign in to see this page.")]
    NotSignedIn,
    /// Also used when the page exists but belongs to someone else: never reveal which.
    #[error("There is nothing at this address.")]
    NotFound,
    #[error("Only community operators may see this page.")]
    NotOperator,
    #[error("Something went wrong on our side. Please try again in a moment.")]
    Internal,
    #[error("The portal could not be reached: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}
