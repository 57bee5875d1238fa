//! Addresses from SMTP commands and header fields.
//!
//! Upstream compares the `From:` address with the envelope sender case-insensitively and
//! takes the first address of the field (research/chatmail.md §1.3). This reads the
//! RFC 5322 shapes that occur: `addr`, `Name <addr>`, `"Quoted, Name" <addr>`, comments,
//! several addresses, and groups (`team: a@x, b@y;`, first member).

/// The envelope address inside `<...>` (or the bare word), lower-cased; `<>` gives "".
pub fn envelope_address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = match (arg.find('<'), arg.rfind('>')) {
        (Some(open), Some(close)) if open < close => &arg[open + 1..close],
        _ => arg.split_whitespace().next().unwrap_or(""),
    };
    inner.trim().to_ascii_lowercase()
}

/// The first address of a header field value (unfolded), lower-cased. `None` if there is
/// no address (empty value, empty group, or no `@`).
pub fn first_address(value: &str) -> Option<String> {
    let mut depth = 0u32; // comment nesting
    let mut quoted = false;
    let mut escaped = false;
    let mut token = String::new();
    let mut angle: Option<String> = None;
    for c in value.chars() {
        if escaped {
            escaped = false;
            if angle.is_none() && !quoted && depth == 0 {
                token.push(c);
            } else if let Some(a) = angle.as_mut() {
                a.push(c);
            }
            continue;
        }
        if let Some(a) = angle.as_mut() {
            match c {
                '>' => return finish(a),
                _ => a.push(c),
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if quoted || depth > 0 => {}
            '<' => angle = Some(String::new()),
            // A group name ends: the members follow.
            ':' => token.clear(),
            ',' | ';' => {
                if let Some(addr) = finish(&token) {
                    return Some(addr);
                }
                token.clear();
            }
            _ => token.push(c),
        }
    }
    match angle {
        Some(a) => finish(&a),
        None => finish(&token),
    }
}

fn finish(candidate: &str) -> Option<String> {
    let addr: String = candidate.split_whitespace().collect();
    (addr.contains('@')).then(|| addr.to_ascii_lowercase())
}

/// The domain of an address (after the last `@`).
pub fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope() {
        assert_eq!(envelope_address("<Alice@Example.ORG>"), "alice@example.org");
        assert_eq!(envelope_address("<>"), "");
        assert_eq!(envelope_address("bob@x.y SIZE=10"), "bob@x.y");
    }

    #[test]
    fn header_forms() {
        for (value, expected) in [
            ("a@b.example", Some("a@b.example")),
            ("Alice <Alice@B.Example>", Some("alice@b.example")),
            (
                "\"Doe, Jane\" <jane@x.example>, other@y.example",
                Some("jane@x.example"),
            ),
            ("first@x.example, second@y.example", Some("first@x.example")),
            (
                "(comment <no@no.example>) real@x.example",
                Some("real@x.example"),
            ),
            ("team: one@x.example, two@x.example;", Some("one@x.example")),
            ("undisclosed-recipients:;", None),
            ("", None),
            ("no address here", None),
            (
                "\"quoted <fake@evil.example>\" <true@x.example>",
                Some("true@x.example"),
            ),
        ] {
            assert_eq!(first_address(value).as_deref(), expected, "{value}");
        }
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("a@b.example"), "b.example");
        assert_eq!(domain_of("a@[127.0.0.1]"), "[127.0.0.1]");
        assert_eq!(domain_of("nodomain"), "");
    }
}
