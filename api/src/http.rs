//! The HTTP surface: `/graphql` (POST to execute, GET for GraphiQL or a query), the health
//! and readiness probes, `/metrics`, and the layers every request passes through.

mod json_body;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_graphql::{BatchRequest, parser::types::OperationType};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequestParts as _, MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::sync::{Semaphore, SemaphorePermit};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    auth::{Authenticator, Caller, TokenError},
    config::{AllowedOrigins, Config},
    graphql::{Executor, Services, codes},
    persisted::{self, PersistedQueries},
    playground,
    subscriptions::{self, Hub, PROTOCOLS, Protocol, SocketSettings, Sockets},
    telemetry,
};

/// The read buffer of each WebSocket.
const SOCKET_READ_BUFFER: usize = 4 * 1024;
/// Longest the readiness probe waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// The GraphQL over HTTP media type; clients that accept it get the spec's status codes.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
/// Headers a browser cannot send cross-site without a CORS preflight; a GET must carry one.
const PREFLIGHT_HEADERS: [&str; 3] =
    ["apollo-require-preflight", "x-apollo-operation-name", "x-requested-with"];

static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// The HTTP limits, from the settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub max_batch_size: usize,
    /// Cross-origin pages allowed to call Quill; `None`: same-origin only.
    pub cors: Option<AllowedOrigins>,
}

impl From<&Config> for HttpSettings {
    fn from(config: &Config) -> Self {
        Self {
            max_body_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            max_batch_size: usize::try_from(config.max_batch_size).unwrap_or(usize::MAX),
            cors: config.cors_allowed_origins.clone(),
        }
    }
}

/// Load shedding: how many GraphQL requests execute at once, and how many may wait their
/// turn and for how long. Past that a request is refused at once with 503, so those
/// admitted are answered in bounded time instead of every client waiting longer.
pub struct Admission {
    running: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

impl Admission {
    pub fn new(concurrent: usize, max_waiting: usize, max_wait: Duration) -> Self {
        let concurrent = concurrent.min(Semaphore::MAX_PERMITS);
        Self { running: Semaphore::new(concurrent), waiting: AtomicUsize::new(0), max_waiting, max_wait }
    }

    /// The bounds the settings give: `MAX_CONCURRENT_REQUESTS` (32 per core when unset),
    /// `MAX_QUEUED_REQUESTS` and `QUEUE_TIMEOUT_MS`.
    pub fn from_config(config: &Config) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let concurrent =
            config.max_concurrent_requests.map_or(32 * cores, |n| usize::try_from(n).unwrap_or(usize::MAX));
        Self::new(
            concurrent,
            usize::try_from(config.max_queued_requests).unwrap_or(usize::MAX),
            Duration::from_millis(config.queue_timeout_ms),
        )
    }

    /// A turn to execute, or `None` when the request is to be shed.
    pub(crate) async fn admit(&self) -> Option<SemaphorePermit<'_>> {
        if let Ok(turn) = self.running.try_acquire() {
            return Some(turn);
        }
        let waiting = Waiting::join(&self.waiting);
        if waiting.ahead >= self.max_waiting {
            return None;
        }
        tokio::time::timeout(self.max_wait, self.running.acquire()).await.ok()?.ok()
    }
}

/// One place in the queue of requests waiting their turn, given up when dropped.
struct Waiting<'a> {
    queue: &'a AtomicUsize,
    /// How many were waiting already.
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn join(queue: &'a AtomicUsize) -> Self {
        Self { queue, ahead: queue.fetch_add(1, Ordering::Relaxed) }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.queue.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the handlers share, in one `Arc`.
pub struct AppState {
    /// Runs each GraphQL operation.
    pub executor: Executor,
    /// Reads each request's bearer token.
    pub auth: Authenticator,
    /// The database and the cache, for the readiness probe and the pool gauges.
    pub services: Services,
    pub metrics: PrometheusHandle,
    pub http: HttpSettings,
    /// The bound on requests executing and waiting.
    pub admission: Arc<Admission>,
    /// Documents known by hash (Apollo's persisted queries).
    pub persisted: Arc<PersistedQueries>,
    /// Set when shutdown begins, so `/readyz` takes the instance out of rotation.
    pub draining: Arc<AtomicBool>,
    /// The instance's subscriptions.
    pub hub: Hub,
    /// The open WebSocket connections and their bound.
    pub sockets: Arc<Sockets>,
    pub socket_settings: Arc<SocketSettings>,
}

pub fn router(state: AppState) -> Router {
    let settings = state.http.clone();
    // Outermost first. One stack, given to the router once: every `Router::layer` call
    // boxes each route again, and a boxed route clones all it holds on every request (ten
    // such calls made 66 allocations of each request).
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(X_REQUEST_ID.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(middleware::from_fn(preflight_without_content))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let request_id = request.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id)
        }))
        .option_layer(settings.cors.as_ref().map(cors))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(settings.request_timeout, time_limit))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(middleware::from_fn(record_duration));
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphiql/assets/{*path}", get(playground::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(layers)
        // Shared, not cloned field by field for each request that reads it.
        .with_state(Arc::new(state))
}

