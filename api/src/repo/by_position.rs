//! Users and posts read by the position of their columns.
//!
//! SeaORM's derived `FromQueryResult` finds each column of each row by its name (a SipHash
//! of the name and a probe of the row's column map), then checks the column's type against
//! the field's; for the hundreds of rows a page of posts brings, decoding was a fifth of
//! q1's instructions on PostgreSQL (BENCHMARKS.md, "Rows read by position, and responses
//! written by sonic-rs"). Every query of these models here selects the entity's columns, in
//! `Column::iter()` order, first (the SQLite page adds its `rank` after them), so the
//! i-th column is the i-th field: the tests below hold that order to the entity's.

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use entity::{post, user};
use futures::TryStreamExt as _;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseConnectionType, DbErr, EntityTrait, FromQueryResult,
    QueryResult, QueryTrait as _, RuntimeErr, Select, Statement, TryGetable,
    metric::Info,
    sea_query::Values,
    sqlx::{
        self, AssertSqlSafe, Postgres, Row as _,
        postgres::{PgRow, PgValueFormat},
    },
};
use sea_query_sqlx::SqlxValues;

use crate::telemetry;

/// A model decoded from its row by column position. Whole rows only (the prefix SeaORM
/// passes for joined models is not looked at): `all_in` is the way in.
#[repr(transparent)]
pub(crate) struct ByPosition<M>(M);

/// A model whose columns are read by position.
pub(crate) trait FromColumns: Sized {
    fn from_columns(row: &impl Columns) -> Result<Self, DbErr>;
}

impl FromColumns for post::Model {
    fn from_columns(row: &impl Columns) -> Result<Self, DbErr> {
        Ok(post::Model {
            id: row.value(0)?,
            title: row.value(1)?,
            content: row.value(2)?,
            author_id: row.value(3)?,
            created_at: row.timestamp(4)?,
            updated_at: row.timestamp(5)?,
        })
    }
}

/// A post read without its details ([`crate::repo::posts::PostColumns::WithoutDetails`]):
/// id, title, author and creation, in that order; `content` is `None` and `updated_at` is
/// `created_at`, neither having been read.
pub(crate) struct PostSummary(pub post::Model);

impl FromColumns for PostSummary {
    fn from_columns(row: &impl Columns) -> Result<Self, DbErr> {
        let created_at = row.timestamp(3)?;
        Ok(PostSummary(post::Model {
            id: row.value(0)?,
            title: row.value(1)?,
            content: None,
            author_id: row.value(2)?,
            created_at,
            updated_at: created_at,
        }))
    }
}

impl FromColumns for user::Model {
    fn from_columns(row: &impl Columns) -> Result<Self, DbErr> {
        Ok(user::Model {
            id: row.value(0)?,
            email: row.value(1)?,
            name: row.value(2)?,
            created_at: row.timestamp(3)?,
            updated_at: row.timestamp(4)?,
        })
    }
}

impl<M: FromColumns> FromQueryResult for ByPosition<M> {
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        M::from_columns(row).map(Self)
    }
}

/// A row's columns, read by position: sqlx's PostgreSQL row, or SeaORM's row of any backend.
pub(crate) trait Columns {
    /// Column `index`.
    fn value<T>(&self, index: usize) -> Result<T, DbErr>
    where
        T: TryGetable + sqlx::Type<Postgres> + for<'r> sqlx::Decode<'r, Postgres>;

    /// Column `index`, a `timestamptz`.
    fn timestamp(&self, index: usize) -> Result<DateTime<Utc>, DbErr>;
}

/// On PostgreSQL a column is decoded straight from sqlx's row, without the type checks:
/// the migrations fix each column's type, and a test reads every field back on PostgreSQL.
impl Columns for PgRow {
    fn value<T>(&self, index: usize) -> Result<T, DbErr>
    where
        T: TryGetable + sqlx::Type<Postgres> + for<'r> sqlx::Decode<'r, Postgres>,
    {
        self.try_get_unchecked(index).map_err(query_error)
    }

