use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::Poll,
};

use futures_util::{FutureExt, StreamExt as _, stream::FuturesUnordered};
use indexmap::IndexSet;

use crate::{
    Context, ContextBase, ContextSelectionSet, Error, Name, ObjectMap, OutputType, ServerError,
    ServerResult, Value,
    extensions::ResolveInfo,
    parser::types::{Field, FragmentDefinition, Selection, SelectionSet},
    Positioned,
};

/// Represents a GraphQL container object.
///
/// This helper trait allows the type to call `resolve_container` on itself in
/// its `OutputType::resolve` implementation.
#[cfg_attr(feature = "boxed-trait", async_trait::async_trait)]
pub trait ContainerType: OutputType {
    /// This function returns true of type `EmptyMutation` only.
    #[doc(hidden)]
    fn is_empty() -> bool {
        false
    }

    /// Resolves a field value and outputs it as a json value
    /// `async_graphql::Value`.
    ///
    /// If the field was not found returns None.
    #[cfg(feature = "boxed-trait")]
    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>>;

    /// Resolves a field value and outputs it as a json value
    /// `async_graphql::Value`.
    ///
    /// If the field was not found returns None.
    #[cfg(not(feature = "boxed-trait"))]
    fn resolve_field(
        &self,
        ctx: &Context<'_>,
    ) -> impl Future<Output = ServerResult<Option<Value>>> + Send;

    /// The value of `field` (selected in `ctx`), when it is known without waiting
    /// ([`OutputType::resolve_now`]): a field of a `SimpleObject` without a guard, or a
    /// `ComplexObject` resolver written as a plain `fn` without arguments, a guard or a
    /// `Result` ([`crate::ComplexObject::resolve_field_now`]), whose type is a scalar or
    /// an enum. `None`, the default, sends the field through
    /// [`ContainerType::resolve_field`], which answers it the same way. The derive for
    /// `SimpleObject` writes it.
    #[doc(hidden)]
    #[inline]
    fn resolve_field_now(&self, _ctx: &ContextSelectionSet<'_>, _field: &Positioned<Field>) -> Option<Value> {
        None
    }

    /// Collect all the fields of the container that are queried in the
    /// selection set.
    ///
    /// Objects do not have to override this, but interfaces and unions must
    /// call it on their internal type.
    fn collect_all_fields<'a>(
        &'a self,
        ctx: &ContextSelectionSet<'a>,
        fields: &mut Fields<'a>,
    ) -> ServerResult<()>
    where
        Self: Send + Sync,
    {
        fields.add_set(ctx, self)
    }

    /// Find the GraphQL entity with the given name from the parameter.
    ///
    /// Objects should override this in case they are the query root.
    #[cfg(feature = "boxed-trait")]
    async fn find_entity(&self, _: &Context<'_>, _: &Value) -> ServerResult<Option<Value>> {
        Ok(None)
    }

    /// Find the GraphQL entity with the given name from the parameter.
    ///
    /// Objects should override this in case they are the query root.
    #[cfg(not(feature = "boxed-trait"))]
    fn find_entity(
        &self,
        _: &Context<'_>,
        _params: &Value,
    ) -> impl Future<Output = ServerResult<Option<Value>>> + Send {
        async { Ok(None) }
    }
}

#[cfg_attr(feature = "boxed-trait", async_trait::async_trait)]
impl<T: ContainerType + ?Sized> ContainerType for &T {
    fn resolve_field_now(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        T::resolve_field_now(*self, ctx, field)
    }

    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        T::resolve_field(*self, ctx).await
    }

    async fn find_entity(&self, ctx: &Context<'_>, params: &Value) -> ServerResult<Option<Value>> {
        T::find_entity(*self, ctx, params).await
    }
}

#[cfg_attr(feature = "boxed-trait", async_trait::async_trait)]
impl<T: ContainerType + ?Sized> ContainerType for Arc<T> {
    fn resolve_field_now(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        T::resolve_field_now(self, ctx, field)
    }

    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        T::resolve_field(self, ctx).await
    }

    async fn find_entity(&self, ctx: &Context<'_>, params: &Value) -> ServerResult<Option<Value>> {
        T::find_entity(self, ctx, params).await
    }
}

