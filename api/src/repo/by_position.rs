//! Users and posts read by the position of their columns.
//!
//! SeaORM's derived `FromQueryResult` finds each column of each row by its name (a SipHash
//! of the name and a probe of the row's column map), then checks the column's type against
//! the field's; for the hundreds of rows a page of posts brings, decoding was a fifth of
//! q1's instructions on PostgreSQL (BENCHMARKS.md, "Rows read by position, and responses
//! written by sonic-rs"). Every query of these models here selects the entity's columns, in
//! `Column::iter()` order, first (the SQLite page adds its `rank` after them), so the
//! i-th column is the i-th field: the tests below hold that order to the entity's.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{post, user};
use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryResult, RuntimeErr, Select, SelectModel,
    SelectorRaw, TryGetable,
    sqlx::{self, Postgres, Row as _, postgres::PgValueFormat},
};

/// A model decoded from its row by column position. Whole rows only (the prefix SeaORM
/// passes for joined models is not looked at): `all` and `all_raw` are the ways in.
#[repr(transparent)]
pub(crate) struct ByPosition<M>(M);

impl FromQueryResult for ByPosition<post::Model> {
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        Ok(Self(post::Model {
            id: column(row, 0)?,
            title: column(row, 1)?,
            content: column(row, 2)?,
            author_id: column(row, 3)?,
            created_at: timestamp(row, 4)?,
            updated_at: timestamp(row, 5)?,
        }))
    }
}

impl FromQueryResult for ByPosition<user::Model> {
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        Ok(Self(user::Model {
            id: column(row, 0)?,
            email: column(row, 1)?,
            name: column(row, 2)?,
            created_at: timestamp(row, 3)?,
            updated_at: timestamp(row, 4)?,
        }))
    }
}

/// Column `index` of `row`. On PostgreSQL it is decoded straight from sqlx's row, without
/// the type checks: the migrations fix each column's type, and a test reads every field
/// back on PostgreSQL. Elsewhere SeaORM reads it.
fn column<T>(row: &QueryResult, index: usize) -> Result<T, DbErr>
where
    T: TryGetable + sqlx::Type<Postgres> + for<'r> sqlx::Decode<'r, Postgres>,
{
    match row.try_as_pg_row() {
        Some(row) => {
            row.try_get_unchecked(index).map_err(|e| DbErr::Query(RuntimeErr::SqlxError(Arc::new(e))))
        }
        None => row.try_get_by_index(index),
    }
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00 UTC.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Column `index` of `row`, a `timestamptz`. On PostgreSQL, in the binary format it comes
/// in, it is read as what it is, microseconds since 2000-01-01 UTC: sqlx adds them to that
/// date as a `Duration`, through chrono's calendar arithmetic, which cost 2% of q1's
/// instructions for its 1,100 timestamps. A value out of chrono's range (`infinity`, which
/// Quill never writes) is an error where sqlx would panic.
fn timestamp(row: &QueryResult, index: usize) -> Result<DateTime<Utc>, DbErr> {
    let Some(pg_row) = row.try_as_pg_row() else {
        return column(row, index);
    };
    let value = pg_row.try_get_raw(index).map_err(|e| DbErr::Query(RuntimeErr::SqlxError(Arc::new(e))))?;
    if value.format() != PgValueFormat::Binary {
        return column(row, index);
    }
    let micros = value
        .as_bytes()
        .ok()
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(i64::from_be_bytes)
        .ok_or_else(|| DbErr::Type(format!("column {index} is not a timestamptz")))?;
    micros
        .checked_add(POSTGRES_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| DbErr::Type(format!("column {index} holds a timestamp out of range")))
}

/// Every row of `select`, decoded by position.
pub(crate) async fn all<E>(select: Select<E>, db: &impl ConnectionTrait) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    ByPosition<E::Model>: FromQueryResult,
{
    Ok(into_models(select.into_model::<ByPosition<E::Model>>().all(db).await?))
}

/// Every row of a raw statement that selects the entity's columns first, decoded by position.
pub(crate) async fn all_raw<M>(
    selector: SelectorRaw<SelectModel<M>>,
    db: &impl ConnectionTrait,
) -> Result<Vec<M>, DbErr>
where
    M: FromQueryResult,
    ByPosition<M>: FromQueryResult,
{
    Ok(into_models(selector.into_model::<ByPosition<M>>().all(db).await?))
}

fn into_models<M>(rows: Vec<ByPosition<M>>) -> Vec<M> {
    // `repr(transparent)`: collected in place, no second allocation.
    rows.into_iter().map(|ByPosition(model)| model).collect()
}

#[cfg(test)]
mod tests {
    use sea_orm::Iterable as _;

    use super::*;

    fn names<C: sea_orm::Iden>(columns: impl Iterator<Item = C>) -> Vec<String> {
        columns.map(|column| column.to_string()).collect()
    }

    #[test]
    fn a_post_is_decoded_in_the_order_its_entity_selects_its_columns() {
        let selected = names(post::Column::iter());
        assert_eq!(selected, ["id", "title", "content", "author_id", "created_at", "updated_at"]);
    }

    #[test]
    fn a_user_is_decoded_in_the_order_its_entity_selects_its_columns() {
        let selected = names(user::Column::iter());
        assert_eq!(selected, ["id", "email", "name", "created_at", "updated_at"]);
    }
}
