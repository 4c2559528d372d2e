//! Profiles, read in batches by their users' ids.

use entity::profile;
use sea_orm::{ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _};
use uuid::Uuid;

use crate::error::ApiResult;

/// The profiles of these users; users without one are absent.
pub async fn find_by_user_ids(
    db: &impl ConnectionTrait,
    user_ids: &[Uuid],
) -> ApiResult<Vec<profile::Model>> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(profile::Entity::find()
        .filter(profile::Column::UserId.is_in(user_ids.iter().copied()))
        .all(db)
        .await?)
}

/// Inserts profiles in one statement, skipping users that already have one (for the seed).
pub async fn insert_many_ignoring_existing(
    db: &impl ConnectionTrait,
    profiles: Vec<profile::ActiveModel>,
) -> ApiResult<()> {
    if profiles.is_empty() {
        return Ok(());
    }
    profile::Entity::insert_many(profiles)
        .on_conflict(sea_orm::sea_query::OnConflict::column(profile::Column::UserId).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}