#[cfg_attr(feature = "boxed-trait", async_trait::async_trait)]
impl<T: ContainerType + ?Sized> ContainerType for Box<T> {
    fn resolve_field_now(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        T::resolve_field_now(self, ctx, field)
    }

    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        T::resolve_field(self, ctx).await
    }

    async fn find_entity(&self, ctx: &Context<'_>, params: &Value) -> ServerResult<Option<Value>> {
        T::find_entity(self, ctx, params).await
    }
}

#[cfg_attr(feature = "boxed-trait", async_trait::async_trait)]
impl<T: ContainerType, E: Into<Error> + Send + Sync + Clone> ContainerType for Result<T, E> {
    fn resolve_field_now(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        self.as_ref().ok()?.resolve_field_now(ctx, field)
    }

    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        match self {
            Ok(value) => T::resolve_field(value, ctx).await,
            Err(err) => Err(ctx.set_error_path(err.clone().into().into_server_error(ctx.item.pos))),
        }
    }

    async fn find_entity(&self, ctx: &Context<'_>, params: &Value) -> ServerResult<Option<Value>> {
        match self {
            Ok(value) => T::find_entity(value, ctx, params).await,
            Err(err) => Err(ctx.set_error_path(err.clone().into().into_server_error(ctx.item.pos))),
        }
    }
}

/// An object's value, resolving: already answered when every field of it was known at once
/// (an author's `id` and `email`), and otherwise boxed by both paths, so that the future of
/// every field whose value is an object holds a pointer rather than the object's own
/// state: a field that waits keeps its future allocated, and objects by the hundred wait
/// on one batch.
pub enum ObjectFuture<'a> {
    /// Every field was known at once: the value, until it is taken.
    Answered(Option<ServerResult<Value>>),
    /// A field waits, or the object goes through the per-field path.
    Resolving(Pin<Box<dyn Future<Output = ServerResult<Value>> + Send + 'a>>),
}

impl Future for ObjectFuture<'_> {
    type Output = ServerResult<Value>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            ObjectFuture::Answered(value) => {
                Poll::Ready(value.take().expect("an answered object is polled once"))
            }
            ObjectFuture::Resolving(future) => future.as_mut().poll(cx),
        }
    }
}

/// Resolve an container by executing each of the fields concurrently.
pub fn resolve_container<'a, T: ContainerType + ?Sized>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
) -> ObjectFuture<'a> {
    match fields_in_place(ctx, root) {
        Some(fields) => resolve_in_place(ctx, root, fields, true),
        None => resolve_container_boxed(ctx, root, true),
    }
}

/// Resolve an container by executing each of the fields serially.
pub fn resolve_container_serial<'a, T: ContainerType + ?Sized>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
) -> ObjectFuture<'a> {
    match fields_in_place(ctx, root) {
        Some(fields) => resolve_in_place(ctx, root, fields, false),
        None => resolve_container_boxed(ctx, root, false),
    }
}

/// The object's value when every field it selects is known at once ([`value_now`]: a
/// scalar or an enum it holds, `__typename`, or an object or a list of objects answered
/// so in turn), as [`resolve_container`] would answer it; `None` when a field waits or
/// the object goes through the per-field path. The fields answered before one that waits
/// are answered again by `resolve_container`: they have no effect. A selection found to
/// wait is not tried again in the request ([`SelectionsThatWait`]): whether a field waits
/// depends on the selection far more often than on the value (q5's authors each select
/// a `profile`, which waits, after a `name`, which does not).
pub fn resolve_container_now<T: ContainerType + ?Sized>(ctx: &ContextSelectionSet<'_>, root: &T) -> Option<Value> {
    let selection = std::ptr::from_ref(ctx.item) as usize;
    let waiting = &ctx.query_env.selections_that_wait;
    if waiting.contains(selection) {
        return None;
    }
    let fields = fields_in_place(ctx, root)?;
    let mut results = ObjectMap::with_capacity(fields.size);
    for field in fields {
        let Some(value) = value_now(ctx, root, field) else {
            waiting.insert(selection);
            return None;
        };
        insert_value(&mut results, field.node.response_key().node.clone(), value);
    }
    Some(Value::Object(results))
}

