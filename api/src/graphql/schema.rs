//! Builds the executable schema, and executes one request against it.

use std::sync::{Arc, Mutex};

use async_graphql::{
    PathSegment, Request, Response, Schema, ServerError,
    parser::types::{DocumentOperations, OperationType},
};
use futures::StreamExt as _;

use crate::{
    auth::Caller,
    events::{Event, Topic},
};

use super::{
    codes,
    context::Services,
    documents::Documents,
    limits::{self, Limits},
    loader::{BatchQueue, Loaders},
    mutation::MutationRoot,
    query::QueryRoot,
    subscription::{Phase, SubscriptionRoot},
};

type QuillSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema with what it runs on: executes requests, each with loaders of its own.
/// Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    /// Built once, with the services attached.
    schema: QuillSchema,
    /// What each request's loaders read through.
    services: Services,
    /// The document limits the schema does not check itself.
    limits: Arc<Limits>,
    /// Documents parsed and checked before, by their text.
    documents: Documents,
}

impl Executor {
    /// The schema with `services` attached, ready to execute requests under `limits`.
    pub fn new(services: Services, limits: Limits) -> Self {
        Self {
            schema: build_schema(services.clone(), &limits),
            services,
            limits: Arc::new(limits),
            documents: Documents::new(),
        }
    }

    /// Executes one request for `caller`: parse and count-check it, run it with a fresh
    /// set of loaders whose batches run in this request's task, code every error.
    pub async fn execute(&self, mut request: Request, caller: Caller) -> Response {
        let mut response = match self.prepare(&mut request) {
            Ok(()) if operation_type(&mut request) == Some(OperationType::Subscription) => {
                Response::from_errors(vec![codes::error(
                    "subscriptions are served over WebSocket at this same path \
                     (graphql-transport-ws or graphql-ws), not over HTTP",
                    "BAD_REQUEST",
                )])
            }
            Ok(()) => {
                // Made here and only here, so no request runs with loaders but no queue
                // to drive their batches.
                let queue = BatchQueue::new();
                let loaders = Arc::new(Loaders::new(&self.services, &queue));
                // Boxed: async-graphql's execution is a future of several kilobytes, which
                // every layer above would otherwise copy each time it moves its own.
                Box::pin(queue.run(self.schema.execute(request.data(loaders).data(caller)))).await
            }
            Err(error) => Response::from_errors(vec![error]),
        };
        tidy_errors(&mut response, &self.limits);
        response
    }

    /// The type of the operation the request would run, parsed (and checked against the
    /// limits) here; `Err` with the errors of a document that cannot run, `None` when the
    /// operation cannot be told (executing the request says why).
    pub fn operation_type(&self, request: &mut Request) -> Result<Option<OperationType>, Vec<ServerError>> {
        let refused = |error| {
            let mut response = Response::from_errors(vec![error]);
            tidy_errors(&mut response, &self.limits);
            response.errors
        };
        self.prepare(request).map_err(refused)?;
        Ok(operation_type(request))
    }

    /// What a subscription listens to, for `caller`: its topic, or the errors that stop it
    /// (validation, limits, a guard, or not exactly one field selected). Runs no resolver
    /// beyond the subscription's own.
    pub async fn subscribe(&self, request: Request, caller: Caller) -> Result<Topic, Vec<ServerError>> {
        let topics = Arc::new(Mutex::new(Vec::new()));
        let responses = self
            .stream(request, caller, Phase::Subscribe(topics.clone()), |stream| stream.collect::<Vec<_>>());
        let mut errors: Vec<_> = responses.await.into_iter().flat_map(|response| response.errors).collect();
        let topics = std::mem::take(&mut *topics.lock().unwrap_or_else(|e| e.into_inner()));
        if errors.is_empty() && topics.len() != 1 {
            // GraphQL spec, "Single Root Field", which async-graphql does not check: the
            // fields are counted as the executor collected them (fragments, directives).
            errors.push(codes::error(
                "a subscription must select exactly one field of `Subscription`",
                codes::GRAPHQL_VALIDATION_FAILED,
            ));
        }
        if !errors.is_empty() {
            let mut response = Response::from_errors(errors);
            tidy_errors(&mut response, &self.limits);
            return Err(response.errors);
        }
        Ok(topics[0])
    }

