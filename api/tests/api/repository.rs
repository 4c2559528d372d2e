//! The repository layer on its own, without HTTP: what the API builds on.

use api::{
    error::ApiError,
    pagination::Page,
    repo::{
        self,
        posts::PostColumns,
        users::{NewProfile, NewUser},
    },
};

use crate::helpers::{Backend, TestDatabase, test_config};

crate::backend_tests!(
    a_failed_profile_insert_leaves_no_user_behind,
    a_user_is_found_with_their_posts_newest_first,
    every_read_of_users_and_posts_gives_back_each_field_as_written,
    timestamps_before_and_long_after_the_year_2000_read_back_to_the_microsecond,
    a_timestamp_out_of_range_is_an_error_not_a_panic,
    migrations_go_down_and_up_again,
    pages_of_posts_read_from_a_closed_pool_are_unavailable_not_internal,
);

async fn connect(backend: &Backend) -> (TestDatabase, sea_orm::DatabaseConnection) {
    let database = TestDatabase::create(backend).await;
    let db = api::db::connect_and_migrate(&test_config(database.url())).await.unwrap();
    (database, db)
}

async fn a_failed_profile_insert_leaves_no_user_behind(backend: Backend) {
    let (_database, db) = connect(&backend).await;
    // Skips the API's validation: the schema's CHECK on the bio makes the second insert
    // of the transaction fail.
    let new = NewUser {
        email: "ada@example.com".into(),
        name: None,
        profile: Some(NewProfile { bio: Some("x".repeat(5_000)) }),
    };

    let result = repo::users::create(&db, new).await;

    assert!(result.is_err());
    assert_eq!(repo::users::find_by_emails(&db, &["ada@example.com".into()]).await.unwrap(), []);
    assert_eq!(repo::users::count(&db).await.unwrap(), 0);
}

async fn a_user_is_found_with_their_posts_newest_first(backend: Backend) {
    let (_database, db) = connect(&backend).await;
    let (ada, _) =
        repo::users::create(&db, NewUser { email: "ada@example.com".into(), name: None, profile: None })
            .await
            .unwrap();
    for title in ["one", "two"] {
        repo::posts::create(
            &db,
            repo::posts::NewPost { author_id: ada.id, title: title.into(), content: None },
        )
        .await
        .unwrap();
    }

    let users = repo::users::find_by_ids(&db, &[ada.id]).await.unwrap();
    let mut per_author =
        repo::posts::page_per_author(&db, &[ada.id], &Page::first(10), PostColumns::All).await.unwrap();
    let paged = repo::posts::page(&db, &Page::first(10), Some(ada.id)).await.unwrap();

    let titles = |posts: &[entity::post::Model]| posts.iter().map(|p| p.title.clone()).collect::<Vec<_>>();
    assert_eq!(titles(&per_author.remove(&ada.id).expect("ada has posts")), ["two", "one"]);
    assert_eq!(titles(&paged), ["two", "one"]);
    assert_eq!(users, [ada]);
}

// The reads decode rows by column position (on PostgreSQL without sqlx's type checks);
// the writes return rows decoded by column name. Both must give the same models.
async fn every_read_of_users_and_posts_gives_back_each_field_as_written(backend: Backend) {
    let (_database, db) = connect(&backend).await;
    let new_user = NewUser { email: "ada@example.com".into(), name: None, profile: None };
    let (ada, _) = repo::users::create(&db, new_user).await.unwrap();
    // Updated, so that no two fields of a row hold the same value.
    let changes = repo::users::UserChanges { name: Some(Some("Ada".into())), ..Default::default() };
    let ada = repo::users::update(&db, ada.id, changes).await.unwrap();
    let mut written = Vec::new();
    for content in [Some("notes on the engine".to_owned()), None] {
        let new_post = repo::posts::NewPost { author_id: ada.id, title: "a title".into(), content: None };
        let post = repo::posts::create(&db, new_post).await.unwrap();
        let changes = repo::posts::PostChanges { content: Some(content), ..Default::default() };
        written.push(repo::posts::update(&db, post.id, changes).await.unwrap());
    }
    written.reverse(); // newest first, as every page lists them

    let by_id = repo::users::find_by_ids(&db, &[ada.id]).await.unwrap();
    let by_email = repo::users::find_by_emails(&db, &["ada@example.com".into()]).await.unwrap();
    let users_page = repo::users::page(&db, &Page::first(10)).await.unwrap();
    let mut posts_by_id = repo::posts::find_by_ids(&db, &[written[0].id, written[1].id]).await.unwrap();
    posts_by_id.sort_by_key(|post| std::cmp::Reverse((post.created_at, post.id)));
    let posts_page = repo::posts::page(&db, &Page::first(10), None).await.unwrap();
    let mut per_author =
        repo::posts::page_per_author(&db, &[ada.id], &Page::first(10), PostColumns::All).await.unwrap();
    let mut without_details =
        repo::posts::page_per_author(&db, &[ada.id], &Page::first(10), PostColumns::WithoutDetails)
            .await
            .unwrap();

    assert_eq!(ada.name.as_deref(), Some("Ada"));
    assert_ne!(ada.created_at, ada.updated_at);
    assert_ne!(written[1].created_at, written[1].updated_at);
    for users in [by_id, by_email, users_page] {
        assert_eq!(users, std::slice::from_ref(&ada));
    }
    for posts in [posts_by_id, posts_page, per_author.remove(&ada.id).expect("ada has posts")] {
        assert_eq!(posts, written);
    }
    // Without details: every field but the content and the last change, which were not read.
    let summaries: Vec<_> = written
        .iter()
        .map(|post| entity::post::Model { content: None, updated_at: post.created_at, ..post.clone() })
        .collect();
    assert_eq!(without_details.remove(&ada.id).expect("ada has posts"), summaries);
}