/// The selection sets of a request, by address, found to select a field that waits: in a
/// few slots, each taken once and read without a lock by every object answered. Past
/// them, a selection is tried again, which costs its work and changes no answer.
#[doc(hidden)]
#[derive(Default)]
pub struct SelectionsThatWait([std::sync::atomic::AtomicUsize; 8]);

impl SelectionsThatWait {
    #[inline]
    fn contains(&self, selection: usize) -> bool {
        self.0.iter().any(|slot| slot.load(std::sync::atomic::Ordering::Relaxed) == selection)
    }

    fn insert(&self, selection: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        for slot in &self.0 {
            match slot.compare_exchange(0, selection, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(taken) if taken == selection => return,
                Err(_) => {}
            }
        }
    }
}

/// The per-field path ([`Fields`]) of [`resolve_container`], boxed.
fn resolve_container_boxed<'a, T: ContainerType + ?Sized>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
    parallel: bool,
) -> ObjectFuture<'a> {
    let ctx = ctx.clone();
    ObjectFuture::Resolving(Box::pin(async move { resolve_container_inner(&ctx, root, parallel).await }))
}

/// The fields an object's selection selects, or `None` when the object must go through
/// [`Fields`], whose per-field futures carry the hooks: when extensions or custom
/// directives are registered, when `root` is an interface or a union (whose concrete type
/// collects the fields), or when a fragment is unknown (which [`Fields`] reports).
fn fields_in_place<'a, T: ContainerType + ?Sized>(
    ctx: &ContextSelectionSet<'a>,
    root: &T,
) -> Option<SelectedFields<'a>> {
    if !ctx.query_env.extensions.is_empty() || !ctx.schema_env.custom_directives.is_empty() {
        return None;
    }
    let type_name = T::type_name();
    if root.introspection_type_name() != type_name {
        return None;
    }
    let fragments = &ctx.query_env.fragments;
    let size = selected_size(fragments, &ctx.item.node, 4)?;
    Some(SelectedFields {
        size,
        fragments,
        interfaces: ctx.schema_env.registry.implements.get(type_name.as_ref()),
        type_name,
        current: ctx.item.node.items.iter(),
        outer: Outer::default(),
    })
}

type Fragments = HashMap<Name, Positioned<FragmentDefinition>>;

/// The fragment a spread names. A document holds a few fragments, and comparing a few
/// short names costs less than hashing one (the map's hasher is SipHash), which an object
/// with fragments paid twice per spread.
fn fragment<'a>(fragments: &'a Fragments, name: &Name) -> Option<&'a Positioned<FragmentDefinition>> {
    if fragments.len() <= 8 {
        fragments.iter().find_map(|(key, fragment)| (key == name).then_some(fragment))
    } else {
        fragments.get(name)
    }
}

/// How many fields `selection_set` holds with its fragments expanded (those on other types
/// counted too: an upper bound, to size the object's map once), or `None` when it spreads a
/// fragment the document lacks. Fragments nested deeper than `depth` count as one field
/// (validation has already refused cycles; this only bounds the walk).
#[inline]
fn selected_size(fragments: &Fragments, selection_set: &SelectionSet, depth: usize) -> Option<usize> {
    let mut size = 0;
    for selection in &selection_set.items {
        size += match &selection.node {
            Selection::Field(_) => 1,
            fragment => fragment_size(fragments, fragment, depth)?,
        };
    }
    Some(size)
}

/// The fields a fragment spread or an inline fragment adds, as [`selected_size`] counts
/// them. Out of line: after `expand_fragments`, most selections hold none.
#[inline(never)]
fn fragment_size(fragments: &Fragments, selection: &Selection, depth: usize) -> Option<usize> {
    let inner = match selection {
        Selection::Field(_) => return Some(1),
        Selection::FragmentSpread(spread) => {
            &fragment(fragments, &spread.node.fragment_name.node)?.node.selection_set.node
        }
        Selection::InlineFragment(fragment) => &fragment.node.selection_set.node,
    };
    match depth {
        0 => Some(1),
        _ => selected_size(fragments, inner, depth - 1),
    }
}

