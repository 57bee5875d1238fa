//! Password hashing (argon2id) and the rules a new password must meet.
//!
//! Hashing is deliberately slow, so it runs on the blocking thread pool, never on the
//! threads that serve requests.

use argon2::{
    password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier},
    Argon2,
};

pub const MIN_LENGTH: usize = 10;
/// Long enough for any passphrase, short enough that hashing it is no denial of service.
pub const MAX_LENGTH: usize = 256;

/// Why a new password is refused, in words for the person choosing it.
pub fn check_new(password: &str, email: &str) -> Result<(), &'static str> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err("Choose a password of at least 10 characters.");
    }
    if length > MAX_LENGTH {
        return Err("Choose a password of at most 256 characters.");
    }
    if password.trim().is_empty() {
        return Err("A password cannot consist of spaces only.");
    }
    if password.eq_ignore_ascii_case(email) {
        return Err("Your password must not be your e-mail address.");
    }
    Ok(())
}

pub async fn hash(password: &str) -> String {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        // A fresh random salt each time (the crate draws it from the OS).
        Argon2::default()
            .hash_password(password.as_bytes())
            .expect("argon2 with default parameters cannot fail")
            .to_string()
    })
    .await
    .expect("hashing task")
}

/// Verifies `password` against a stored PHC string. With no stored hash (unknown account)
/// it still spends the same time, so response times do not reveal which accounts exist.
pub async fn verify(password: &str, stored: Option<String>) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let (stored, known) = match stored {
            Some(stored) => (stored, true),
            None => (dummy_hash().to_string(), false),
        };
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && known
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"no account has this password")
            .expect("argon2")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash("correct horse battery").await;
        let b = hash("correct horse battery").await;
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(a.clone())).await);
        assert!(!verify("wrong horse battery", Some(a)).await);
        assert!(!verify("anything", None).await);
        assert!(!verify("anything", Some("garbage".into())).await);
    }

    #[test]
    fn new_password_rules() {
        assert!(check_new("short", "a@b.example").is_err());
        assert!(check_new(&"x".repeat(257), "a@b.example").is_err());
        assert!(check_new("          ", "a@b.example").is_err());
        assert!(check_new("me@example.org", "ME@example.org").is_err());
        assert!(check_new("a good long passphrase", "a@b.example").is_ok());
    }
}
