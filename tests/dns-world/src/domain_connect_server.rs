//! A local Domain Connect DNS provider for tests (127.0.0.1, a free port), following the
//! Domain Connect spec 2.3 (`Domain Connect Spec Draft.adoc` rev 67, sections
//! “Discovery”, “Synchronous Flow”, “Asynchronous Flow: OAuth”; research/registrars.md §1)
//! for the calls the portal makes. One server plays `urlSyncUX`, `urlAsyncUX` and
//! `urlAPI`:
//!
//! * `GET /v2/{domain}/settings` → the settings JSON for hosted domains, 404 otherwise;
//! * `GET /v2/domainTemplates/providers/{providerId}/services/{serviceId}` → 200 for the
//!   onboarded template, 404 otherwise;
//! * synchronous apply `GET …/services/{serviceId}/apply?…` → kept (the raw query, so a
//!   test can check the signature against the published key) and answered with a 303 to
//!   `redirect_uri` carrying `state` (a real provider would verify `sig` first and show
//!   its own confirmation);
//! * asynchronous consent `GET /v2/domainTemplates/providers/{providerId}?client_id=…&
//!   scope=…&domain=…&host=…&redirect_uri=…&response_type=code&state=…` → an HTML page
//!   with **Allow**/**Deny**; the form posts back and is redirected with `code` and
//!   `state` (or `error=access_denied`);
//! * `POST /v2/oauth/access_token` with the parameters in the query →
//!   `{access_token, token_type, expires_in, refresh_token}`, single-use codes, refresh;
//! * asynchronous apply `POST …/services/{serviceId}/apply?domain=…&host=…&…&force=` with
//!   `Authorization: Bearer` → 204 (kept for inspection), 401 for a token not granted
//!   for that domain and host, 409 with `{code, message, records}` when the test has
//!   put conflicting records in the way and `force` is not 1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Router;
use serde_json::json;

/// One apply the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The template's provider id.
    pub provider_id: String,
    /// The template's service id.
    pub service_id: String,
    /// The query pairs, in order.
    pub params: Vec<(String, String)>,
    /// Whether it came through the asynchronous API (else the synchronous redirect).
    pub api: bool,
}

impl Applied {
    /// A parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct St {
    provider_id: String,
    domains: Vec<String>,
    templates: Vec<(String, String)>,
    client: Option<(String, String)>,
    codes: BTreeMap<String, (String, String, String, bool)>,
    tokens: BTreeMap<String, (String, String)>,
    refresh: BTreeMap<String, (String, String)>,
    conflicts: Vec<serde_json::Value>,
    /// Raw queries of synchronous applies.
    sync_queries: Vec<String>,
    applied: Vec<Applied>,
    next: u64,
}

/// A running Domain Connect provider.
pub struct DomainConnectServer {
    addr: SocketAddr,
    st: Arc<Mutex<St>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DomainConnectServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn redirect(to: String) -> Response {
    (StatusCode::SEE_OTHER, [("location", to)]).into_response()
}

fn add_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let q = serde_urlencoded::to_string(pairs).unwrap();
    format!("{uri}{}{q}", if uri.contains('?') { "&" } else { "?" })
}

