//! OVHcloud API `/1.0` (<https://help.ovhcloud.com/csm/en-api-getting-started-ovhcloud-api>
//! — “Advanced usage: pair OVHcloud APIs with an application”: `GET /auth/time`,
//! `POST /auth/credential`, the validation page, the `X-Ovh-*` headers and the `$1$`
//! SHA-1 signature; the API console's `/domain/zone` section: list zones, list record
//! ids with `fieldType`/`subDomain`, get/create/update/delete a record, `refresh`):
//!
//! * the application (settings `app_key`, `app_secret`) asks for a consumer key with
//!   access rules and a redirection; the answer's `validationUrl` (here
//!   `/auth/validate?credentialToken=…`) stands for OVHcloud's login-and-approve page:
//!   opening it approves the key and redirects to the redirection;
//! * signed requests are checked: unknown or unapproved consumer key → 403
//!   `INVALID_CREDENTIAL` "This credential is not valid"; wrong signature → 400
//!   `INVALID_SIGNATURE`; a call outside the approved rules → 403 `NOT_GRANTED_CALL`;
//! * records `{id, zone, subDomain, fieldType, target, ttl}`, targets in presentation
//!   form (TXT quoted); unknown zone or record → 404 "This service does not exist";
//!   `POST /domain/zone/{z}/refresh` counts in the setting `refreshes:<zone>`.

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use super::{json_response, now, with_header, Api, Core, Data, Fault, MockServer, Rec, Req};

/// The OVHcloud mock.
pub struct Ovh;

fn err(status: u16, code: &str, message: &str) -> Response {
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    json_response(
        status,
        json!({"errorCode": code, "httpCode": format!("{status} {reason}"), "message": message}),
    )
}

/// Registers an approved consumer key whose rules cover `zone` (or every zone).
pub fn add_consumer_key(mock: &MockServer, ck: &str, zone: Option<&str>) {
    let scope = match zone {
        Some(z) => format!("/domain/zone/{z}/*"),
        None => "/domain/zone/*".into(),
    };
    let rules = json!([
        {"method": "GET", "path": "/domain/zone"},
        {"method": "GET", "path": scope}, {"method": "POST", "path": scope},
        {"method": "PUT", "path": scope}, {"method": "DELETE", "path": scope},
    ]);
    mock.set(
        &format!("ck:{ck}"),
        &json!({"validated": true, "rules": rules}).to_string(),
    );
}

fn granted(rules: &Value, method: &str, path: &str) -> bool {
    rules.as_array().into_iter().flatten().any(|r| {
        let m = r["method"].as_str().unwrap_or("");
        let p = r["path"].as_str().unwrap_or("");
        (m == method || m == "*")
            && match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == p,
            }
    })
}

