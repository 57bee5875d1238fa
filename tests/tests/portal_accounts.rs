//! Accounts, sessions and their defences, over HTTP against the real portal binary and a
//! real PostgreSQL: sign-up and sign-in, session fixation, cross-site forms, brute-force
//! lockout, password changes, account deletion and bad input on every account form.

use chatmail_tests::{
    portal::{PortalCommand, RunningPortal},
    portal_client::{visible_text, PortalClient},
    postgres::TestPostgres,
    shared_temp_dir,
};
use reqwest::StatusCode;
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery";

/// A portal on its own PostgreSQL, with a pool to look into the database.
struct Setup {
    portal: RunningPortal,
    pool: PgPool,
    _postgres: TestPostgres,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let postgres = TestPostgres::start().await;
    let dir = shared_temp_dir();
    let portal = PortalCommand::new(&dir.path().join("data"), dir.path())
        .database_url(postgres.url())
        .start()
        .await;
    let pool = PgPool::connect(&postgres.url())
        .await
        .expect("connect to the test database");
    Setup {
        portal,
        pool,
        _postgres: postgres,
        _dir: dir,
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

#[tokio::test]
async fn sign_up_sign_out_and_sign_in_again() {
    let s = setup().await;
    let alice = PortalClient::new(s.portal.base_url());

    let posted = alice.sign_up("Alice@Example.org", PASSWORD).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(posted.location.as_deref(), Some("/groups"));
    let groups = alice.page("/groups").await;
    assert!(visible_text(&groups).contains("Welcome! Your account is ready."));
    assert!(visible_text(&alice.page("/account").await).contains("Signed in as alice@example.org"));
    assert_eq!(
        count(
            &s.pool,
            "SELECT count(*) FROM accounts WHERE email = 'alice@example.org'"
        )
        .await,
        1
    );

    let posted = alice.submit("/signout", &[]).await;
    assert_eq!(posted.location.as_deref(), Some("/"));
    let (_, path, _) = alice.get("/groups").await;
    assert_eq!(path, "/signin?next=/groups", "signed out: sent to sign in");

    let wrong = alice.sign_in("alice@example.org", "not the password").await;
    assert_eq!(wrong.location.as_deref(), Some("/signin?next=/groups"));
    let (_, _, body) = alice.get("/signin").await;
    assert!(visible_text(&body).contains("The e-mail address or the password is wrong."));

    let right = alice.sign_in("ALICE@example.org", PASSWORD).await;
    assert_eq!(right.location.as_deref(), Some("/groups"));
    alice.page("/groups").await;

    // The same address cannot sign up twice.
    let again = PortalClient::new(s.portal.base_url());
    again
        .sign_up("alice@example.org", "another long password")
        .await;
    let (_, _, body) = again.get("/signup").await;
    assert!(visible_text(&body).contains("An account with this address exists already"));
    assert_eq!(count(&s.pool, "SELECT count(*) FROM accounts").await, 1);
}

#[tokio::test]
async fn the_start_page_signs_up_with_the_password_typed_once() {
    let s = setup().await;
    let visitor = PortalClient::new(s.portal.base_url());
    // The start page carries the sign-up form (the same one as /signup), one password field.
    for page in ["/start", "/signup"] {
        let (_, _, body) = visitor.get(page).await;
        assert!(body.contains("action=\"/signup\""), "{page}: {body}");
        assert!(body.contains("name=\"password\""), "{page}");
        assert!(!body.contains("password_confirm"), "{page}");
    }
    let posted = visitor
        .post(
            "/signup",
            &[
                ("next", "/groups"),
                ("email", "bob@example.org"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(posted.location.as_deref(), Some("/groups"));
    assert!(
        visible_text(&visitor.page("/groups").await).contains("Welcome! Your account is ready.")
    );
    // A client that still sends the confirmation: a matching one is fine.
    let older = PortalClient::new(s.portal.base_url());
    let posted = older
        .post(
            "/signup",
            &[
                ("email", "carol@example.org"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(posted.location.as_deref(), Some("/groups"));
    assert_eq!(count(&s.pool, "SELECT count(*) FROM accounts").await, 2);
}

#[tokio::test]
async fn sign_in_issues_a_new_session_id() {
    let s = setup().await;
    PortalClient::new(s.portal.base_url())
        .sign_up("alice@example.org", PASSWORD)
        .await;

    // An attacker's session id, planted before sign-in (a failed attempt creates it).
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = raw
        .post(s.portal.url("/signin"))
        .form(&[
            ("email", "alice@example.org"),
            ("password", "wrong password"),
        ])
        .send()
        .await
        .unwrap();
    let planted = session_cookie(&response).expect("a session cookie after a failed sign-in");

    let response = raw
        .post(s.portal.url("/signin"))
        .header("cookie", format!("portal_session={planted}"))
        .form(&[("email", "alice@example.org"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["location"], "/groups");
    let issued = session_cookie(&response).expect("a session cookie after sign-in");
    assert_ne!(issued, planted, "the session id changes at sign-in");
    let cookie_header = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie_header.contains("HttpOnly"), "{cookie_header}");
    assert!(cookie_header.contains("SameSite=Lax"), "{cookie_header}");

    let with = |cookie: String| {
        let raw = raw.clone();
        let url = s.portal.url("/groups");
        async move {
            raw.get(url)
                .header("cookie", format!("portal_session={cookie}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(with(issued).await, StatusCode::OK);
    assert_eq!(
        with(planted).await,
        StatusCode::SEE_OTHER,
        "the planted id is worth nothing"
    );
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|value| {
            value
                .to_str()
                .ok()?
                .split(';')
                .next()?
                .strip_prefix("portal_session=")
                .map(str::to_string)
        })
}

#[tokio::test]
async fn forms_from_other_sites_are_refused() {
    let s = setup().await;
    let alice = PortalClient::new(s.portal.base_url());
    alice.sign_up("alice@example.org", PASSWORD).await;
    let token = alice.csrf().await;

    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
        vec![
            ("sec-fetch-site", "same-site"),
            ("origin", "https://sub.evil.example"),
        ],
        vec![("origin", "null")],
    ] {
        let posted = alice
            .post_with("/groups", &[("csrf", &token), ("name", "Forged")], &headers)
            .await;
        assert_eq!(posted.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(
            posted.body.contains("sent from another website"),
            "{headers:?}"
        );
    }
    // Same origin but no token, or a wrong one: refused too.
    for token in ["", "forged-token"] {
        let posted = alice
            .post("/groups", &[("csrf", token), ("name", "Forged")])
            .await;
        assert_eq!(posted.status, StatusCode::FORBIDDEN);
    }
    // A sign-in posted from another site (login CSRF) is refused as well.
    let posted = alice
        .post_with(
            "/signin",
            &[("email", "alice@example.org"), ("password", PASSWORD)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    assert_eq!(
        count(&s.pool, "SELECT count(*) FROM groups").await,
        0,
        "nothing was created"
    );

    let posted = alice
        .post("/groups", &[("csrf", &token), ("name", "Real")])
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(count(&s.pool, "SELECT count(*) FROM groups").await, 1);
}

#[tokio::test]
async fn guessing_passwords_locks_the_account() {
    let s = setup().await;
    PortalClient::new(s.portal.base_url())
        .sign_up("alice@example.org", PASSWORD)
        .await;
    PortalClient::new(s.portal.base_url())
        .sign_up("bob@example.org", PASSWORD)
        .await;

    let attacker = PortalClient::new(s.portal.base_url());
    for _ in 0..5 {
        attacker
            .sign_in("alice@example.org", "guess guess guess")
            .await;
    }
    // Even the right password is refused now, with a message that says why and for how long.
    let posted = attacker.sign_in("alice@example.org", PASSWORD).await;
    assert_eq!(posted.location.as_deref(), Some("/signin?next=/groups"));
    let (_, _, body) = attacker.get("/signin").await;
    let text = visible_text(&body);
    assert!(
        text.contains("This account is locked for 15 minutes"),
        "{text}"
    );
    let (status, path, _) = attacker.get("/groups").await;
    assert!(path.starts_with("/signin"), "{status} {path}");

    // Another account is not affected.
    let bob = PortalClient::new(s.portal.base_url());
    assert_eq!(
        bob.sign_in("bob@example.org", PASSWORD)
            .await
            .location
            .as_deref(),
        Some("/groups")
    );
    assert_eq!(
        count(
            &s.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'sign_in.failed'"
        )
        .await,
        5,
        "failed attempts are audited"
    );

    // After the window has passed, the right password works again.
    sqlx::query("UPDATE auth_attempts SET at = at - interval '16 minutes'")
        .execute(&s.pool)
        .await
        .unwrap();
    let later = PortalClient::new(s.portal.base_url());
    assert_eq!(
        later
            .sign_in("alice@example.org", PASSWORD)
            .await
            .location
            .as_deref(),
        Some("/groups")
    );
}

#[tokio::test]
async fn changing_the_password_signs_out_other_devices() {
    let s = setup().await;
    let laptop = PortalClient::new(s.portal.base_url());
    laptop.sign_up("alice@example.org", PASSWORD).await;
    let phone = PortalClient::new(s.portal.base_url());
    phone.sign_in("alice@example.org", PASSWORD).await;
    phone.page("/groups").await;

    // Wrong current password, mismatched and too short new ones: refused, nothing changes.
    for (current, new, confirm, problem) in [
        (
            "wrong password!",
            "a brand new passphrase",
            "a brand new passphrase",
            "This is not your current password.",
        ),
        (
            PASSWORD,
            "a brand new passphrase",
            "a different passphrase",
            "The two new passwords are not the same.",
        ),
        (
            PASSWORD,
            "short",
            "short",
            "Choose a password of at least 10 characters.",
        ),
    ] {
        laptop
            .submit(
                "/account/password",
                &[
                    ("current_password", current),
                    ("new_password", new),
                    ("new_password_confirm", confirm),
                ],
            )
            .await;
        let text = visible_text(&laptop.page("/account").await);
        assert!(text.contains(problem), "{problem}: {text}");
    }
    phone.page("/groups").await;

    let posted = laptop
        .submit(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
                ("new_password_confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(posted.location.as_deref(), Some("/account"));
    assert!(visible_text(&laptop.page("/account").await).contains("Your password was changed"));
    let (_, path, _) = phone.get("/groups").await;
    assert!(
        path.starts_with("/signin"),
        "the other session ended: {path}"
    );
    let fresh = PortalClient::new(s.portal.base_url());
    assert_eq!(
        fresh
            .sign_in("alice@example.org", PASSWORD)
            .await
            .location
            .as_deref(),
        Some("/signin?next=/groups")
    );
    assert_eq!(
        fresh
            .sign_in("alice@example.org", "a brand new passphrase")
            .await
            .location
            .as_deref(),
        Some("/groups")
    );
}

#[tokio::test]
async fn deleting_an_account_removes_its_data() {
    let s = setup().await;
    let alice = PortalClient::new(s.portal.base_url());
    alice.sign_up("alice@example.org", PASSWORD).await;
    let bob = PortalClient::new(s.portal.base_url());
    bob.sign_up("bob@example.org", PASSWORD).await;
    let _alone = alice.create_group("Only Alice").await;
    let shared = alice.create_group("Shared").await;

    // Bob joins the shared group through an invite.
    alice
        .submit(&format!("/groups/{shared}/invites"), &[])
        .await;
    let body = alice.page(&format!("/groups/{shared}")).await;
    let link = invite_path(&body);
    assert_eq!(
        bob.submit(&link, &[]).await.location,
        Some(format!("/groups/{shared}"))
    );

    // Alice is the only owner of a group Bob is in: deletion is refused and explained.
    alice
        .submit("/account/delete", &[("delete_password", PASSWORD)])
        .await;
    let text = visible_text(&alice.page("/account").await);
    assert!(text.contains("You are the only owner of Shared"), "{text}");
    assert_eq!(count(&s.pool, "SELECT count(*) FROM accounts").await, 2);

    // A wrong password is refused.
    alice
        .submit("/account/delete", &[("delete_password", "not my password")])
        .await;
    assert!(visible_text(&alice.page("/account").await).contains("This is not your password."));

    // Make Bob an owner; now Alice can go, taking only what was hers.
    let bob_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM accounts WHERE email = 'bob@example.org'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    alice
        .submit(
            &format!("/groups/{shared}/members/{bob_id}/role"),
            &[("role", "owner")],
        )
        .await;
    let posted = alice
        .submit("/account/delete", &[("delete_password", PASSWORD)])
        .await;
    assert_eq!(posted.location.as_deref(), Some("/"));
    assert_eq!(
        count(
            &s.pool,
            "SELECT count(*) FROM accounts WHERE email = 'alice@example.org'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &s.pool,
            "SELECT count(*) FROM groups WHERE name = 'Only Alice'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&s.pool, "SELECT count(*) FROM groups WHERE name = 'Shared'").await,
        1
    );
    assert_eq!(
        count(
            &s.pool,
            "SELECT count(*) FROM auth_attempts WHERE email = 'alice@example.org'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &s.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'account.deleted' AND actor IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        alice
            .sign_in("alice@example.org", PASSWORD)
            .await
            .location
            .as_deref(),
        Some("/signin?next=/groups")
    );
}

/// The path of the invite link shown once after creating it.
pub fn invite_path(body: &str) -> String {
    let start = body.find("/invite/").expect("an invite link on the page");
    let rest = &body[start..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[tokio::test]
async fn bad_input_on_account_forms_is_explained_and_stores_nothing() {
    let s = setup().await;
    let client = PortalClient::new(s.portal.base_url());
    let long = "x".repeat(300);
    let huge = "y".repeat(70 * 1024);
    let script = "<script>alert(1)</script>@example.org";
    let cases: &[(&str, &str, &str, &str)] = &[
        ("", PASSWORD, PASSWORD, "Enter your e-mail address."),
        (
            "not-an-address",
            PASSWORD,
            PASSWORD,
            "does not look like an e-mail address",
        ),
        (
            script,
            PASSWORD,
            PASSWORD,
            "does not look like an e-mail address",
        ),
        (
            &long,
            PASSWORD,
            PASSWORD,
            "That e-mail address is too long.",
        ),
        (
            "carol@example.org",
            "short",
            "short",
            "at least 10 characters",
        ),
        (
            "carol@example.org",
            "          ",
            "          ",
            "spaces only",
        ),
        ("carol@example.org", &long, &long, "at most 256 characters"),
        (
            "carol@example.org",
            PASSWORD,
            "something else entirely",
            "The two passwords are not the same.",
        ),
        (
            "carol@example.org",
            "carol@example.org",
            "carol@example.org",
            "must not be your e-mail address",
        ),
    ];
    for (email, password, confirm, problem) in cases {
        let posted = client
            .post(
                "/signup",
                &[
                    ("email", email),
                    ("password", password),
                    ("password_confirm", confirm),
                ],
            )
            .await;
        assert_eq!(posted.status, StatusCode::SEE_OTHER, "{problem}");
        let (_, _, body) = client.get("/signup").await;
        let text = visible_text(&body);
        assert!(text.contains(problem), "expected {problem:?} in {text}");
        assert!(
            !body.contains("<script>alert(1)"),
            "typed HTML comes back escaped"
        );
    }
    assert_eq!(count(&s.pool, "SELECT count(*) FROM accounts").await, 0);

    // A body far beyond any form is refused before it is parsed.
    let posted = client
        .post("/signup", &[("email", &huge), ("password", PASSWORD)])
        .await;
    assert_eq!(posted.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Not a form at all.
    let response = client
        .http
        .post(s.portal.url("/signin"))
        .header("content-type", "application/json")
        .body("{\"email\":\"a\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Sign-in with empty or absurd fields says what to do.
    client.post("/signin", &[]).await;
    assert!(visible_text(&client.get("/signin").await.2)
        .contains("Enter your e-mail address and your password."));
    // A `next` that points off-site is ignored.
    client.sign_up("dave@example.org", PASSWORD).await;
    let posted = client
        .post(
            "/signin",
            &[
                ("email", "dave@example.org"),
                ("password", PASSWORD),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(posted.location.as_deref(), Some("/groups"));
}