/// CORS for the allowed origins: the methods and headers GraphQL clients send, the
/// request id readable by the page, preflights cached for two hours (Chromium's ceiling).
fn cors(origins: &AllowedOrigins) -> CorsLayer {
    const CLIENT_HEADERS: [&str; 8] = [
        "accept",
        "authorization",
        "content-type",
        "apollo-require-preflight",
        "x-apollo-operation-name",
        "x-requested-with",
        "apollographql-client-name",
        "apollographql-client-version",
    ];
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(CLIENT_HEADERS.map(header::HeaderName::from_static))
        .expose_headers([X_REQUEST_ID.clone()])
        .max_age(Duration::from_secs(2 * 60 * 60));
    match origins {
        AllowedOrigins::Any => layer.allow_origin(AllowOrigin::any()),
        AllowedOrigins::Exact(origins) => layer
            .allow_origin(AllowOrigin::list(
                origins.iter().map(|origin| HeaderValue::from_str(origin).expect("an origin is ASCII")),
            ))
            .allow_credentials(true),
    }
}

/// A CORS preflight is answered `204 No Content` (tower-http answers 200 with no body).
async fn preflight_without_content(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = next.run(request).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

async fn graphql_post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let mut response = error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                &format!("the request body is larger than {} bytes", state.http.max_body_bytes),
            );
            // The rest of the body is never read, so the connection cannot carry another
            // request: say so, or the client sends its next request down a closing socket.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        Err(rejection) => return error_response(rejection.status(), "BAD_REQUEST", &rejection.body_text()),
    };
    if !is_json(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the GraphQL request as JSON with `Content-Type: application/json`",
        );
    }
    let batch = match parse_body(&body) {
        Ok(batch) if batch.iter().any(|r| r.query.trim().is_empty() && !persisted::is_persisted(r)) => {
            return error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", "the request has no `query`");
        }
        Ok(BatchRequest::Batch(batch)) if batch.is_empty() || batch.len() > state.http.max_batch_size => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("a batch must hold 1 to {} operations", state.http.max_batch_size),
            );
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
    execute(&state, &headers, batch, Via::Post).await
}

/// One operation as GraphQL over HTTP sends it. Unlike async-graphql's own `Request`,
/// which takes `"variables": "x"` for no variables, a parameter of the wrong type is the
/// client's error.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireRequest {
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub operation_name: Option<String>,
    #[serde(default)]
    pub variables: Option<async_graphql::Value>,
    #[serde(default)]
    pub extensions: Option<async_graphql::Value>,
}

impl TryFrom<WireRequest> for async_graphql::Request {
    type Error = String;

    fn try_from(wire: WireRequest) -> Result<Self, String> {
        let mut request = async_graphql::Request::new(wire.query);
        request.operation_name = wire.operation_name;
        match wire.variables {
            None | Some(async_graphql::Value::Null) => {}
            Some(variables @ async_graphql::Value::Object(_)) => {
                request.variables = async_graphql::Variables::from_value(variables);
            }
            Some(_) => return Err("`variables` must be an object".to_owned()),
        }
        match wire.extensions {
            None | Some(async_graphql::Value::Null) => {}
            Some(async_graphql::Value::Object(extensions)) => {
                request.extensions = async_graphql::Extensions(
                    extensions.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                );
            }
            Some(_) => return Err("`extensions` must be an object".to_owned()),
        }
        Ok(request)
    }
}

