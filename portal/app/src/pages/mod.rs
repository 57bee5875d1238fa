//! One module per page.

mod landing;
mod not_found;
mod start;

pub use landing::Landing;
pub use not_found::NotFound;
pub use start::Start;
