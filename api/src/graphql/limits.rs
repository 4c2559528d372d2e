//! Bounds on what one request may ask for. Depth and complexity are async-graphql's own
//! checks; the counts here (aliases, root fields, fields once fragments are expanded) run
//! right after parsing, before the validator walks the document, so an alias or fragment
//! bomb is refused in linear time.

use std::collections::HashMap;

use async_graphql::{
    Request, ServerError,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use super::codes::{
    self, GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, QUERY_TOO_COMPLEX, set_code_if_missing,
};
use crate::config::Config;

/// The limits, from the settings.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_root_fields: usize,
    pub max_expanded_fields: usize,
    pub introspection: bool,
}

impl From<&Config> for Limits {
    fn from(config: &Config) -> Self {
        Self {
            max_depth: config.max_query_depth as usize,
            max_complexity: config.max_query_complexity as usize,
            max_aliases: config.max_aliases as usize,
            max_root_fields: config.max_root_fields as usize,
            max_expanded_fields: config.max_expanded_fields as usize,
            introspection: config.introspection,
        }
    }
}

/// Parses the request's document and checks it against the counted limits, leaving the
/// parsed document in the request so async-graphql does not parse it again.
pub fn prepare(request: &mut Request, limits: &Limits) -> Result<(), ServerError> {
    let document = request.parsed_query().map_err(|mut error| {
        if error.message == PARSER_TOO_DEEP {
            return too_deep(limits);
        }
        set_code_if_missing(&mut error, GRAPHQL_PARSE_FAILED);
        error
    })?;
    // Every walk below recurses through fragment spreads; bound their number first, so no
    // chain of fragments can run a walk out of stack.
    if document.fragments.len() > MAX_FRAGMENTS {
        return Err(codes::error(
            format!(
                "the document defines {} fragments; at most {MAX_FRAGMENTS} are allowed",
                document.fragments.len()
            ),
            QUERY_TOO_COMPLEX,
        ));
    }
    if let Some(name) = fragment_cycle(document) {
        // async-graphql measures nesting through fragments before it validates, and would
        // call a cycle too deep; it is a validation error ("Fragments Must Not Form Cycles").
        return Err(codes::error(
            format!("Cannot spread fragment \"{name}\" within itself."),
            GRAPHQL_VALIDATION_FAILED,
        ));
    }
    check(document, limits).map_err(|message| codes::error(message, QUERY_TOO_COMPLEX))
}

/// The name of a fragment that spreads itself, directly or through others, if any.
fn fragment_cycle(document: &ExecutableDocument) -> Option<&str> {
    /// Depth-first over spreads: `Some(true)` on the current path, `Some(false)` done.
    fn visit<'a>(
        document: &'a ExecutableDocument,
        set: &'a SelectionSet,
        state: &mut HashMap<&'a str, bool>,
    ) -> Option<&'a str> {
        set.items.iter().find_map(|item| match &item.node {
            Selection::Field(field) => visit(document, &field.node.selection_set.node, state),
            Selection::InlineFragment(inline) => visit(document, &inline.node.selection_set.node, state),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match state.get(name) {
                    Some(true) => Some(name),
                    Some(false) => None,
                    None => {
                        let fragment = document.fragments.get(name)?;
                        state.insert(name, true);
                        let cycle = visit(document, &fragment.node.selection_set.node, state);
                        state.insert(name, false);
                        cycle
                    }
                }
            }
        })
    }
    // In document order, as graphql-js reports it, so one document always gets one answer.
    let mut fragments: Vec<_> = document.fragments.iter().collect();
    fragments.sort_by_key(|(_, fragment)| (fragment.pos.line, fragment.pos.column));
    let mut state = HashMap::new();
    fragments.into_iter().find_map(|(name, fragment)| {
        if state.contains_key(name.as_str()) {
            return None;
        }
        state.insert(name.as_str(), true);
        let cycle = visit(document, &fragment.node.selection_set.node, &mut state);
        state.insert(name.as_str(), false);
        cycle
    })
}

/// Fragments one document may define: far more than client tools generate, few enough
/// that a chain of them cannot exhaust a worker's stack.
const MAX_FRAGMENTS: usize = 500;

/// What async-graphql's parser says of a document nested deeper than it will go (64
/// selection sets), before the depth can be measured.
const PARSER_TOO_DEEP: &str = "recursion limit exceeded.";

/// The one error for a document nested too deep, however deep and whichever check finds
/// it: ours, the parser's or async-graphql's own.
pub fn too_deep(limits: &Limits) -> ServerError {
    codes::error(too_deep_message(limits), QUERY_TOO_COMPLEX)
}