/// A GET request's parameters (GraphQL over HTTP, "GET"): `variables` and `extensions`
/// are JSON text, held to the same rules as in a POST body.
fn parse_query_string(query: &str) -> Result<async_graphql::Request, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params {
        #[serde(default)]
        query: String,
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    fn json(text: Option<String>, name: &str) -> Result<Option<async_graphql::Value>, String> {
        text.map(|text| serde_json::from_str(&text).map_err(|e| format!("`{name}` is not JSON: {e}")))
            .transpose()
    }
    let params: Params = serde_urlencoded::from_str(query).map_err(|e| e.to_string())?;
    WireRequest {
        query: params.query,
        operation_name: params.operation_name,
        variables: json(params.variables, "variables")?,
        extensions: json(params.extensions, "extensions")?,
    }
    .try_into()
}

/// A JSON body: one request object, or an array of them (a batch).
fn parse_body(body: &[u8]) -> Result<BatchRequest, String> {
    let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if is_array {
        let wire: Vec<WireRequest> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let requests = wire.into_iter().map(async_graphql::Request::try_from).collect::<Result<_, _>>()?;
        Ok(BatchRequest::Batch(requests))
    } else {
        let wire: WireRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(BatchRequest::Single(wire.try_into()?))
    }
}

async fn graphql_get(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if is_websocket_upgrade(&parts.headers) {
        return websocket(&state, parts).await;
    }
    let headers = parts.headers;
    let query = parts.uri.query().unwrap_or_default();
    if query.is_empty() && accepts(&headers, "text/html") {
        return playground::page();
    }
    if !PREFLIGHT_HEADERS.iter().any(|h| headers.contains_key(*h)) && !is_json(&headers) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "a GET query must carry an `apollo-require-preflight` or `x-requested-with` header \
             (protection against cross-site requests), or be sent as a JSON POST",
        );
    }
    let request = match parse_query_string(query) {
        Ok(request) => request,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("the query string is not a GraphQL request: {error}"),
            );
        }
    };
    execute(&state, &headers, BatchRequest::Single(request), Via::Get).await
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers.get(header::UPGRADE).is_some_and(|upgrade| upgrade.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// The WebSocket upgrade for subscriptions: refused for a cross-site page (the origin
/// rule), at the connection bound and while draining; then served in the protocol the
/// client asked for (`socket` closes with 4406 when it asked for none Quill speaks).
async fn websocket(state: &AppState, mut parts: axum::http::request::Parts) -> Response {
    if let Some(origin) = parts.headers.get(header::ORIGIN)
        && !origin_allowed(origin, parts.headers.get(header::HOST), state.http.cors.as_ref())
    {
        metrics::counter!(telemetry::WEBSOCKETS_REFUSED_TOTAL, "reason" => "origin").increment(1);
        return error_response(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "this page's origin may not open a WebSocket to this server (see CORS_ALLOWED_ORIGINS)",
        );
    }
    let upgrade = match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return error_response(rejection.status(), "BAD_REQUEST", &rejection.body_text()),
    };
    // While draining, a new socket would only be closed again: its client goes elsewhere.
    let draining = state.draining.load(Ordering::Relaxed);
    let slot = if draining { None } else { state.sockets.open() };
    let Some(slot) = slot else {
        let reason = if draining || state.sockets.is_going_away() { "draining" } else { "limit" };
        metrics::counter!(telemetry::WEBSOCKETS_REFUSED_TOTAL, "reason" => reason).increment(1);
        let mut response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "the server has too many open WebSocket connections, or is shutting down: retry shortly",
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let upgrade = upgrade.protocols(PROTOCOLS);
    let protocol = upgrade.selected_protocol().and_then(|name| Protocol::named(name.as_bytes()));
    let connection = subscriptions::Connection {
        hub: state.hub.clone(),
        executor: state.executor.clone(),
        auth: state.auth.clone(),
        admission: state.admission.clone(),
        settings: state.socket_settings.clone(),
        slot,
        going_away: state.sockets.going_away(),
        authorization: parts.headers.get(header::AUTHORIZATION).cloned(),
    };
    upgrade
        .max_message_size(state.socket_settings.max_message_bytes)
        // tungstenite's default read buffer is 128 KiB per socket, allocated up front and
        // zeroed on every read attempt: with thousands of mostly idle subscribers, that was
        // most of their memory and most of the CPU of each event sent. Client messages are
        // small; the buffer grows for a larger one.
        .read_buffer_size(SOCKET_READ_BUFFER)
        .on_upgrade(move |socket| subscriptions::serve(socket, protocol, connection))
}

/// Whether a page from `origin` may open a WebSocket: same origin as the `Host` it
/// addressed, or one of the allowed origins.
fn origin_allowed(
    origin: &HeaderValue,
    host: Option<&HeaderValue>,
    allowed: Option<&AllowedOrigins>,
) -> bool {
    let Ok(origin) = origin.to_str() else { return false };
    let same_host = origin.split_once("://").is_some_and(|(_, authority)| {
        host.is_some_and(|host| host.as_bytes().eq_ignore_ascii_case(authority.as_bytes()))
    });
    same_host
        || match allowed {
            Some(AllowedOrigins::Any) => true,
            Some(AllowedOrigins::Exact(origins)) => {
                origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin))
            }
            None => false,
        }
}

