//! Persisted queries, in Apollo's protocol (APQ): a client sends the SHA-256 of a document
//! in `extensions.persistedQuery` instead of the document, and sends the document too only
//! when Quill answers `PersistedQueryNotFound`. Repeated operations become small, and can
//! be GETs a CDN caches.
//!
//! Documents live in Redis under the cache prefix when the user cache does (so every
//! instance shares them), in process otherwise, and the store fails open like the user
//! cache: a miss only costs the client its retry with the document. `only` accepts the
//! documents of a manifest and nothing else.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context as _;
use async_graphql::{Request, ServerError, Value};
use moka::future::Cache;
use sha2::{Digest as _, Sha256};

use crate::{cache::UserCache, config::PersistedQueryMode};

/// How long a persisted document is kept after its registration.
pub const DOCUMENT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Bytes of documents kept in process at most.
const LOCAL_CAPACITY_BYTES: u64 = 32 * 1024 * 1024;

pub const PERSISTED_QUERIES_TOTAL: &str = "persisted_queries_total";

/// Where documents are found.
enum Store {
    /// Persisted queries are not spoken: a hash is answered `PersistedQueryNotSupported`.
    Off,
    /// The shared Redis of the user cache, behind this process's own copies: a document
    /// never changes under its hash, so once fetched it is served without a round trip.
    Shared(UserCache, Cache<String, Arc<str>>),
    /// This process only.
    Local(Cache<String, Arc<str>>),
    /// A fixed list, read at start; nothing is registered.
    Manifest(HashMap<String, Arc<str>>),
}

/// The persisted-query store and its rules.
pub struct PersistedQueries {
    store: Store,
    /// Largest document registered; a larger one runs but is not kept.
    max_bytes: usize,
}

/// Why a request cannot run as sent; each is a request error with a code.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The hash is not known: the client sends the document with it (Apollo's retry).
    NotFound,
    /// Persisted queries are off: the client stops sending hashes.
    NotSupported,
    /// The hash is not the document's, or the extension is malformed.
    Malformed(String),
    /// `only`: the document is not in the manifest.
    NotAllowed,
}

impl Refusal {
    /// The error the client reads. Apollo's link recognises the first two by message.
    pub fn error(&self) -> ServerError {
        let (message, code) = match self {
            Refusal::NotFound => ("PersistedQueryNotFound".to_owned(), "PERSISTED_QUERY_NOT_FOUND"),
            Refusal::NotSupported => {
                ("PersistedQueryNotSupported".to_owned(), "PERSISTED_QUERY_NOT_SUPPORTED")
            }
            Refusal::Malformed(message) => (message.clone(), "BAD_REQUEST"),
            Refusal::NotAllowed => (
                "only persisted queries are accepted, and this document is not one of them".to_owned(),
                "PERSISTED_QUERY_NOT_FOUND",
            ),
        };
        crate::graphql::codes::error(message, code)
    }

    /// Whether the client is expected to retry (or stop hashing) rather than fail: such an
    /// answer is a 200 under every media type, since Apollo's link gives up persisted
    /// queries for good on a 400.
    pub fn is_a_retry(&self) -> bool {
        matches!(self, Refusal::NotFound | Refusal::NotSupported)
    }
}

impl PersistedQueries {
    /// The store `mode` asks for: beside the user cache's Redis when it has one.
    pub fn new(
        mode: PersistedQueryMode,
        cache: &UserCache,
        manifest: Option<&std::path::Path>,
        max_bytes: usize,
    ) -> anyhow::Result<Self> {
        let store = match mode {
            PersistedQueryMode::Off => Store::Off,
            PersistedQueryMode::Auto if cache.is_shared() => Store::Shared(cache.clone(), local_documents()),
            PersistedQueryMode::Auto => Store::Local(local_documents()),
            PersistedQueryMode::Only => {
                let path = manifest.context("PERSISTED_QUERIES=only needs PERSISTED_QUERIES_MANIFEST")?;
                Store::Manifest(read_manifest(path)?)
            }
        };
        Ok(Self { store, max_bytes })
    }

