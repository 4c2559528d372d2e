//! `api seed`: sample users, each with a profile and posts, inserted in batches. Running
//! it again adds only what is missing, so it can be repeated or resumed.

use std::time::Instant;

use chrono::Duration;
use entity::{post, profile, user};
use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::{ActiveValue::Set, DatabaseConnection, TransactionTrait};
use uuid::Uuid;

use crate::{config::SeedArgs, repo};

/// Users written per transaction.
const USERS_PER_BATCH: u32 = 1_000;
/// Posts per INSERT: 6 columns each stays under SQLite's 32,766 bound parameters.
const POSTS_PER_STATEMENT: usize = 5_000;

/// What a seed run added.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub users: u64,
    pub posts: u64,
}

/// The email of the `i`-th sample user: stable, so a second run finds the first's users.
pub fn seed_email(i: u32) -> String {
    format!("user{i:07}@seed.quill.test")
}

pub async fn run(db: &DatabaseConnection, args: &SeedArgs) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let progress = ProgressBar::new(u64::from(args.users)).with_style(
        ProgressStyle::with_template("{spinner} seeding users {bar:40} {pos}/{len} ({per_sec}, eta {eta})")
            .expect("the template is valid"),
    );
    let mut report = SeedReport::default();
    let mut start = 0;
    while start < args.users {
        let end = (start + USERS_PER_BATCH).min(args.users);
        let added = seed_batch(db, start..end, args.posts_per_user).await?;
        report.users += added.users;
        report.posts += added.posts;
        progress.inc(u64::from(end - start));
        start = end;
    }
    progress.finish_and_clear();
    tracing::info!(
        users_added = report.users,
        posts_added = report.posts,
        elapsed = ?started.elapsed(),
        "seed complete"
    );
    Ok(report)
}

async fn seed_batch(
    db: &DatabaseConnection,
    range: std::ops::Range<u32>,
    posts_per_user: u32,
) -> anyhow::Result<SeedReport> {
    let now = repo::now();
    let txn = db.begin().await?;
    let emails: Vec<String> = range.clone().map(seed_email).collect();
    let before = repo::users::find_by_emails(&txn, &emails).await?.len() as u64;

    let new_users = range
        .clone()
        .map(|i| user::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(seed_email(i)),
            name: Set(Some(format!("Sample User {i}"))),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .collect();
    repo::users::insert_many_ignoring_existing(&txn, new_users).await?;
    let users = repo::users::find_by_emails(&txn, &emails).await?;

    let profiles = users
        .iter()
        .map(|u| profile::ActiveModel {
            user_id: Set(u.id),
            bio: Set(Some(format!("Hello, I am {}.", u.name.as_deref().unwrap_or("nobody")))),
        })
        .collect();
    repo::profiles::insert_many_ignoring_existing(&txn, profiles).await?;

    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let counts = repo::posts::count_per_author(&txn, &ids).await?;
    let mut posts = Vec::new();
    for user in &users {
        let have = counts.get(&user.id).copied().unwrap_or(0) as u32;
        for n in have..posts_per_user {
            // Older posts first, a minute apart, so pages have a meaningful order.
            let created_at = now - Duration::minutes(i64::from(posts_per_user - n));
            posts.push(post::ActiveModel {
                id: Set(Uuid::now_v7()),
                title: Set(format!("Post {} by {}", n + 1, user.name.as_deref().unwrap_or("nobody"))),
                content: Set(Some(format!("Sample content of post {} by {}.", n + 1, user.email))),
                author_id: Set(user.id),
                created_at: Set(created_at),
                updated_at: Set(created_at),
            });
        }
    }
    let added_posts = posts.len() as u64;
    let mut posts = posts.into_iter().peekable();
    while posts.peek().is_some() {
        let chunk: Vec<_> = posts.by_ref().take(POSTS_PER_STATEMENT).collect();
        repo::posts::insert_many(&txn, chunk).await?;
    }
    txn.commit().await?;
    Ok(SeedReport { users: users.len() as u64 - before, posts: added_posts })
}
