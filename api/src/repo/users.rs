//! Users and their one profile: lookups, keyset pages, and the writes, each in one
//! transaction so a failure leaves nothing half-written.

use entity::{post, profile, user};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, TransactionSession as _, TransactionTrait,
    sea_query::OnConflict,
};
use sea_orm::{ColumnTrait as _, Order};
use uuid::Uuid;

use super::by_position;
use crate::{
    error::{ApiError, ApiResult, DbResultExt as _},
    pagination::{Direction, Page, UserKey},
};

/// A user to create, already validated.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: Option<String>,
    /// `Some` creates the profile in the same transaction as the user.
    pub profile: Option<NewProfile>,
}

#[derive(Debug, Clone, Default)]
pub struct NewProfile {
    pub bio: Option<String>,
}

/// A partial update, already validated: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub email: Option<String>,
    /// `Some(None)` clears the name.
    pub name: Option<Option<String>>,
    /// `Some(bio)` creates the profile or replaces its bio.
    pub bio: Option<Option<String>>,
}

/// The users with these ids, in no particular order; missing ids are simply absent.
pub async fn find_by_ids(db: &DatabaseConnection, ids: &[Uuid]) -> ApiResult<Vec<user::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(by_position::all(user::Entity::find().filter(user::Column::Id.is_in(ids.iter().copied())), db).await?)
}

/// Up to `page.limit + 1` users in query order (see [`crate::pagination::finish_page`]).
pub async fn page(db: &DatabaseConnection, page: &Page<UserKey>) -> ApiResult<Vec<user::Model>> {
    let (order, after) = match page.direction {
        Direction::Forward => (Order::Asc, true),
        Direction::Backward => (Order::Desc, false),
    };
    let mut query = user::Entity::find().order_by(user::Column::Id, order);
    if let Some(cursor) = page.cursor {
        query = query.filter(if after { user::Column::Id.gt(cursor) } else { user::Column::Id.lt(cursor) });
    }
    Ok(by_position::all(query.limit(page.limit + 1), db).await?)
}

pub async fn count(db: &impl ConnectionTrait) -> ApiResult<u64> {
    Ok(user::Entity::find().count(db).await?)
}

/// Creates the user and, when asked, the profile, in one transaction.
pub async fn create(
    db: &impl TransactionTrait,
    new: NewUser,
) -> ApiResult<(user::Model, Option<profile::Model>)> {
    let now = super::now();
    let email = new.email.clone();
    let txn = db.begin().await?;
    let user = user::Entity::insert(user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(new.email),
        name: Set(new.name),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_with_returning(&txn)
    .await
    .on_unique(|| email_taken(&email))?;
    let profile = match new.profile {
        Some(profile) => Some(
            profile::Entity::insert(profile::ActiveModel { user_id: Set(user.id), bio: Set(profile.bio) })
                .exec_with_returning(&txn)
                .await?,
        ),
        None => None,
    };
    txn.commit().await?;
    Ok((user, profile))
}

/// Applies a partial update; `NOT_FOUND` when there is no such user.
pub async fn update(db: &impl TransactionTrait, id: Uuid, changes: UserChanges) -> ApiResult<user::Model> {
    let txn = db.begin().await?;
    // Always bumps `updated_at`, which also tells us whether the user exists.
    let touch = user::ActiveModel {
        id: NotSet,
        email: changes.email.clone().map_or(NotSet, Set),
        name: changes.name.clone().map_or(NotSet, Set),
        created_at: NotSet,
        updated_at: Set(super::now()),
    };
    let updated = user::Entity::update_many()
        .set(touch)
        .filter(user::Column::Id.eq(id))
        .exec_with_returning(&txn)
        .await
        .on_unique(|| email_taken(changes.email.as_deref().unwrap_or_default()))?;
    let Some(user) = updated.into_iter().next() else {
        return Err(no_user(id));
    };
    if let Some(bio) = changes.bio {
        profile::Entity::insert(profile::ActiveModel { user_id: Set(id), bio: Set(bio) })
            .on_conflict(
                OnConflict::column(profile::Column::UserId).update_column(profile::Column::Bio).to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(user)
}

/// Deletes the user with their profile and posts, in one transaction; returns the ids of
/// the posts that went with them (so each can be announced). `NOT_FOUND` when absent.
pub async fn delete(db: &impl TransactionTrait, id: Uuid) -> ApiResult<Vec<Uuid>> {
    let txn = db.begin().await?;
    // Deleted here rather than by the cascade, which would not say which went.
    let posts =
        post::Entity::delete_many().filter(post::Column::AuthorId.eq(id)).exec_with_returning(&txn).await?;
    let result = user::Entity::delete_by_id(id).exec(&txn).await?;
    if result.rows_affected == 0 {
        return Err(no_user(id));
    }
    txn.commit().await?;
    Ok(posts.into_iter().map(|post| post.id).collect())
}

/// Inserts users in one statement, skipping emails that already exist (for the seed).
pub async fn insert_many_ignoring_existing(
    db: &impl ConnectionTrait,
    users: Vec<user::ActiveModel>,
) -> ApiResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    user::Entity::insert_many(users)
        .on_conflict(OnConflict::column(user::Column::Email).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The users with these emails.
pub async fn find_by_emails(db: &impl ConnectionTrait, emails: &[String]) -> ApiResult<Vec<user::Model>> {
    Ok(by_position::all_in(
        user::Entity::find().filter(user::Column::Email.is_in(emails.iter().cloned())),
        db,
    )
    .await?)
}

pub(crate) fn no_user(id: Uuid) -> ApiError {
    ApiError::not_found(format!("no user with id {id}"))
}

fn email_taken(email: &str) -> String {
    format!("the email {email} is already taken")
}