fn handle(
    st: &Arc<Mutex<St>>,
    base: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().unwrap();
    let raw = uri.query().unwrap_or("").to_string();
    let mut q: Vec<(String, String)> = serde_urlencoded::from_str(&raw).unwrap_or_default();
    if method == Method::POST {
        if let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) {
            q.extend(form);
        }
    }
    let g = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let seg: Vec<&str> = uri.path().split('/').filter(|x| !x.is_empty()).collect();
    let not_found = || (StatusCode::NOT_FOUND, "Not Found").into_response();
    match (method.clone(), seg.as_slice()) {
        (Method::GET, ["v2", domain, "settings"]) => {
            if !s.domains.iter().any(|d| d == domain) {
                return not_found();
            }
            axum::Json(json!({
                "providerId": s.provider_id, "providerName": "Test DNS", "providerDisplayName": "Test DNS Provider",
                "urlSyncUX": base, "urlAsyncUX": base, "urlAPI": base, "width": 750, "height": 750,
                "urlControlPanel": format!("{base}/panel?domain=%domain%"),
                "nameServers": ["ns1.test-dns.example", "ns2.test-dns.example"],
            }))
            .into_response()
        }
        (Method::GET, ["v2", "domainTemplates", "providers", pid, "services", sid]) => {
            if s.templates.iter().any(|(p, x)| p == pid && x == sid) {
                axum::Json(json!({"providerId": pid, "serviceId": sid, "version": 1}))
                    .into_response()
            } else {
                not_found()
            }
        }
        (Method::GET, ["v2", "domainTemplates", "providers", pid, "services", sid, "apply"]) => {
            s.sync_queries.push(raw.clone());
            s.applied.push(Applied {
                provider_id: pid.to_string(),
                service_id: sid.to_string(),
                params: q.clone(),
                api: false,
            });
            let state = g("state");
            match g("redirect_uri").as_str() {
                "" => Html("<!doctype html><title>Done</title><p>The records were set up.</p>")
                    .into_response(),
                r => redirect(add_query(r, &[("state", &state)])),
            }
        }
        (Method::GET, ["v2", "domainTemplates", "providers", _pid]) => {
            let ok = s
                .client
                .as_ref()
                .is_some_and(|(id, _)| *id == g("client_id"))
                && g("response_type") == "code";
            if !ok {
                return (
                    StatusCode::BAD_REQUEST,
                    Html("<!doctype html><title>Bad request</title><p>Unknown client.</p>"),
                )
                    .into_response();
            }
            let hidden: String = [
                "client_id",
                "scope",
                "domain",
                "host",
                "redirect_uri",
                "state",
            ]
            .iter()
            .map(|k| {
                format!(
                    "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                    esc(&g(k))
                )
            })
            .collect();
            Html(format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Allow changes?</title></head>\
                 <body><h1>Allow changes to {}?</h1><p>The service asks to set up <code>{}</code> on {}.</p>\
                 <form method=\"post\" action=\"{}\">{hidden}\
                 <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
                 <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form></body></html>",
                esc(&g("domain")), esc(&g("scope")), esc(&g("domain")), esc(uri.path())
            ))
            .into_response()
        }
        (Method::POST, ["v2", "domainTemplates", "providers", _pid]) => {
            let to = g("redirect_uri");
            if g("decision") != "allow" {
                return redirect(add_query(
                    &to,
                    &[("error", "access_denied"), ("state", &g("state"))],
                ));
            }
            s.next += 1;
            let code = format!("dc-code-{}", s.next);
            s.codes
                .insert(code.clone(), (g("domain"), g("host"), to.clone(), false));
            redirect(add_query(&to, &[("code", &code), ("state", &g("state"))]))
        }
        (Method::POST, ["v2", "oauth", "access_token"]) => {
            let client_ok = s
                .client
                .as_ref()
                .is_some_and(|(id, secret)| *id == g("client_id") && *secret == g("client_secret"));
            if !client_ok {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"error": "invalid_client"})),
                )
                    .into_response();
            }
            let grant = match g("grant_type").as_str() {
                "authorization_code" => match s.codes.get_mut(&g("code")) {
                    Some(c) if !c.3 && c.2 == g("redirect_uri") => {
                        c.3 = true;
                        (c.0.clone(), c.1.clone())
                    }
                    _ => {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "invalid_grant"})),
                        )
                            .into_response()
                    }
                },
                "refresh_token" => match s.refresh.remove(&g("refresh_token")) {
                    Some(gr) => gr,
                    None => {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "invalid_grant"})),
                        )
                            .into_response()
                    }
                },
                _ => {
                    return (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": "unsupported_grant_type"})),
                    )
                        .into_response()
                }
            };
            s.next += 1;
            let at = format!("dc-at-{}", s.next);
            let rt = format!("dc-rt-{}", s.next);
            s.tokens.insert(at.clone(), grant.clone());
            s.refresh.insert(rt.clone(), grant);
            axum::Json(json!({"access_token": at, "token_type": "bearer", "expires_in": 3600, "refresh_token": rt})).into_response()
        }
        (Method::POST, ["v2", "domainTemplates", "providers", pid, "services", sid, "apply"]) => {
            let token = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let granted = s
                .tokens
                .get(token)
                .is_some_and(|(d, h)| *d == g("domain") && *h == g("host"));
            if !granted {
                return (StatusCode::UNAUTHORIZED, axum::Json(json!({"code": "unauthorized", "message": "token not valid for this domain"}))).into_response();
            }
            if !s.templates.iter().any(|(p, x)| p == pid && x == sid) {
                return not_found();
            }
            if !s.conflicts.is_empty() && g("force") != "1" {
                return (
                    StatusCode::CONFLICT,
                    axum::Json(json!({"code": "conflict", "message": "Conflicting records",
                    "records": s.conflicts})),
                )
                    .into_response();
            }
            s.applied.push(Applied {
                provider_id: pid.to_string(),
                service_id: sid.to_string(),
                params: q.clone(),
                api: true,
            });
            StatusCode::NO_CONTENT.into_response()
        }
        _ => not_found(),
    }
}

impl DomainConnectServer {
    /// Starts a provider with id `provider_id` hosting `domains`, with the template
    /// `(providerId, serviceId)` onboarded and an asynchronous client `(id, secret)`.
    pub async fn start(
        provider_id: &str,
        domains: &[&str],
        template: (&str, &str),
        client: Option<(&str, &str)>,
    ) -> DomainConnectServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let st = Arc::new(Mutex::new(St {
            provider_id: provider_id.to_string(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            templates: vec![(template.0.to_string(), template.1.to_string())],
            client: client.map(|(a, b)| (a.to_string(), b.to_string())),
            ..Default::default()
        }));
        let base = format!("http://{addr}");
        let state = st.clone();
        let app = Router::new().fallback(move |m: Method, u: Uri, h: HeaderMap, b: Bytes| {
            let st = state.clone();
            let base = base.clone();
            async move { handle(&st, &base, m, u, h, b) }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        DomainConnectServer { addr, st, task }
    }

    /// `http://127.0.0.1:port` (what `_domainconnect` would name, with its scheme).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes asynchronous applies answer 409 with these records until `force=1`.
    pub fn set_conflicts(&self, records: Vec<serde_json::Value>) {
        self.st.lock().unwrap().conflicts = records;
    }

    /// The applies received.
    pub fn applied(&self) -> Vec<Applied> {
        self.st.lock().unwrap().applied.clone()
    }

    /// The raw queries of synchronous applies.
    pub fn sync_queries(&self) -> Vec<String> {
        self.st.lock().unwrap().sync_queries.clone()
    }
}
