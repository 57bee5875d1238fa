//! The appliance's pure parts as a library, so that benchmarks, fuzz targets and the mail
//! corpus test use exactly the code the daemons run: chatmail's mail rules and the milter
//! wire format. The daemons themselves are the `chatmail-appliance` binary (`main.rs`).

pub mod mail_rules;
#[path = "milter/protocol.rs"]
pub mod milter_protocol;
