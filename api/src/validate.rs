//! Checks on client-supplied values, each failing with a `BAD_USER_INPUT` message that
//! names the field. Run before any write so bad input writes nothing.

use crate::error::{ApiError, ApiResult};

pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_TITLE_LEN: usize = 300;
pub const MAX_CONTENT_LEN: usize = 100_000;
/// Also enforced by a `CHECK` in the schema, the backstop for writes that skip the API.
pub const MAX_BIO_LEN: usize = 2_000;

/// Trims and lower-cases an email and checks that it is a plausible address.
pub fn email(raw: &str) -> ApiResult<String> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err(ApiError::bad_input("`email` must not be empty"));
    }
    if email.chars().count() > MAX_EMAIL_LEN {
        return Err(ApiError::bad_input(format!("`email` must be at most {MAX_EMAIL_LEN} characters")));
    }
    let parsed: email_address::EmailAddress = email
        .parse()
        .map_err(|_| ApiError::bad_input(format!("`email` is not a valid address: {}", shown(raw))))?;
    // The RFC allows addresses no mail system delivers to (`a@b`, quoted locals, IP
    // literals); require a dotted domain, as users expect.
    let domain = parsed.domain();
    if !domain.contains('.') || domain.starts_with('[') || parsed.local_part().starts_with('"') {
        return Err(ApiError::bad_input(format!("`email` is not a valid address: {}", shown(raw))));
    }
    Ok(email)
}

/// A display name: trimmed; blank means no name.
pub fn name(raw: Option<String>) -> ApiResult<Option<String>> {
    let Some(name) = raw.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    at_most("name", &name, MAX_NAME_LEN)?;
    Ok(Some(name))
}

/// A post title: trimmed and required.
pub fn title(raw: &str) -> ApiResult<String> {
    let title = raw.trim().to_owned();
    if title.is_empty() {
        return Err(ApiError::bad_input("`title` must not be empty"));
    }
    at_most("title", &title, MAX_TITLE_LEN)?;
    Ok(title)
}

/// Post content: kept as written, bounded in size.
pub fn content(raw: Option<String>) -> ApiResult<Option<String>> {
    if let Some(content) = &raw {
        at_most("content", content, MAX_CONTENT_LEN)?;
    }
    Ok(raw)
}

/// A profile bio: kept as written, bounded in size.
pub fn bio(raw: Option<String>) -> ApiResult<Option<String>> {
    if let Some(bio) = &raw {
        at_most("bio", bio, MAX_BIO_LEN)?;
    }
    Ok(raw)
}

fn at_most(field: &str, value: &str, max: usize) -> ApiResult<()> {
    // Text columns may not hold NUL in PostgreSQL; reject it for every backend alike.
    if value.contains('\0') {
        return Err(ApiError::bad_input(format!("`{field}` must not contain NUL characters")));
    }
    if value.chars().count() > max {
        return Err(ApiError::bad_input(format!("`{field}` must be at most {max} characters")));
    }
    Ok(())
}

/// The start of a client's value, for an error message.
fn shown(raw: &str) -> String {
    let mut s: String = raw.chars().take(80).collect();
    if s.len() < raw.len() {
        s.push('…');
    }
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(email("  Ada@Example.COM ").unwrap(), "ada@example.com");
    }

    #[test]
    fn implausible_emails_are_rejected() {
        for bad in
            ["", "   ", "ada", "ada@", "@example.com", "ada@localhost", "a b@example.com", "ada@@example.com"]
        {
            assert!(email(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(email(&long).is_err());
    }

    #[test]
    fn blank_names_mean_no_name() {
        assert_eq!(name(Some("  ".into())).unwrap(), None);
        assert_eq!(name(Some(" Ada ".into())).unwrap(), Some("Ada".into()));
        assert!(name(Some("x".repeat(201))).is_err());
    }

    #[test]
    fn text_with_nul_is_rejected() {
        assert!(title("a\0b").is_err());
    }
}
