use crate::{
    ContextSelectionSet, OutputType, Positioned, ServerResult, Value, extensions::ResolveInfo,
    parser::types::Field,
};

/// Resolve an list by executing each of the items concurrently.
pub async fn resolve_list<'a, T: OutputType + 'a>(
    ctx: &ContextSelectionSet<'a>,
    field: &Positioned<Field>,
    iter: impl IntoIterator<Item = T>,
    len: Option<usize>,
) -> ServerResult<Value> {
    let extensions = &ctx.query_env.extensions;
    if !extensions.is_empty() {
        let mut futures = len.map(Vec::with_capacity).unwrap_or_default();
        for (idx, item) in iter.into_iter().enumerate() {
            futures.push({
                let ctx = ctx.clone();
                async move {
                    let ctx_idx = ctx.with_index(idx);
                    let extensions = &ctx.query_env.extensions;

                    let resolve_info = ResolveInfo {
                        path_node: ctx_idx.path_node.as_ref().unwrap(),
                        parent_type: &Vec::<T>::type_name(),
                        return_type: &T::qualified_type_name(),
                        name: field.node.name.node.as_str(),
                        alias: field.node.alias.as_ref().map(|alias| alias.node.as_str()),
                        is_for_introspection: ctx_idx.is_for_introspection,
                        field: &field.node,
                    };
                    let resolve_fut = async {
                        OutputType::resolve(&item, &ctx_idx, field)
                            .await
                            .map(Option::Some)
                            .map_err(|err| ctx_idx.set_error_path(err))
                    };
                    futures_util::pin_mut!(resolve_fut);
                    extensions
                        .resolve(resolve_info, &mut resolve_fut)
                        .await
                        .map(|value| value.expect("You definitely encountered a bug!"))
                }
            });
        }
        Ok(Value::List(
            futures_util::future::try_join_all(futures).await?,
        ))
    } else {
        // The items known at once ([`OutputType::resolve_now_in`]) are answered where they
        // stand, up to the first that is not: from it on, each item gets a future.
        let mut values = len.map(Vec::with_capacity).unwrap_or_default();
        let mut items = iter.into_iter().enumerate();
        let Some(waiting) = items
            .by_ref()
            .find_map(|(idx, item)| match item.resolve_now_in(&ctx.with_index(idx), field) {
                Some(value) => {
                    values.push(value);
                    None
                }
                None => Some((idx, item)),
            })
        else {
            return Ok(Value::List(values));
        };
        let mut futures = len.map(|len| Vec::with_capacity(len.saturating_sub(values.len()))).unwrap_or_default();
        for (idx, item) in std::iter::once(waiting).chain(items) {
            let ctx_idx = ctx.with_index(idx);
            futures.push(async move {
                OutputType::resolve(&item, &ctx_idx, field)
                    .await
                    .map_err(|err| ctx_idx.set_error_path(err))
            });
        }
        values.extend(futures_util::future::try_join_all(futures).await?);
        Ok(Value::List(values))
    }
}

/// A list's value when every item is known at once ([`OutputType::resolve_now_in`]), as
/// [`resolve_list`] would answer it; `None` when an item waits, or when extensions are
/// registered (they see each item resolved).
pub fn resolve_list_now<'a, T: OutputType + 'a>(
    ctx: &ContextSelectionSet<'a>,
    field: &Positioned<Field>,
    iter: impl IntoIterator<Item = T>,
    len: Option<usize>,
) -> Option<Value> {
    if !ctx.query_env.extensions.is_empty() {
        return None;
    }
    let mut values = len.map(Vec::with_capacity).unwrap_or_default();
    for (idx, item) in iter.into_iter().enumerate() {
        values.push(item.resolve_now_in(&ctx.with_index(idx), field)?);
    }
    Some(Value::List(values))
}
