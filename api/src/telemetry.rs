//! Logs and metrics: the tracing subscriber, the Prometheus recorder and the counters
//! the rest of the code records into.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

pub const DB_QUERIES_TOTAL: &str = "db_queries_total";
pub const DB_QUERY_ERRORS_TOTAL: &str = "db_query_errors_total";
pub const DB_QUERY_DURATION: &str = "db_query_duration_seconds";
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
pub const DB_POOL_IDLE_CONNECTIONS: &str = "db_pool_idle_connections";
pub const GRAPHQL_REQUESTS_TOTAL: &str = "graphql_requests_total";
pub const GRAPHQL_ERRORS_TOTAL: &str = "graphql_errors_total";
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
pub const CACHE_HITS_TOTAL: &str = "cache_hits_total";
pub const CACHE_MISSES_TOTAL: &str = "cache_misses_total";
pub const CACHE_ERRORS_TOTAL: &str = "cache_errors_total";
pub const HTTP_CONNECTIONS_OPEN: &str = "http_connections_open";
pub const HTTP_CONNECTIONS_REFUSED_TOTAL: &str = "http_connections_refused_total";
pub const HTTP_CONNECTIONS_CLOSED_TOTAL: &str = "http_connections_closed_total";
pub const HTTP_ACCEPT_ERRORS_TOTAL: &str = "http_accept_errors_total";
pub const HTTP_REQUESTS_SHED_TOTAL: &str = "http_requests_shed_total";
pub const WEBSOCKETS_OPEN: &str = "websocket_connections_open";
pub const WEBSOCKETS_REFUSED_TOTAL: &str = "websocket_connections_refused_total";
pub const WEBSOCKETS_CLOSED_TOTAL: &str = "websocket_connections_closed_total";
pub const SUBSCRIPTIONS_ACTIVE: &str = "subscriptions_active";
pub const EVENTS_PUBLISHED_TOTAL: &str = "events_published_total";
pub const EVENTS_PUBLISH_ERRORS_TOTAL: &str = "events_publish_errors_total";
pub const EVENTS_RECEIVED_TOTAL: &str = "events_received_total";
pub const EVENTS_DELIVERED_TOTAL: &str = "events_delivered_total";
pub const EVENTS_DROPPED_TOTAL: &str = "events_dropped_total";
pub const EVENTS_INTERRUPTIONS_TOTAL: &str = "events_interruptions_total";

/// Installs the log subscriber once per process; later calls are no-ops.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm_migration=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry.with(fmt::layer()).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json()).try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use. Metrics are global in
/// the `metrics` facade, so every application in one process shares them.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist when Quill is embedded; ours then stays local and
            // `/metrics` shows only what the handle sees.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// Folds the histogram samples recorded since the last pass into their buckets, every few
/// seconds until aborted. The recorder otherwise keeps every sample until `/metrics` is
/// scraped, so an instance nobody scrapes would grow by each request's samples for ever.
pub fn spawn_metrics_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_UPKEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    })
}

/// How often [`spawn_metrics_upkeep`] runs: the exporter's own default.
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn describe() {
    metrics::describe_counter!(DB_QUERIES_TOTAL, "SQL statements executed");
    metrics::describe_counter!(DB_QUERY_ERRORS_TOTAL, "SQL statements that failed");
    metrics::describe_histogram!(DB_QUERY_DURATION, "SQL statement duration");
    metrics::describe_gauge!(DB_POOL_CONNECTIONS, "connections open in the pool");
    metrics::describe_gauge!(DB_POOL_IDLE_CONNECTIONS, "open connections not in use");
    metrics::describe_counter!(GRAPHQL_REQUESTS_TOTAL, "GraphQL operations executed");
    metrics::describe_counter!(GRAPHQL_ERRORS_TOTAL, "GraphQL errors returned, by code");
    metrics::describe_histogram!(HTTP_REQUEST_DURATION, "HTTP request duration");
    metrics::describe_counter!(CACHE_HITS_TOTAL, "user cache hits");
    metrics::describe_counter!(CACHE_MISSES_TOTAL, "user cache misses");
    metrics::describe_counter!(CACHE_ERRORS_TOTAL, "user cache calls that failed or timed out");
    metrics::describe_gauge!(HTTP_CONNECTIONS_OPEN, "client connections open");
    metrics::describe_counter!(HTTP_CONNECTIONS_REFUSED_TOTAL, "connections refused at MAX_CONNECTIONS");
    metrics::describe_counter!(
        HTTP_CONNECTIONS_CLOSED_TOTAL,
        "connections closed by a timeout, by reason (header_timeout, idle_timeout)"
    );
    metrics::describe_counter!(HTTP_ACCEPT_ERRORS_TOTAL, "failed accepts, such as too many open files");
    metrics::describe_counter!(
        HTTP_REQUESTS_SHED_TOTAL,
        "requests refused with 503 because too many were waiting"
    );
    metrics::describe_gauge!(WEBSOCKETS_OPEN, "WebSocket connections open (subscriptions)");
    metrics::describe_counter!(
        WEBSOCKETS_REFUSED_TOTAL,
        "WebSocket upgrades refused, by reason (origin, limit, draining)"
    );
    metrics::describe_counter!(
        WEBSOCKETS_CLOSED_TOTAL,
        "WebSocket connections closed by the server, by reason (slow, init_timeout, protocol, going_away)"
    );
    metrics::describe_gauge!(SUBSCRIPTIONS_ACTIVE, "subscriptions active on this instance");
    metrics::describe_counter!(EVENTS_PUBLISHED_TOTAL, "events published after a commit, by event");
    metrics::describe_counter!(
        EVENTS_PUBLISH_ERRORS_TOTAL,
        "events Redis could not take (delivered on this instance only)"
    );
    metrics::describe_counter!(EVENTS_RECEIVED_TOTAL, "events received from Redis");
    metrics::describe_counter!(EVENTS_DELIVERED_TOTAL, "event payloads queued for subscribers");
    metrics::describe_counter!(
        EVENTS_DROPPED_TOTAL,
        "events a subscriber did not get, by reason (slow_subscriber, lagged)"
    );
    metrics::describe_counter!(
        EVENTS_INTERRUPTIONS_TOTAL,
        "times the Redis subscription was lost (subscribers were told)"
    );
}

/// The database connection's metric callback: one count per SQL statement.
pub fn record_sql_statement(info: &sea_orm::metric::Info<'_>) {
    metrics::counter!(DB_QUERIES_TOTAL).increment(1);
    metrics::histogram!(DB_QUERY_DURATION).record(info.elapsed.as_secs_f64());
    if info.failed {
        metrics::counter!(DB_QUERY_ERRORS_TOTAL).increment(1);
    }
    tracing::trace!(elapsed = ?info.elapsed, failed = info.failed, sql = %info.statement.sql, "sql");
}
