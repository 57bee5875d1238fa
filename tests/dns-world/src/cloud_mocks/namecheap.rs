//! Namecheap XML API (<https://www.namecheap.com/support/api/intro/> — global parameters,
//! allow-listed client IP, error format;
//! <https://www.namecheap.com/support/api/methods/domains/get-list/>,
//! <https://www.namecheap.com/support/api/methods/domains-dns/get-hosts/>,
//! <https://www.namecheap.com/support/api/methods/domains-dns/set-hosts/>):
//!
//! * `GET|POST /xml.response` with `ApiUser`, `ApiKey`, `UserName`, `ClientIp`,
//!   `Command` (query or form body); answers `<ApiResponse Status="OK|ERROR">` with
//!   `<Errors><Error Number="…">`, HTTP 200 even for errors;
//! * a `ClientIp` other than the allow-listed one (setting `client_ip`) → error 1011150
//!   "Invalid request IP"; a wrong key → 1011102; an unknown domain → 2019166;
//! * `namecheap.domains.getList` pages with `Page`/`PageSize` and reports `TotalItems`;
//! * `getHosts` lists every `<host>`; `setHosts` replaces **all** hosts with the numbered
//!   `HostName1…`, `RecordType1…`, `Address1…`, `MXPref1…`, `TTL1…` (types A, AAAA,
//!   ALIAS, CAA, CNAME, MX, MXE, NS, TXT, URL, URL301, FRAME; TTL 60–60000); MX hosts
//!   need `EmailType=MX`.

use axum::response::{IntoResponse, Response};

use super::{with_header, Api, Auth, Core, Data, Fault, Rec, Req};

/// The Namecheap mock. Tokens are registered as `<ApiUser>:<ApiKey>`.
pub struct Namecheap;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn xml(status: &str, inner: &str) -> Response {
    (
        [("content-type", "text/xml; charset=utf-8")],
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ApiResponse Status=\"{status}\" \
             xmlns=\"http://api.namecheap.com/xml.response\">{inner}</ApiResponse>"
        ),
    )
        .into_response()
}

fn error(number: &str, message: &str) -> Response {
    xml(
        "ERROR",
        &format!(
            "<Errors><Error Number=\"{number}\">{}</Error></Errors><Warnings /><RequestedCommand />",
            esc(message)
        ),
    )
}

const TYPES: [&str; 12] = [
    "A", "AAAA", "ALIAS", "CAA", "CNAME", "MX", "MXE", "NS", "TXT", "URL", "URL301", "FRAME",
];

impl Api for Namecheap {
    fn fault(&self, fault: Fault) -> Response {
        match fault {
            Fault::RateLimited(s) => with_header(
                error("500000", "Too many requests"),
                "retry-after",
                s.to_string(),
            ),
            Fault::ServerError => (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            )
                .into_response(),
        }
    }

    fn is_write(&self, req: &Req) -> bool {
        let body = String::from_utf8_lossy(&req.body);
        req.raw_query.contains("setHosts") || body.contains("setHosts")
    }