/// The fields of an object's selection in selection order, the fragments and inline
/// fragments that apply to the object expanded where they stand, as [`Fields::add_set`]
/// expands them (`@skip` and `@include` are already applied to the document). Taken one
/// at a time: a selection without fragments costs no allocation.
struct SelectedFields<'a> {
    /// How large the object's map is made: its fields counted by [`selected_size`].
    size: usize,
    fragments: &'a Fragments,
    /// The interfaces the object implements, for fragments on an interface.
    interfaces: Option<&'a IndexSet<String>>,
    type_name: std::borrow::Cow<'static, str>,
    current: std::slice::Iter<'a, Positioned<Selection>>,
    /// The selections the fragments being expanded stand in.
    outer: Outer<'a>,
}

/// A stack of the selections the fragments being expanded stand in, innermost on top. The
/// bottom one is kept inline: an object usually expands one fragment at a time, and then
/// the stack allocates nothing.
#[derive(Default)]
struct Outer<'a> {
    bottom: Option<std::slice::Iter<'a, Positioned<Selection>>>,
    above: Vec<std::slice::Iter<'a, Positioned<Selection>>>,
}

impl<'a> Outer<'a> {
    fn push(&mut self, selections: std::slice::Iter<'a, Positioned<Selection>>) {
        if self.bottom.is_none() {
            self.bottom = Some(selections);
        } else {
            self.above.push(selections);
        }
    }

    fn pop(&mut self) -> Option<std::slice::Iter<'a, Positioned<Selection>>> {
        self.above.pop().or_else(|| self.bottom.take())
    }

    /// Whether no fragment is being expanded: `above` holds entries only while `bottom`
    /// does, as `push` fills `bottom` first and `pop` empties it last.
    fn is_empty(&self) -> bool {
        self.bottom.is_none()
    }
}

impl<'a> Iterator for SelectedFields<'a> {
    type Item = &'a Positioned<Field>;

    /// Inlined for the usual case, a field where it stands (as every selection is once its
    /// fragments are expanded, `expand_fragments`): the call cost more than taking it.
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self.current.next() {
            Some(Positioned { node: Selection::Field(field), .. }) => Some(field),
            None if self.outer.is_empty() => None,
            selection => self.next_through_fragments(selection),
        }
    }
}

impl<'a> SelectedFields<'a> {
    /// The next field after `selection`, taken from `current`, when it is a fragment or the
    /// end of the fragment being expanded.
    #[inline(never)]
    fn next_through_fragments(
        &mut self,
        mut selection: Option<&'a Positioned<Selection>>,
    ) -> Option<&'a Positioned<Field>> {
        loop {
            let Some(selection) = selection.take().or_else(|| self.current.next()) else {
                self.current = self.outer.pop()?;
                continue;
            };
            let (condition, selection_set) = match &selection.node {
                Selection::Field(field) => return Some(field),
                Selection::FragmentSpread(spread) => {
                    // Known: checked before the walk began.
                    let Some(fragment) = fragment(self.fragments, &spread.node.fragment_name.node)
                    else {
                        continue;
                    };
                    (
                        Some(fragment.node.type_condition.node.on.node.as_str()),
                        &fragment.node.selection_set.node,
                    )
                }
                Selection::InlineFragment(fragment) => (
                    fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map(|condition| condition.node.on.node.as_str()),
                    &fragment.node.selection_set.node,
                ),
            };
            let applies = condition.is_none_or(|condition| {
                condition == self.type_name
                    || self.interfaces.is_some_and(|interfaces| interfaces.contains(condition))
            });
            if applies {
                let inner = selection_set.items.iter();
                self.outer.push(std::mem::replace(&mut self.current, inner));
            }
        }
    }
}

