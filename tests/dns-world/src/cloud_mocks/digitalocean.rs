//! DigitalOcean API v2, domains and domain records
//! (<https://docs.digitalocean.com/reference/api/digitalocean/#tag/Domains>,
//! <https://docs.digitalocean.com/reference/api/digitalocean/#tag/Domain-Records>,
//! “Links & Pagination”, “Rate Limit”, “Errors” in the API introduction):
//!
//! * `GET /v2/domains`, `GET /v2/domains/{name}`, `GET|POST /v2/domains/{name}/records`,
//!   `PUT|DELETE /v2/domains/{name}/records/{id}`;
//! * lists paged with `page`/`per_page`, `links.pages.next` while more follow,
//!   `meta.total`;
//! * records `{id, type, name, data, priority, port, ttl, weight, flags, tag}`, `name`
//!   relative (`@` apex), host names in `data` absolute with a trailing dot when sent (a
//!   name without one is relative to the domain), TXT raw text; TTL at least 30;
//! * errors `{id, message}`: 401 `Unauthorized`, 403 `Forbidden`, 404 `not_found`, 422
//!   `unprocessable_entity`, 429 `too_many_requests` with `ratelimit-reset` (Unix time).

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_response, now, page, with_header, Api, Auth, Core, Data, Fault, Rec, Req};

/// The DigitalOcean mock.
pub struct DigitalOcean;

fn err(status: u16, id: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"id": id, "message": message, "request_id": "mock"}),
    )
}

fn rel(name: &str, zone: &str) -> String {
    if name == zone {
        "@".into()
    } else {
        name.strip_suffix(&format!(".{zone}"))
            .unwrap_or(name)
            .to_string()
    }
}

fn host_out(h: &str, zone: &str) -> String {
    if h == zone {
        "@".into()
    } else {
        h.to_string()
    }
}

fn host_in(h: &str, zone: &str) -> String {
    let h = h.trim();
    if h == "@" {
        zone.to_string()
    } else if let Some(abs) = h.strip_suffix('.') {
        abs.to_ascii_lowercase()
    } else {
        format!("{}.{zone}", h.to_ascii_lowercase())
    }
}

fn to_json(r: &Rec, zone: &str) -> Value {
    let mut v = json!({"id": r.id.parse::<u64>().unwrap_or(0), "type": r.rtype, "name": rel(&r.name, zone),
        "ttl": r.ttl, "priority": null, "port": null, "weight": null, "flags": null, "tag": null});
    match &r.data {
        Data::Addr(a) => v["data"] = json!(a),
        Data::Host(h) => v["data"] = json!(host_out(h, zone)),
        Data::Mx(p, h) => {
            v["data"] = json!(host_out(h, zone));
            v["priority"] = json!(p);
        }
        Data::Txt(_) => v["data"] = json!(r.data.joined()),
        Data::Srv(p, w, port, t) => {
            v["data"] = json!(host_out(t, zone));
            v["priority"] = json!(p);
            v["weight"] = json!(w);
            v["port"] = json!(port);
        }
        Data::Caa(f, t, val) => {
            v["data"] = json!(val);
            v["flags"] = json!(f);
            v["tag"] = json!(t);
        }
        Data::Other(s) => v["data"] = json!(s),
    }
    v
}

fn from_json(b: &Value, id: String, zone: &str) -> Result<Rec, Response> {
    let bad = |m: &str| err(422, "unprocessable_entity", m);
    let rtype = b["type"].as_str().ok_or_else(|| bad("type is required"))?;
    let name = b["name"].as_str().ok_or_else(|| bad("name is required"))?;
    let data = b["data"].as_str().unwrap_or("");
    let ttl = b["ttl"].as_u64().unwrap_or(1800) as u32;
    if ttl < 30 {
        return Err(bad("TTL must be at least 30 seconds"));
    }
    let n = |k: &str| b[k].as_u64().map(|v| v as u16);
    let d = match rtype {
        "A" | "AAAA" => Data::parse(rtype, data, zone).map_err(|e| bad(&e))?,
        "CNAME" => Data::Host(host_in(data, zone)),
        "MX" => Data::Mx(
            n("priority").ok_or_else(|| bad("priority is required"))?,
            host_in(data, zone),
        ),
        "TXT" => Data::txt_raw(data),
        "SRV" => Data::Srv(
            n("priority").ok_or_else(|| bad("priority is required"))?,
            n("weight").ok_or_else(|| bad("weight is required"))?,
            n("port").ok_or_else(|| bad("port is required"))?,
            host_in(data, zone),
        ),
        "CAA" => Data::Caa(
            b["flags"].as_u64().unwrap_or(0) as u8,
            b["tag"]
                .as_str()
                .ok_or_else(|| bad("tag is required"))?
                .into(),
            data.into(),
        ),
        _ => Data::Other(data.into()),
    };
    let name = if name == "@" {
        zone.to_string()
    } else {
        format!("{}.{zone}", name.to_ascii_lowercase())
    };
    Ok(Rec {
        id,
        name,
        rtype: rtype.into(),
        ttl,
        data: d,
    })
}

