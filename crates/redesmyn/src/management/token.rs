//! The management token: every call carries `Authorization: Bearer <token>`,
//! compared in constant time (`subtle`), so response times do not tell how
//! much of a guess was right.

use subtle::ConstantTimeEq;

/// What a request's `Authorization` header amounts to.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// No `Authorization: Bearer ...` header: 401.
    Missing,
    /// A bearer token that is not the configured one: 403.
    Denied,
}

/// Checks an `Authorization` header value against `token`.
pub fn check(header: Option<&str>, token: &str) -> Access {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim) else {
        return Access::Missing;
    };
    // `ct_eq` on slices of different lengths is false at once: only the
    // length can be learnt, never the content.
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        Access::Granted
    } else {
        Access::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_needs_the_exact_bearer_token() {
        assert_eq!(check(Some("Bearer s3cret"), "s3cret"), Access::Granted);
        assert_eq!(check(None, "s3cret"), Access::Missing);
        assert_eq!(check(Some("Basic czNjcmV0"), "s3cret"), Access::Missing);
        assert_eq!(check(Some("Bearer s3cre"), "s3cret"), Access::Denied);
        assert_eq!(check(Some("Bearer s3cret2"), "s3cret"), Access::Denied);
        assert_eq!(check(Some("Bearer "), "s3cret"), Access::Denied);
    }
}