// PostgreSQL counts a timestamp in microseconds from 2000-01-01, which the reads decode
// themselves: before that date the count is negative.
async fn timestamps_before_and_long_after_the_year_2000_read_back_to_the_microsecond(backend: Backend) {
    use sea_orm::ConnectionTrait as _;
    let (_database, db) = connect(&backend).await;
    let new_user = NewUser { email: "ada@example.com".into(), name: None, profile: None };
    let (ada, _) = repo::users::create(&db, new_user).await.unwrap();
    db.execute_unprepared(
        "UPDATE users SET created_at = '1969-07-20 20:17:40.000001+00:00', \
         updated_at = '2100-02-28 23:59:59.999999+00:00'",
    )
    .await
    .unwrap();

    let users = repo::users::find_by_ids(&db, &[ada.id]).await.unwrap();

    let at = |text: &str| text.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    assert_eq!(users[0].created_at, at("1969-07-20T20:17:40.000001Z"));
    assert_eq!(users[0].updated_at, at("2100-02-28T23:59:59.999999Z"));
}

// Quill never writes one, but PostgreSQL's `infinity` is a valid timestamptz, beyond any
// date the models can hold.
async fn a_timestamp_out_of_range_is_an_error_not_a_panic(backend: Backend) {
    use sea_orm::ConnectionTrait as _;
    let (_database, db) = connect(&backend).await;
    let new_user = NewUser { email: "ada@example.com".into(), name: None, profile: None };
    let (ada, _) = repo::users::create(&db, new_user).await.unwrap();
    db.execute_unprepared("UPDATE users SET created_at = 'infinity'").await.unwrap();

    let read = repo::users::find_by_ids(&db, &[ada.id]).await;

    assert!(read.is_err(), "{read:?}");
}

async fn migrations_go_down_and_up_again(backend: Backend) {
    use migration::MigratorTrait as _;
    let (_database, db) = connect(&backend).await;

    migration::Migrator::down(&db, None).await.unwrap();
    let after_down = repo::users::count(&db).await;
    migration::Migrator::up(&db, None).await.unwrap();

    assert!(after_down.is_err(), "the tables are gone after down");
    assert_eq!(repo::users::count(&db).await.unwrap(), 0);
}

/// The pages of posts of many authors are read from sqlx directly on PostgreSQL: a pool
/// that cannot give a connection must still be `SERVICE_UNAVAILABLE`, as through SeaORM.
async fn pages_of_posts_read_from_a_closed_pool_are_unavailable_not_internal(backend: Backend) {
    let (_database, db) = connect(&backend).await;
    let (ada, _) =
        repo::users::create(&db, NewUser { email: "ada@example.com".into(), name: None, profile: None })
            .await
            .unwrap();
    db.close_by_ref().await.unwrap();

    let result = repo::posts::page_per_author(&db, &[ada.id], &Page::first(10), PostColumns::All).await;

    assert!(matches!(result, Err(ApiError::Unavailable)), "{:?}", result.map(|_| ()));
}
