//! `cargo run -p migration -- up|down|fresh|status`, against `DATABASE_URL` (the embedded
//! SQLite default of the server when unset).

use sea_orm_migration::prelude::*;

/// Same default as the server's `--database-url`, so both act on one database.
const DEFAULT_DATABASE_URL: &str = "sqlite://quill.db?mode=rwc";

fn main() {
    // Read `.env` like the server does, then fall back to the embedded default.
    let _ = dotenvy::dotenv();
    if std::env::var_os("DATABASE_URL").is_none() {
        // SAFETY: no other thread exists yet: the runtime is built below.
        unsafe { std::env::set_var("DATABASE_URL", DEFAULT_DATABASE_URL) };
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the async runtime")
        .block_on(cli::run_cli(migration::Migrator));
}
