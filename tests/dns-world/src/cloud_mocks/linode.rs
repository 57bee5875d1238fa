//! Linode API v4 DNS Manager
//! (<https://techdocs.akamai.com/linode-api/reference/get-domains>,
//! <https://techdocs.akamai.com/linode-api/reference/get-domain-records>,
//! <https://techdocs.akamai.com/linode-api/reference/post-domain-record>,
//! <https://techdocs.akamai.com/linode-api/reference/pagination>,
//! <https://techdocs.akamai.com/linode-api/reference/errors>):
//!
//! * `GET /v4/domains`, `GET|POST /v4/domains/{id}/records`, `PUT|DELETE
//!   /v4/domains/{id}/records/{recordId}`; lists `{data, page, pages, results}` paged
//!   with `page`/`page_size`;
//! * records `{id, type, name, target, priority, weight, port, service, protocol,
//!   ttl_sec, tag}`; `name` relative; SRV ignores `name` and prepends the underscore to
//!   `service` and `protocol` (SRV always at the domain's apex); `ttl_sec` rounded to the
//!   nearest of 300, 3600, 7200, …, 2419200;
//! * errors `{errors:[{reason, field}]}`: 401 "Invalid Token", 403 "Unauthorized", 404
//!   "Not found", 400 field errors, 429 with Retry-After.

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_response, page, with_header, Api, Auth, Core, Data, Fault, Rec, Req};

/// The Linode mock.
pub struct Linode;

const VALID: [u32; 12] = [
    300, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600, 604800, 1209600, 2419200,
];

fn err(status: u16, reason: &str, field: Option<&str>) -> Response {
    let mut e = json!({"reason": reason});
    if let Some(f) = field {
        e["field"] = json!(f);
    }
    json_response(status, json!({"errors": [e]}))
}

fn nearest(ttl: u32) -> u32 {
    if ttl == 0 {
        return 0;
    }
    *VALID
        .iter()
        .min_by_key(|v| (i64::from(**v) - i64::from(ttl)).abs())
        .unwrap()
}

fn to_json(r: &Rec, zone: &str) -> Value {
    let name = if r.name == zone {
        String::new()
    } else {
        r.name
            .strip_suffix(&format!(".{zone}"))
            .unwrap_or(&r.name)
            .to_string()
    };
    let mut v = json!({"id": r.id.parse::<u64>().unwrap_or(0), "type": r.rtype, "name": name,
        "ttl_sec": r.ttl, "priority": 0, "weight": 0, "port": 0, "service": null, "protocol": null, "tag": null});
    match &r.data {
        Data::Addr(a) => v["target"] = json!(a),
        Data::Host(h) => v["target"] = json!(h),
        Data::Mx(p, h) => {
            v["target"] = json!(h);
            v["priority"] = json!(p);
        }
        Data::Txt(_) => v["target"] = json!(r.data.joined()),
        Data::Srv(p, w, port, t) => {
            let mut labels = name.splitn(3, '.');
            v["service"] = json!(labels.next().unwrap_or("").trim_start_matches('_'));
            v["protocol"] = json!(labels.next().unwrap_or("").trim_start_matches('_'));
            v["target"] = json!(t);
            v["priority"] = json!(p);
            v["weight"] = json!(w);
            v["port"] = json!(port);
        }
        Data::Caa(_, t, val) => {
            v["target"] = json!(val);
            v["tag"] = json!(t);
        }
        Data::Other(s) => v["target"] = json!(s),
    }
    v
}

