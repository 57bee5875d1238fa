//! A person using the portal over HTTP: a cookie jar, forms with their anti-forgery token,
//! and redirects looked at rather than followed, so tests see exactly what the portal says.

use reqwest::{header, redirect::Policy, Client, StatusCode};

/// One browser-like client with its own cookies.
#[derive(Clone)]
pub struct PortalClient {
    pub http: Client,
    base: String,
}

/// The answer to a form post.
#[derive(Debug)]
pub struct Posted {
    pub status: StatusCode,
    /// Where the portal redirected to (path only), if it did.
    pub location: Option<String>,
    pub body: String,
}

impl PortalClient {
    pub fn new(base_url: &str) -> PortalClient {
        crate::tls_ready();
        PortalClient {
            http: Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()
                .expect("HTTP client"),
            base: base_url.trim_end_matches('/').to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET, following redirects within the portal; returns the final status, path and body.
    pub async fn get(&self, path: &str) -> (StatusCode, String, String) {
        let mut path = path.to_string();
        for _ in 0..5 {
            let response = self.http.get(self.url(&path)).send().await.expect("GET");
            let status = response.status();
            if status.is_redirection() {
                path = location_path(response.headers()).expect("redirect target");
                continue;
            }
            return (status, path, response.text().await.unwrap_or_default());
        }
        panic!("too many redirects at {path}");
    }

    /// The body of a page that must answer 200.
    pub async fn page(&self, path: &str) -> String {
        let (status, final_path, body) = self.get(path).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "GET {path} (ended at {final_path}): {body}"
        );
        body
    }

    /// Posts a form as the portal's own pages do (same origin).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Posted {
        self.post_with(path, fields, &[("origin", &self.base)])
            .await
    }

    pub async fn post_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Posted {
        let mut request = self.http.post(self.url(path)).form(fields);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("POST");
        let status = response.status();
        let location = location_path(response.headers());
        Posted {
            status,
            location,
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// The anti-forgery token from a page of a signed-in session.
    pub async fn csrf(&self) -> String {
        let body = self.page("/account").await;
        csrf_in(&body).expect("a csrf field on the account page")
    }

    /// Posts a form with this session's token added.
    pub async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> Posted {
        let token = self.csrf().await;
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }

    pub async fn sign_up(&self, email: &str, password: &str) -> Posted {
        self.post("/signup", &[("email", email), ("password", password)])
            .await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Posted {
        self.post("/signin", &[("email", email), ("password", password)])
            .await
    }

    /// Answers the settings step with chatmail's defaults and the hardware step with a
    /// virtual machine at `ipv4`, so that the DNS plan is complete.
    pub async fn defaults_and_address(&self, group: &str, ipv4: &str) {
        self.submit(
            &format!("/groups/{group}/setup/settings"),
            &[
                ("contact_mail", "admin@example.org"),
                ("max_mailbox_size_mb", "500"),
                ("max_message_size_mb", "30"),
                ("delete_mails_after_days", "20"),
                ("delete_inactive_users_after_days", "90"),
            ],
        )
        .await;
        self.submit(
            &format!("/groups/{group}/setup/hardware"),
            &[("hardware", "virtual_machine"), ("ipv4", ipv4)],
        )
        .await;
    }

    /// Creates a group and returns its id.
    pub async fn create_group(&self, name: &str) -> String {
        let posted = self.submit("/groups", &[("name", name)]).await;
        let location = posted.location.expect("redirect after creating a group");
        location
            .strip_prefix("/groups/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("unexpected redirect {location}"))
            .to_string()
    }
}

/// The value of the hidden `csrf` field in a page.
pub fn csrf_in(body: &str) -> Option<String> {
    let start = body.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let rest = &body[start..];
    Some(rest[..rest.find('"')?].to_string())
}

fn location_path(headers: &header::HeaderMap) -> Option<String> {
    let location = headers.get(header::LOCATION)?.to_str().ok()?;
    Some(match location.find("://") {
        Some(scheme_end) => {
            let after = &location[scheme_end + 3..];
            after
                .find('/')
                .map(|i| after[i..].to_string())
                .unwrap_or_else(|| "/".into())
        }
        None => location.to_string(),
    })
}

/// The text of a page without tags, for assertions on what a person reads.
pub fn visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the status page `body` shows the go-live phase `phase` as done.
pub fn phase_done(body: &str, phase: &str) -> bool {
    body.contains(&format!("data-phase=\"{phase}\" data-done=\"true\""))
}
