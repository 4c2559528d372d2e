//! Parsed documents by their text. Clients send the same few documents over and over
//! (an app's queries are fixed at build time), and parsing one costs more than answering
//! a small query: a document seen before is taken from here, parsed and checked already.

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;

/// Most memory the kept documents may take, estimated from their text: a document's
/// syntax tree takes some tens of bytes per byte of text (a `Positioned` node of a few
/// hundred bytes for each field of a dozen characters), so 16 MB holds about 500 KB of
/// documents, more than an app's whole set of operations. The least used go first, so
/// a client sending a new document with every request only churns its own entries.
const CAPACITY_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes of memory counted per byte of a document's text.
const BYTES_PER_CHARACTER: usize = 32;

/// Documents that parsed and passed the limits, by their exact text.
#[derive(Clone)]
pub(super) struct Documents(moka::sync::Cache<String, Arc<ExecutableDocument>>);

impl Documents {
    pub fn new() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(CAPACITY_BYTES)
                .weigher(|text: &String, _| {
                    u32::try_from(text.len().saturating_mul(BYTES_PER_CHARACTER)).unwrap_or(u32::MAX)
                })
                .build(),
        )
    }

    /// The document with this text, if it was kept.
    pub fn get(&self, text: &str) -> Option<ExecutableDocument> {
        self.0.get(text).map(|document| ExecutableDocument::clone(&document))
    }

    /// Keeps a document that parsed and passed the limits.
    pub fn keep(&self, text: String, document: &ExecutableDocument) {
        self.0.insert(text, Arc::new(document.clone()));
    }
}