/// Resolves the selected `fields` of `root` within one future, each field's future polled
/// inside it rather than boxed and spawned on its own. Serially, one after another.
/// Side by side, the same until a field waits: it keeps the future's one slot, and the
/// fields after it start at once in a `FuturesUnordered`, so no field waits for another to
/// start and a field is polled again only when it is woken. Most objects have at most one
/// field that waits (a page of posts, an author not at hand), so most never make the set.
/// Values, order and errors are those of [`try_resolve_container`]. Boxed, so that an
/// object met again below itself (a post's author's posts) has a finite type; but the
/// fields known at once ([`value_now`]) up to the first that is not are answered before
/// the future is made, so an object whose fields all are needs none.
fn resolve_in_place<'a, T: ContainerType + ?Sized>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
    mut fields: SelectedFields<'a>,
    parallel: bool,
) -> ObjectFuture<'a> {
    let mut results = ObjectMap::with_capacity(fields.size);
    // Fields taken from `fields` so far, to size `later` below once.
    let mut taken = 0;
    let first = loop {
        let Some(field) = fields.next() else {
            return ObjectFuture::Answered(Some(Ok(Value::Object(results))));
        };
        taken += 1;
        match value_now(ctx, root, field) {
            Some(value) => insert_value(&mut results, field.node.response_key().node.clone(), value),
            None => break field,
        }
    };
    let ctx = ctx.clone();
    ObjectFuture::Resolving(Box::pin(async move {
        // Boxed: this future stays allocated while a field waits, and an error is rare.
        let mut propagated: Option<Box<ServerError>> = None;
        let mut record = |field: &Positioned<Field>, outcome: ServerResult<Value>| match outcome {
            Ok(value) => {
                insert_value(&mut results, field.node.response_key().node.clone(), value);
                true
            }
            Err(err) => {
                match propagated {
                    None => propagated = Some(Box::new(err)),
                    Some(_) => ctx.add_error(err),
                }
                false
            }
        };
        if parallel {
            let resolve = |field| resolve_field_in_place(&ctx, root, field);
            let mut slot = std::pin::pin!(empty_slot(&resolve));
            // From the field that waited first (in the slot) on, each field and, once it
            // has finished, its outcome.
            let mut later: Vec<(&Positioned<Field>, Option<ServerResult<Value>>)> = Vec::new();
            // The field found not known at once above, resolved first.
            let mut first = Some(first);
            // The fields after it, each polled only when it is woken; made only when there
            // are any (an empty set allocates).
            let mut boxed = None;
            std::future::poll_fn(|cx| {
                // Whether the slot's field has just been polled, in the walk below.
                let mut slot_polled = false;
                if later.is_empty() {
                    while slot.is_none() {
                        let field = match first.take() {
                            Some(field) => field,
                            None => {
                                let Some(field) = fields.next() else {
                                    return Poll::Ready(());
                                };
                                taken += 1;
                                if let Some(value) = value_now(&ctx, root, field) {
                                    record(field, Ok(value));
                                    continue;
                                }
                                field
                            }
                        };
                        slot.set(Some(resolve(field)));
                        let running = slot.as_mut().as_pin_mut().expect("the slot holds a field");
                        match running.poll(cx) {
                            Poll::Ready(outcome) => {
                                slot.set(None);
                                record(field, outcome);
                            }
                            Poll::Pending => {
                                slot_polled = true;
                                // Sized for the fields left (at most `size` in all): an
                                // outcome is over a hundred bytes, and the four a first
                                // push makes room for would stay allocated while objects
                                // by the hundred wait on one batch.
                                later.reserve_exact(1 + fields.size.saturating_sub(taken));
                                later.push((field, None));
                            }
                        }
                    }
                    // The slot's field waits: the rest start now.
                    for field in fields.by_ref() {
                        if let Some(value) = value_now(&ctx, root, field) {
                            later.push((field, Some(Ok(value))));
                            continue;
                        }
                        let index = later.len();
                        let future = resolve(field).map(move |outcome| (index, outcome));
                        boxed.get_or_insert_with(FuturesUnordered::new).push(future);
                        later.push((field, None));
                    }
                }
                let mut waiting = slot_polled;
                if let Some(running) = slot.as_mut().as_pin_mut().filter(|_| !slot_polled) {
                    match running.poll(cx) {
                        Poll::Ready(outcome) => {
                            later[0].1 = Some(outcome);
                            slot.set(None);
                        }
                        Poll::Pending => waiting = true,
                    }
                }
                while let Some(boxed) = &mut boxed {
                    match boxed.poll_next_unpin(cx) {
                        Poll::Ready(Some((index, outcome))) => later[index].1 = Some(outcome),
                        Poll::Ready(None) => break,
                        Poll::Pending => {
                            waiting = true;
                            break;
                        }
                    }
                }
                if waiting { Poll::Pending } else { Poll::Ready(()) }
            })
            .await;
            for (field, outcome) in later {
                record(field, outcome.expect("every field has finished"));
            }
        } else {
            // Serial execution (mutations) stops at a non-null field's error.
            let outcome = resolve_field_in_place(&ctx, root, first).await;
            if record(first, outcome) {
                for field in fields {
                    let outcome = match value_now(&ctx, root, field) {
                        Some(value) => Ok(value),
                        None => resolve_field_in_place(&ctx, root, field).await,
                    };
                    if !record(field, outcome) {
                        break;
                    }
                }
            }
        }
        match propagated {
            Some(err) => Err(*err),
            None => Ok(Value::Object(results)),
        }
    }))
}

