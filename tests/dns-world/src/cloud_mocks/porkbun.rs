//! Porkbun API v3 (<https://porkbun.com/api/json/v3/documentation> — Authentication,
//! Domain: List All, DNS: Create Record, Edit Record by Domain and ID, Delete Record by
//! Domain and ID, Retrieve Records by Domain or ID):
//!
//! * every call a `POST` under `/api/json/v3` with `{"apikey", "secretapikey", …}`;
//!   answers `{"status":"SUCCESS"|"ERROR", "message", …}`;
//! * `/domain/listAll` (1000 from `start`), `/dns/retrieve/{domain}` (all records:
//!   `{id, name, type, content, ttl, prio, notes}`, names absolute, numbers as strings),
//!   `/dns/create/{domain}` (`{name, type, content, ttl, prio}`, `name` the subdomain),
//!   `/dns/edit/{domain}/{id}`, `/dns/delete/{domain}/{id}`;
//! * TTL: "the minimum and the default is 600 seconds" (lower values are raised);
//! * content: raw text for TXT, host name for MX/CNAME with the priority in `prio`,
//!   `weight port target` for SRV, `flags tag "value"` for CAA;
//! * errors: HTTP 400 with `status: ERROR` and a message ("Invalid API key. (002)",
//!   "Domain is not opted in to API access.", "Invalid domain.", "Invalid record ID."),
//!   429 with Retry-After.
//!
//! A domain is "not opted in" when the setting `opted_out:<domain>` is set.

use axum::response::Response;
use serde_json::{json, Value};

use super::{json_response, with_header, Api, Auth, Core, Data, Fault, Rec, Req};

/// The Porkbun mock. Tokens are registered as `<apikey>:<secretapikey>`.
pub struct Porkbun;

fn error(status: u16, message: &str) -> Response {
    json_response(status, json!({"status": "ERROR", "message": message}))
}

fn success(mut v: Value) -> Response {
    v["status"] = json!("SUCCESS");
    json_response(200, v)
}

fn to_json(r: &Rec) -> Value {
    let (content, prio) = match &r.data {
        Data::Addr(a) => (a.clone(), 0),
        Data::Host(h) => (h.clone(), 0),
        Data::Mx(p, h) => (h.clone(), *p),
        Data::Txt(_) => (r.data.joined(), 0),
        Data::Srv(p, w, port, t) => (format!("{w} {port} {t}"), *p),
        Data::Caa(..) => (r.data.presentation(), 0),
        Data::Other(s) => (s.clone(), 0),
    };
    json!({"id": r.id, "name": r.name, "type": r.rtype, "content": content,
        "ttl": r.ttl.to_string(), "prio": prio.to_string(), "notes": ""})
}

fn from_json(b: &Value, id: String, zone: &str) -> Result<Rec, Response> {
    let rtype = b["type"].as_str().unwrap_or("");
    let content = b["content"].as_str().unwrap_or("");
    let num = |v: &Value| match v {
        Value::String(s) => s.parse::<u32>().ok(),
        Value::Number(n) => n.as_u64().map(|n| n as u32),
        _ => None,
    };
    let prio = num(&b["prio"]).unwrap_or(0) as u16;
    let host = |h: &str| h.trim_end_matches('.').to_ascii_lowercase();
    let data = match rtype {
        "A" | "AAAA" => Data::parse(rtype, content, zone).map_err(|e| error(400, &e))?,
        "CNAME" => Data::Host(host(content)),
        "MX" => Data::Mx(prio, host(content)),
        "TXT" => Data::txt_raw(content),
        "SRV" => {
            let w: Vec<&str> = content.split_whitespace().collect();
            if w.len() != 3 {
                return Err(error(400, "SRV content must be: weight port target"));
            }
            Data::Srv(
                prio,
                w[0].parse().map_err(|_| error(400, "bad SRV weight"))?,
                w[1].parse().map_err(|_| error(400, "bad SRV port"))?,
                host(w[2]),
            )
        }
        "CAA" => Data::parse("CAA", content, zone).map_err(|e| error(400, &e))?,
        "" => return Err(error(400, "Invalid type.")),
        _ => Data::Other(content.into()),
    };
    let sub = b["name"].as_str().unwrap_or("").to_ascii_lowercase();
    Ok(Rec {
        id,
        name: if sub.is_empty() {
            zone.to_string()
        } else {
            format!("{sub}.{zone}")
        },
        rtype: rtype.into(),
        ttl: num(&b["ttl"]).unwrap_or(600).max(600),
        data,
    })
}

