//! The push trigger's plug: called once per recipient when Maddy confirmed (LMTP 250)
//! that a message is in that recipient's mailbox.
//!
//! Upstream triggers a push notification from Dovecot's LMTP delivery, only when the
//! recipient is not the sender (its own sent copy) (research/chatmail.md §1.4, "New-mail
//! trigger"). The push notifier (`crate::push::notifier::PushHook`) implements
//! [`DeliveryHook`], applies that rule with the two addresses it gets, and queues its work:
//! the call happens inside the delivery, so it must return at once (no I/O, no waiting).

/// A message stored in a local mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered<'a> {
    /// The local recipient (lower-case address).
    pub recipient: &'a str,
    /// The envelope sender (empty for bounces and `/mxdeliv` mail whose sender differs
    /// from `From:`).
    pub sender: &'a str,
}

/// Told about every confirmed local delivery.
pub trait DeliveryHook: Send + Sync + 'static {
    /// Must not block.
    fn delivered(&self, delivery: &Delivered<'_>);
}