/// An empty slot for the futures `resolve` makes (which cannot be named).
fn empty_slot<'a, F>(_resolve: &impl Fn(&'a Positioned<Field>) -> F) -> Option<F> {
    None
}

/// The value of a field answered where it is met rather than by a future of its own:
/// `__typename` (an answer for Apollo Client or graphql-codegen asks it of every object),
/// and a field whose value is known at once ([`ContainerType::resolve_field_now`]: a
/// scalar or an enum the object holds, without a guard, or that a plain `fn` gives).
#[inline]
fn value_now<T: ContainerType + ?Sized>(
    ctx: &ContextSelectionSet<'_>,
    root: &T,
    field: &Positioned<Field>,
) -> Option<Value> {
    if field.node.name.node == "__typename" {
        return Some(Value::String(root.introspection_type_name().into_owned()));
    }
    root.resolve_field_now(ctx, field)
}

/// One field's value, those known at once aside ([`value_now`]): a nullable field's error is
/// recorded and the field is null; a non-null field's error is returned, to null the
/// object.
async fn resolve_field_in_place<'a, T: ContainerType + ?Sized>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
    field: &'a Positioned<Field>,
) -> ServerResult<Value> {
    match root.resolve_field(&ctx.with_field(field)).await {
        Ok(value) => Ok(value.unwrap_or_default()),
        Err(err) if !is_non_null_field(ctx, &T::type_name(), &field.node.name.node) => {
            ctx.add_error(err);
            Ok(Value::Null)
        }
        Err(err) => Err(err),
    }
}

/// Inlined into its callers: called for every field of every answer, the call cost as much
/// as the insertion.
#[inline(always)]
fn insert_value(target: &mut ObjectMap<Value>, name: Name, value: Value) {
    match target.entry(name) {
        async_graphql_value::Entry::Vacant(entry) => {
            entry.insert(value);
        }
        async_graphql_value::Entry::Occupied(mut entry) => merge_value(entry.get_mut(), value),
    }
}

/// Merges `value` into the value already answered for the same response key.
fn merge_value(prev_value: &mut Value, value: Value) {
    if let Value::Object(target_map) = prev_value {
        if let Value::Object(obj) = value {
            for (key, value) in obj.into_iter() {
                insert_value(target_map, key, value);
            }
        }
    } else if let Value::List(target_list) = prev_value
        && let Value::List(list) = value
    {
        for (idx, value) in list.into_iter().enumerate() {
            if let Some(Value::Object(target_map)) = target_list.get_mut(idx)
                && let Value::Object(obj) = value
            {
                for (key, value) in obj.into_iter() {
                    insert_value(target_map, key, value);
                }
            }
        }
    }
}

async fn resolve_container_inner<'a, T: ContainerType + ?Sized>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
    parallel: bool,
) -> ServerResult<Value> {
    let mut fields = Fields(Vec::new());
    fields.add_set(ctx, root)?;

    try_resolve_container(ctx, parallel, fields.0).await
}

#[cfg_attr(not(feature = "dynamic-schema"), allow(dead_code))]
pub(crate) async fn do_resolve_container<'a>(
    ctx: &ContextSelectionSet<'a>,
    parallel: bool,
    futures: Vec<BoxFieldFuture<'a>>,
) -> Value {
    match try_resolve_container(ctx, parallel, futures).await {
        Ok(value) => value,
        Err(err) => {
            ctx.add_error(err);
            Value::Null
        }
    }
}

