//! Planned record versus what the servers serve: the per-record verdict.
//!
//! Pure functions over [`Observations`]; no sockets. Values are compared the way the
//! software that reads them compares them, not as strings: TXT strings are joined before
//! comparing (a verifier concatenates them), DKIM compares the key and algorithm, DMARC,
//! MTA-STS and TLSRPT compare their tag lists, SPF its terms, names ignore case, and an
//! MX is right when every exchange is the mail domain. A TXT name shared by several
//! kinds of record (the mail domain holds SPF and often verification strings) is compared
//! only against the records of the same kind.

use chatmail_shared::dns_plan::{Purpose, Requirement};
use chatmail_shared::{PlannedRecord, PlannedValue, RecordData};

use crate::model::{RecordCheck, RecordStatus, ResolverView, ServerView, Severity};
use crate::observations::{Answer, Data, Observations, Outcome, RType, Rcode, Rr};

/// Stable machine id of a record's purpose, as used in [`RecordCheck::purpose`].
pub fn purpose_id(p: Purpose) -> &'static str {
    match p {
        Purpose::Ipv4Address => "ipv4-address",
        Purpose::Ipv6Address => "ipv6-address",
        Purpose::MailExchanger => "mx",
        Purpose::MtaStsPolicyId => "mta-sts-policy-id",
        Purpose::MtaStsHost => "mta-sts-host",
        Purpose::WwwAlias => "www-alias",
        Purpose::Dkim => "dkim",
        Purpose::Spf => "spf",
        Purpose::Dmarc => "dmarc",
        Purpose::Caa => "caa",
        Purpose::Adsp => "adsp",
        Purpose::SubmissionSrv => "submission-srv",
        Purpose::SubmissionsSrv => "submissions-srv",
        Purpose::ImapSrv => "imap-srv",
        Purpose::ImapsSrv => "imaps-srv",
        Purpose::TlsReporting => "tls-reporting",
    }
}

/// What one server (or resolver) has for a planned record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Records of the planned type (and kind, for TXT).
    Records {
        /// The records.
        records: Vec<Rr>,
        /// Aliases followed to reach them.
        aliases: Vec<String>,
    },
    /// The name or the type does not exist there.
    Nothing {
        /// Remaining negative-cache time, from the SOA.
        negative_ttl: Option<u32>,
        /// Aliases followed (an alias pointing at a name without the type).
        aliases: Vec<String>,
        /// The alias chain loops.
        looped: bool,
    },
    /// No usable answer.
    Failed(String),
}

/// The TXT "kind" prefix a purpose's record starts with; `None`: any TXT at the name.
pub fn txt_kind(p: Purpose) -> Option<&'static str> {
    match p {
        Purpose::Spf => Some("v=spf1"),
        Purpose::Dmarc => Some("v=dmarc1"),
        Purpose::MtaStsPolicyId => Some("v=stsv1"),
        Purpose::TlsReporting => Some("v=tlsrptv1"),
        _ => None,
    }
}

/// Whether a joined TXT value is of this kind (`v=spf1` followed by a space, `;` or end).
pub fn is_kind(text: &str, kind: &str) -> bool {
    let t = text.trim_start().to_ascii_lowercase();
    t.strip_prefix(kind)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ';', '\t']))
}

/// What `answer` says about `name`/`rtype` for a record with this purpose.
pub fn seen_in(
    answer: &Answer,
    name: &str,
    rtype: RType,
    purpose: Option<Purpose>,
    authoritative: bool,
) -> Seen {
    match answer.rcode {
        Rcode::NoError | Rcode::NxDomain => {}
        other => return Seen::Failed(format!("answered {other}")),
    }
    let chain = answer.chain(name, rtype);
    let mut records = chain.records;
    if let (RType::Txt, Some(kind)) = (rtype, purpose.and_then(txt_kind)) {
        records.retain(|r| r.data.txt_joined().is_some_and(|t| is_kind(&t, kind)));
    }
    if records.is_empty() {
        if authoritative && !answer.authoritative && answer.answers.is_empty() {
            return Seen::Failed("answered without authority (it does not serve this zone)".into());
        }
        return Seen::Nothing {
            negative_ttl: answer.negative_ttl(),
            aliases: chain.aliases,
            looped: chain.looped,
        };
    }
    Seen::Records {
        records,
        aliases: chain.aliases,
    }
}

/// [`seen_in`] for any outcome.
pub fn seen(
    outcome: &Outcome,
    name: &str,
    rtype: RType,
    purpose: Option<Purpose>,
    authoritative: bool,
) -> Seen {
    match outcome {
        Outcome::Answer(a) => seen_in(a, name, rtype, purpose, authoritative),
        other => Seen::Failed(other.failure().unwrap_or_default()),
    }
}

