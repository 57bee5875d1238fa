//! Hetzner Cloud API, zones and RRsets (<https://docs.hetzner.cloud/reference/cloud#zones>,
//! <https://docs.hetzner.cloud/reference/cloud#zone-rrsets>,
//! <https://docs.hetzner.cloud/reference/cloud#zone-rrset-actions>, “Pagination”, “Rate
//! Limiting”, “Errors”):
//!
//! * `GET /v1/zones`, `GET /v1/zones/{id_or_name}`, `GET|POST /v1/zones/{z}/rrsets`,
//!   `DELETE /v1/zones/{z}/rrsets/{name}/{type}`, `POST …/actions/set_records` and
//!   `…/actions/change_ttl`; writes answer `{action:{id, command, status:"success"}}`;
//! * lists paged with `page`/`per_page`, `meta.pagination.next_page` (null on the last);
//! * RRsets `{id:"name/TYPE", name, type, ttl, records:[{value, comment}]}` with `name`
//!   relative (`@` apex) and values in presentation form: TXT quoted strings of at most
//!   255 characters each; TTL at least 60;
//! * errors `{error:{code, message, details}}`: 401 `unauthorized`, 403 `forbidden`, 404
//!   `not_found`, 409 `uniqueness_error`, 422 `invalid_input`, 429 `rate_limit_exceeded`
//!   with `RateLimit-Reset` (Unix time).

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_response, now, page, parse_values, with_header, Api, Auth, Core, Fault, Req};

/// The Hetzner mock.
pub struct Hetzner;

fn err(status: u16, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"error": {"code": code, "message": message, "details": {}}}),
    )
}

fn action(command: &str) -> Value {
    json!({"id": 1, "command": command, "status": "success", "progress": 100, "error": null})
}

fn meta(pg: usize, pages: usize, per: usize, total: usize) -> Value {
    json!({"pagination": {"page": pg, "per_page": per, "previous_page": if pg > 1 { json!(pg - 1) } else { json!(null) },
        "next_page": if pg < pages { json!(pg + 1) } else { json!(null) }, "last_page": pages, "total_entries": total}})
}

impl Api for Hetzner {
    fn fault(&self, fault: Fault) -> Response {
        match fault {
            Fault::RateLimited(s) => {
                let r = err(
                    429,
                    "rate_limit_exceeded",
                    "limit of 3600 requests per hour reached",
                );
                let r = with_header(r, "ratelimit-limit", "3600".into());
                let r = with_header(r, "ratelimit-remaining", "0".into());
                with_header(r, "ratelimit-reset", (now() + s).to_string())
            }
            Fault::ServerError => err(500, "server_error", "Error while processing the request"),
        }
    }

