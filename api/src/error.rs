//! The error type of the API and the GraphQL code each variant shows a client.
//!
//! Every error a resolver returns goes through [`ApiError`], so each one carries an
//! `extensions.code`. Database and infrastructure detail is logged, never sent.

use async_graphql::ErrorExtensions as _;
use sea_orm::{DbErr, SqlErr};

/// What went wrong, in terms a client developer can act on.
///
/// Deliberately not `Display`: async-graphql turns any `Display` error into a message
/// without a code, so leaving it out makes `?` in a resolver go through our conversion,
/// which always sets `extensions.code`.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// `BAD_USER_INPUT`: the request is well-formed GraphQL but a value is not acceptable
    /// (a malformed id or cursor, an invalid email, `first` out of range…).
    BadUserInput(String),
    /// `NOT_FOUND`: a mutation names a row that does not exist.
    NotFound(String),
    /// `CONFLICT`: the write would break a uniqueness rule (an email already taken).
    Conflict(String),
    /// `FORBIDDEN`: the access rules do not let this caller do this; nothing was changed.
    Forbidden(String),
    /// `SERVICE_UNAVAILABLE`: the database cannot be reached or no connection came free
    /// within the timeout. Retrying later may succeed.
    Unavailable,
    /// `INTERNAL_SERVER_ERROR`: our fault, or the database's. The detail is logged when
    /// the error is made; the client only learns that it happened.
    Internal(std::sync::Arc<anyhow::Error>),
}

impl ApiError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadUserInput(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        tracing::error!(error = format!("{error:#}"), "internal error");
        Self::Internal(std::sync::Arc::new(error))
    }

    /// What the client reads in `message`.
    pub fn message(&self) -> &str {
        match self {
            Self::BadUserInput(m) | Self::NotFound(m) | Self::Conflict(m) | Self::Forbidden(m) => m,
            Self::Unavailable => "the database is unavailable or overloaded: try again shortly",
            Self::Internal(_) => "internal server error",
        }
    }

    /// The value of `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Unavailable => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(error: DbErr) -> Self {
        if is_unavailable(&error) {
            tracing::warn!(error = %error, "database unavailable");
            return Self::Unavailable;
        }
        Self::internal(error)
    }
}

/// Whether the database could not be reached (down, restarting, pool exhausted), as
/// opposed to a statement that failed.
fn is_unavailable(error: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error};
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            Error::Io(_) | Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed => true,
            // PostgreSQL: 08xxx connection exceptions, 57P0x shutting down or restarting.
            Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")),
            _ => false,
        },
        _ => false,
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        async_graphql::Error::new(error.message()).extend_with(|_, e| e.set("code", error.code()))
    }
}

/// For commands (the seed) that report errors with `anyhow`.
impl From<ApiError> for anyhow::Error {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Internal(inner) => anyhow::anyhow!("{inner:#}"),
            other => anyhow::anyhow!("{}: {}", other.code(), other.message()),
        }
    }
}

/// Turns the constraint violations a client can cause into the error that names them.
pub trait DbResultExt<T> {
    /// A unique violation becomes `CONFLICT` with `message`; anything else is internal.
    fn on_unique(self, message: impl FnOnce() -> String) -> Result<T, ApiError>;
}

impl<T> DbResultExt<T> for Result<T, DbErr> {
    fn on_unique(self, message: impl FnOnce() -> String) -> Result<T, ApiError> {
        self.map_err(|error| match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => ApiError::Conflict(message()),
            _ => ApiError::from(error),
        })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
