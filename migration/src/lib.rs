//! Quill's schema migrations, append-only: never edit one that has shipped, always write
//! `down`. The server applies them at start; `cargo run -p migration -- up|down|fresh|status`
//! drives them by hand.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_users_posts_profiles;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261124_000001_create_users_posts_profiles::Migration)]
    }
}