    fn handle(&mut self, core: &mut Core, req: &Req) -> Response {
        let mut params: Vec<(String, String)> = req.query.clone();
        if let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&req.body) {
            params.extend(form);
        }
        let p = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        if let Some(ip) = core.settings.get("client_ip") {
            if &p("ClientIp") != ip {
                return error("1011150", &format!("Invalid request IP: {}", p("ClientIp")));
            }
        }
        if matches!(
            core.auth(Some(&format!("{}:{}", p("ApiUser"), p("ApiKey")))),
            Auth::Invalid
        ) {
            return error(
                "1011102",
                "API Key is invalid or API access has not been enabled",
            );
        }
        let command = p("Command");
        let domain = format!("{}.{}", p("SLD"), p("TLD")).to_ascii_lowercase();
        match command.as_str() {
            "namecheap.domains.getList" => {
                let per: usize = p("PageSize").parse().unwrap_or(20);
                let pg: usize = p("Page").parse().unwrap_or(1);
                let names: Vec<String> = core.zones.keys().cloned().collect();
                let (items, _) = super::page(&names, pg, per, core.page_size);
                let domains: String = items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        format!(
                            "<Domain ID=\"{}\" Name=\"{}\" IsOurDNS=\"true\" />",
                            i + 1,
                            esc(n)
                        )
                    })
                    .collect();
                xml(
                    "OK",
                    &format!(
                        "<Errors /><CommandResponse Type=\"namecheap.domains.getList\"><DomainGetListResult>{domains}</DomainGetListResult>\
                         <Paging><TotalItems>{}</TotalItems><CurrentPage>{pg}</CurrentPage><PageSize>{}</PageSize></Paging></CommandResponse>",
                        names.len(),
                        per.min(core.page_size)
                    ),
                )
            }
            "namecheap.domains.dns.getHosts" => {
                let email = core
                    .settings
                    .get(&format!("email:{domain}"))
                    .cloned()
                    .unwrap_or_else(|| "NONE".into());
                let Some(zone) = core.zone(&domain) else {
                    return error("2019166", "Domain not found");
                };
                let hosts: String = zone
                    .records
                    .iter()
                    .map(|r| {
                        let name = if r.name == domain {
                            "@".to_string()
                        } else {
                            r.name.strip_suffix(&format!(".{domain}")).unwrap_or(&r.name).to_string()
                        };
                        let (addr, pref) = match &r.data {
                            Data::Mx(p, h) => (format!("{h}."), *p),
                            Data::Host(h) => (format!("{h}."), 10),
                            Data::Txt(_) => (r.data.joined(), 10),
                            d => (d.presentation(), 10),
                        };
                        format!(
                            "<host HostId=\"{}\" Name=\"{}\" Type=\"{}\" Address=\"{}\" MXPref=\"{pref}\" TTL=\"{}\" IsActive=\"true\" />",
                            r.id,
                            esc(&name),
                            r.rtype,
                            esc(&addr),
                            r.ttl
                        )
                    })
                    .collect();
                xml(
                    "OK",
                    &format!(
                        "<Errors /><CommandResponse Type=\"namecheap.domains.dns.getHosts\">\
                         <DomainDNSGetHostsResult Domain=\"{domain}\" EmailType=\"{email}\" IsUsingOurDNS=\"true\">{hosts}</DomainDNSGetHostsResult></CommandResponse>"
                    ),
                )
            }
            "namecheap.domains.dns.setHosts" => {
                if core.zone(&domain).is_none() {
                    return error("2019166", "Domain not found");
                }
                let mut records = Vec::new();
                let mut has_mx = false;
                for n in 1.. {
                    let name = p(&format!("HostName{n}"));
                    if name.is_empty() {
                        break;
                    }
                    let rtype = p(&format!("RecordType{n}")).to_ascii_uppercase();
                    if !TYPES.contains(&rtype.as_str()) {
                        return error("2050900", &format!("Invalid RecordType{n}: {rtype}"));
                    }
                    let addr = p(&format!("Address{n}"));
                    let ttl: u32 = p(&format!("TTL{n}")).parse().unwrap_or(1800);
                    if !(60..=60000).contains(&ttl) {
                        return error("2050900", &format!("TTL{n} must be between 60 and 60000"));
                    }
                    let host = |h: &str| h.trim_end_matches('.').to_ascii_lowercase();
                    let data = match rtype.as_str() {
                        "A" | "AAAA" | "CAA" => match Data::parse(&rtype, &addr, &domain) {
                            Ok(d) => d,
                            Err(e) => return error("2050900", &e),
                        },
                        "CNAME" => Data::Host(host(&addr)),
                        "MX" => {
                            has_mx = true;
                            Data::Mx(p(&format!("MXPref{n}")).parse().unwrap_or(10), host(&addr))
                        }
                        "TXT" => Data::txt_raw(&addr),
                        _ => Data::Other(addr.clone()),
                    };
                    records.push(Rec {
                        id: (9000 + n).to_string(),
                        name: if name == "@" {
                            domain.clone()
                        } else {
                            format!("{}.{domain}", name.to_ascii_lowercase())
                        },
                        rtype,
                        ttl,
                        data,
                    });
                }
                if has_mx && !p("EmailType").eq_ignore_ascii_case("MX") {
                    // Namecheap ignores MX hosts unless EmailType=MX.
                    records.retain(|r| r.rtype != "MX");
                }
                if let Err(e) = Core::alias_rule(&records) {
                    return error("2050900", &e);
                }
                let email = p("EmailType");
                if !email.is_empty() {
                    core.settings.insert(format!("email:{domain}"), email);
                }
                core.zone(&domain).unwrap().records = records;
                xml(
                    "OK",
                    &format!(
                        "<Errors /><CommandResponse Type=\"namecheap.domains.dns.setHosts\">\
                         <DomainDNSSetHostsResult Domain=\"{domain}\" IsSuccess=\"true\" /></CommandResponse>"
                    ),
                )
            }
            other => error("1010104", &format!("Unknown command {other}")),
        }
    }
}
