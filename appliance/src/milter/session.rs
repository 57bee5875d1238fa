//! One milter conversation: what to answer to each command, given chatmail's rules.
//!
//! Maddy opens one milter session per message (research/maddy-gochatmail.md B.3). The
//! session collects the envelope, rebuilds the message from the header fields and body
//! chunks it is sent, and asks [`crate::mail_rules`] at `MAIL` (outgoing: sender address
//! and send rate) and at end of message (the message rules). No socket here: the server
//! feeds decoded commands in and writes the answers out.
//!
//! What Maddy does with our answers (`internal/check/milter/milter.go` in Maddy 0.8.2):
//! `TEMPFAIL` becomes `450 4.7.1`, `REPLYCODE` keeps our code but Maddy replaces the text
//! by "Message rejected due to local policy" (enhanced code 5.7.1), `REJECT` becomes
//! `550 5.7.1`. So the rate limit answers `TEMPFAIL` (upstream's 450 4.7.1) and every other
//! refusal `REPLYCODE` with upstream's code and text (kept by MTAs that pass it on).
//! Header values reach us unfolded (Maddy's go-milter client sends them that way), which
//! keeps DKIM signatures with relaxed header canonicalization verifiable.

use std::sync::Arc;
use std::time::Instant;

use chatmail_appliance::mail_rules::{self, address, dkim::DkimVerifier, Kind, Limits, Reply};

use super::protocol::{flags, Command, Response};
use crate::metrics::Metrics;

/// Which rules a milter socket applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Submission: mail our users send.
    Outgoing,
    /// Port 25: mail other servers deliver to us.
    Incoming,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Outgoing => "outgoing",
            Direction::Incoming => "incoming",
        }
    }
}

/// Everything a session needs; shared by all sessions of a socket.
pub struct Policy {
    pub direction: Direction,
    pub limits: Limits,
    pub outgoing: Arc<mail_rules::Outgoing>,
    pub dkim: Arc<DkimVerifier>,
    pub metrics: Metrics,
}

/// Steps we do not need, and answers we do not need to give, if the MTA offers to skip
/// them. Maddy offers nothing (it answers every step), Postfix offers all.
const WANTED_PROTOCOL: u32 = flags::NO_CONNECT
    | flags::NO_HELO
    | flags::NO_UNKNOWN
    | flags::NO_DATA
    | flags::NR_HEADER
    | flags::NR_EOH
    | flags::NR_BODY
    | flags::NR_RCPT;

/// What to do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this answer.
    Answer(Response),
    /// Send nothing.
    Silent,
    /// Close the connection.
    Close,
}

/// The state of one conversation.
pub struct Session {
    policy: Arc<Policy>,
    protocol: u32,
    mail_from: Option<String>,
    rcpts: Vec<String>,
    message: Vec<u8>,
    too_big: bool,
}

impl Session {
    pub fn new(policy: Arc<Policy>) -> Session {
        Session {
            policy,
            protocol: 0,
            mail_from: None,
            rcpts: Vec::new(),
            message: Vec::new(),
            too_big: false,
        }
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpts.clear();
        self.message.clear();
        self.too_big = false;
    }

