//! The HTTP surface: `/graphql` (POST to execute, GET for GraphiQL or a query), the health
//! and readiness probes, `/metrics`, and the layers every request passes through.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_graphql::{
    BatchRequest, BatchResponse,
    http::{GraphiQLSource, parse_query_string},
    parser::types::OperationType,
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, MatchedPath, RawQuery, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    graphql::{
        QuillSchema, Services,
        loader::{BatchQueue, Loaders},
    },
    telemetry,
};

/// Largest request body accepted; a GraphQL document this large is not a client's.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest a request may take before the client gets a 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the readiness probe waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub schema: QuillSchema,
    pub services: Services,
    pub metrics: PrometheusHandle,
    /// Set when shutdown begins, so `/readyz` takes the instance out of rotation.
    pub draining: Arc<AtomicBool>,
}

pub fn router(state: AppState) -> Router {
    let x_request_id = header::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn(record_duration))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

async fn graphql_post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_json(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the GraphQL request as JSON with `Content-Type: application/json`",
        );
    }
    let batch = match serde_json::from_slice::<BatchRequest>(&body) {
        Ok(batch) if batch.iter().any(|r| r.query.trim().is_empty()) => {
            return error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", "the request has no `query`");
        }
        Ok(batch) => batch,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("the body is not a GraphQL request: {error}"),
            );
        }
    };
    execute(&state, batch).await
}

async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    if query.is_empty() && accepts_html(&headers) {
        return Html(GraphiQLSource::build().endpoint("/graphql").title("Quill").finish()).into_response();
    }
    let request = match parse_query_string(&query) {
        Ok(request) => request,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("the query string is not a GraphQL request: {error}"),
            );
        }
    };
    if is_mutation(&request) {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            "mutations are only accepted over POST",
        );
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute(&state, BatchRequest::Single(request)).await
}

async fn execute(state: &AppState, batch: BatchRequest) -> Response {
    let queue = BatchQueue::default();
    let batch = batch.data(Arc::new(Loaders::new(&state.services, &queue)));
    let response = queue.run(state.schema.execute_batch(batch)).await;
    record_graphql(&response);
    async_graphql_axum::GraphQLResponse::from(response).into_response()
}

fn record_graphql(response: &BatchResponse) {
    let responses: &[async_graphql::Response] = match response {
        BatchResponse::Single(r) => std::slice::from_ref(r),
        BatchResponse::Batch(rs) => rs,
    };
    for r in responses {
        metrics::counter!(telemetry::GRAPHQL_REQUESTS_TOTAL).increment(1);
        for error in &r.errors {
            let code = error
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .map(|c| c.to_string().trim_matches('"').to_owned())
                .unwrap_or_else(|| "UNKNOWN".to_owned());
            metrics::counter!(telemetry::GRAPHQL_ERRORS_TOTAL, "code" => code).increment(1);
        }
    }
}

/// Whether a GET request would run a mutation (its parse errors are left to execution).
fn is_mutation(request: &async_graphql::Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let operation_type = match (&request.operation_name, &document.operations) {
        (_, async_graphql::parser::types::DocumentOperations::Single(op)) => Some(op.node.ty),
        (Some(name), async_graphql::parser::types::DocumentOperations::Multiple(ops)) => {
            ops.get(name.as_str()).map(|op| op.node.ty)
        }
        (None, async_graphql::parser::types::DocumentOperations::Multiple(ops)) => {
            // Without a name, execution fails unless there is exactly one operation.
            (ops.len() == 1).then(|| ops.values().next().map(|op| op.node.ty)).flatten()
        }
    };
    operation_type == Some(OperationType::Mutation)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        })
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

/// A response in the GraphQL shape for a request that could not be executed at all.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    metrics::counter!(telemetry::GRAPHQL_ERRORS_TOTAL, "code" => code.to_owned()).increment(1);
    (status, Json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })))
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let database_up =
        matches!(tokio::time::timeout(READY_TIMEOUT, state.services.db.ping()).await, Ok(Ok(())));
    let cache = state.services.cache.health().await;
    let draining = state.draining.load(Ordering::Relaxed);
    let ready = database_up && !draining;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if draining { "draining" } else if ready { "ready" } else { "unavailable" },
        "database": if database_up { "up" } else { "down" },
        // A dead Redis degrades the instance but does not make it unready: the cache
        // fails open, and taking every instance out of rotation would be an outage.
        "cache": cache.as_str(),
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Records the request-duration histogram, labelled by route, method and status.
async fn record_duration(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    if method != Method::OPTIONS {
        metrics::histogram!(
            telemetry::HTTP_REQUEST_DURATION,
            "path" => path,
            "method" => method.to_string(),
            "status" => response.status().as_u16().to_string(),
        )
        .record(start.elapsed().as_secs_f64());
    }
    response
}
