//! A shortcut past async-graphql's executor for objects whose selection holds plain values
//! only.
//!
//! async-graphql resolves every field of every object as a boxed future, polled through
//! the object's own executor loop; in a list of hundreds of posts and their authors that
//! is most of the server's work, though the values are already in memory. An object that
//! implements [`PlainFields`] answers a selection of plain fields (no fragments, no
//! directives, each response key once) by building its value directly, in selection order.
//! Any other selection goes through the executor, so the shortcut never changes an answer;
//! a test compares the two paths field by field.

use async_graphql::{
    ContainerType, ContextSelectionSet, Value,
    indexmap::IndexMap,
    parser::types::{Field, Selection, SelectionSet},
};

/// An object with fields that need neither arguments nor waiting.
pub trait PlainFields: ContainerType {
    /// Its GraphQL type name, for `__typename`.
    const TYPE_NAME: &'static str;

    /// The value of `field`, if it is a plain one; `None` leaves the selection to the
    /// executor.
    fn plain_field(&self, field: &Field) -> Option<Value>;

    /// Whether the executor may resolve this selection's fields one after another: true
    /// unless several of them wait on loaders, whose batches should then run side by side.
    fn serial(&self, _ctx: &ContextSelectionSet<'_>) -> bool {
        true
    }
}

/// The object's value for `selection`, or `None` when the selection needs the executor.
pub fn resolve<T: PlainFields>(object: &T, selection: &SelectionSet) -> Option<Value> {
    let mut values = IndexMap::with_capacity(selection.items.len());
    for item in &selection.items {
        let Selection::Field(field) = &item.node else { return None };
        let field = &field.node;
        if !field.directives.is_empty() {
            return None;
        }
        let value = match field.name.node.as_str() {
            "__typename" => Value::String(T::TYPE_NAME.to_owned()),
            _ => object.plain_field(field)?,
        };
        if values.insert(field.response_key().node.clone(), value).is_some() {
            return None;
        }
    }
    Some(Value::Object(values))
}

/// Makes `$object`, a newtype over the derived object `$fields`, the GraphQL type
/// `$fields` defines, resolved through [`resolve`] when it can be and by the executor
/// otherwise (serially or not, as [`PlainFields::serial`] says).
macro_rules! object_with_plain_fields {
    ($object:ty, $fields:ty) => {
        impl async_graphql::OutputType for $object {
            fn type_name() -> std::borrow::Cow<'static, str> {
                <$fields as async_graphql::OutputType>::type_name()
            }

            fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
                <$fields as async_graphql::OutputType>::create_type_info(registry)
            }

            async fn resolve(
                &self,
                ctx: &async_graphql::ContextSelectionSet<'_>,
                _field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
            ) -> async_graphql::ServerResult<async_graphql::Value> {
                if let Some(value) = $crate::graphql::plain::resolve(self, &ctx.item.node) {
                    return Ok(value);
                }
                if $crate::graphql::plain::PlainFields::serial(self, ctx) {
                    async_graphql::resolver_utils::resolve_container_serial(ctx, self).await
                } else {
                    async_graphql::resolver_utils::resolve_container(ctx, self).await
                }
            }
        }

        impl async_graphql::ContainerType for $object {
            async fn resolve_field(
                &self,
                ctx: &async_graphql::Context<'_>,
            ) -> async_graphql::ServerResult<Option<async_graphql::Value>> {
                async_graphql::ContainerType::resolve_field(&self.0, ctx).await
            }
        }

        impl async_graphql::ObjectType for $object {}
    };
}

pub(crate) use object_with_plain_fields;
