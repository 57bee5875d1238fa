//! Maddy, the mail server the appliance wraps: its generated configuration ([`config`])
//! and the child process that runs it ([`process`]).

pub mod config;
pub mod process;
