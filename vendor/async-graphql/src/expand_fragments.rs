//! Fragments expanded into the operation once per request, where the executor would expand
//! them for every object it answers.
//!
//! Collecting an object's fields ("CollectFields" in the specification) expands the
//! fragment spreads and inline fragments that apply to the object where they stand. The
//! executor does it for each object: a list of 500 posts, each spreading `...PostCard`,
//! looked the fragment up and walked it 500 times. Where the selection's type is an object
//! type, whether a fragment applies does not depend on the value, so it is expanded here,
//! once, into the operation the request runs. The fields and their order are those the
//! executor would collect, so every answer, error and hook is the same.

use std::collections::HashMap;

use crate::{
    Name,
    parser::{
        Positioned,
        types::{FragmentDefinition, Selection, SelectionSet},
    },
    registry::{MetaType, MetaTypeName, Registry},
};

/// Most selections the expanded operation may hold (fields, and the fragments left in
/// place, however deep): past it, spreads stay spreads, and the executor expands them as
/// it goes. Validation bounds a document's size long before this (its complexity counts
/// the fields of every spread); this only bounds the copying.
const MAX_SELECTIONS: usize = 10_000;

/// Expands, in `selection_set` (the operation's, on the root type `root`), every fragment
/// spread and inline fragment that applies to its object whatever the object's value: the
/// selection's type is an object type, the fragment's type condition names it or there is
/// none, and neither the spread, the inline fragment nor the fragment's definition carries
/// a directive (`@skip` and `@include` are applied before this). The rest are left for the
/// executor: fragments on an interface or a union, under a selection of an interface, and
/// any carrying a directive of the schema's own.
pub(crate) fn expand_fragments(
    registry: &Registry,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
    root: &str,
    selection_set: &mut SelectionSet,
) {
    // Most operations hold no fragment: they cost one walk, no lookup and no copy.
    if has_fragments(selection_set) {
        Expansion { registry, fragments, selections: 0 }.selection_set(selection_set, root, 0);
    }
}

/// Whether `selection_set`, however deep, spreads a fragment or holds an inline fragment.
fn has_fragments(selection_set: &SelectionSet) -> bool {
    selection_set.items.iter().any(|selection| match &selection.node {
        Selection::Field(field) => has_fragments(&field.node.selection_set.node),
        Selection::FragmentSpread(_) | Selection::InlineFragment(_) => true,
    })
}

struct Expansion<'a> {
    registry: &'a Registry,
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    /// Selections in the expanded operation so far.
    selections: usize,
}

impl Expansion<'_> {
    /// Expands `selection_set`, whose values are of the type named `type_name`.
    /// `depth` counts the fragments being expanded around it, which validation keeps from
    /// spreading themselves; bounded all the same.
    fn selection_set(&mut self, selection_set: &mut SelectionSet, type_name: &str, depth: usize) {
        let Some(ty) = self.registry.types.get(type_name) else {
            return;
        };
        let items = std::mem::take(&mut selection_set.items);
        let mut expanded = Vec::with_capacity(items.len());
        for selection in items {
            self.selection(selection, ty, depth, &mut expanded);
        }
        selection_set.items = expanded;
    }

    /// Pushes `selection` onto `expanded`, itself or, for a fragment that applies, its
    /// selections where it stands.
    fn selection(
        &mut self,
        mut selection: Positioned<Selection>,
        ty: &MetaType,
        depth: usize,
        expanded: &mut Vec<Positioned<Selection>>,
    ) {
        self.selections += 1;
        let room = matches!(ty, MetaType::Object { .. }) && depth < 64 && self.selections < MAX_SELECTIONS;
        let expands = |directives: &[_], condition: Option<&str>| {
            room && directives.is_empty() && condition.is_none_or(|condition| condition == ty.name())
        };
        match &mut selection.node {
            Selection::Field(field) => {
                let field = &mut field.node;
                if let Some(definition) = ty.field_by_name(&field.name.node) {
                    let inner = MetaTypeName::concrete_typename(&definition.ty);
                    self.selection_set(&mut field.selection_set.node, inner, depth);
                }
            }
            Selection::FragmentSpread(spread) => {
                let fragment = self.fragments.get(&spread.node.fragment_name.node).filter(|fragment| {
                    fragment.node.directives.is_empty()
                        && expands(
                            &spread.node.directives,
                            Some(fragment.node.type_condition.node.on.node.as_str()),
                        )
                });
                if let Some(fragment) = fragment {
                    for inner in fragment.node.selection_set.node.items.iter().cloned() {
                        self.selection(inner, ty, depth + 1, expanded);
                    }
                    return;
                }
            }
            Selection::InlineFragment(inline) => {
                let inline = &mut inline.node;
                let condition =
                    inline.type_condition.as_ref().map(|condition| condition.node.on.node.as_str());
                if expands(&inline.directives, condition) {
                    for inner in std::mem::take(&mut inline.selection_set.node.items) {
                        self.selection(inner, ty, depth + 1, expanded);
                    }
                    return;
                }
                // Left in place: what it holds is expanded for the type it names.
                self.selection_set(&mut inline.selection_set.node, condition.unwrap_or(ty.name()), depth + 1);
            }
        }
        expanded.push(selection);
    }
}