    fn handle(&mut self, core: &mut Core, req: &Req) -> Response {
        match core.auth(req.bearer()) {
            Auth::Invalid => return err(401, "unauthorized", "unable to authenticate"),
            Auth::ReadOnly if req.method != Method::GET => {
                return err(
                    403,
                    "forbidden",
                    "insufficient permissions for this request",
                )
            }
            _ => {}
        }
        let seg = req.segments();
        let per = req.q("per_page").and_then(|v| v.parse().ok()).unwrap_or(25);
        let pg: usize = req.q("page").and_then(|v| v.parse().ok()).unwrap_or(1);
        let cap = core.page_size;
        let zone_json = |n: &str, id: &str| json!({"id": id.parse::<u64>().unwrap_or(0), "name": n, "mode": "primary", "ttl": 3600});
        match (req.method.clone(), seg.as_slice()) {
            (Method::GET, ["v1", "zones"]) => {
                let all: Vec<Value> = core
                    .zones
                    .iter()
                    .map(|(n, z)| zone_json(n, &z.id))
                    .collect();
                let (items, pages) = page(&all, pg, per, cap);
                json_response(
                    200,
                    json!({"zones": items, "meta": meta(pg, pages, per.min(cap), all.len())}),
                )
            }
            (m, ["v1", "zones", z, rest @ ..]) => {
                let Some(zname) = core
                    .zones
                    .iter()
                    .find(|(n, zz)| n.as_str() == *z || zz.id == *z)
                    .map(|(n, _)| n.clone())
                else {
                    return err(404, "not_found", "zone not found");
                };
                let Core { zones, next, .. } = core;
                let zone = zones.get_mut(&zname).unwrap();
                let abs = |n: &str| {
                    if n == "@" {
                        zname.clone()
                    } else {
                        format!("{}.{zname}", n.to_ascii_lowercase())
                    }
                };
                let rel = |n: &str| {
                    if n == zname {
                        "@".to_string()
                    } else {
                        n.strip_suffix(&format!(".{zname}"))
                            .unwrap_or(n)
                            .to_string()
                    }
                };
                let values = |b: &Value| -> Vec<String> {
                    b["records"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|r| r["value"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                match (m, rest) {
                    (Method::GET, []) => {
                        json_response(200, json!({"zone": zone_json(&zname, &zone.id)}))
                    }
                    (Method::GET, ["rrsets"]) => {
                        let all: Vec<Value> = zone
                            .rrsets()
                            .into_iter()
                            .map(|(n, t, ttl, vals)| {
                                let r = rel(&n);
                                json!({"id": format!("{r}/{t}"), "name": r, "type": t, "ttl": ttl,
                                    "records": vals.iter().map(|v| json!({"value": v, "comment": ""})).collect::<Vec<_>>()})
                            })
                            .collect();
                        let (items, pages) = page(&all, pg, per, cap);
                        json_response(
                            200,
                            json!({"rrsets": items, "meta": meta(pg, pages, per.min(cap), all.len())}),
                        )
                    }
                    (Method::POST, ["rrsets"]) => {
                        let b = match req.json() {
                            Ok(b) => b,
                            Err(e) => return err(400, "json_error", &e),
                        };
                        let (Some(n), Some(t)) = (b["name"].as_str(), b["type"].as_str()) else {
                            return err(422, "invalid_input", "name and type are required");
                        };
                        let name = abs(n);
                        if zone.has_rrset(&name, t) {
                            return err(409, "uniqueness_error", "RRSet already exists");
                        }
                        let ttl = b["ttl"].as_u64().unwrap_or(3600) as u32;
                        if ttl < 60 {
                            return err(422, "invalid_input", "ttl must be at least 60");
                        }
                        let vals = match parse_values(t, &values(&b), &zname) {
                            Ok(v) if !v.is_empty() => v,
                            Ok(_) => return err(422, "invalid_input", "records must not be empty"),
                            Err(e) => return err(422, "invalid_input", &e),
                        };
                        if let Err(e) = zone.set_rrset(&name, t, ttl, vals, next) {
                            return err(422, "invalid_input", &e);
                        }
                        json_response(
                            201,
                            json!({"rrset": {"id": format!("{n}/{t}"), "name": n, "type": t}, "action": action("create_rrset")}),
                        )
                    }
                    (m, ["rrsets", n, t, more @ ..]) => {
                        let name = abs(n);
                        let Some(cur) = zone
                            .rrsets()
                            .into_iter()
                            .find(|(rn, rt, _, _)| *rn == name && rt == t)
                        else {
                            return err(404, "not_found", "RRSet not found");
                        };
                        match (m, more) {
                            (Method::DELETE, []) => {
                                zone.records.retain(|r| !(r.name == name && r.rtype == *t));
                                json_response(201, json!({"action": action("delete_rrset")}))
                            }
                            (Method::POST, ["actions", "set_records"]) => {
                                let b = req.json().unwrap_or_default();
                                let vals = match parse_values(t, &values(&b), &zname) {
                                    Ok(v) if !v.is_empty() => v,
                                    Ok(_) => {
                                        return err(
                                            422,
                                            "invalid_input",
                                            "records must not be empty",
                                        )
                                    }
                                    Err(e) => return err(422, "invalid_input", &e),
                                };
                                if let Err(e) = zone.set_rrset(&name, t, cur.2, vals, next) {
                                    return err(422, "invalid_input", &e);
                                }
                                json_response(201, json!({"action": action("set_rrset_records")}))
                            }
                            (Method::POST, ["actions", "change_ttl"]) => {
                                let b = req.json().unwrap_or_default();
                                let ttl = b["ttl"].as_u64().unwrap_or(0) as u32;
                                if ttl < 60 {
                                    return err(422, "invalid_input", "ttl must be at least 60");
                                }
                                for r in zone
                                    .records
                                    .iter_mut()
                                    .filter(|r| r.name == name && r.rtype == *t)
                                {
                                    r.ttl = ttl;
                                }
                                json_response(201, json!({"action": action("change_rrset_ttl")}))
                            }
                            _ => err(404, "not_found", "not found"),
                        }
                    }
                    _ => err(404, "not_found", "not found"),
                }
            }
            _ => err(404, "not_found", "not found"),
        }
    }
}
