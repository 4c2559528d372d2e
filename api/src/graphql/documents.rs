//! Parsed documents by their text. Clients send the same few documents over and over
//! (an app's queries are fixed at build time), and parsing one costs more than answering
//! a small query: a document seen before is taken from here, parsed and checked already.

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;

/// Most bytes of document text kept (each document counts its text twice: the text as
/// the key, about as much again for its syntax tree).
const CAPACITY_BYTES: u64 = 16 * 1024 * 1024;

/// Documents that parsed and passed the limits, by their exact text.
#[derive(Clone)]
pub(super) struct Documents(moka::sync::Cache<String, Arc<ExecutableDocument>>);

impl Documents {
    pub fn new() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(CAPACITY_BYTES)
                .weigher(|text: &String, _| u32::try_from(text.len().saturating_mul(2)).unwrap_or(u32::MAX))
                .build(),
        )
    }

    /// The document with this text, if it was kept.
    pub fn get(&self, text: &str) -> Option<ExecutableDocument> {
        self.0.get(text).map(|document| ExecutableDocument::clone(&document))
    }

    /// Keeps a document that parsed and passed the limits.
    pub fn keep(&self, text: &str, document: &ExecutableDocument) {
        self.0.insert(text.to_owned(), Arc::new(document.clone()));
    }
}
