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
    config::Config,
    db,
    graphql::{Services, build_schema},
    http::{AppState, router},
    telemetry,
};

/// A server that is bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    db: DatabaseConnection,
    draining: Arc<AtomicBool>,
}

impl Application {
    /// Connects to the database, migrates it, and binds the listener (port 0 picks one).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let db = db::connect_and_migrate(config).await?;
        let listener =
            TcpListener::bind(config.bind).await.with_context(|| format!("binding {}", config.bind))?;
        let services = Services { db: db.clone(), cache: config.user_cache()? };
        let draining = Arc::new(AtomicBool::new(false));
        let state = AppState {
            schema: build_schema(services.clone()),
            services,
            metrics: telemetry::metrics_handle(),
            draining: draining.clone(),
        };
        Ok(Self { listener, router: router(state), db, draining })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The pool the server uses (tests read rows through it).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish, and closes the pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let draining = self.draining.clone();
        let signal = async move {
            shutdown.await;
            draining.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("shutting down: finishing in-flight requests");
        };
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(signal)
            .await
            .context("serving HTTP")?;
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
