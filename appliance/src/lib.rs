//! The appliance's pure parts as a library, so that benchmarks, fuzz targets and the mail
//! corpus test use exactly the code the daemons run: chatmail's mail rules, the milter
//! wire format, the port-443 multiplexer with its ClientHello parser, and the dual-stack
//! listeners every public service uses. The daemons
//! themselves are the `chatmail-appliance` binary (`main.rs`).

pub mod alpn_mux;
pub mod client_hello;
#[path = "expiry/rules.rs"]
pub mod expiry_rules;
#[path = "imap_front/parser.rs"]
pub mod imap_parser;
pub mod listen;
pub mod mail_rules;
#[path = "milter/protocol.rs"]
pub mod milter_protocol;
