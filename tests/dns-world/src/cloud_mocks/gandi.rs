//! Gandi LiveDNS API v5 (<https://api.gandi.net/docs/livedns/> — domains, records,
//! "Update/Create one record", "Delete one record"; <https://api.gandi.net/docs/reference/>
//! — pagination with `page`/`per_page` and the `Total-Count` header, errors):
//!
//! * `Authorization: Bearer <personal access token>`; base path `/v5/livedns`;
//! * `GET /domains`, `GET /domains/{fqdn}/records` (arrays, paged, `Total-Count`);
//! * `PUT /domains/{fqdn}/records/{name}/{type}` with `{rrset_ttl, rrset_values}` creates
//!   or replaces (201); `DELETE` (204; 404 if absent); names relative (`@` apex); values
//!   in presentation form (TXT quoted, strings ≤ 255 bytes); TTL 300–2 592 000;
//! * errors `{code, message, object, cause}` (400 with `errors:[{location, name,
//!   description}]`), 429 with Retry-After.

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{json_response, page, parse_values, with_header, Api, Auth, Core, Fault, Req};

/// The Gandi mock.
pub struct Gandi;

fn err(status: u16, object: &str, cause: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"code": status, "message": message, "object": object, "cause": cause}),
    )
}

fn invalid(description: &str) -> Response {
    json_response(
        400,
        json!({"code": 400, "message": "Validation error", "object": "HTTPBadRequest", "cause": "Bad Request",
            "errors": [{"location": "body", "name": "rrset_values", "description": description}]}),
    )
}

fn not_found() -> Response {
    err(
        404,
        "HTTPNotFound",
        "Not Found",
        "The resource could not be found.",
    )
}

fn listing(all: Vec<Value>, req: &Req, cap: usize) -> Response {
    let per = req
        .q("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let pg: usize = req.q("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let total = all.len();
    let (items, _) = page(&all, pg, per, cap);
    with_header(
        json_response(200, Value::Array(items)),
        "total-count",
        total.to_string(),
    )
}

impl Api for Gandi {
    fn fault(&self, fault: Fault) -> Response {
        match fault {
            Fault::RateLimited(s) => with_header(
                err(
                    429,
                    "HTTPTooManyRequests",
                    "Too Many Requests",
                    "Too many requests",
                ),
                "retry-after",
                s.to_string(),
            ),
            Fault::ServerError => err(
                500,
                "HTTPInternalServerError",
                "Internal Server Error",
                "Internal error",
            ),
        }
    }

    fn handle(&mut self, core: &mut Core, req: &Req) -> Response {
        match core.auth(req.bearer()) {
            Auth::Invalid => {
                return err(401, "HTTPUnauthorized", "Unauthorized",
                    "The server could not verify that you authorized to access the document you requested.")
            }
            Auth::ReadOnly if req.method != Method::GET => {
                return err(403, "HTTPForbidden", "Forbidden", "Access was denied to this resource.")
            }
            _ => {}
        }
        let cap = core.page_size;
        let seg = req.segments();
        match (req.method.clone(), seg.as_slice()) {
            (Method::GET, ["v5", "livedns", "domains"]) => {
                let all = core.zones.keys().map(|n| json!({"fqdn": n})).collect();
                listing(all, req, cap)
            }
            (m, ["v5", "livedns", "domains", d, "records", rest @ ..]) => {
                let zname = d.to_ascii_lowercase();
                let Core { zones, next, .. } = core;
                let Some(zone) = zones.get_mut(&zname) else {
                    return not_found();
                };
                let abs = |n: &str| {
                    if n == "@" {
                        zname.clone()
                    } else {
                        format!("{}.{zname}", n.to_ascii_lowercase())
                    }
                };
                match (m, rest) {
                    (Method::GET, []) => {
                        let all = zone
                            .rrsets()
                            .into_iter()
                            .map(|(n, t, ttl, vals)| {
                                let rel = if n == zname {
                                    "@".to_string()
                                } else {
                                    n.strip_suffix(&format!(".{zname}")).unwrap_or(&n).to_string()
                                };
                                json!({"rrset_name": rel, "rrset_type": t, "rrset_ttl": ttl, "rrset_values": vals})
                            })
                            .collect();
                        listing(all, req, cap)
                    }
                    (Method::PUT, [n, t]) => {
                        let b = req.json().unwrap_or_default();
                        let ttl = b["rrset_ttl"].as_u64().unwrap_or(10800) as u32;
                        if !(300..=2_592_000).contains(&ttl) {
                            return invalid("rrset_ttl must be between 300 and 2592000");
                        }
                        let vals: Vec<String> = b["rrset_values"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|v| v.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let vals = match parse_values(t, &vals, &zname) {
                            Ok(v) if !v.is_empty() => v,
                            Ok(_) => return invalid("rrset_values must not be empty"),
                            Err(e) => return invalid(&e),
                        };
                        match zone.set_rrset(&abs(n), t, ttl, vals, next) {
                            Ok(()) => json_response(201, json!({"message": "DNS Record Created"})),
                            Err(e) => err(409, "HTTPConflict", "Conflict", &e),
                        }
                    }
                    (Method::DELETE, [n, t]) => {
                        let name = abs(n);
                        if !zone.has_rrset(&name, t) {
                            return not_found();
                        }
                        zone.records.retain(|r| !(r.name == name && r.rtype == *t));
                        axum::http::StatusCode::NO_CONTENT.into_response()
                    }
                    _ => not_found(),
                }
            }
            _ => not_found(),
        }
    }
}
