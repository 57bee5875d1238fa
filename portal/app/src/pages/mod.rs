//! One module per page (or per family of pages).

mod accounts;
pub mod dns_steps;
pub mod download;
mod groups;
mod invite;
mod landing;
mod not_found;
mod operator;
mod relay_fields;
mod setup;
mod start;
pub mod status;

pub use accounts::{Account, SignIn, SignUp};
pub use groups::{Group, Groups};
pub use invite::Invite;
pub use landing::Landing;
pub use not_found::NotFound;
pub use operator::Operator;
pub use setup::Setup;
pub use start::Start;