    /// A subscription's payload for one event, for `caller`; `None` when none of its fields
    /// listens to the event. Loaders batch as in a query.
    pub async fn deliver(&self, request: Request, caller: Caller, event: Arc<Event>) -> Option<Response> {
        let next =
            |mut stream: futures::stream::BoxStream<'static, Response>| async move { stream.next().await };
        let mut response = self.stream(request, caller, Phase::Deliver(event), next).await?;
        tidy_errors(&mut response, &self.limits);
        Some(response)
    }

    /// Runs a subscription document in `phase`, taking from its stream with `take` while
    /// its loaders' batches run.
    async fn stream<T, F: Future<Output = T>>(
        &self,
        mut request: Request,
        caller: Caller,
        phase: Phase,
        take: impl FnOnce(futures::stream::BoxStream<'static, Response>) -> F,
    ) -> T {
        if let Err(error) = self.prepare(&mut request) {
            return take(futures::stream::iter([Response::from_errors(vec![error])]).boxed()).await;
        }
        let queue = BatchQueue::new();
        let loaders = Arc::new(Loaders::new(&self.services, &queue));
        let request = request.data(loaders).data(caller).data(phase);
        Box::pin(queue.run(take(self.schema.execute_stream(request)))).await
    }

    /// Leaves the request's document in it, parsed and checked against the limits: taken
    /// from the documents seen before, or parsed, checked and kept.
    fn prepare(&self, request: &mut Request) -> Result<(), async_graphql::ServerError> {
        if let Some(handed) = self.documents.get(&request.query) {
            request.set_parsed_query(handed.document);
            request.set_document_checked(handed.checks);
            return Ok(());
        }
        limits::prepare(request, &self.limits)?;
        let text = request.query.clone();
        if let Ok(document) = request.parsed_query() {
            let checks = self.documents.keep(text, document);
            request.set_document_checked(checks);
        }
        Ok(())
    }
}

/// The type of the operation a prepared request would run; `None` when it cannot be told
/// (no such operation, or several and no name), which executing it reports.
fn operation_type(request: &mut Request) -> Option<OperationType> {
    // Most documents hold one operation: answered without looking at the name.
    if let DocumentOperations::Single(operation) = &request.parsed_query().ok()?.operations {
        return Some(operation.node.ty);
    }
    let name = request.operation_name.clone();
    let DocumentOperations::Multiple(operations) = &request.parsed_query().ok()?.operations else {
        return None;
    };
    let operation = match name {
        Some(name) => operations.get(name.as_str()),
        None if operations.len() == 1 => operations.values().next(),
        None => None,
    };
    operation.map(|operation| operation.node.ty)
}

fn build_schema(services: Services, limits: &Limits) -> QuillSchema {
    let mut builder =
        schema_builder().data(services).limit_depth(limits.max_depth).limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    // With `@specifiedBy` on UUID and DateTime, as introspection reports them, so code
    // generators reading the file see what they would see live.
    schema_builder().finish().sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}

fn schema_builder() -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot)
}

/// Rewrites every depth error as the limit's one error, codes every error, sorts them and
/// drops duplicates.
fn tidy_errors(response: &mut Response, limits: &Limits) {
    for error in &mut response.errors {
        if codes::is_depth_error(error) {
            *error = limits::too_deep(limits);
        }
    }
    codes::assign(response);
    // Fields resolve side by side, so errors are recorded in the order they happen; sorted
    // by where they point, identical requests get byte-identical answers.
    response.errors.sort_by(|a, b| {
        let at = |e: &async_graphql::ServerError| e.locations.first().map(|p| (p.line, p.column));
        at(a).cmp(&at(b)).then_with(|| compare_paths(&a.path, &b.path))
    });
    // async-graphql's validator walks a document twice, and an operation type the schema
    // lacks (a subscription) is reported on both walks.
    let mut seen = Vec::with_capacity(response.errors.len());
    response.errors.retain(|e| {
        let key = (e.message.clone(), e.locations.clone(), e.path.clone());
        let first = !seen.contains(&key);
        seen.push(key);
        first
    });
}

/// Orders error paths segment by segment: list indexes by number, field names by name.
fn compare_paths(a: &[PathSegment], b: &[PathSegment]) -> std::cmp::Ordering {
    fn key(segment: &PathSegment) -> (u8, usize, &str) {
        match segment {
            PathSegment::Index(index) => (0, *index, ""),
            PathSegment::Field(name) => (1, 0, name.as_str()),
        }
    }
    a.iter().map(key).cmp(b.iter().map(key))
}