    /// An answer unless the MTA agreed not to wait for one (`no_reply` flag).
    fn reply_unless(&self, no_reply: u32, response: Response) -> Step {
        if self.protocol & no_reply != 0 {
            Step::Silent
        } else {
            Step::Answer(response)
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        // Keep a little more than the limit, so the size rule sees that it is exceeded.
        if self.message.len() + bytes.len() > self.policy.limits.max_message_size + 1 {
            self.too_big = true;
            return;
        }
        self.message.extend_from_slice(bytes);
    }

    /// Handles one command.
    pub async fn handle(&mut self, command: Command<'_>) -> Step {
        match command {
            Command::OptNeg {
                version,
                actions: _,
                protocol,
            } => {
                self.protocol = protocol & WANTED_PROTOCOL;
                Step::Answer(Response::OptNeg {
                    version: version.min(super::protocol::VERSION),
                    actions: 0, // we never modify a message
                    protocol: self.protocol,
                })
            }
            Command::Macro { .. } => Step::Silent,
            Command::Connect { .. } => self.reply_unless(flags::NR_CONNECT, Response::Continue),
            Command::Helo(_) => self.reply_unless(flags::NR_HELO, Response::Continue),
            Command::Mail(args) => {
                self.reset();
                let sender = address::envelope_address(&String::from_utf8_lossy(args[0]));
                let answer = match self.policy.direction {
                    Direction::Outgoing => {
                        match self.policy.outgoing.check_sender(&sender, Instant::now()) {
                            Ok(()) => Response::Continue,
                            Err(reply) => {
                                tracing::info!(sender, reply = %reply.line, "outgoing: refused at MAIL");
                                self.count("refused");
                                refusal(&reply)
                            }
                        }
                    }
                    Direction::Incoming => Response::Continue,
                };
                self.mail_from = Some(sender);
                self.reply_unless(flags::NR_MAIL, answer)
            }
            Command::Rcpt(args) => {
                self.rcpts
                    .push(address::envelope_address(&String::from_utf8_lossy(args[0])));
                self.reply_unless(flags::NR_RCPT, Response::Continue)
            }
            Command::Data => self.reply_unless(flags::NR_DATA, Response::Continue),
            Command::Header { name, value } => {
                self.append(name);
                self.append(b": ");
                self.append(value);
                self.append(b"\r\n");
                self.reply_unless(flags::NR_HEADER, Response::Continue)
            }
            Command::EndOfHeaders => {
                self.append(b"\r\n");
                self.reply_unless(flags::NR_EOH, Response::Continue)
            }
            Command::Body(chunk) => {
                self.append(chunk);
                self.reply_unless(flags::NR_BODY, Response::Continue)
            }
            Command::EndOfMessage => {
                let answer = self.verdict().await;
                self.reset();
                Step::Answer(answer)
            }
            Command::Abort => {
                self.reset();
                Step::Silent
            }
            Command::Unknown(_) => self.reply_unless(flags::NR_UNKNOWN, Response::Continue),
            Command::QuitNewConnection => {
                self.reset();
                Step::Silent
            }
            Command::Quit => Step::Close,
        }
    }

    fn count(&self, verdict: &'static str) {
        self.policy
            .metrics
            .count_mail_rule(self.policy.direction.label(), verdict);
    }

    async fn verdict(&mut self) -> Response {
        let direction = self.policy.direction;
        let mail_from = self.mail_from.clone().unwrap_or_default();
        let result: Result<Kind, Reply> = if self.too_big {
            Err(Reply::too_big())
        } else {
            match direction {
                Direction::Outgoing => {
                    self.policy
                        .outgoing
                        .check_message(&mail_from, &self.rcpts, &self.message)
                }
                Direction::Incoming => {
                    mail_rules::check_incoming(
                        &self.message,
                        &self.policy.limits,
                        &self.policy.dkim,
                    )
                    .await
                }
            }
        };
        match result {
            Ok(kind) => {
                tracing::info!(
                    direction = direction.label(),
                    kind = kind.label(),
                    "Filtering {} mail: accepted",
                    kind.label()
                );
                self.count(kind.label());
                Response::Accept
            }
            Err(reply) => {
                tracing::info!(
                    direction = direction.label(),
                    sender = mail_from,
                    reply = %reply.line,
                    "Rejected mail"
                );
                self.count(if reply.code == 523 {
                    "unencrypted"
                } else {
                    "refused"
                });
                refusal(&reply)
            }
        }
    }
}

/// The milter answer for a refusal: 4xx as TEMPFAIL (Maddy answers 450 4.7.1), 5xx with
/// our code and text.
fn refusal(reply: &Reply) -> Response {
    if reply.code < 500 {
        Response::TempFail
    } else {
        Response::ReplyCode {
            code: reply.code,
            text: reply.text().to_string(),
        }
    }
}