fn links(req: &Req, pg: usize, pages: usize) -> Value {
    if pg < pages {
        json!({"pages": {"next": format!("{}{}?page={}", req.base, req.path, pg + 1),
            "last": format!("{}{}?page={pages}", req.base, req.path)}})
    } else {
        json!({"pages": {}})
    }
}

impl Api for DigitalOcean {
    fn fault(&self, fault: Fault) -> Response {
        match fault {
            Fault::RateLimited(s) => {
                let r = err(429, "too_many_requests", "API Rate limit exceeded.");
                let r = with_header(r, "ratelimit-limit", "250".into());
                let r = with_header(r, "ratelimit-remaining", "0".into());
                with_header(r, "ratelimit-reset", (now() + s).to_string())
            }
            Fault::ServerError => err(
                500,
                "server_error",
                "Server was unable to give you a response.",
            ),
        }
    }

    fn handle(&mut self, core: &mut Core, req: &Req) -> Response {
        match core.auth(req.bearer()) {
            Auth::Invalid => return err(401, "Unauthorized", "Unable to authenticate you"),
            Auth::ReadOnly if req.method != Method::GET => {
                return err(
                    403,
                    "Forbidden",
                    "You do not have access for the attempted action.",
                )
            }
            _ => {}
        }
        let not_found = || {
            err(
                404,
                "not_found",
                "The resource you were accessing could not be found.",
            )
        };
        let seg = req.segments();
        let per = req.q("per_page").and_then(|v| v.parse().ok()).unwrap_or(20);
        let pg: usize = req.q("page").and_then(|v| v.parse().ok()).unwrap_or(1);
        let cap = core.page_size;
        match (req.method.clone(), seg.as_slice()) {
            (Method::GET, ["v2", "domains"]) => {
                let all: Vec<Value> = core
                    .zones
                    .keys()
                    .map(|n| json!({"name": n, "ttl": 1800, "zone_file": ""}))
                    .collect();
                let (items, pages) = page(&all, pg, per, cap);
                json_response(
                    200,
                    json!({"domains": items, "links": links(req, pg, pages), "meta": {"total": all.len()}}),
                )
            }
            (Method::GET, ["v2", "domains", d]) => match core.zone(d) {
                Some(_) => json_response(
                    200,
                    json!({"domain": {"name": d, "ttl": 1800, "zone_file": ""}}),
                ),
                None => not_found(),
            },
            (m, ["v2", "domains", d, "records", rest @ ..]) => {
                let zname = d.to_ascii_lowercase();
                let Some(zone) = core.zones.get_mut(&zname) else {
                    return not_found();
                };
                match (m, rest) {
                    (Method::GET, []) => {
                        let all: Vec<Value> =
                            zone.records.iter().map(|r| to_json(r, &zname)).collect();
                        let (items, pages) = page(&all, pg, per, cap);
                        json_response(
                            200,
                            json!({"domain_records": items, "links": links(req, pg, pages), "meta": {"total": all.len()}}),
                        )
                    }
                    (Method::POST, []) => {
                        let body = match req.json() {
                            Ok(b) => b,
                            Err(e) => return err(400, "bad_request", &e),
                        };
                        let id = (zone
                            .records
                            .iter()
                            .filter_map(|r| r.id.parse::<u64>().ok())
                            .max()
                            .unwrap_or(0)
                            .max(5000)
                            + 1)
                        .to_string();
                        let r = match from_json(&body, id, &zname) {
                            Ok(r) => r,
                            Err(e) => return e,
                        };
                        let mut next = zone.records.clone();
                        next.push(r.clone());
                        if let Err(m) = Core::alias_rule(&next) {
                            return err(422, "unprocessable_entity", &m);
                        }
                        zone.records = next;
                        json_response(201, json!({"domain_record": to_json(&r, &zname)}))
                    }
                    (Method::PUT, [id]) => {
                        let Some(i) = zone.records.iter().position(|r| r.id == *id) else {
                            return not_found();
                        };
                        let body = match req.json() {
                            Ok(b) => b,
                            Err(e) => return err(400, "bad_request", &e),
                        };
                        let r = match from_json(&body, id.to_string(), &zname) {
                            Ok(r) => r,
                            Err(e) => return e,
                        };
                        let mut next = zone.records.clone();
                        next[i] = r.clone();
                        if let Err(m) = Core::alias_rule(&next) {
                            return err(422, "unprocessable_entity", &m);
                        }
                        zone.records = next;
                        json_response(200, json!({"domain_record": to_json(&r, &zname)}))
                    }
                    (Method::DELETE, [id]) => {
                        let before = zone.records.len();
                        zone.records.retain(|r| r.id != *id);
                        if before == zone.records.len() {
                            return not_found();
                        }
                        axum::response::IntoResponse::into_response(
                            axum::http::StatusCode::NO_CONTENT,
                        )
                    }
                    _ => not_found(),
                }
            }
            _ => not_found(),
        }
    }
}
