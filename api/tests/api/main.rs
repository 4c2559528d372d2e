//! Black-box tests of Quill over HTTP, each against a fresh database: SQLite always,
//! PostgreSQL as well when `TEST_POSTGRES_URL` is set.

mod helpers;

mod access;
mod bad_input;
mod cache;
mod conformance;
mod connections;
mod cors;
mod fast_path;
mod faults;
mod hostile;
mod http;
mod limits;
mod mutations;
mod pagination;
mod persisted;
mod queries;
mod repository;
mod round_trips;
mod schema;
mod seed;
mod sql_statements;
mod subscriptions;
mod tokens;
mod vendored;