/// Resolves the collected fields and builds the object in selection order (GraphQL spec,
/// "Serialization Format"), however the fields' futures complete. A field's error has
/// already been recorded with a null in its place when the field is nullable; the error of
/// a non-null field is returned, so the whole object becomes null in the field above
/// ("Handling Field Errors"). Every field runs to the end first, so which errors are
/// recorded does not depend on timing.
pub(crate) async fn try_resolve_container<'a>(
    ctx: &ContextSelectionSet<'a>,
    parallel: bool,
    futures: Vec<BoxFieldFuture<'a>>,
) -> ServerResult<Value> {
    let mut outcomes = Vec::with_capacity(futures.len());
    if parallel && futures.len() > 1 {
        outcomes.resize_with(futures.len(), || None);
        let mut set: FuturesUnordered<_> = futures
            .into_iter()
            .enumerate()
            .map(|(index, field)| field.map(move |outcome| (index, outcome)))
            .collect();
        while let Some((index, outcome)) = set.next().await {
            outcomes[index] = Some(outcome);
        }
    } else {
        for field in futures {
            let outcome = field.await;
            let failed = outcome.is_err();
            outcomes.push(Some(outcome));
            if failed {
                // Serial execution (mutations) stops at a non-null field's error.
                break;
            }
        }
    }

    let mut results = ObjectMap::with_capacity(outcomes.len());
    let mut propagated = None;
    for outcome in outcomes.into_iter().flatten() {
        match outcome {
            Ok((name, value)) => insert_value(&mut results, name, value),
            Err(err) if propagated.is_none() => propagated = Some(err),
            Err(err) => ctx.add_error(err),
        }
    }
    match propagated {
        Some(err) => Err(err),
        None => Ok(Value::Object(results)),
    }
}

/// Whether the field `name` of the object type `type_name` is declared non-null; unknown
/// fields count as nullable.
fn is_non_null_field(ctx: &ContextSelectionSet<'_>, type_name: &str, name: &str) -> bool {
    ctx.schema_env
        .registry
        .types
        .get(type_name)
        .and_then(|ty| ty.field_by_name(name))
        .is_some_and(|field| field.ty.ends_with('!'))
}

type BoxFieldFuture<'a> = Pin<Box<dyn Future<Output = ServerResult<(Name, Value)>> + 'a + Send>>;

/// A set of fields on an container that are being selected.
pub struct Fields<'a>(Vec<BoxFieldFuture<'a>>);

