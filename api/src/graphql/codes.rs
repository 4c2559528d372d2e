//! Gives every error in a response an `extensions.code`, so clients can branch on it.
//!
//! Our own errors already carry one ([`crate::error::ApiError`]). What is left comes from
//! async-graphql itself: a document that fails validation or selects no operation, and
//! argument values that cannot be coerced (a malformed UUID), which are the client's
//! input errors. This runs once over a finished response, not as an extension: an
//! extension's per-field hook costs every field of every response.

use async_graphql::{Response, ServerError};

/// A request over one of the limits: depth, complexity, aliases, root fields, size.
pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";

/// Codes every error of `response` that has none yet.
pub fn assign(response: &mut Response) {
    for error in &mut response.errors {
        // async-graphql's own messages (the version is pinned; tests check each code).
        let code = if !error.path.is_empty() {
            // A field failed without one of our errors: async-graphql rejected an argument.
            BAD_USER_INPUT
        } else if error.message.starts_with("Variable \"$") {
            // Variable coercion: a required variable left out, or a value of the wrong type.
            BAD_USER_INPUT
        } else if error.message.starts_with("Query is too complex") {
            QUERY_TOO_COMPLEX
        } else {
            GRAPHQL_VALIDATION_FAILED
        };
        set_code_if_missing(error, code);
    }
}

/// Whether async-graphql refused the document for its depth: its depth limit, or the
/// nesting of selection sets, fragments included, past its recursion limit.
pub fn is_depth_error(error: &ServerError) -> bool {
    error.message.starts_with("Query is nested too deep")
        || error.message.starts_with("The recursion depth of the query")
}

/// A request error with this code.
pub fn error(message: impl Into<String>, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    set_code_if_missing(&mut error, code);
    error
}

/// The `extensions.code` of an error, if it has one.
pub fn code_of(error: &ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code),
        _ => None,
    }
}

pub fn set_code_if_missing(error: &mut ServerError, code: &str) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
}