fn too_deep_message(limits: &Limits) -> String {
    format!("the query is nested too deep: at most {} levels of fields are allowed", limits.max_depth)
}

fn check(document: &ExecutableDocument, limits: &Limits) -> Result<(), String> {
    let aliases: usize = document
        .operations
        .iter()
        .map(|(_, op)| aliases_in(&op.node.selection_set.node))
        .chain(document.fragments.values().map(|f| aliases_in(&f.node.selection_set.node)))
        .sum();
    if aliases > limits.max_aliases {
        return Err(format!(
            "the document has {aliases} aliases; at most {} are allowed",
            limits.max_aliases
        ));
    }
    let mut expanded = Expanded { document, sizes: HashMap::new(), depths: HashMap::new() };
    for (_, operation) in document.operations.iter() {
        let set = &operation.node.selection_set.node;
        let roots = expanded.root_fields(set);
        if roots > limits.max_root_fields {
            return Err(format!(
                "an operation selects {roots} root fields; at most {} are allowed",
                limits.max_root_fields
            ));
        }
        if expanded.depth(set) > limits.max_depth {
            return Err(too_deep_message(limits));
        }
        let fields = expanded.size(set);
        if fields > limits.max_expanded_fields {
            return Err(format!(
                "an operation selects {fields} fields once its fragments are expanded; at most {} are allowed",
                limits.max_expanded_fields
            ));
        }
    }
    Ok(())
}

fn aliases_in(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + aliases_in(&field.node.selection_set.node)
            }
            Selection::InlineFragment(inline) => aliases_in(&inline.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Field counts and depths with fragments expanded, each fragment measured once.
struct Expanded<'a> {
    document: &'a ExecutableDocument,
    /// `None` while a fragment is being measured: meeting it again is a cycle, which the
    /// validator rejects with its own error, so it counts nothing here.
    sizes: HashMap<&'a str, Option<usize>>,
    /// The same for depths.
    depths: HashMap<&'a str, Option<usize>>,
}

impl<'a> Expanded<'a> {
    /// How deep fields nest, fragments looked through and `__typename` not counted: the
    /// measure of async-graphql's depth limit, checked here first so that every document
    /// too deep gets one error, however deep it is.
    fn depth(&mut self, set: &'a SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) if field.node.name.node == "__typename" => 0,
                Selection::Field(field) => 1 + self.depth(&field.node.selection_set.node),
                Selection::InlineFragment(inline) => self.depth(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str(), |e| &mut e.depths, Self::depth)
                }
            })
            .max()
            .unwrap_or(0)
    }

    fn size(&mut self, set: &'a SelectionSet) -> usize {
        set.items.iter().fold(0usize, |total, item| {
            let size = match &item.node {
                Selection::Field(field) => 1usize.saturating_add(self.size(&field.node.selection_set.node)),
                Selection::InlineFragment(inline) => self.size(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str(), |e| &mut e.sizes, Self::size)
                }
            };
            total.saturating_add(size)
        })
    }

    /// A fragment's `measure`, taken once per document and kept in `memo`; an unknown
    /// fragment, or one met again while it is being measured, counts 0.
    fn fragment(
        &mut self,
        name: &'a str,
        memo: fn(&mut Self) -> &mut HashMap<&'a str, Option<usize>>,
        measure: fn(&mut Self, &'a SelectionSet) -> usize,
    ) -> usize {
        if let Some(known) = memo(self).get(name) {
            return known.unwrap_or(0);
        }
        let document = self.document;
        let Some(fragment) = document.fragments.get(name) else { return 0 };
        memo(self).insert(name, None);
        let value = measure(self, &fragment.node.selection_set.node);
        memo(self).insert(name, Some(value));
        value
    }

    /// Fields directly under the root, looking through fragments.
    fn root_fields(&mut self, set: &'a SelectionSet) -> usize {
        self.root_fields_guarded(set, &mut Vec::new())
    }

    fn root_fields_guarded(&mut self, set: &'a SelectionSet, seen: &mut Vec<&'a str>) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(inline) => {
                    self.root_fields_guarded(&inline.node.selection_set.node, seen)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    match self.document.fragments.get(name) {
                        Some(fragment) if !seen.contains(&name) => {
                            seen.push(name);
                            let n = self.root_fields_guarded(&fragment.node.selection_set.node, seen);
                            seen.pop();
                            n
                        }
                        _ => 0,
                    }
                }
            })
            .sum()
    }
}
