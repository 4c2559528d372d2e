//! Gives every error in a response an `extensions.code`, so clients can branch on it.
//!
//! Our own errors already carry one ([`crate::error::ApiError`]). What is left comes from
//! async-graphql itself: a query that does not parse, one that fails validation, and
//! argument values that cannot be coerced (a malformed UUID), which are the client's
//! input errors.

use std::sync::Arc;

use async_graphql::{
    Response, ServerError, ServerResult, ValidationResult, Value,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextResolve,
        NextValidation, ResolveInfo,
    },
    parser::types::ExecutableDocument,
};

/// A request over one of the limits: depth, complexity, aliases, root fields, size.
pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        // Whatever is still uncoded failed before execution: an unknown operation name, a
        // mutation where none is allowed…
        for error in &mut response.errors {
            ensure_code(error, "BAD_REQUEST");
        }
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &async_graphql::Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|mut error| {
            ensure_code(&mut error, "GRAPHQL_PARSE_FAILED");
            error
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errors| {
            for error in &mut errors {
                // async-graphql's own limit errors (the version is pinned; a test checks).
                let over_limit = error.message.starts_with("Query is nested too deep")
                    || error.message.starts_with("Query is too complex");
                ensure_code(error, if over_limit { QUERY_TOO_COMPLEX } else { "GRAPHQL_VALIDATION_FAILED" });
            }
            errors
        })
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        next.run(ctx, info).await.map_err(|mut error| {
            // Resolvers only return `ApiError`s, which are coded; an uncoded error here is
            // async-graphql rejecting an argument value.
            ensure_code(&mut error, "BAD_USER_INPUT");
            error
        })
    }
}

fn ensure_code(error: &mut ServerError, code: &str) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
}