    /// In the binary format it comes in, a `timestamptz` is read as what it is,
    /// microseconds since 2000-01-01 UTC: sqlx adds them to that date as a `Duration`,
    /// through chrono's calendar arithmetic, which cost 2% of q1's instructions for its
    /// 1,100 timestamps. A value out of chrono's range (`infinity`, which Quill never
    /// writes) is an error where sqlx would panic.
    fn timestamp(&self, index: usize) -> Result<DateTime<Utc>, DbErr> {
        let value = self.try_get_raw(index).map_err(query_error)?;
        if value.format() != PgValueFormat::Binary {
            return self.value(index);
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
}

/// On PostgreSQL, as sqlx's row; elsewhere SeaORM reads it.
impl Columns for QueryResult {
    fn value<T>(&self, index: usize) -> Result<T, DbErr>
    where
        T: TryGetable + sqlx::Type<Postgres> + for<'r> sqlx::Decode<'r, Postgres>,
    {
        match self.try_as_pg_row() {
            Some(row) => row.value(index),
            None => self.try_get_by_index(index),
        }
    }

    fn timestamp(&self, index: usize) -> Result<DateTime<Utc>, DbErr> {
        match self.try_as_pg_row() {
            Some(row) => row.timestamp(index),
            None => self.try_get_by_index(index),
        }
    }
}

fn query_error(error: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(error)))
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00 UTC.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Every row of `select`, decoded by position, read as [`each_raw`] reads them.
pub(crate) async fn all<E>(select: Select<E>, db: &DatabaseConnection) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: FromColumns,
{
    let mut models = Vec::new();
    each_raw(db, select.build(db.get_database_backend()), |model| models.push(model)).await?;
    Ok(models)
}

/// Every row of `select`, decoded by position, through SeaORM: for a transaction.
pub(crate) async fn all_in<E>(select: Select<E>, db: &impl ConnectionTrait) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: FromColumns,
{
    let rows = select.into_model::<ByPosition<E::Model>>().all(db).await?;
    // `repr(transparent)`: collected in place, no second allocation.
    Ok(rows.into_iter().map(|ByPosition(model)| model).collect())
}

/// Each row of `statement`, which selects the model's columns first, decoded by position
/// and handed to `each` as it arrives.
///
/// On PostgreSQL the rows come straight from sqlx's stream, and the statement is counted
/// and timed in the metrics as SeaORM counts its own. Through SeaORM, its rows were
/// collected into one vector, converted into SeaORM's rows in another, and decoded into a
/// third, each row moved through every layer's future on the way: for q1's 550 users and
/// posts, about 5% of the request's instructions (BENCHMARKS.md, "Allocations asked of
/// mimalloc as plain blocks, and rows read straight from sqlx").
pub(crate) async fn each_raw<M: FromColumns>(
    db: &DatabaseConnection,
    statement: Statement,
    mut each: impl FnMut(M),
) -> Result<(), DbErr> {
    let DatabaseConnectionType::SqlxPostgresPoolConnection(_) = &db.inner else {
        for row in db.query_all_raw(statement).await? {
            each(M::from_columns(&row)?);
        }
        return Ok(());
    };
    let values = statement.values.clone().unwrap_or(Values(Vec::new()));
    let started = Instant::now();
    let outcome = async {
        // A connection of its own rather than the pool as the executor: the pool's stream
        // would hand each row over through one more stream of sqlx's own (a mutex locked
        // twice more for every row).
        let mut connection = db.get_postgres_connection_pool().acquire().await.map_err(query_error)?;
        let query = sqlx::query_with(AssertSqlSafe(statement.sql.as_str()), SqlxValues(values));
        let mut rows = query.fetch(&mut *connection);
        while let Some(row) = rows.try_next().await.map_err(query_error)? {
            each(M::from_columns(&row)?);
        }
        Ok(())
    }
    .await;
    telemetry::record_sql_statement(&Info {
        elapsed: started.elapsed(),
        statement: &statement,
        failed: outcome.is_err(),
    });
    outcome
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
    fn a_post_without_details_is_decoded_in_the_order_its_columns_are_selected() {
        let selected = names(crate::repo::posts::PostColumns::WithoutDetails.selected().into_iter());
        assert_eq!(selected, ["id", "title", "author_id", "created_at"]);
        let all = names(crate::repo::posts::PostColumns::All.selected().into_iter());
        assert_eq!(all, names(post::Column::iter()));
    }

    #[test]
    fn a_user_is_decoded_in_the_order_its_entity_selects_its_columns() {
        let selected = names(user::Column::iter());
        assert_eq!(selected, ["id", "email", "name", "created_at", "updated_at"]);
    }
}
