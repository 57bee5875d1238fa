//! Cloudflare API v4, for the calls the portal makes
//! (<https://developers.cloudflare.com/api/resources/zones/methods/list/>,
//! <https://developers.cloudflare.com/api/resources/dns/subresources/records/> — list,
//! create, overwrite, delete, batch; <https://developers.cloudflare.com/fundamentals/api/reference/limits/>):
//!
//! * envelope `{success, errors:[{code,message}], messages, result, result_info}`, paged
//!   with `page`/`per_page` (cut to the mock's page size);
//! * Bearer tokens: an unknown token → 403 code 9109 "Invalid access token", a token with
//!   characters a token cannot have → 400 code 6003 with 6111 "Invalid format for
//!   Authorization header", a read-only token writing → 403 code 10000 "Authentication
//!   error";
//! * records `{id, zone_id, zone_name, name, type, content, ttl, proxied, priority,
//!   data}`; SRV and CAA take `data`; TXT content "must consist of quoted character
//!   strings … exceeding this allowed maximum length are automatically split" (raw text
//!   is accepted too); TTL 1 (automatic) or 60–86 400, else code 9021;
//! * an alias beside other data → code 81053; an identical record → 81058;
//! * `POST …/dns_records/batch` runs `deletes`, `patches`, `puts`, `posts` in that order
//!   in one transaction (all or nothing);
//! * 429 code 971 with Retry-After.

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_response, page, with_header, Api, Auth, Core, Data, Fault, Rec, Req};

/// The Cloudflare mock.
pub struct Cloudflare;

fn err(status: u16, code: u32, message: &str) -> Response {
    json_response(
        status,
        json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null}),
    )
}

fn ok(result: Value) -> Response {
    json_response(
        200,
        json!({"success": true, "errors": [], "messages": [], "result": result}),
    )
}

fn to_json(r: &Rec, zone_id: &str, zone: &str) -> Value {
    let mut v = json!({
        "id": r.id, "zone_id": zone_id, "zone_name": zone, "name": r.name, "type": r.rtype,
        "ttl": r.ttl, "proxied": false,
    });
    match &r.data {
        Data::Addr(a) => v["content"] = json!(a),
        Data::Host(h) => v["content"] = json!(h),
        Data::Mx(p, h) => {
            v["content"] = json!(h);
            v["priority"] = json!(p);
        }
        Data::Txt(_) => v["content"] = json!(r.data.presentation()),
        Data::Srv(p, w, port, t) => {
            v["content"] = json!(format!("{w} {port} {t}"));
            v["priority"] = json!(p);
            v["data"] = json!({"priority": p, "weight": w, "port": port, "target": t});
        }
        Data::Caa(f, t, val) => {
            v["content"] = json!(r.data.presentation());
            v["data"] = json!({"flags": f, "tag": t, "value": val});
        }
        Data::Other(s) => v["content"] = json!(s),
    }
    v
}