impl Api for Porkbun {
    fn fault(&self, fault: Fault) -> Response {
        match fault {
            Fault::RateLimited(s) => with_header(
                error(429, "Too many requests. Please slow down."),
                "retry-after",
                s.to_string(),
            ),
            Fault::ServerError => error(500, "An unexpected error occurred."),
        }
    }

    fn is_write(&self, req: &Req) -> bool {
        ["/dns/create/", "/dns/edit/", "/dns/delete/"]
            .iter()
            .any(|p| req.path.contains(p))
    }

    fn handle(&mut self, core: &mut Core, req: &Req) -> Response {
        let body = req.json().unwrap_or_default();
        let token = format!(
            "{}:{}",
            body["apikey"].as_str().unwrap_or(""),
            body["secretapikey"].as_str().unwrap_or("")
        );
        if matches!(core.auth(Some(&token)), Auth::Invalid) {
            return error(400, "Invalid API key. (002)");
        }
        let seg = req.segments();
        let tail: Vec<&str> = match seg.as_slice() {
            ["api", "json", "v3", rest @ ..] => rest.to_vec(),
            _ => return error(404, "Not found."),
        };
        match tail.as_slice() {
            ["ping"] => success(json!({"yourIp": "127.0.0.1"})),
            ["domain", "listAll"] => {
                let start: usize = body["start"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let all: Vec<Value> = core
                    .zones
                    .keys()
                    .skip(start)
                    .take(1000)
                    .map(|n| json!({"domain": n, "status": "ACTIVE"}))
                    .collect();
                success(json!({"domains": all}))
            }
            ["dns", op, d, rest @ ..] => {
                let zname = d.to_ascii_lowercase();
                if core.settings.contains_key(&format!("opted_out:{zname}")) {
                    return error(400, "Domain is not opted in to API access.");
                }
                let Some(zone) = core.zones.get_mut(&zname) else {
                    return error(400, "Invalid domain.");
                };
                match (*op, rest) {
                    ("retrieve", []) => success(
                        json!({"records": zone.records.iter().map(to_json).collect::<Vec<_>>()}),
                    ),
                    ("create", []) => {
                        let id = (zone
                            .records
                            .iter()
                            .filter_map(|r| r.id.parse::<u64>().ok())
                            .max()
                            .unwrap_or(0)
                            .max(100_000)
                            + 1)
                        .to_string();
                        let r = match from_json(&body, id.clone(), &zname) {
                            Ok(r) => r,
                            Err(e) => return e,
                        };
                        let mut next = zone.records.clone();
                        next.push(r);
                        if let Err(m) = Core::alias_rule(&next) {
                            return error(400, &m);
                        }
                        zone.records = next;
                        success(json!({"id": id.parse::<u64>().unwrap()}))
                    }
                    ("edit", [id]) => {
                        let Some(i) = zone.records.iter().position(|r| r.id == *id) else {
                            return error(400, "Invalid record ID.");
                        };
                        let r = match from_json(&body, id.to_string(), &zname) {
                            Ok(r) => r,
                            Err(e) => return e,
                        };
                        let mut next = zone.records.clone();
                        next[i] = r;
                        if let Err(m) = Core::alias_rule(&next) {
                            return error(400, &m);
                        }
                        zone.records = next;
                        success(json!({}))
                    }
                    ("delete", [id]) => {
                        let before = zone.records.len();
                        zone.records.retain(|r| r.id != *id);
                        if before == zone.records.len() {
                            return error(400, "Invalid record ID.");
                        }
                        success(json!({}))
                    }
                    _ => error(404, "Not found."),
                }
            }
            _ => error(404, "Not found."),
        }
    }
}
