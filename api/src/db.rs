//! The database connection pool: built from the settings, instrumented so every SQL
//! statement is counted, and migrated at start.

use anyhow::{Context as _, anyhow};
use migration::MigratorTrait as _;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, sqlx::sqlite::SqliteJournalMode};

use crate::{config::Config, telemetry};

/// How long a pooled connection may sit idle and still be handed out without a ping.
const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens the pool described by `config` and applies pending migrations.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let db = connect(config).await?;
    migration::Migrator::up(&db, None).await.context("applying database migrations")?;
    Ok(db)
}

/// Opens the pool described by `config` without touching the schema.
pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let url = &config.database_url;
    let mut options = ConnectOptions::new(url.expose());
    options
        .max_connections(config.db_max_connections)
        .min_connections(0)
        .idle_timeout(config.db_idle_timeout())
        .connect_timeout(config.db_connect_timeout())
        .acquire_timeout(config.db_connect_timeout())
        // A connection handed out again within a second of its last statement is not pinged
        // first: under load that ping was a round trip to the database per statement. One
        // left idle longer (a restarted server, a dropped socket) is still tested.
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        // Statements are traced by our metric callback; sqlx's own log is noise.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            // WAL lets readers proceed while one writer commits; the busy timeout makes a
            // second writer wait for the lock instead of failing at once.
            opts.journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(std::time::Duration::from_secs(5))
                .foreign_keys(true)
        });

    // SeaORM quotes a URL it cannot use in its error, password and all.
    let mut db = Database::connect(options)
        .await
        .map_err(|error| anyhow!(url.scrub(&error.to_string())))
        .with_context(|| format!("connecting to the database at {url}"))?;
    db.set_metric_callback(telemetry::record_sql_statement);
    Ok(db)
}

/// The pool's open and idle connections, for the `db_pool_*` gauges.
pub fn pool_usage(db: &DatabaseConnection) -> (u32, usize) {
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        sea_orm::DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretUrl;

    #[tokio::test]
    async fn a_failed_connection_names_the_database_without_its_password() {
        for url in [
            // No driver for it: SeaORM's error quotes the URL.
            "mysql://quill:hunter2@db.example/quill",
            // Not a URL (the port): quoted too.
            "postgres://quill:hunter2@db.example:port/quill",
        ] {
            let mut config = Config::from_env();
            config.database_url = SecretUrl::new(url);

            let error = connect(&config).await.expect_err("no database behind it");

            let message = format!("{error:#}");
            assert!(!message.contains("hunter2"), "{message}");
            assert!(message.contains("quill:***@db.example"), "{message}");
        }
    }
}