impl<'a> Fields<'a> {
    /// Add another set of fields to this set of fields using the given
    /// container.
    pub fn add_set<T: ContainerType + ?Sized>(
        &mut self,
        ctx: &ContextSelectionSet<'a>,
        root: &'a T,
    ) -> ServerResult<()> {
        for selection in &ctx.item.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    if field.node.name.node == "__typename" {
                        // Get the typename
                        let ctx_field = ctx.with_field(field);
                        let field_name = ctx_field.item.node.response_key().node.clone();
                        let typename = root.introspection_type_name().into_owned();

                        self.0.push(Box::pin(async move {
                            Ok((field_name, Value::String(typename)))
                        }));
                        continue;
                    }

                    let resolve_fut = Box::pin({
                        let parent = ctx.clone();
                        let ctx = ctx.clone();
                        let resolved = async move {
                            let ctx_field = ctx.with_field(field);
                            let field_name = ctx_field.item.node.response_key().node.clone();
                            let extensions = &ctx.query_env.extensions;

                            if extensions.is_empty() && field.node.directives.is_empty() {
                                Ok((
                                    field_name,
                                    root.resolve_field(&ctx_field).await?.unwrap_or_default(),
                                ))
                            } else {
                                let type_name = T::type_name();
                                let resolve_info = ResolveInfo {
                                    path_node: ctx_field.path_node.as_ref().unwrap(),
                                    parent_type: &type_name,
                                    return_type: match ctx_field
                                        .schema_env
                                        .registry
                                        .types
                                        .get(type_name.as_ref())
                                        .and_then(|ty| {
                                            ty.field_by_name(field.node.name.node.as_str())
                                        })
                                        .map(|field| &field.ty)
                                    {
                                        Some(ty) => &ty,
                                        None => {
                                            return Err(ServerError::new(
                                                format!(
                                                    r#"Cannot query field "{}" on type "{}"."#,
                                                    field_name, type_name
                                                ),
                                                Some(ctx_field.item.pos),
                                            ));
                                        }
                                    },
                                    name: field.node.name.node.as_str(),
                                    alias: field
                                        .node
                                        .alias
                                        .as_ref()
                                        .map(|alias| alias.node.as_str()),
                                    is_for_introspection: ctx_field.is_for_introspection,
                                    field: &field.node,
                                };

                                let resolve_fut = root.resolve_field(&ctx_field);

                                if field.node.directives.is_empty() {
                                    futures_util::pin_mut!(resolve_fut);
                                    Ok((
                                        field_name,
                                        extensions
                                            .resolve(resolve_info, &mut resolve_fut)
                                            .await?
                                            .unwrap_or_default(),
                                    ))
                                } else {
                                    let mut resolve_fut = resolve_fut.boxed();

                                    for directive in &field.node.directives {
                                        if let Some(directive_factory) = ctx
                                            .schema_env
                                            .custom_directives
                                            .get(directive.node.name.node.as_str())
                                        {
                                            let ctx_directive = ContextBase {
                                                path_node: ctx_field.path_node,
                                                is_for_introspection: false,
                                                item: directive,
                                                schema_env: ctx_field.schema_env,
                                                query_env: ctx_field.query_env,
                                                execute_data: ctx_field.execute_data,
                                            };
                                            let directive_instance = directive_factory
                                                .create(&ctx_directive, &directive.node)?;
                                            resolve_fut = Box::pin({
                                                let ctx_field = ctx_field.clone();
                                                async move {
                                                    directive_instance
                                                        .resolve_field(&ctx_field, &mut resolve_fut)
                                                        .await
                                                }
                                            });
                                        }
                                    }

                                    Ok((
                                        field_name,
                                        extensions
                                            .resolve(resolve_info, &mut resolve_fut)
                                            .await?
                                            .unwrap_or_default(),
                                    ))
                                }
                            }
                        };
                        async move {
                            match resolved.await {
                                Err(err)
                                    if !is_non_null_field(
                                        &parent,
                                        &root.introspection_type_name(),
                                        &field.node.name.node,
                                    ) =>
                                {
                                    // A nullable field that errors is null, its key kept.
                                    parent.add_error(err);
                                    Ok((field.node.response_key().node.clone(), Value::Null))
                                }
                                outcome => outcome,
                            }
                        }
                    });

                    self.0.push(resolve_fut);
                }
                selection => {
                    let (type_condition, selection_set) = match selection {
                        Selection::Field(_) => unreachable!(),
                        Selection::FragmentSpread(spread) => {
                            let fragment =
                                ctx.query_env.fragments.get(&spread.node.fragment_name.node);
                            let fragment = match fragment {
                                Some(fragment) => fragment,
                                None => {
                                    return Err(ServerError::new(
                                        format!(
                                            r#"Unknown fragment "{}"."#,
                                            spread.node.fragment_name.node
                                        ),
                                        Some(spread.pos),
                                    ));
                                }
                            };
                            (
                                Some(&fragment.node.type_condition),
                                &fragment.node.selection_set,
                            )
                        }
                        Selection::InlineFragment(fragment) => (
                            fragment.node.type_condition.as_ref(),
                            &fragment.node.selection_set,
                        ),
                    };
                    let type_condition =
                        type_condition.map(|condition| condition.node.on.node.as_str());

                    let introspection_type_name = root.introspection_type_name();

                    let applies_concrete_object = type_condition.is_some_and(|condition| {
                        introspection_type_name == condition
                            || ctx
                                .schema_env
                                .registry
                                .implements
                                .get(&*introspection_type_name)
                                .is_some_and(|interfaces| interfaces.contains(condition))
                    });
                    if applies_concrete_object {
                        root.collect_all_fields(&ctx.with_selection_set(selection_set), self)?;
                    } else if type_condition.is_none_or(|condition| T::type_name() == condition) {
                        // The fragment applies to an interface type.
                        self.add_set(&ctx.with_selection_set(selection_set), root)?;
                    }
                }
            }
        }
        Ok(())
    }
}
