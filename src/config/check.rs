//! What a section's own checks are written with: the invalid field (by the path users see) and
//! small predicates. A leaf: the sections import it, it imports none of them.

/// A field, by the path users see, and what is wrong with it.
#[derive(Debug)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

/// `Ok` when `ok`, else the field `at.key` (or `key` alone at the top level) is invalid.
pub(super) fn ensure(ok: bool, at: &str, key: &str, message: impl Into<String>) -> Result<(), Invalid> {
    if ok {
        return Ok(());
    }
    let field = match (at.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (false, true) => at.to_string(),
        (false, false) => format!("{at}.{key}"),
    };
    Err(Invalid { field, message: message.into() })
}

/// `x > 0`, false for NaN.
pub(super) fn positive(x: f64) -> bool {
    x > 0.0
}

/// `x >= 0`, false for NaN.
pub(super) fn non_negative(x: f64) -> bool {
    x >= 0.0
}

/// An `http(s)://host...` URL.
pub(super) fn http_url(s: &str) -> bool {
    matches!(reqwest::Url::parse(s), Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some())
}