/// A record from a create/overwrite body, or the API's error.
fn from_json(body: &Value, id: String, zone: &str) -> Result<Rec, Response> {
    let bad = |m: &str| err(400, 9000, m);
    let rtype = body["type"]
        .as_str()
        .ok_or_else(|| bad("DNS record type is required"))?;
    let name = body["name"]
        .as_str()
        .ok_or_else(|| bad("DNS record name is required"))?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if !(name == zone || name.ends_with(&format!(".{zone}"))) {
        return Err(bad("DNS record name is not within the zone"));
    }
    let ttl = body["ttl"].as_u64().unwrap_or(1) as u32;
    if ttl != 1 && !(60..=86400).contains(&ttl) {
        return Err(err(
            400,
            9021,
            "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
        ));
    }
    let content = body["content"].as_str().unwrap_or("");
    let num = |v: &Value| v.as_u64().map(|n| n as u16);
    let data = match rtype {
        "A" | "AAAA" => Data::parse(rtype, content, zone).map_err(|e| bad(&e))?,
        "CNAME" => Data::Host(content.trim_end_matches('.').to_ascii_lowercase()),
        "MX" => Data::Mx(
            num(&body["priority"]).ok_or_else(|| bad("MX records need a priority"))?,
            content.trim_end_matches('.').to_ascii_lowercase(),
        ),
        "TXT" => {
            if content.trim_start().starts_with('"') {
                let strings = super::strings(content).map_err(|e| bad(&e))?;
                // "Strings exceeding this allowed maximum length are automatically split."
                match Data::txt_raw(&strings.concat()) {
                    Data::Txt(split) if strings.iter().any(|s| s.len() > 255) => Data::Txt(split),
                    _ => Data::Txt(strings),
                }
            } else {
                Data::txt_raw(content)
            }
        }
        "SRV" => {
            let d = &body["data"];
            Data::Srv(
                num(&d["priority"]).ok_or_else(|| bad("SRV data.priority is required"))?,
                num(&d["weight"]).ok_or_else(|| bad("SRV data.weight is required"))?,
                num(&d["port"]).ok_or_else(|| bad("SRV data.port is required"))?,
                d["target"]
                    .as_str()
                    .ok_or_else(|| bad("SRV data.target is required"))?
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            )
        }
        "CAA" => {
            let d = &body["data"];
            Data::Caa(
                d["flags"]
                    .as_u64()
                    .ok_or_else(|| bad("CAA data.flags is required"))? as u8,
                d["tag"]
                    .as_str()
                    .ok_or_else(|| bad("CAA data.tag is required"))?
                    .into(),
                d["value"]
                    .as_str()
                    .ok_or_else(|| bad("CAA data.value is required"))?
                    .into(),
            )
        }
        _ => Data::Other(content.to_string()),
    };
    Ok(Rec {
        id,
        name,
        rtype: rtype.to_string(),
        ttl: if ttl == 1 { 300 } else { ttl },
        data,
    })
}

fn check(records: &[Rec]) -> Result<(), Response> {
    Core::alias_rule(records).map_err(|_| {
        err(
            400,
            81053,
            "An A, AAAA, or CNAME record with that host already exists.",
        )
    })?;
    for (i, a) in records.iter().enumerate() {
        if records[..i]
            .iter()
            .any(|b| b.name == a.name && b.rtype == a.rtype && b.data == a.data)
        {
            return Err(err(400, 81058, "An identical record already exists."));
        }
    }
    Ok(())
}

impl Api for Cloudflare {
    fn fault(&self, fault: Fault) -> Response {
        match fault {
            Fault::RateLimited(s) => with_header(
                err(
                    429,
                    971,
                    "Please wait and consider throttling your request speed",
                ),
                "retry-after",
                s.to_string(),
            ),
            Fault::ServerError => err(500, 10001, "Internal server error"),
        }
    }