/// How a request arrived: a GET may run queries only (its document may be known only
/// once its persisted-query hash is resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Get,
    Post,
}

fn mutation_over_get() -> Response {
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "BAD_REQUEST",
        "mutations are only accepted over POST",
    );
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// Runs a request, or each operation of a batch in order (as if sent one after another,
/// each with loaders of its own, so an operation sees the writes of those before it).
async fn execute(state: &AppState, headers: &HeaderMap, batch: BatchRequest, via: Via) -> Response {
    let Some(media_type) = ResponseMediaType::negotiate(headers) else {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            "the response is JSON: accept `application/graphql-response+json` or `application/json`",
        );
    };
    let caller = match state.auth.authenticate(headers).await {
        Ok(caller) => caller,
        Err(refusal) => return unauthenticated(&refusal),
    };
    let Some(_turn) = state.admission.admit().await else {
        return shed();
    };
    let request_id = headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    let responses = match batch {
        BatchRequest::Single(request) => {
            let (response, retry) = match state.persisted.resolve(request).await {
                Ok(request) if via == Via::Get && is_mutation(&request) => return mutation_over_get(),
                Ok(request) => (execute_one(state, request, caller, request_id).await, false),
                Err(refusal) => (refused(&refusal), refusal.is_a_retry()),
            };
            // GraphQL over HTTP: under its own media type, a request that failed before
            // execution (parse, validation, variables, limits) is a 400; plain JSON clients
            // always get 200. A persisted query to send again is a 200 for both: Apollo's
            // link would take a 400 to mean persisted queries are not spoken at all.
            let status = if media_type == ResponseMediaType::GraphqlResponseJson
                && is_request_error(&response)
                && !retry
            {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            return graphql_response(status, media_type, |out| GraphqlBody::from(&response).write(out));
        }
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(match state.persisted.resolve(request).await {
                    Ok(request) => execute_one(state, request, caller, request_id).await,
                    Err(refusal) => refused(&refusal),
                });
            }
            responses
        }
    };
    graphql_response(StatusCode::OK, media_type, |out| {
        out.write_raw(b"[");
        for (i, response) in responses.iter().enumerate() {
            if i > 0 {
                out.write_raw(b",");
            }
            GraphqlBody::from(response).write(out)?;
        }
        out.write_raw(b"]");
        Ok(())
    })
}

/// The answer to a request its persisted-query extension refuses, counted like others.
fn refused(refusal: &persisted::Refusal) -> async_graphql::Response {
    let response = async_graphql::Response::from_errors(vec![refusal.error()]);
    record_graphql(std::slice::from_ref(&response));
    response
}

/// Executes one operation with loaders of its own, its errors coded, masked and counted.
async fn execute_one(
    state: &AppState,
    request: async_graphql::Request,
    caller: Caller,
    request_id: &str,
) -> async_graphql::Response {
    let mut response = state.executor.execute(request, caller).await;
    mask_internal_errors(&mut response, request_id);
    record_graphql(std::slice::from_ref(&response));
    response
}

