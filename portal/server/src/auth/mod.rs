//! Who is asking: passwords, sessions, the signed-in account, anti-forgery and rate limits.

pub mod client_ip;
pub mod csrf;
pub mod password;
pub mod rate_limit;
pub mod session;

pub use client_ip::ClientIp;
pub use session::CurrentAccount;