    fn handle(&mut self, core: &mut Core, req: &Req) -> Response {
        let auth = match req.bearer() {
            Some(t)
                if t.chars()
                    .any(|c| c.is_whitespace() || !c.is_ascii_graphic()) =>
            {
                return json_response(
                    400,
                    json!({"success": false, "errors": [{"code": 6003, "message": "Invalid request headers",
                        "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}]}]}),
                )
            }
            t => core.auth(t),
        };
        if matches!(auth, Auth::Invalid) {
            return err(403, 9109, "Invalid access token");
        }
        if req.method != Method::GET && matches!(auth, Auth::ReadOnly) {
            return err(403, 10000, "Authentication error");
        }
        let seg = req.segments();
        let per = req.q("per_page").and_then(|v| v.parse().ok()).unwrap_or(20);
        let pg = req.q("page").and_then(|v| v.parse().ok()).unwrap_or(1);
        let cap = core.page_size;
        match (req.method.clone(), seg.as_slice()) {
            (Method::GET, ["zones"]) => {
                let zones: Vec<Value> = core
                    .zones
                    .iter()
                    .filter(|(n, _)| req.q("name").is_none_or(|q| q == n.as_str()))
                    .map(|(n, z)| json!({"id": z.id, "name": n, "status": "active"}))
                    .collect();
                let total = zones.len();
                let (items, pages) = page(&zones, pg, per, cap.min(50));
                json_response(
                    200,
                    json!({"success": true, "errors": [], "messages": [], "result": items,
                        "result_info": {"page": pg, "per_page": per.min(cap), "count": items.len(),
                        "total_count": total, "total_pages": pages}}),
                )
            }
            (m, ["zones", zid, "dns_records", rest @ ..]) => {
                let Some((zname, zone)) = core
                    .zones
                    .iter_mut()
                    .find(|(_, z)| z.id == *zid)
                    .map(|(n, z)| (n.clone(), z))
                else {
                    return err(
                        404,
                        7003,
                        "Could not route to /zones, perhaps your object identifier is invalid?",
                    );
                };
                let zid = zone.id.clone();
                match (m, rest) {
                    (Method::GET, []) => {
                        let all: Vec<Value> = zone
                            .records
                            .iter()
                            .map(|r| to_json(r, &zid, &zname))
                            .collect();
                        let total = all.len();
                        let (items, pages) = page(&all, pg, per, cap);
                        json_response(
                            200,
                            json!({"success": true, "errors": [], "messages": [], "result": items,
                                "result_info": {"page": pg, "per_page": per.min(cap), "count": items.len(),
                                "total_count": total, "total_pages": pages}}),
                        )
                    }
                    (Method::POST, ["batch"]) => {
                        let body = match req.json() {
                            Ok(b) => b,
                            Err(e) => return err(400, 9207, &e),
                        };
                        let mut next = zone.records.clone();
                        for d in body["deletes"].as_array().cloned().unwrap_or_default() {
                            let id = d["id"].as_str().unwrap_or("");
                            let before = next.len();
                            next.retain(|r| r.id != id);
                            if next.len() == before {
                                return err(404, 81044, "Record does not exist.");
                            }
                        }
                        for p in body["puts"].as_array().cloned().unwrap_or_default() {
                            let id = p["id"].as_str().unwrap_or("").to_string();
                            let Some(i) = next.iter().position(|r| r.id == id) else {
                                return err(404, 81044, "Record does not exist.");
                            };
                            match from_json(&p, id, &zname) {
                                Ok(r) => next[i] = r,
                                Err(e) => return e,
                            }
                        }
                        let mut created = Vec::new();
                        for p in body["posts"].as_array().cloned().unwrap_or_default() {
                            let id = format!("{:032x}", core_id(&mut next));
                            match from_json(&p, id, &zname) {
                                Ok(r) => {
                                    created.push(r.clone());
                                    next.push(r)
                                }
                                Err(e) => return e,
                            }
                        }
                        if let Err(e) = check(&next) {
                            return e;
                        }
                        zone.records = next;
                        ok(
                            json!({"posts": created.iter().map(|r| to_json(r, &zid, &zname)).collect::<Vec<_>>()}),
                        )
                    }
                    (Method::POST, []) => {
                        let body = match req.json() {
                            Ok(b) => b,
                            Err(e) => return err(400, 9207, &e),
                        };
                        let id = format!("{:032x}", core_id(&mut zone.records));
                        let r = match from_json(&body, id, &zname) {
                            Ok(r) => r,
                            Err(e) => return e,
                        };
                        let mut next = zone.records.clone();
                        next.push(r.clone());
                        if let Err(e) = check(&next) {
                            return e;
                        }
                        zone.records = next;
                        ok(to_json(&r, &zid, &zname))
                    }
                    (Method::PUT, [rid]) | (Method::PATCH, [rid]) => {
                        let Some(i) = zone.records.iter().position(|r| r.id == *rid) else {
                            return err(404, 81044, "Record does not exist.");
                        };
                        let body = match req.json() {
                            Ok(b) => b,
                            Err(e) => return err(400, 9207, &e),
                        };
                        let r = match from_json(&body, rid.to_string(), &zname) {
                            Ok(r) => r,
                            Err(e) => return e,
                        };
                        let mut next = zone.records.clone();
                        next[i] = r.clone();
                        if let Err(e) = check(&next) {
                            return e;
                        }
                        zone.records = next;
                        ok(to_json(&r, &zid, &zname))
                    }
                    (Method::DELETE, [rid]) => {
                        let before = zone.records.len();
                        zone.records.retain(|r| r.id != *rid);
                        if zone.records.len() == before {
                            return err(404, 81044, "Record does not exist.");
                        }
                        ok(json!({"id": rid}))
                    }
                    _ => err(405, 10000, "method not allowed"),
                }
            }
            _ => err(404, 7000, "No route for that URI"),
        }
    }
}

/// A fresh id for a record list (the largest numeric id plus one, past a base).
fn core_id(records: &mut [Rec]) -> u128 {
    records
        .iter()
        .filter_map(|r| u128::from_str_radix(&r.id, 16).ok())
        .max()
        .unwrap_or(0xc000)
        .max(0xc000)
        + 1
}