/// Whether execution never started: the request failed to parse, validate, coerce its
/// variables or pass a limit. Such an answer has no `data` at all (GraphQL spec,
/// "Response Format"); an error raised during execution always has a path.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// A GraphQL response as it goes on the wire: `data` absent for a request error, `errors`
/// and `extensions` absent when empty.
struct GraphqlBody<'a> {
    data: Option<&'a async_graphql::Value>,
    errors: &'a [async_graphql::ServerError],
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

impl GraphqlBody<'_> {
    /// The body as a JSON object, its members in the order above.
    fn write(&self, out: &mut json_body::Chunks) -> std::io::Result<()> {
        let mut first = true;
        let mut member = |out: &mut json_body::Chunks, name: &[u8]| {
            out.write_raw(if std::mem::take(&mut first) { b"{\"" } else { b",\"" });
            out.write_raw(name);
            out.write_raw(b"\":");
        };
        if let Some(data) = self.data {
            member(out, b"data");
            out.write_value(data)?;
        }
        if !self.errors.is_empty() {
            member(out, b"errors");
            out.write_serde(&self.errors)?;
        }
        if !self.extensions.is_empty() {
            member(out, b"extensions");
            out.write_serde(&self.extensions)?;
        }
        out.write_raw(if first { b"{}" } else { b"}" });
        Ok(())
    }
}

impl<'a> From<&'a async_graphql::Response> for GraphqlBody<'a> {
    fn from(response: &'a async_graphql::Response) -> Self {
        Self {
            data: (!is_request_error(response)).then_some(&response.data),
            errors: &response.errors,
            extensions: &response.extensions,
        }
    }
}

/// The media types a GraphQL response can be sent as (GraphQL over HTTP, "Accept").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseMediaType {
    /// `application/graphql-response+json`: the spec's status codes.
    GraphqlResponseJson,
    /// `application/json`: 200 for every well-formed request, as legacy clients expect.
    Json,
}

impl ResponseMediaType {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        })
    }

    /// The type the client prefers by its `Accept` header's quality values: its own media
    /// type only when the client names it, `application/json` for `*/*`, `application/*`
    /// or no `Accept` at all; `None` when the client accepts neither.
    fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let mut ranges = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter(|range| !range.trim().is_empty())
            .peekable();
        if ranges.peek().is_none() {
            return Some(Self::Json);
        }
        let mut best: Option<(f32, Self)> = None;
        for range in ranges {
            let Some((media_type, quality)) = parse_media_range(range) else { continue };
            let candidate = match media_type.as_str() {
                GRAPHQL_RESPONSE_JSON => Self::GraphqlResponseJson,
                "application/json" | "application/*" | "*/*" => Self::Json,
                _ => continue,
            };
            // On equal quality the GraphQL media type wins: the client named it.
            let better = match best {
                None => true,
                Some((q, current)) => {
                    quality > q
                        || (quality == q && candidate == Self::GraphqlResponseJson && current != candidate)
                }
            };
            if quality > 0.0 && better {
                best = Some((quality, candidate));
            }
        }
        best.map(|(_, media_type)| media_type)
    }
}

/// The lower-cased media type of one `Accept` range and its quality (`q`, 1 by default).
fn parse_media_range(range: &str) -> Option<(String, f32)> {
    let mut parts = range.split(';');
    let media_type = parts.next()?.trim().to_ascii_lowercase();
    let mut quality = 1.0;
    for parameter in parts {
        if let Some((name, value)) = parameter.split_once('=')
            && name.trim().eq_ignore_ascii_case("q")
        {
            quality = value.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))?;
        }
    }
    Some((media_type, quality))
}

fn graphql_response(
    status: StatusCode,
    media_type: ResponseMediaType,
    write: impl FnOnce(&mut json_body::Chunks) -> std::io::Result<()>,
) -> Response {
    match json_body::to_body(write) {
        Ok(body) => {
            (status, [(header::CONTENT_TYPE, media_type.content_type())], axum::body::Body::new(body))
                .into_response()
        }
        Err(error) => {
            tracing::error!(%error, "serialising a response");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "internal server error",
            )
        }
    }
}