fn tags(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = text
        .split(';')
        .filter_map(|part| {
            let (k, v) = part.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect();
    out.sort();
    out
}

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The DKIM key (`p=`) with all whitespace removed, and the algorithm (`k=`, default rsa).
pub fn dkim_key(text: &str) -> (String, String) {
    let t = tags(text);
    let p: String = tag(&t, "p")
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let k = tag(&t, "k").unwrap_or("rsa").to_ascii_lowercase();
    (p, k)
}

/// Whether a published TXT value is equivalent to the planned one for this purpose.
pub fn txt_equivalent(purpose: Purpose, planned: &str, found: &str) -> bool {
    match purpose {
        Purpose::Dkim => {
            let (pp, pk) = dkim_key(planned);
            let (fp, fk) = dkim_key(found);
            !fp.is_empty() && pp == fp && pk == fk
        }
        Purpose::Spf => {
            let norm = |s: &str| -> Vec<String> {
                s.split_whitespace().map(str::to_ascii_lowercase).collect()
            };
            norm(planned) == norm(found)
        }
        Purpose::Dmarc | Purpose::MtaStsPolicyId | Purpose::TlsReporting => {
            let lower = |t: Vec<(String, String)>| -> Vec<(String, String)> {
                t.into_iter()
                    .map(|(k, v)| {
                        if k == "v" || k == "p" || k == "adkim" || k == "aspf" || k == "sp" {
                            (k, v.to_ascii_lowercase())
                        } else {
                            (k, v)
                        }
                    })
                    .collect()
            };
            lower(tags(planned)) == lower(tags(found))
        }
        _ => planned.trim().eq_ignore_ascii_case(found.trim()),
    }
}

/// The issuer domain and `accounturi` of a CAA `issue` value.
pub fn caa_issue(value: &str) -> (String, Option<String>) {
    let mut parts = value.split(';');
    let issuer = parts
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let account = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("accounturi")).then(|| v.trim().to_string())
    });
    (issuer, account)
}

/// Whether the found records satisfy the planned record.
pub fn matches(purpose: Purpose, planned: &RecordData, found: &[Data]) -> bool {
    if found.is_empty() {
        return false;
    }
    match planned {
        RecordData::A(ip) => found.iter().all(|d| d == &Data::A(*ip)),
        RecordData::Aaaa(ip) => found.iter().all(|d| d == &Data::Aaaa(*ip)),
        RecordData::Mx { exchange, .. } => found
            .iter()
            .all(|d| matches!(d, Data::Mx { exchange: e, .. } if e.eq_ignore_ascii_case(exchange))),
        RecordData::Cname(target) => {
            found.len() == 1
                && matches!(&found[0], Data::Cname(t) if t.eq_ignore_ascii_case(target))
        }
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => found.iter().all(|d| {
            matches!(d, Data::Srv { priority: p, weight: w, port: o, target: t }
                if p == priority && w == weight && o == port && t.eq_ignore_ascii_case(target))
        }),
        RecordData::Caa { tag, value, .. } => {
            let want = caa_issue(value);
            found.iter().any(|d| {
                matches!(d, Data::Caa { tag: t, value: v, .. }
                    if t.eq_ignore_ascii_case(tag) && caa_issue(v) == want)
            })
        }
        RecordData::Txt(strings) => {
            found.len() == 1
                && found[0]
                    .txt_joined()
                    .is_some_and(|f| txt_equivalent(purpose, &strings.joined(), &f))
        }
    }
}

fn present(records: &[Rr]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| r.data.presentation()).collect();
    v.sort();
    v.dedup();
    v
}

fn min_ttl(records: &[Rr]) -> Option<u32> {
    records.iter().map(|r| r.ttl).min()
}

/// Options the verdict depends on.
#[derive(Debug, Clone, Copy)]
pub struct CompareOptions {
    /// Whether differing SOA serials make a disagreement look like a sync in progress.
    pub serials_differ: bool,
}