fn from_json(b: &Value, id: String, zone: &str) -> Result<Rec, Response> {
    let rtype = b["type"]
        .as_str()
        .ok_or_else(|| err(400, "type is required", Some("type")))?;
    let target = b["target"].as_str().unwrap_or("");
    let host = |t: &str| {
        let t = t.trim_end_matches('.').to_ascii_lowercase();
        if t.is_empty() || t == "@" {
            zone.to_string()
        } else {
            t
        }
    };
    let n = |k: &str| b[k].as_u64().map(|v| v as u16);
    let mut name = match b["name"].as_str().unwrap_or("") {
        "" | "@" => zone.to_string(),
        s => format!("{}.{zone}", s.to_ascii_lowercase()),
    };
    let data = match rtype {
        "A" | "AAAA" => {
            Data::parse(rtype, target, zone).map_err(|e| err(400, &e, Some("target")))?
        }
        "CNAME" => Data::Host(host(target)),
        "MX" => Data::Mx(n("priority").unwrap_or(0), host(target)),
        "TXT" => Data::txt_raw(target),
        "SRV" => {
            let svc = b["service"]
                .as_str()
                .ok_or_else(|| err(400, "service is required", Some("service")))?;
            let proto = b["protocol"]
                .as_str()
                .ok_or_else(|| err(400, "protocol is required", Some("protocol")))?;
            name = format!(
                "_{}._{}.{zone}",
                svc.trim_start_matches('_'),
                proto.trim_start_matches('_')
            );
            Data::Srv(
                n("priority").ok_or_else(|| err(400, "priority is required", Some("priority")))?,
                n("weight").unwrap_or(0),
                n("port").ok_or_else(|| err(400, "port is required", Some("port")))?,
                host(target),
            )
        }
        "CAA" => Data::Caa(
            0,
            b["tag"]
                .as_str()
                .ok_or_else(|| err(400, "tag is required", Some("tag")))?
                .into(),
            target.into(),
        ),
        _ => Data::Other(target.into()),
    };
    Ok(Rec {
        id,
        name,
        rtype: rtype.into(),
        ttl: nearest(b["ttl_sec"].as_u64().unwrap_or(0) as u32),
        data,
    })
}

impl Api for Linode {
    fn fault(&self, fault: Fault) -> Response {
        match fault {
            Fault::RateLimited(s) => with_header(
                err(429, "Too Many Requests", None),
                "retry-after",
                s.to_string(),
            ),
            Fault::ServerError => err(500, "Please try again later.", None),
        }
    }

    fn handle(&mut self, core: &mut Core, req: &Req) -> Response {
        match core.auth(req.bearer()) {
            Auth::Invalid => return err(401, "Invalid Token", None),
            Auth::ReadOnly if req.method != Method::GET => return err(403, "Unauthorized", None),
            _ => {}
        }
        let seg = req.segments();
        let per = req
            .q("page_size")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let pg: usize = req.q("page").and_then(|v| v.parse().ok()).unwrap_or(1);
        let cap = core.page_size;
        let listing = |all: Vec<Value>| {
            let total = all.len();
            let (items, pages) = page(&all, pg, per, cap);
            json_response(
                200,
                json!({"data": items, "page": pg, "pages": pages, "results": total}),
            )
        };
        match (req.method.clone(), seg.as_slice()) {
            (Method::GET, ["v4", "domains"]) => listing(
                core.zones
                    .iter()
                    .map(|(n, z)| json!({"id": z.id.parse::<u64>().unwrap_or(0), "domain": n, "type": "master",
                        "status": "active", "ttl_sec": 0, "soa_email": format!("hostmaster@{n}")}))
                    .collect(),
            ),
            (m, ["v4", "domains", did, "records", rest @ ..]) => {
                let Some((zname, zone)) = core
                    .zones
                    .iter_mut()
                    .find(|(_, z)| z.id == *did)
                    .map(|(n, z)| (n.clone(), z))
                else {
                    return err(404, "Not found", None);
                };
                match (m, rest) {
                    (Method::GET, []) => listing(zone.records.iter().map(|r| to_json(r, &zname)).collect()),
                    (Method::POST, []) | (Method::PUT, [_]) => {
                        let body = match req.json() {
                            Ok(b) => b,
                            Err(e) => return err(400, &e, None),
                        };
                        let (id, index) = match rest {
                            [rid] => match zone.records.iter().position(|r| r.id == *rid) {
                                Some(i) => (rid.to_string(), Some(i)),
                                None => return err(404, "Not found", None),
                            },
                            _ => (
                                (zone.records.iter().filter_map(|r| r.id.parse::<u64>().ok()).max().unwrap_or(0).max(7000) + 1)
                                    .to_string(),
                                None,
                            ),
                        };
                        let r = match from_json(&body, id, &zname) {
                            Ok(r) => r,
                            Err(e) => return e,
                        };
                        let mut next = zone.records.clone();
                        match index {
                            Some(i) => next[i] = r.clone(),
                            None => next.push(r.clone()),
                        }
                        if let Err(m) = Core::alias_rule(&next) {
                            return err(400, &m, Some("name"));
                        }
                        zone.records = next;
                        json_response(200, to_json(&r, &zname))
                    }
                    (Method::DELETE, [rid]) => {
                        let before = zone.records.len();
                        zone.records.retain(|r| r.id != *rid);
                        if before == zone.records.len() {
                            return err(404, "Not found", None);
                        }
                        json_response(200, json!({}))
                    }
                    _ => err(404, "Not found", None),
                }
            }
            _ => err(404, "Not found", None),
        }
    }
}
