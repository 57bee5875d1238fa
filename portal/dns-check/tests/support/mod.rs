//! The loopback DNS world (crate `chatmail-dns-world`) plus what these tests add to it: a
//! checker config pointed at the world, and a printout of a report for failure messages.
#![allow(dead_code)]

use std::time::Duration;

use chatmail_dns_check::{CheckReport, CheckerConfig};
pub use chatmail_dns_world::*;

/// A checker config using the world's resolver and port.
pub trait CheckerConfigFor {
    fn config(&self, timeout: Duration) -> CheckerConfig;
}

impl CheckerConfigFor for World {
    fn config(&self, timeout: Duration) -> CheckerConfig {
        let mut c = CheckerConfig::with_resolvers(vec![self.resolver()]);
        c.nameserver_port = self.port;
        c.timeout = timeout;
        c
    }
}

/// Prints a report's findings (shown by `cargo test -- --nocapture` and on failure).
pub fn show(report: &CheckReport) -> String {
    let mut s = String::new();
    for f in &report.findings {
        s.push_str(&format!(
            "[{:?}] {} — {} ({:?})\n",
            f.severity, f.id, f.title, f.subject
        ));
    }
    for r in &report.records {
        s.push_str(&format!(
            "{} {} {}: {:?}\n",
            r.purpose, r.name, r.rtype, r.status
        ));
    }
    s
}
