//! Parsed documents by their text. Clients send the same few documents over and over
//! (an app's queries are fixed at build time), and parsing one costs more than answering
//! a small query: a document seen before is taken from here, parsed and checked already.

use std::sync::Arc;

use async_graphql::{
    DocumentChecks, Name,
    parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet},
};

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
pub(super) struct Documents(moka::sync::Cache<String, Arc<Kept>>);

/// A kept document and what validation found of it (`Request::set_document_checked`):
/// whether it passed the rules that read the document alone, which then do not run again
/// (they were a fifth of a small query's instructions), and its complexity and depth when
/// no variable changes them, which are then not computed again.
struct Kept {
    document: ExecutableDocument,
    checks: Arc<DocumentChecks>,
}

/// A document handed out for one request: its own copy, and the checks it shares with the
/// other requests that send it.
pub(super) struct Handed {
    pub document: ExecutableDocument,
    pub checks: Arc<DocumentChecks>,
}

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

    /// The document with this text, if it was kept: a copy of its own for one request.
    pub fn get(&self, text: &str) -> Option<Handed> {
        self.0.get(text).map(|kept| Handed {
            document: copy_for_one_request(&kept.document),
            checks: kept.checks.clone(),
        })
    }

    /// Keeps a document that parsed and passed the limits, and hands out its checks.
    pub fn keep(&self, text: String, document: &ExecutableDocument) -> Arc<DocumentChecks> {
        let checks = Arc::new(DocumentChecks::default());
        self.0.insert(text, Arc::new(Kept { document: document.clone(), checks: checks.clone() }));
        checks
    }
}

/// A copy of `document` whose fields' names and aliases are its own, not shared with the
/// kept document. Each field of an answer clones its response key, a reference-counted
/// `Name`: were the names shared, every request on every core would count up and down on
/// the same few counters, and the cache lines holding them would move between the cores
/// with nearly every field (about 6% of q1's CPU went to those two instructions).
fn copy_for_one_request(document: &ExecutableDocument) -> ExecutableDocument {
    let mut copy = document.clone();
    match &mut copy.operations {
        DocumentOperations::Single(operation) => own_names(&mut operation.node.selection_set.node),
        DocumentOperations::Multiple(operations) => {
            for operation in operations.values_mut() {
                own_names(&mut operation.node.selection_set.node);
            }
        }
    }
    for fragment in copy.fragments.values_mut() {
        own_names(&mut fragment.node.selection_set.node);
    }
    copy
}

/// Gives every field in `selection_set`, however deep, names of its own.
fn own_names(selection_set: &mut SelectionSet) {
    for selection in &mut selection_set.items {
        match &mut selection.node {
            Selection::Field(field) => {
                let field = &mut field.node;
                field.name.node = Name::new(field.name.node.as_str());
                if let Some(alias) = &mut field.alias {
                    alias.node = Name::new(alias.node.as_str());
                }
                own_names(&mut field.selection_set.node);
            }
            Selection::InlineFragment(fragment) => own_names(&mut fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    /// Every field's name and alias, however deep, in the operations and the fragments.
    fn response_keys(document: &ExecutableDocument) -> Vec<&Name> {
        fn walk<'a>(selection_set: &'a SelectionSet, keys: &mut Vec<&'a Name>) {
            for selection in &selection_set.items {
                match &selection.node {
                    Selection::Field(field) => {
                        keys.push(&field.node.name.node);
                        keys.extend(field.node.alias.as_ref().map(|alias| &alias.node));
                        walk(&field.node.selection_set.node, keys);
                    }
                    Selection::InlineFragment(fragment) => walk(&fragment.node.selection_set.node, keys),
                    Selection::FragmentSpread(_) => {}
                }
            }
        }
        let mut keys = Vec::new();
        let mut operations: Vec<_> = document.operations.iter().collect();
        operations.sort_by_key(|(name, _)| name.map(|name| name.as_str().to_owned()));
        for (_, operation) in operations {
            walk(&operation.node.selection_set.node, &mut keys);
        }
        let mut fragments: Vec<_> = document.fragments.iter().collect();
        fragments.sort_by_key(|(name, _)| name.as_str());
        for (_, fragment) in fragments {
            walk(&fragment.node.selection_set.node, &mut keys);
        }
        keys
    }

    #[test]
    fn a_kept_document_is_handed_out_as_the_same_document_with_names_of_its_own() {
        let text = "query A { feed: users(first: 2) { nodes { ...Card ... on User { name } } } } \
                    query B { user(id: \"x\") { id } } fragment Card on User { __typename me: id }";
        let documents = Documents::new();
        documents.keep(text.to_owned(), &parse_query(text).expect("the document parses"));

        let kept = documents.0.get(text).expect("the document is kept");
        let kept = &kept.document;
        let copy = documents.get(text).expect("the document is handed out").document;

        assert_eq!(format!("{copy:?}"), format!("{kept:?}"));
        let (kept_keys, copy_keys) = (response_keys(kept), response_keys(&copy));
        assert_eq!(copy_keys.len(), 9);
        for (kept, copy) in kept_keys.iter().zip(&copy_keys) {
            assert_eq!(kept.as_str(), copy.as_str());
            assert!(!std::ptr::eq(kept.as_str(), copy.as_str()), "{copy} is shared with the kept document");
        }
    }
}