fn sha1_hex(s: &str) -> String {
    Sha1::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn to_json(r: &Rec, zone: &str) -> Value {
    let sub = if r.name == zone {
        String::new()
    } else {
        r.name
            .strip_suffix(&format!(".{zone}"))
            .unwrap_or(&r.name)
            .to_string()
    };
    json!({"id": r.id.parse::<u64>().unwrap_or(0), "zone": zone, "subDomain": sub,
        "fieldType": r.rtype, "target": r.data.presentation(), "ttl": r.ttl})
}

fn parse_target(rtype: &str, target: &str, zone: &str) -> Result<Data, String> {
    if rtype == "TXT" && !target.trim_start().starts_with('"') {
        return Ok(Data::txt_raw(target));
    }
    Data::parse(rtype, target, zone)
}

impl Api for Ovh {
    fn fault(&self, fault: Fault) -> Response {
        match fault {
            Fault::RateLimited(s) => with_header(
                err(429, "TOO_MANY_REQUESTS", "Too many requests"),
                "retry-after",
                s.to_string(),
            ),
            Fault::ServerError => err(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
        }
    }

    fn handle(&mut self, core: &mut Core, req: &Req) -> Response {
        let seg = req.segments();
        let seg: Vec<&str> = match seg.as_slice() {
            ["1.0", rest @ ..] => rest.to_vec(),
            _ => return err(404, "NOT_FOUND", "Not Found"),
        };
        let header = |n: &str| {
            req.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let app_key = core.settings.get("app_key").cloned().unwrap_or_default();
        let app_secret = core.settings.get("app_secret").cloned().unwrap_or_default();
        match (req.method.clone(), seg.as_slice()) {
            (Method::GET, ["auth", "time"]) => return json_response(200, json!(now())),
            (Method::POST, ["auth", "credential"]) => {
                if header("x-ovh-application") != app_key {
                    return err(403, "INVALID_KEY", "Invalid application key");
                }
                let b = req.json().unwrap_or_default();
                let n = core.id();
                let ck = format!("ck{n:030}");
                let token = format!("tok{n}");
                core.settings.insert(
                    format!("ck:{ck}"),
                    json!({"validated": false, "rules": b["accessRules"], "redirection": b["redirection"]}).to_string(),
                );
                core.settings.insert(format!("token:{token}"), ck.clone());
                return json_response(
                    200,
                    json!({"validationUrl": format!("{}/1.0/auth/validate?credentialToken={token}", req.base),
                        "consumerKey": ck, "state": "pendingValidation"}),
                );
            }
            (Method::GET, ["auth", "validate"]) => {
                let token = req.q("credentialToken").unwrap_or("");
                let Some(ck) = core.settings.get(&format!("token:{token}")).cloned() else {
                    return err(404, "NOT_FOUND", "This credential token does not exist");
                };
                let key = format!("ck:{ck}");
                let mut state: Value = serde_json::from_str(&core.settings[&key]).unwrap();
                state["validated"] = json!(true);
                let to = state["redirection"].as_str().unwrap_or("/").to_string();
                core.settings.insert(key, state.to_string());
                return (axum::http::StatusCode::SEE_OTHER, [("location", to)]).into_response();
            }
            _ => {}
        }
        // Everything else is signed.
        if header("x-ovh-application") != app_key {
            return err(403, "INVALID_KEY", "Invalid application key");
        }
        let ck = header("x-ovh-consumer");
        let state: Option<Value> = core
            .settings
            .get(&format!("ck:{ck}"))
            .and_then(|s| serde_json::from_str(s).ok());
        let Some(state) = state.filter(|s| s["validated"] == json!(true)) else {
            return err(403, "INVALID_CREDENTIAL", "This credential is not valid");
        };
        let url = format!(
            "{}{}{}",
            req.base,
            req.path,
            if req.raw_query.is_empty() {
                String::new()
            } else {
                format!("?{}", req.raw_query)
            }
        );
        let expected = format!(
            "$1${}",
            sha1_hex(&format!(
                "{app_secret}+{ck}+{}+{url}+{}+{}",
                req.method,
                String::from_utf8_lossy(&req.body),
                header("x-ovh-timestamp")
            ))
        );
        if header("x-ovh-signature") != expected {
            return err(400, "INVALID_SIGNATURE", "Invalid signature");
        }
        let api_path = req.path.trim_start_matches("/1.0");
        if !granted(&state["rules"], req.method.as_str(), api_path) {
            return err(403, "NOT_GRANTED_CALL", "This call has not been granted");
        }
        let missing = || err(404, "RESOURCE_NOT_FOUND", "This service does not exist");
        match (req.method.clone(), seg.as_slice()) {
            (Method::GET, ["domain", "zone"]) => {
                json_response(200, json!(core.zones.keys().collect::<Vec<_>>()))
            }
            (m, ["domain", "zone", z, rest @ ..]) => {
                let zname = z.to_ascii_lowercase();
                if !core.zones.contains_key(&zname) {
                    return missing();
                }
                if let (&Method::POST, ["refresh"]) = (&m, rest) {
                    let k = format!("refreshes:{zname}");
                    let n: u64 = core
                        .settings
                        .get(&k)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    core.settings.insert(k, (n + 1).to_string());
                    return json_response(200, Value::Null);
                }
                let new_id = core.id() + 50_000;
                let zone = core.zones.get_mut(&zname).unwrap();
                let abs = |sub: &str| {
                    if sub.is_empty() {
                        zname.clone()
                    } else {
                        format!("{}.{zname}", sub.to_ascii_lowercase())
                    }
                };
                match (m, rest) {
                    (Method::GET, ["record"]) => {
                        let ids: Vec<u64> = zone
                            .records
                            .iter()
                            .filter(|r| req.q("fieldType").is_none_or(|t| t == r.rtype))
                            .filter(|r| req.q("subDomain").is_none_or(|s| abs(s) == r.name))
                            .filter_map(|r| r.id.parse().ok())
                            .collect();
                        json_response(200, json!(ids))
                    }
                    (Method::GET, ["record", id]) => {
                        match zone.records.iter().find(|r| r.id == *id) {
                            Some(r) => json_response(200, to_json(r, &zname)),
                            None => missing(),
                        }
                    }
                    (Method::POST, ["record"]) => {
                        let b = req.json().unwrap_or_default();
                        let rtype = b["fieldType"].as_str().unwrap_or("").to_string();
                        let data = match parse_target(
                            &rtype,
                            b["target"].as_str().unwrap_or(""),
                            &zname,
                        ) {
                            Ok(d) => d,
                            Err(e) => return err(400, "INVALID_ARGUMENT", &e),
                        };
                        let r = Rec {
                            id: new_id.to_string(),
                            name: abs(b["subDomain"].as_str().unwrap_or("")),
                            rtype,
                            ttl: b["ttl"].as_u64().unwrap_or(0) as u32,
                            data,
                        };
                        let mut next = zone.records.clone();
                        next.push(r.clone());
                        if let Err(e) = Core::alias_rule(&next) {
                            return err(400, "INVALID_ARGUMENT", &e);
                        }
                        zone.records = next;
                        json_response(200, to_json(&r, &zname))
                    }
                    (Method::PUT, ["record", id]) => {
                        let Some(i) = zone.records.iter().position(|r| r.id == *id) else {
                            return missing();
                        };
                        let b = req.json().unwrap_or_default();
                        let mut r = zone.records[i].clone();
                        if let Some(t) = b["target"].as_str() {
                            r.data = match parse_target(&r.rtype, t, &zname) {
                                Ok(d) => d,
                                Err(e) => return err(400, "INVALID_ARGUMENT", &e),
                            };
                        }
                        if let Some(s) = b["subDomain"].as_str() {
                            r.name = abs(s);
                        }
                        if let Some(t) = b["ttl"].as_u64() {
                            r.ttl = t as u32;
                        }
                        let mut next = zone.records.clone();
                        next[i] = r;
                        if let Err(e) = Core::alias_rule(&next) {
                            return err(400, "INVALID_ARGUMENT", &e);
                        }
                        zone.records = next;
                        json_response(200, Value::Null)
                    }
                    (Method::DELETE, ["record", id]) => {
                        let before = zone.records.len();
                        zone.records.retain(|r| r.id != *id);
                        if before == zone.records.len() {
                            return missing();
                        }
                        json_response(200, Value::Null)
                    }
                    _ => missing(),
                }
            }
            _ => missing(),
        }
    }
}
