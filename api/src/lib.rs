//! Quill: a GraphQL API server for users, their profiles and their posts.

/// The process's allocator: mimalloc, through its plain functions where they suffice.
pub mod allocator;
/// Bearer tokens verified into the caller a request acts for.
pub mod auth;
/// The user cache: Redis, in-process, or off; fail-open.
pub mod cache;
/// The typed settings of every command.
pub mod config;
/// Accepting, bounding and timing out client connections.
pub mod connections;
/// The connection pool and migrations at start.
pub mod db;
/// The error type and the GraphQL code of each variant.
pub mod error;
/// Committed changes announced to subscribers, through Redis or in process.
pub mod events;
/// Schema, roots, object types and DataLoaders.
pub mod graphql;
/// Routes, GraphiQL, probes, metrics and layers.
pub mod http;
/// Keyset page requests and opaque cursors.
pub mod pagination;
/// Persisted queries (Apollo's APQ) and their store.
pub mod persisted;
/// The GraphiQL playground, embedded.
pub mod playground;
/// The SQL, one module per aggregate.
pub mod repo;
/// `api seed`: batched sample data.
pub mod seed;
/// Building, serving and draining the application.
pub mod startup;
/// Subscriptions over WebSocket: the protocols and the instance's hub.
pub mod subscriptions;
/// Logs and Prometheus metrics.
pub mod telemetry;
/// Checks on client input.
pub mod validate;

/// Rows by their key, as the cache and the repositories hand them to the loaders: the map
/// a loader returns (`LoadedMap`, hashed with foldhash, seeded at random), so a batch's rows
/// become its answer without being copied into another map. SipHash, the standard
/// library's, cost 1.5% of a q1's instructions for keys hashed several times on their way.
pub type KeyedMap<K, V> = async_graphql::dataloader::LoadedMap<K, V>;
