//! Local delivery: every message for a local mailbox passes here on its way into
//! Maddy's storage, and this is where the relay knows it was stored.
//!
//! Maddy's pipelines (submission for local recipients, port 25, queue bounces) deliver to
//! our LMTP hop ([`local::serve`]); `/mxdeliv` calls [`local::LocalDelivery::deliver`]
//! directly. Both forward to Maddy's loopback-only LMTP listener in front of its storage,
//! recipient by recipient, after removing the header fields upstream removes before
//! storage, and report each stored message to the [`hook::DeliveryHook`] (the push
//! notifier of Appliance II plugs in there).

pub mod hook;
pub mod local;
