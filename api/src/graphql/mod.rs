//! The GraphQL layer: schema, roots, object types, input types, loaders and error codes.
//! Resolvers read the context, call a loader or a repository, and map the error.

pub mod codes;
mod context;
mod documents;
mod limits;
mod loader;
mod mutation;
mod policy;
mod query;
mod schema;
mod subscription;
mod types;

pub use context::Services;
pub use limits::Limits;
pub use schema::{Executor, sdl};