/// Our own failures reach the client as `INTERNAL_SERVER_ERROR` with the request id to
/// quote; the detail is in the log, on the line with the same id.
fn mask_internal_errors(response: &mut async_graphql::Response, request_id: &str) {
    for error in &mut response.errors {
        if codes::code_of(error) == Some("INTERNAL_SERVER_ERROR") {
            error.message = format!("internal server error (request id {request_id})");
            error.extensions.get_or_insert_with(Default::default).set("requestId", request_id);
        }
    }
}

/// A panic is a bug: the client gets a GraphQL-shaped 500, the log gets the panic.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = detail, "a request panicked");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", "internal server error")
}

fn record_graphql(responses: &[async_graphql::Response]) {
    for r in responses {
        metrics::counter!(telemetry::GRAPHQL_REQUESTS_TOTAL).increment(1);
        for error in &r.errors {
            let code = codes::code_of(error).unwrap_or("UNKNOWN").to_owned();
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

fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains(media_type))
}

/// A response in the GraphQL shape for a request that could not be executed at all.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    metrics::counter!(telemetry::GRAPHQL_ERRORS_TOTAL, "code" => code.to_owned()).increment(1);
    (status, Json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })))
        .into_response()
}

/// The answer to a request whose bearer token is refused: 401 with the RFC 6750
/// challenge, and nothing executed.
fn unauthenticated(refusal: &TokenError) -> Response {
    let mut response = error_response(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", refusal.message());
    let challenge =
        format!("Bearer error=\"{}\", error_description=\"{}\"", refusal.challenge_code(), refusal.message());
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer")),
    );
    response
}

/// The answer to a request shed under overload: come back in a second.
fn shed() -> Response {
    metrics::counter!(telemetry::HTTP_REQUESTS_SHED_TOTAL).increment(1);
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        "the server is too busy to take this request: retry shortly",
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
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

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let (open, idle) = crate::db::pool_usage(&state.services.db);
    metrics::gauge!(telemetry::DB_POOL_CONNECTIONS).set(f64::from(open));
    metrics::gauge!(telemetry::DB_POOL_IDLE_CONNECTIONS).set(idle as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Answers a request that runs past the time limit with a coded 408; its work is dropped
/// (a transaction in flight rolls back).
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error_response(
            StatusCode::REQUEST_TIMEOUT,
            "TIMEOUT",
            &format!("the request took longer than {} s", limit.as_secs_f64()),
        ),
    }
}

/// Records the request-duration histogram, labelled by route, method and status.
async fn record_duration(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    if method != "OPTIONS" {
        metrics::histogram!(
            telemetry::HTTP_REQUEST_DURATION,
            "path" => path,
            "method" => method,
            "status" => response.status().as_u16().to_string(),
        )
        .record(start.elapsed().as_secs_f64());
    }
    response
}

/// A method as a metric label: the standard ones by name, any other as `other`, so that
/// clients inventing methods cannot grow the set of label values, and memory, without end.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{PathSegment, Response, ServerError, Value, value};

    use super::*;

    /// The body as the client reads it.
    async fn written(response: &Response) -> String {
        let body =
            json_body::to_body(|out| GraphqlBody::from(response).write(out)).expect("a body is written");
        let bytes = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX).await.expect("infallible");
        String::from_utf8(bytes.to_vec()).expect("the body is UTF-8")
    }

    fn field_error(message: &str) -> ServerError {
        let mut error = ServerError::new(message, None);
        error.path = vec![PathSegment::Field("a".to_owned())];
        error
    }

    #[tokio::test]
    async fn a_body_holds_data_errors_and_extensions_in_that_order_each_only_when_there() {
        let mut full = Response::new(value!({ "a": null, "b": [1, "two"] }));
        full.errors.push(field_error("the field failed"));
        full.extensions.insert("cost".to_owned(), value!({ "points": 3 }));
        let request_error = Response::from_errors(vec![ServerError::new("no such field", None)]);

        assert_eq!(
            written(&full).await,
            r#"{"data":{"a":null,"b":[1,"two"]},"errors":[{"message":"the field failed","path":["a"]}],"extensions":{"cost":{"points":3}}}"#
        );
        assert_eq!(written(&request_error).await, r#"{"errors":[{"message":"no such field"}]}"#);
        assert_eq!(written(&Response::new(value!({ "a": 1 }))).await, r#"{"data":{"a":1}}"#);
        assert_eq!(written(&Response::new(Value::Null)).await, r#"{"data":null}"#);
    }
}