/// The verdict for one planned record.
pub fn check_record(p: &PlannedRecord, obs: &Observations, opts: CompareOptions) -> RecordCheck {
    let rtype = RType::from_mnemonic(p.rtype()).unwrap_or(RType::Txt);
    let lookup = obs.lookup(&p.name, rtype).cloned().unwrap_or_default();
    let mut check = RecordCheck {
        purpose: purpose_id(p.purpose).to_string(),
        name: p.name.clone(),
        rtype: rtype.as_str().to_string(),
        requirement: p.requirement.to_string(),
        reason: p.reason.to_string(),
        expected: match &p.value {
            PlannedValue::Ready(d) => Some(d.presentation()),
            PlannedValue::Pending(_) => None,
        },
        found: Vec::new(),
        ttl: None,
        status: RecordStatus::Ok,
        severity: None,
        resolvers: Vec::new(),
        answered_by_wildcard: false,
        via_alias: Vec::new(),
    };

    let per_server: Vec<(String, Seen)> = lookup
        .auth
        .iter()
        .map(|s| {
            (
                s.server.to_string(),
                seen(&s.outcome, &p.name, rtype, Some(p.purpose), true),
            )
        })
        .collect();
    let responsive: Vec<&(String, Seen)> = per_server
        .iter()
        .filter(|(_, s)| !matches!(s, Seen::Failed(_)))
        .collect();
    let key = |s: &Seen| match s {
        Seen::Records { records, .. } => present(records),
        _ => Vec::new(),
    };
    if let Some((_, first)) = responsive.first() {
        if let Seen::Records { records, aliases } = first {
            check.found = present(records);
            check.ttl = min_ttl(records);
            check.via_alias = aliases.clone();
            check.answered_by_wildcard = by_wildcard(obs, &p.name, rtype, records);
        } else if let Seen::Nothing { aliases, .. } = first {
            check.via_alias = aliases.clone();
        }
    }

    check.resolvers = lookup
        .recursive
        .iter()
        .map(|r| {
            let s = seen(&r.outcome, &p.name, rtype, Some(p.purpose), false);
            match s {
                Seen::Records { records, .. } => ResolverView {
                    resolver: r.resolver.to_string(),
                    found: present(&records),
                    ttl: min_ttl(&records),
                    error: None,
                },
                Seen::Nothing { negative_ttl, .. } => ResolverView {
                    resolver: r.resolver.to_string(),
                    found: Vec::new(),
                    ttl: negative_ttl,
                    error: None,
                },
                Seen::Failed(e) => ResolverView {
                    resolver: r.resolver.to_string(),
                    found: Vec::new(),
                    ttl: None,
                    error: Some(e),
                },
            }
        })
        .collect();

    let planned = match &p.value {
        PlannedValue::Pending(w) => {
            check.status = RecordStatus::Pending {
                waits_for: w.explanation().to_string(),
            };
            return check;
        }
        PlannedValue::Ready(d) => d,
    };

    let severity_for_problem = match p.requirement {
        Requirement::Required => Severity::Error,
        Requirement::Recommended => Severity::Warning,
    };

    if responsive.is_empty() {
        let reason = if lookup.auth.is_empty() {
            "no name server of the zone could be found".to_string()
        } else {
            "no name server of the zone answered".to_string()
        };
        check.status = RecordStatus::Unknown { reason };
        check.severity = Some(severity_for_problem);
        return check;
    }

    let mut distinct: Vec<Vec<String>> = responsive.iter().map(|(_, s)| key(s)).collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() > 1 {
        check.status = RecordStatus::ServersDisagree {
            per_server: per_server
                .iter()
                .map(|(server, s)| ServerView {
                    server: server.clone(),
                    found: key(s),
                    error: match s {
                        Seen::Failed(e) => Some(e.clone()),
                        _ => None,
                    },
                })
                .collect(),
        };
        check.severity = Some(if opts.serials_differ {
            Severity::Info
        } else {
            severity_for_problem
        });
        return check;
    }

    let found_data: Vec<Data> = match &responsive[0].1 {
        Seen::Records { records, .. } => records.iter().map(|r| r.data.clone()).collect(),
        _ => Vec::new(),
    };
    if found_data.is_empty() {
        check.status = RecordStatus::Missing;
        check.severity = Some(severity_for_problem);
        return check;
    }
    if !matches(p.purpose, planned, &found_data) {
        check.status = RecordStatus::Wrong {
            expected: vec![planned.presentation()],
            found: check.found.clone(),
        };
        check.severity = Some(severity_for_problem);
        return check;
    }

    // Published correctly: what do resolvers see?
    let mut stale_ttl: Option<u32> = None;
    let mut any_stale = false;
    let mut stale_found: Vec<String> = Vec::new();
    let mut fresh = 0;
    let mut failing: Vec<String> = Vec::new();
    for r in &lookup.recursive {
        match seen(&r.outcome, &p.name, rtype, Some(p.purpose), false) {
            Seen::Records { records, .. } => {
                let data: Vec<Data> = records.iter().map(|r| r.data.clone()).collect();
                if matches(p.purpose, planned, &data) {
                    fresh += 1;
                } else {
                    any_stale = true;
                    stale_ttl = stale_ttl.max(min_ttl(&records));
                    stale_found.extend(present(&records));
                }
            }
            Seen::Nothing { negative_ttl, .. } => {
                any_stale = true;
                stale_ttl = stale_ttl.max(negative_ttl);
            }
            Seen::Failed(e) => {
                if matches!(&r.outcome, Outcome::Answer(_)) {
                    failing.push(format!("{} {e}", r.resolver));
                }
            }
        }
    }
    if any_stale {
        stale_found.sort();
        stale_found.dedup();
        check.status = RecordStatus::NotYetPropagated {
            remaining_ttl_secs: stale_ttl,
            stale_found,
        };
        check.severity = Some(Severity::Info);
    } else if fresh == 0 && !failing.is_empty() {
        check.status = RecordStatus::ResolverFails {
            reason: format!("resolvers fail to look it up: {}", failing.join("; ")),
        };
        check.severity = Some(severity_for_problem);
    }
    check
}

