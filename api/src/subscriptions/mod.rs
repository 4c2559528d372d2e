//! Subscriptions over WebSocket at `/graphql`: the upgrade and its checks (origin,
//! connection bound, draining), the two protocols clients speak (`socket`), and the
//! instance's subscriptions fed by the event bus (`hub`).

mod hub;
mod socket;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;

pub use self::hub::{Hub, gap};
pub use self::socket::{Connection, PROTOCOLS, Protocol, serve};
use crate::{config::Config, telemetry};

/// The WebSocket limits, from the settings.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    /// How long a client has to send `connection_init` once connected.
    pub init_timeout: Duration,
    /// How often the server pings (`ping`, or `ka` in the legacy protocol).
    pub keepalive: Duration,
    /// Most subscriptions and operations in flight on one connection.
    pub max_subscriptions: usize,
    /// Messages queued for a connection before it counts as too slow and is closed.
    pub send_buffer: usize,
    /// Largest message a client may send, in bytes.
    pub max_message_bytes: usize,
}

impl From<&Config> for SocketSettings {
    fn from(config: &Config) -> Self {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Self {
            init_timeout: Duration::from_secs(config.ws_init_timeout_secs),
            keepalive: Duration::from_secs(config.ws_keepalive_secs),
            max_subscriptions: size(config.ws_max_subscriptions),
            send_buffer: size(config.ws_send_buffer),
            max_message_bytes: size(config.max_body_bytes),
        }
    }
}

/// The instance's WebSocket connections: how many are open, the bound on them, and the
/// signal that closes them all when the server shuts down.
pub struct Sockets {
    open: watch::Sender<usize>,
    max: usize,
    next_id: AtomicU64,
    going_away: watch::Sender<bool>,
}

/// One open connection's place under the bound; given back when dropped.
pub struct SocketSlot {
    pub id: u64,
    sockets: Arc<Sockets>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.sockets.open.send_modify(|open| *open -= 1);
        metrics::gauge!(telemetry::WEBSOCKETS_OPEN).decrement(1.0);
    }
}

impl Sockets {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            open: watch::channel(0).0,
            max,
            next_id: AtomicU64::new(1),
            going_away: watch::channel(false).0,
        })
    }

    /// A place for one more connection, or `None` at the bound or once shutting down.
    pub fn open(self: &Arc<Self>) -> Option<SocketSlot> {
        if *self.going_away.borrow() {
            return None;
        }
        let mut admitted = false;
        self.open.send_if_modified(|open| {
            admitted = *open < self.max;
            if admitted {
                *open += 1;
            }
            admitted
        });
        if !admitted {
            return None;
        }
        metrics::gauge!(telemetry::WEBSOCKETS_OPEN).increment(1.0);
        Some(SocketSlot { id: self.next_id.fetch_add(1, Ordering::Relaxed), sockets: self.clone() })
    }

    /// Whether the server is shutting down.
    pub fn is_going_away(&self) -> bool {
        *self.going_away.borrow()
    }

    /// Completes once the server asks every connection to close.
    pub fn going_away(&self) -> watch::Receiver<bool> {
        self.going_away.subscribe()
    }

    /// Asks every connection to close (1001, going away), and waits until they have.
    pub async fn close_all(&self) {
        self.going_away.send_replace(true);
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open == 0).await;
    }
}
