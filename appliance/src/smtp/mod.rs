//! The SMTP/LMTP wire used between Maddy and our hops, and towards other relays:
//! [`server`] (an LMTP server for Maddy's `target.lmtp`) and [`client`] (LMTP to Maddy's
//! storage listener, SMTP to other relays).

pub mod client;
pub mod server;
