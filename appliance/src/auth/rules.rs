//! Upstream chatmail's rules for creating an account on first login, as pure functions.
//!
//! A relay has no sign-up form: the first login with an unknown address creates the account,
//! if the address and password pass these rules (research/chatmail.md §1.2,
//! `is_allowed_to_create` and `has_sufficient_resources`). Keeping them free of I/O lets the
//! web server's `/new` and the auth service apply the same rules and lets tests cover each
//! one without a socket.

use chatmail_shared::config::Limits;

/// Why an account was not created (or a login refused). `label()` names it in metrics and
/// logs; nothing of this reaches the client, which only learns that the login failed, as
/// upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Not `local@domain` with exactly one `@`, or contains `/`.
    InvalidAddress,
    /// The domain is not the relay's.
    ForeignDomain,
    /// New accounts are switched off (config or the `nocreate` file).
    RegistrationClosed,
    /// Password shorter than `password_min_length`.
    PasswordTooShort,
    /// Local part shorter than `username_min_length`.
    UsernameTooShort,
    /// Local part longer than `username_max_length`.
    UsernameTooLong,
    /// Local part has a character outside `[a-z0-9._-]`.
    UsernameInvalidCharacters,
    /// Less available memory than the minimum.
    LowMemory,
    /// Less free disk space than the minimum.
    LowDisk,
    /// 1-minute load average above the maximum.
    HighLoad,
    /// The account exists and the password does not match.
    WrongPassword,
    /// The account store failed; the client may retry.
    StoreUnavailable,
}

impl Refusal {
    /// Every variant, for metrics initialisation.
    pub const ALL: [Refusal; 12] = [
        Refusal::InvalidAddress,
        Refusal::ForeignDomain,
        Refusal::RegistrationClosed,
        Refusal::PasswordTooShort,
        Refusal::UsernameTooShort,
        Refusal::UsernameTooLong,
        Refusal::UsernameInvalidCharacters,
        Refusal::LowMemory,
        Refusal::LowDisk,
        Refusal::HighLoad,
        Refusal::WrongPassword,
        Refusal::StoreUnavailable,
    ];

    /// A short snake_case name for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::InvalidAddress => "invalid_address",
            Refusal::ForeignDomain => "foreign_domain",
            Refusal::RegistrationClosed => "registration_closed",
            Refusal::PasswordTooShort => "password_too_short",
            Refusal::UsernameTooShort => "username_too_short",
            Refusal::UsernameTooLong => "username_too_long",
            Refusal::UsernameInvalidCharacters => "username_invalid_characters",
            Refusal::LowMemory => "low_memory",
            Refusal::LowDisk => "low_disk",
            Refusal::HighLoad => "high_load",
            Refusal::WrongPassword => "wrong_password",
            Refusal::StoreUnavailable => "store_unavailable",
        }
    }

    /// Whether this refusal is about creating a new account (as opposed to a failed login
    /// of an existing one).
    pub fn is_creation_refusal(self) -> bool {
        !matches!(
            self,
            Refusal::WrongPassword | Refusal::StoreUnavailable | Refusal::ForeignDomain
        )
    }
}

/// An address split into local part and domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address<'a> {
    /// Before the `@`.
    pub local: &'a str,
    /// After the `@`.
    pub domain: &'a str,
}

/// Splits `addr` and checks that it belongs to `mail_domain` (upstream: `get_user` refuses
/// empty addresses, addresses without `@` and any `/`; `handle_lookup` checks the domain).
/// The domain comparison ignores ASCII case, as DNS does.
pub fn parse_address<'a>(addr: &'a str, mail_domain: &str) -> Result<Address<'a>, Refusal> {
    if addr.contains('/') || addr.chars().any(char::is_control) {
        return Err(Refusal::InvalidAddress);
    }
    let mut parts = addr.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Refusal::InvalidAddress);
    };
    if local.is_empty() || domain.is_empty() {
        return Err(Refusal::InvalidAddress);
    }
    if !domain.eq_ignore_ascii_case(mail_domain) {
        return Err(Refusal::ForeignDomain);
    }
    Ok(Address { local, domain })
}

