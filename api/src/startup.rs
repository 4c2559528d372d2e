//! The application: connect and migrate, build the schema and router, bind, serve, and
//! drain on shutdown.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, atomic::AtomicBool},
};

use anyhow::Context as _;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{
    auth::Authenticator,
    cache::UserCache,
    config::Config,
    connections::{self, ConnectionSettings},
    db,
    events::EventBus,
    graphql::{Executor, Limits, Services},
    http::{Admission, AppState, HttpSettings, router},
    persisted::PersistedQueries,
    subscriptions::{Hub, SocketSettings, Sockets},
    telemetry,
};

/// A server that is bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// Timeouts and the bound on open connections, under the router.
    connections: ConnectionSettings,
    /// The process's open-descriptor limit, which `connections` was derived from.
    descriptor_limit: u64,
    db: DatabaseConnection,
    draining: Arc<AtomicBool>,
    /// The WebSocket connections, closed with 1001 once the drain delay is over.
    sockets: Arc<Sockets>,
    /// How long to keep serving, unready, once shutdown is asked for.
    delay: std::time::Duration,
    /// How long in-flight requests may take to finish once the listener closes.
    grace: std::time::Duration,
}

impl Application {
    /// Connects to the database, migrates it, and binds the listener (port 0 picks one).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let descriptor_limit = connections::descriptor_limit();
        let connection_settings = ConnectionSettings::from_config(config, descriptor_limit)?;
        let auth = Authenticator::from_config(config).await?;
        let db = db::connect_and_migrate(config).await?;
        let listener =
            TcpListener::bind(config.bind).await.with_context(|| format!("binding {}", config.bind))?;
        let events = EventBus::from_config(config)?;
        let notices = events.subscribe();
        let services = Services { db: db.clone(), cache: UserCache::from_config(config)?, events };
        let draining = Arc::new(AtomicBool::new(false));
        let executor = Executor::new(services.clone(), Limits::from(config));
        let sockets = Sockets::new(usize::try_from(config.ws_max_connections).unwrap_or(usize::MAX));
        let state = AppState {
            hub: Hub::start(executor.clone(), notices),
            sockets: sockets.clone(),
            socket_settings: Arc::new(SocketSettings::from(config)),
            executor,
            auth,
            http: HttpSettings::from(config),
            admission: Arc::new(Admission::from_config(config)),
            persisted: Arc::new(PersistedQueries::new(
                config.persisted_queries,
                &services.cache,
                config.persisted_queries_manifest.as_deref(),
                usize::try_from(config.max_persisted_query_bytes).unwrap_or(usize::MAX),
            )?),
            services,
            metrics: telemetry::metrics_handle(),
            draining: draining.clone(),
        };
        Ok(Self {
            listener,
            router: router(state),
            connections: connection_settings,
            descriptor_limit,
            db,
            draining,
            sockets,
            delay: std::time::Duration::from_secs(config.shutdown_delay_secs),
            grace: std::time::Duration::from_secs(config.shutdown_grace_secs),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The pool the server uses (tests read rows through it).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Serves until `shutdown` completes; then stops accepting, gives in-flight requests
    /// up to the grace period to finish, and closes the pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(
            descriptor_limit = self.descriptor_limit,
            max_connections = self.connections.max_connections,
            header_timeout = ?self.connections.header_timeout,
            idle_timeout = ?self.connections.idle_timeout,
            "serving"
        );
        let draining = self.draining.clone();
        let began = Arc::new(tokio::sync::Notify::new());
        let signal = {
            let began = began.clone();
            async move {
                shutdown.await;
                draining.store(true, std::sync::atomic::Ordering::Relaxed);
                if !self.delay.is_zero() {
                    tracing::info!(delay = ?self.delay, "shutting down: unready, still serving");
                    tokio::time::sleep(self.delay).await;
                }
                tracing::info!(grace = ?self.grace, "shutting down: finishing in-flight requests");
                began.notify_one();
            }
        };
        let sockets = self.sockets.clone();
        let upkeep = telemetry::spawn_metrics_upkeep(telemetry::metrics_handle());
        let serve = connections::serve(self.listener, self.router, self.connections, signal);
        // Upgraded connections have left `serve`'s count: they are closed here, with
        // 1001 (going away), so their clients reconnect to another instance.
        let serve = async {
            serve.await;
            sockets.close_all().await;
        };
        tokio::select! {
            () = serve => {}
            () = async { began.notified().await; tokio::time::sleep(self.grace).await } => {
                tracing::warn!("grace period over: dropping the connections still open");
            }
        }
        upkeep.abort();
        self.db.close().await.context("closing the database pool")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
