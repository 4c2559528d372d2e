//! `cargo run -p migration -- up|down|fresh|status`, against `DATABASE_URL` (the embedded
//! SQLite default of the server when unset).

use sea_orm_migration::prelude::*;

/// Same default as the server's `--database-url`, so both act on one database.
const DEFAULT_DATABASE_URL: &str = "sqlite://quill.db?mode=rwc";

#[tokio::main]
async fn main() {
    let _ = dotenv_default();
    cli::run_cli(migration::Migrator).await;
}

/// Reads `.env` like the server does, then falls back to the embedded default.
fn dotenv_default() -> Option<()> {
    if std::env::var_os("DATABASE_URL").is_none() {
        // SAFETY: single-threaded at this point: the runtime has not spawned workers' tasks
        // that read the environment, and nothing else runs yet.
        unsafe { std::env::set_var("DATABASE_URL", DEFAULT_DATABASE_URL) };
    }
    Some(())
}