/// Upstream's `is_allowed_to_create`, without the `nocreate` switch (checked by the caller,
/// which owns the file system): password length, then local-part length, then its
/// characters (`^[a-z0-9._-]+$`).
pub fn check_new_account(limits: &Limits, local: &str, password: &str) -> Result<(), Refusal> {
    if password.chars().count() < limits.password_min_length as usize {
        return Err(Refusal::PasswordTooShort);
    }
    let len = local.chars().count();
    if len < limits.username_min_length as usize {
        return Err(Refusal::UsernameTooShort);
    }
    if len > limits.username_max_length as usize {
        return Err(Refusal::UsernameTooLong);
    }
    if !local
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Refusal::UsernameInvalidCharacters);
    }
    Ok(())
}

/// Characters of the local part `/new` generates (upstream: `secrets.choice` over
/// `[a-z0-9]`, research/chatmail.md §1.8).
pub const GENERATED_LOCAL_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Characters of the password `/new` generates (upstream: ASCII letters, digits and
/// punctuation).
pub const GENERATED_PASSWORD_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Length of the password `/new` generates: upstream's `password_min_length + 3`.
pub fn generated_password_len(limits: &Limits) -> usize {
    limits.password_min_length as usize + 3
}

/// Length of the local part `/new` generates: upstream's `username_max_length`.
pub fn generated_local_len(limits: &Limits) -> usize {
    limits.username_max_length as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn upstream_defaults_accept_nine_chars() {
        assert_eq!(
            check_new_account(&limits(), "abc.de-f_", "123456789"),
            Ok(())
        );
    }

    #[test]
    fn each_rule() {
        let l = limits();
        assert_eq!(
            check_new_account(&l, "abcdefghi", "12345678"),
            Err(Refusal::PasswordTooShort)
        );
        assert_eq!(
            check_new_account(&l, "abcdefgh", "123456789"),
            Err(Refusal::UsernameTooShort)
        );
        assert_eq!(
            check_new_account(&l, "abcdefghij", "123456789"),
            Err(Refusal::UsernameTooLong)
        );
        for bad in ["Abcdefghi", "abcd+efgh", "abcd efgh", "abcdéfghi"] {
            assert_eq!(
                check_new_account(&l, bad, "123456789"),
                Err(Refusal::UsernameInvalidCharacters),
                "{bad}"
            );
        }
        // The password is checked first, as upstream.
        assert_eq!(
            check_new_account(&l, "A", "short"),
            Err(Refusal::PasswordTooShort)
        );
    }

    #[test]
    fn addresses() {
        let d = "chat.example.org";
        assert_eq!(
            parse_address("abc@chat.example.org", d),
            Ok(Address {
                local: "abc",
                domain: "chat.example.org"
            })
        );
        assert!(parse_address("abc@CHAT.example.org", d).is_ok());
        assert_eq!(parse_address("abc", d), Err(Refusal::InvalidAddress));
        assert_eq!(
            parse_address("a@b@chat.example.org", d),
            Err(Refusal::InvalidAddress)
        );
        assert_eq!(
            parse_address("../x@chat.example.org", d),
            Err(Refusal::InvalidAddress)
        );
        assert_eq!(
            parse_address("@chat.example.org", d),
            Err(Refusal::InvalidAddress)
        );
        assert_eq!(
            parse_address("abc@other.example.org", d),
            Err(Refusal::ForeignDomain)
        );
    }

    #[test]
    fn generated_sizes_pass_the_rules() {
        let l = limits();
        assert_eq!(generated_password_len(&l), 12);
        assert_eq!(generated_local_len(&l), 9);
        assert!(GENERATED_LOCAL_CHARS.iter().all(|&c| check_new_account(
            &l,
            &(c as char).to_string().repeat(9),
            "123456789"
        )
        .is_ok()));
    }
}
