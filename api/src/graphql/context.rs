//! What every resolver can reach: the services shared for the life of the server, and
//! the caller and loaders of the request being executed.

use std::sync::Arc;

use async_graphql::Context;
use sea_orm::DatabaseConnection;

use super::loader::Loaders;
use crate::{auth::Caller, cache::UserCache, events::EventBus};

/// What the resolvers share for the life of the server.
#[derive(Clone)]
pub struct Services {
    /// The connection pool; cheap to clone.
    pub db: DatabaseConnection,
    /// Read through by the user loaders; invalidated by writes after they commit.
    pub cache: UserCache,
    /// Where committed writes are announced to subscribers.
    pub events: EventBus,
}

/// The shared services; every schema that executes requests is built with them.
pub(super) fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

/// This request's loaders; `Executor::execute` attaches a fresh set to every request.
pub(super) fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Arc<Loaders>>()
}

/// Who this request acts for; `Executor::execute` attaches it to every request.
pub(super) fn caller(ctx: &Context<'_>) -> Caller {
    *ctx.data_unchecked::<Caller>()
}
