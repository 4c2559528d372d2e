//! `api seed`: sample data in batches, idempotent.

use crate::helpers::{Backend, spawn_app};
use api::{config::SeedArgs, seed};

crate::backend_tests!(seeding_twice_adds_the_data_once,);

async fn seeding_twice_adds_the_data_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let args = SeedArgs { users: 1_200, posts_per_user: 3 };

    let first = seed::run(&app.db, &args).await.unwrap();
    let second = seed::run(&app.db, &args).await.unwrap();
    let more = seed::run(&app.db, &SeedArgs { users: 1_200, posts_per_user: 4 }).await.unwrap();

    assert_eq!((first.users, first.posts), (1_200, 3_600));
    assert_eq!((second.users, second.posts), (0, 0));
    assert_eq!((more.users, more.posts), (0, 1_200));
    assert_eq!(app.rows("users").await, 1_200);
    assert_eq!(app.rows("profiles").await, 1_200);
    assert_eq!(app.rows("posts").await, 4_800);
}