    /// The request as it is to run: its document found by hash, or registered under it.
    pub async fn resolve(&self, mut request: Request) -> Result<Request, Refusal> {
        let hash = match persisted_hash(&request)? {
            Some(hash) => hash,
            None if matches!(self.store, Store::Manifest(_)) => {
                let hash = sha256_hex(&request.query);
                return if self.find(&hash).await.is_some() { Ok(request) } else { Err(Refusal::NotAllowed) };
            }
            None => return Ok(request),
        };
        if matches!(self.store, Store::Off) {
            return Err(Refusal::NotSupported);
        }
        if request.query.is_empty() {
            let Some(document) = self.find(&hash).await else {
                count("miss");
                return Err(Refusal::NotFound);
            };
            count("hit");
            request.query = document.to_string();
            return Ok(request);
        }
        if sha256_hex(&request.query) != hash {
            return Err(Refusal::Malformed("provided sha does not match query".to_owned()));
        }
        match &self.store {
            Store::Manifest(documents) if !documents.contains_key(&hash) => return Err(Refusal::NotAllowed),
            Store::Manifest(_) => {}
            _ if request.query.len() > self.max_bytes => count("too_large"),
            _ => {
                self.keep(hash, &request.query).await;
                count("registered");
            }
        }
        Ok(request)
    }

    async fn find(&self, hash: &str) -> Option<Arc<str>> {
        match &self.store {
            Store::Off => None,
            Store::Shared(cache, copies) => {
                if let Some(document) = copies.get(hash).await {
                    return Some(document);
                }
                let document: Arc<str> = Arc::from(cache.get_document(hash).await?);
                copies.insert(hash.to_owned(), document.clone()).await;
                Some(document)
            }
            Store::Local(documents) => documents.get(hash).await,
            Store::Manifest(documents) => documents.get(hash).cloned(),
        }
    }

    async fn keep(&self, hash: String, document: &str) {
        match &self.store {
            Store::Shared(cache, copies) => {
                cache.put_document(&hash, document, DOCUMENT_TTL).await;
                copies.insert(hash, Arc::from(document)).await;
            }
            Store::Local(documents) => documents.insert(hash, Arc::from(document)).await,
            Store::Off | Store::Manifest(_) => {}
        }
    }
}

/// Documents kept in this process, bounded by their total size.
fn local_documents() -> Cache<String, Arc<str>> {
    Cache::builder()
        .max_capacity(LOCAL_CAPACITY_BYTES)
        .weigher(|hash: &String, document: &Arc<str>| {
            u32::try_from(hash.len() + document.len()).unwrap_or(u32::MAX)
        })
        .time_to_live(DOCUMENT_TTL)
        .build()
}

fn count(outcome: &'static str) {
    metrics::counter!(PERSISTED_QUERIES_TOTAL, "outcome" => outcome).increment(1);
}

/// The `sha256Hash` of `extensions.persistedQuery`, checked: version 1, 64 hex digits.
fn persisted_hash(request: &Request) -> Result<Option<String>, Refusal> {
    let Some(extension) = request.extensions.get("persistedQuery") else {
        return Ok(None);
    };
    let malformed = |what: &str| Refusal::Malformed(format!("`extensions.persistedQuery` {what}"));
    let Value::Object(fields) = extension else {
        return Err(malformed("must be an object"));
    };
    match fields.get("version") {
        Some(Value::Number(version)) if version.as_u64() == Some(1) => {}
        _ => return Err(malformed("must have `version` 1")),
    }
    match fields.get("sha256Hash") {
        Some(Value::String(hash)) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(hash.to_ascii_lowercase()))
        }
        _ => Err(malformed("must have a `sha256Hash` of 64 hex digits")),
    }
}

/// Whether a request names a persisted query (it may then come without a document).
pub fn is_persisted(request: &Request) -> bool {
    request.extensions.contains_key("persistedQuery")
}

pub fn sha256_hex(document: &str) -> String {
    hex::encode(Sha256::digest(document.as_bytes()))
}

/// Reads an Apollo persisted-query manifest (`@apollo/generate-persisted-query-manifest`):
/// `{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id",
/// "body", …}]}`, each `id` the SHA-256 of its `body`.
fn read_manifest(path: &std::path::Path) -> anyhow::Result<HashMap<String, Arc<str>>> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        format: String,
        version: u32,
        operations: Vec<Operation>,
    }
    #[derive(serde::Deserialize)]
    struct Operation {
        id: String,
        body: String,
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the persisted-query manifest {}", path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("the persisted-query manifest {} is not valid", path.display()))?;
    anyhow::ensure!(
        manifest.format == "apollo-persisted-query-manifest" && manifest.version == 1,
        "the persisted-query manifest {} is not an apollo-persisted-query-manifest of version 1",
        path.display()
    );
    manifest
        .operations
        .into_iter()
        .map(|operation| {
            let hash = sha256_hex(&operation.body);
            anyhow::ensure!(
                operation.id.eq_ignore_ascii_case(&hash),
                "the persisted-query manifest {}: operation {} is not the SHA-256 of its body",
                path.display(),
                operation.id
            );
            Ok((hash, Arc::from(operation.body)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            sha256_hex("{ __typename }"),
            "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b"
        );
    }
}