/// Whether `records` are what a wildcard gives for a random name next to `name`.
fn by_wildcard(obs: &Observations, name: &str, rtype: RType, records: &[Rr]) -> bool {
    let Some((_, parent)) = name.split_once('.') else {
        return false;
    };
    let Some(probe) = obs
        .probes
        .iter()
        .find(|pr| pr.parent == parent && pr.rtype == rtype)
    else {
        return false;
    };
    let synthesized = probe.synthesized();
    if synthesized.is_empty() {
        return false;
    }
    let mut a: Vec<String> = synthesized.iter().map(Data::presentation).collect();
    let mut b: Vec<String> = records.iter().map(|r| r.data.presentation()).collect();
    a.sort();
    b.sort();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatmail_shared::dns_plan::TxtStrings;

    #[test]
    fn txt_kinds() {
        assert!(is_kind("v=spf1 a ~all", "v=spf1"));
        assert!(is_kind("V=SPF1", "v=spf1"));
        assert!(!is_kind("v=spf10 a", "v=spf1"));
        assert!(is_kind("v=DMARC1;p=reject", "v=dmarc1"));
    }

    #[test]
    fn semantic_txt_comparison() {
        assert!(txt_equivalent(
            Purpose::Dmarc,
            "v=DMARC1;p=reject;adkim=s;aspf=s",
            "v=DMARC1; p=reject; aspf=s; adkim=s"
        ));
        assert!(!txt_equivalent(
            Purpose::Dmarc,
            "v=DMARC1;p=reject;adkim=s;aspf=s",
            "v=DMARC1; p=none"
        ));
        assert!(txt_equivalent(
            Purpose::Spf,
            "v=spf1 a ~all",
            "v=spf1  A ~all"
        ));
        assert!(!txt_equivalent(
            Purpose::Spf,
            "v=spf1 a ~all",
            "v=spf1 mx -all"
        ));
        assert!(txt_equivalent(
            Purpose::Dkim,
            "v=DKIM1;k=rsa;p=ABCD;s=email;t=s",
            "v=DKIM1; k=rsa; p=AB CD"
        ));
        assert!(!txt_equivalent(
            Purpose::Dkim,
            "v=DKIM1;k=rsa;p=ABCD;s=email;t=s",
            "v=DKIM1;k=rsa;p=ABC"
        ));
    }

    #[test]
    fn record_matching() {
        let mx = RecordData::Mx {
            preference: 10,
            exchange: "chat.example.org".into(),
        };
        let found = [Data::Mx {
            preference: 20,
            exchange: "CHAT.example.org".into(),
        }];
        assert!(matches(Purpose::MailExchanger, &mx, &found));
        let caa = RecordData::Caa {
            flags: 0,
            tag: "issue".into(),
            value: "letsencrypt.org;accounturi=https://a/1".into(),
        };
        let found = [
            Data::Caa {
                flags: 0,
                tag: "iodef".into(),
                value: "mailto:x@y".into(),
            },
            Data::Caa {
                flags: 0,
                tag: "issue".into(),
                value: "letsencrypt.org; accounturi=https://a/1".into(),
            },
        ];
        assert!(matches(Purpose::Caa, &caa, &found));
        let txt = RecordData::Txt(TxtStrings::split(&"x".repeat(300)));
        let found = [Data::Txt(vec!["x".repeat(255), "x".repeat(45)])];
        assert!(matches(Purpose::Adsp, &txt, &found));
    }
}
