//! The database connection pool: built from the settings, instrumented so every SQL
//! statement is counted, and migrated at start.

use anyhow::Context as _;
use migration::MigratorTrait as _;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, sqlx::sqlite::SqliteJournalMode};

use crate::{config::Config, telemetry};

/// Opens the pool described by `config` and applies pending migrations.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let db = connect(config).await?;
    migration::Migrator::up(&db, None).await.context("applying database migrations")?;
    Ok(db)
}

/// Opens the pool described by `config` without touching the schema.
pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(&config.database_url);
    options
        .max_connections(config.db_max_connections)
        .min_connections(0)
        .idle_timeout(config.db_idle_timeout())
        .connect_timeout(config.db_connect_timeout())
        .acquire_timeout(config.db_connect_timeout())
        // Statements are traced by our metric callback; sqlx's own log is noise.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            // WAL lets readers proceed while one writer commits; the busy timeout makes a
            // second writer wait for the lock instead of failing at once.
            opts.journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(std::time::Duration::from_secs(5))
                .foreign_keys(true)
        });

    let mut db = Database::connect(options)
        .await
        .with_context(|| format!("connecting to the database at {}", redact(&config.database_url)))?;
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

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_the_password_and_keeps_the_rest() {
        assert_eq!(redact("postgres://quill:secret@db:5432/quill"), "postgres://quill:***@db:5432/quill");
        assert_eq!(redact("sqlite://quill.db?mode=rwc"), "sqlite://quill.db?mode=rwc");
        assert_eq!(redact("postgres://quill@db/quill"), "postgres://quill@db/quill");
    }
}
