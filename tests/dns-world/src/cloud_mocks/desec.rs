//! deSEC REST API (<https://desec.readthedocs.io/en/latest/dns/domains.html>,
//! <https://desec.readthedocs.io/en/latest/dns/rrsets.html> — “Retrieving all RRsets in
//! a Zone”, “Pagination”, “Bulk Modification of RRsets”; <https://desec.readthedocs.io/en/latest/rate-limits.html>):
//!
//! * `Authorization: Token …`; base path `/api/v1`;
//! * `GET /domains/`, `GET /domains/{name}/` (with `minimum_ttl`), `GET
//!   /domains/{name}/rrsets/`: lists longer than one page need `?cursor=`, without it
//!   the answer is 400 "Pagination required"; pages are linked in the `Link` header
//!   (`rel="first"`, `rel="next"`);
//! * `PATCH /domains/{name}/rrsets/` with a list of `{subname, type, ttl, records}`
//!   changes them all or nothing; `records: []` deletes; TTL at least the domain's
//!   `minimum_ttl`; records in presentation form (TXT quoted, strings ≤ 255 bytes);
//!   validation errors are a list with one object per RRset;
//! * errors `{detail}`: 401 "Invalid token.", 403, 404 "Not found.", 429 "Request was
//!   throttled. Expected available in N seconds." with Retry-After.

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_response, parse_values, with_header, Api, Auth, Core, Fault, Req};

/// The deSEC mock.
pub struct Desec;

fn detail(status: u16, d: &str) -> Response {
    json_response(status, json!({"detail": d}))
}

/// A cursor-paged answer.
fn paged(req: &Req, all: Vec<Value>, cap: usize) -> Response {
    let cursor = req.q("cursor");
    if cursor.is_none() && all.len() > cap {
        return detail(
            400,
            "Pagination required. You can query up to 500 items at a time ('?cursor=' parameter).",
        );
    }
    let pg: usize = cursor
        .and_then(|c| c.strip_prefix('p'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let (items, pages) = super::page(&all, pg, cap, cap);
    let mut links = vec![format!("<{}{}?cursor=>; rel=\"first\"", req.base, req.path)];
    if pg > 1 {
        links.push(format!(
            "<{}{}?cursor=p{}>; rel=\"prev\"",
            req.base,
            req.path,
            pg - 1
        ));
    }
    if pg < pages {
        links.push(format!(
            "<{}{}?cursor=p{}>; rel=\"next\"",
            req.base,
            req.path,
            pg + 1
        ));
    }
    with_header(
        json_response(200, Value::Array(items)),
        "link",
        links.join(", "),
    )
}

impl Api for Desec {
    fn fault(&self, fault: Fault) -> Response {
        match fault {
            Fault::RateLimited(s) => with_header(
                detail(
                    429,
                    &format!("Request was throttled. Expected available in {s} seconds."),
                ),
                "retry-after",
                s.to_string(),
            ),
            Fault::ServerError => detail(500, "Internal Server Error"),
        }
    }

    fn handle(&mut self, core: &mut Core, req: &Req) -> Response {
        let token = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Token "));
        match core.auth(token) {
            Auth::Invalid => return detail(401, "Invalid token."),
            Auth::ReadOnly if req.method != Method::GET => {
                return detail(403, "You do not have permission to perform this action.")
            }
            _ => {}
        }
        let cap = core.page_size;
        let seg = req.segments();
        match (req.method.clone(), seg.as_slice()) {
            (Method::GET, ["api", "v1", "domains"]) => {
                let all = core
                    .zones
                    .iter()
                    .map(|(n, z)| json!({"name": n, "minimum_ttl": z.min_ttl}))
                    .collect();
                paged(req, all, cap)
            }
            (m, ["api", "v1", "domains", d, rest @ ..]) => {
                let zname = d.to_ascii_lowercase();
                let Core { zones, next, .. } = core;
                let Some(zone) = zones.get_mut(&zname) else {
                    return detail(404, "Not found.");
                };
                let rel = |n: &str| {
                    if n == zname {
                        String::new()
                    } else {
                        n.strip_suffix(&format!(".{zname}"))
                            .unwrap_or(n)
                            .to_string()
                    }
                };
                match (m, rest) {
                    (Method::GET, []) => json_response(
                        200,
                        json!({"name": zname, "minimum_ttl": zone.min_ttl, "created": "2026-01-01T00:00:00Z"}),
                    ),
                    (Method::GET, ["rrsets"]) => {
                        let all = zone
                            .rrsets()
                            .into_iter()
                            .map(|(n, t, ttl, vals)| {
                                json!({"domain": zname, "subname": rel(&n), "name": format!("{n}."),
                                    "type": t, "records": vals, "ttl": ttl})
                            })
                            .collect();
                        paged(req, all, cap)
                    }
                    (Method::PATCH, ["rrsets"]) => {
                        let body = match req.json() {
                            Ok(Value::Array(a)) => a,
                            _ => return detail(400, "Expected a list of items."),
                        };
                        let mut copy = zone.clone();
                        let mut errors = Vec::new();
                        let mut failed = false;
                        for item in &body {
                            let sub = item["subname"].as_str().unwrap_or("");
                            let Some(t) = item["type"].as_str() else {
                                errors.push(json!({"type": ["This field is required."]}));
                                failed = true;
                                continue;
                            };
                            let name = if sub.is_empty() || sub == "@" {
                                zname.clone()
                            } else {
                                format!("{}.{zname}", sub.to_ascii_lowercase())
                            };
                            let records: Vec<String> = item["records"]
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|v| v.as_str().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default();
                            let ttl = item["ttl"].as_u64().map(|t| t as u32);
                            if records.is_empty() {
                                copy.records.retain(|r| !(r.name == name && r.rtype == t));
                                errors.push(json!({}));
                                continue;
                            }
                            let ttl = match ttl.or_else(|| {
                                copy.rrsets()
                                    .into_iter()
                                    .find(|s| s.0 == name && s.1 == t)
                                    .map(|s| s.2)
                            }) {
                                Some(ttl) if ttl >= zone.min_ttl => ttl,
                                Some(_) => {
                                    errors.push(json!({"ttl": [format!("Ensure this value is greater than or equal to {}.", zone.min_ttl)]}));
                                    failed = true;
                                    continue;
                                }
                                None => {
                                    errors.push(
                                        json!({"ttl": ["This field is required for new RRsets."]}),
                                    );
                                    failed = true;
                                    continue;
                                }
                            };
                            match parse_values(t, &records, &zname)
                                .and_then(|v| copy.set_rrset(&name, t, ttl, v, next))
                            {
                                Ok(()) => errors.push(json!({})),
                                Err(e) => {
                                    errors.push(json!({"records": [e]}));
                                    failed = true;
                                }
                            }
                        }
                        if failed {
                            return json_response(400, Value::Array(errors));
                        }
                        *zone = copy;
                        json_response(200, json!([]))
                    }
                    _ => detail(404, "Not found."),
                }
            }
            _ => detail(404, "Not found."),
        }
    }
}
