//! The connection layer under the router: accepting TCP connections, bounding how many
//! are open, closing those that are slow to send a request head or idle too long, and
//! draining them on shutdown. `axum::serve` has none of these knobs, and no request
//! timeout can help before a request exists.

use std::{
    future::Future,
    io,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    time::Instant,
};
use tower::ServiceExt as _;

use crate::{config::Config, telemetry};

/// Descriptors kept free for everything that is not a client connection: the listener,
/// Redis, log and database files, and connections refused while at the limit.
const SPARE_DESCRIPTORS: u64 = 64;
/// How often an accept-loop warning may be logged: a flood must not flood the log.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Pause after an accept error such as "too many open files", so the loop does not spin
/// while descriptors are short; short enough to recover within a second of relief.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// What a client over the connection limit reads before its socket closes.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 111\r\n\r\n\
{\"errors\":[{\"message\":\"the server has too many open connections\",\"extensions\":{\"code\":\"SERVICE_UNAVAILABLE\"}}]}";

/// The connection limits, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    /// How long a client has to send a complete request head: from connecting, and from
    /// the first byte of each later request on a kept-alive connection.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may sit with no request before it is closed.
    pub idle_timeout: Duration,
    /// Most client connections open at once; more are refused at once.
    pub max_connections: usize,
}

impl ConnectionSettings {
    /// The connection limits for a process allowed `descriptor_limit` open descriptors;
    /// an explicit `MAX_CONNECTIONS` the limit cannot honour is an error.
    pub fn from_config(config: &Config, descriptor_limit: u64) -> anyhow::Result<Self> {
        let highest = highest_max_connections(descriptor_limit, config.db_max_connections);
        let max_connections = match config.max_connections {
            None => default_max_connections(descriptor_limit, config.db_max_connections),
            Some(wanted) if wanted <= highest => wanted,
            Some(wanted) => anyhow::bail!(
                "MAX_CONNECTIONS is {wanted}, but the open-descriptor limit ({descriptor_limit}) \
                 leaves room for at most {highest}: lower it or raise the limit (ulimit -n)"
            ),
        };
        Ok(Self {
            header_timeout: Duration::from_secs(config.http_header_timeout_secs),
            idle_timeout: Duration::from_secs(config.http_idle_timeout_secs),
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        })
    }
}

/// The process's limit on open descriptors, raised first to the hard limit where the
/// soft one is lower (as Go's runtime and most servers do): connections need them.
pub fn descriptor_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the open-descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// The default bound on connections for a descriptor limit: three quarters of it, and
/// never so many that the pool and the spare descriptors would not fit beside them.
fn default_max_connections(descriptor_limit: u64, pool_size: u32) -> u64 {
    let reserved = u64::from(pool_size) + SPARE_DESCRIPTORS;
    (descriptor_limit / 4 * 3).min(descriptor_limit.saturating_sub(reserved)).max(1)
}

/// The highest bound on connections a descriptor limit can honour.
fn highest_max_connections(descriptor_limit: u64, pool_size: u32) -> u64 {
    descriptor_limit.saturating_sub(u64::from(pool_size) + SPARE_DESCRIPTORS)
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, asks
/// every connection to finish its request in flight and close, and waits for them all.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections.min(Semaphore::MAX_PERMITS)));
    // `stop` tells connections to wind down; each holds a `done` receiver, so the sender
    // sees the last one go.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let (mut accept_warnings, mut refusal_warnings) = (Throttle::default(), Throttle::default());
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                metrics::counter!(telemetry::HTTP_ACCEPT_ERRORS_TOTAL).increment(1);
                if let Some(suppressed) = accept_warnings.allow(Instant::now()) {
                    tracing::warn!(%error, suppressed, "cannot accept connections");
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(&stream);
            metrics::counter!(telemetry::HTTP_CONNECTIONS_REFUSED_TOTAL).increment(1);
            if let Some(suppressed) = refusal_warnings.allow(Instant::now()) {
                tracing::warn!(
                    max_connections = settings.max_connections,
                    suppressed,
                    "refusing connections: MAX_CONNECTIONS are open"
                );
            }
            continue;
        };
        let connection = Connection::new(stream, Slot::new(slot), settings);
        tokio::spawn(connection.serve(router.clone(), stop_rx.clone(), done_rx.clone()));
    }
    // Connections the kernel has completed but that were not accepted yet would be reset
    // when the listener closes (a load balancer's request sent on one fails): each is
    // served its one request instead, then closed.
    if let Ok(listener) = listener.into_std() {
        let (_never, never_stop) = watch::channel(false);
        while let Ok((stream, _)) = listener.accept() {
            let Ok(stream) = stream.set_nonblocking(true).and_then(|()| TcpStream::from_std(stream)) else {
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                refuse(&stream);
                continue;
            };
            let mut connection = Connection::new(stream, Slot::new(slot), settings);
            connection.keep_alive = false;
            tokio::spawn(connection.serve(router.clone(), never_stop.clone(), done_rx.clone()));
        }
    }
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}

/// Errors that concern one connection that was aborted before it was accepted, not the
/// listener: the next accept may well succeed.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Tells a client over the limit so, without waiting: what fits in the socket's buffer
/// is sent, then the socket closes.
fn refuse(stream: &TcpStream) {
    let _ = stream.try_write(REFUSAL);
}

/// Lets one warning through per [`WARN_EVERY`], and counts those held back.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(how many were held back since the last one)` when a warning may be logged.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now.duration_since(last) < WARN_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// A connection's place under `MAX_CONNECTIONS`, and the open-connections gauge: both
/// held for as long as the socket is open (an upgraded connection keeps them).
struct Slot(#[allow(dead_code, reason = "held for its drop")] OwnedSemaphorePermit);

impl Slot {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!(telemetry::HTTP_CONNECTIONS_OPEN).increment(1.0);
        Self(permit)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!(telemetry::HTTP_CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// One accepted connection, before hyper takes it.
struct Connection {
    socket: Watched,
    activity: Arc<Activity>,
    settings: ConnectionSettings,
    /// Whether it may carry more than one request.
    keep_alive: bool,
}

impl Connection {
    fn new(stream: TcpStream, slot: Slot, settings: ConnectionSettings) -> Self {
        let activity = Arc::new(Activity::new());
        Self {
            socket: Watched { stream, activity: activity.clone(), _slot: slot },
            activity,
            settings,
            keep_alive: true,
        }
    }

    /// Serves HTTP/1.1 on the connection until the client or a timeout closes it, or
    /// until `stop` asks it to finish the request in flight and close.
    async fn serve(self, router: Router, mut stop: watch::Receiver<bool>, _done: watch::Receiver<()>) {
        let activity = self.activity;
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let in_flight = activity.begin();
                let response = router.clone().oneshot(request.map(Body::new));
                async move {
                    let response = response.await;
                    drop(in_flight);
                    response
                }
            })
        };
        let connection = hyper::server::conn::http1::Builder::new()
            // The head timeout is ours (hyper's would also close idle connections early).
            .header_read_timeout(None)
            .keep_alive(self.keep_alive)
            .serve_connection(TokioIo::new(self.socket), service)
            .with_upgrades();
        let mut connection = pin!(connection);
        let check = tokio::time::sleep(self.settings.header_timeout);
        let mut check = pin!(check);
        let mut stopping = false;
        loop {
            tokio::select! {
                biased;
                _ = connection.as_mut() => return,
                () = check.as_mut() => {
                    let now = Instant::now();
                    match activity.verdict(now, &self.settings) {
                        Verdict::Open { check_at } => check.as_mut().reset(check_at),
                        Verdict::Close(reason) => {
                            metrics::counter!(telemetry::HTTP_CONNECTIONS_CLOSED_TOTAL, "reason" => reason)
                                .increment(1);
                            return;
                        }
                    }
                }
                changed = stop.wait_for(|stop| *stop), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// What the connection's watchdog needs to know, kept up to date by its socket (bytes
/// that arrive or leave) and its service (requests that begin and end).
struct Activity {
    opened: Instant,
    /// Requests begun and not yet answered.
    in_flight: AtomicUsize,
    /// When the connection last did anything with no request in flight, in milliseconds
    /// since `opened`.
    quiet_since: AtomicU64,
    /// When the head of the next request began to arrive, in milliseconds since `opened`,
    /// plus one; zero while none is arriving. A new connection owes a head from the start.
    head_since: AtomicU64,
}

enum Verdict {
    Open { check_at: Instant },
    Close(&'static str),
}

/// Ends a request's time in flight when dropped, whether it was answered or cancelled.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.quiet_since.store(activity.millis(Instant::now()), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            quiet_since: AtomicU64::new(0),
            head_since: AtomicU64::new(1),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.opened).as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    /// A request's head has arrived: it is in flight until the returned guard drops.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Bytes arrived. With no request in flight they start the next request's head.
    fn received(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 && self.head_since.load(Ordering::Relaxed) == 0 {
            self.head_since.store(self.millis(Instant::now()) + 1, Ordering::Relaxed);
        }
    }

    /// Bytes left: a slow reader of the last response is still a connection in use.
    fn sent(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            self.quiet_since.store(self.millis(Instant::now()), Ordering::Relaxed);
        }
    }

    /// Whether the connection has outstayed a timeout at `now`, and if not, when to look
    /// again: never later than a head that starts right now could outstay its own.
    fn verdict(&self, now: Instant, settings: &ConnectionSettings) -> Verdict {
        let soonest_head = now + settings.header_timeout;
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            // Requests in flight are bounded by the request timeout, not by these.
            return Verdict::Open { check_at: soonest_head };
        }
        match self.head_since.load(Ordering::Relaxed) {
            0 => {
                let idle_until = self.at(self.quiet_since.load(Ordering::Relaxed)) + settings.idle_timeout;
                if now >= idle_until {
                    return Verdict::Close("idle_timeout");
                }
                Verdict::Open { check_at: idle_until.min(soonest_head) }
            }
            since => {
                let head_until = self.at(since - 1) + settings.header_timeout;
                if now >= head_until {
                    return Verdict::Close("header_timeout");
                }
                Verdict::Open { check_at: head_until }
            }
        }
    }
}

/// The client's socket, reporting its traffic to the watchdog and holding the
/// connection's slot until it closes.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.sent();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.sent();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_connection_bound_leaves_room_for_the_pool_and_spares() {
        assert_eq!(default_max_connections(20_000, 20), 15_000);
        assert_eq!(default_max_connections(1024, 20), 768);
        assert_eq!(default_max_connections(256, 20), 172);
        assert_eq!(default_max_connections(16, 20), 1);
    }

    #[test]
    fn a_connection_bound_the_descriptor_limit_cannot_honour_is_refused_at_start() {
        let mut config = Config::from_env();
        config.max_connections = Some(1_000);

        let error = ConnectionSettings::from_config(&config, 256)
            .expect_err("1,000 connections need more than 256 descriptors");
        let fits =
            ConnectionSettings::from_config(&config, 2_048).expect("2,048 descriptors leave room for 1,000");

        assert!(error.to_string().contains("leaves room for at most 172"), "{error}");
        assert_eq!(fits.max_connections, 1_000);
        config.max_connections = None;
        let default = ConnectionSettings::from_config(&config, 256).expect("the default fits");
        assert_eq!(default.max_connections, 172);
    }

    #[test]
    fn the_refusal_is_a_complete_response_with_a_code() {
        let text = std::str::from_utf8(REFUSAL).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");

        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.lines().any(|line| line == format!("content-length: {}", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(body["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE");
    }

    #[test]
    fn a_warning_passes_once_per_period_and_counts_the_rest() {
        let mut throttle = Throttle::default();
        let start = Instant::now();

        assert_eq!(throttle.allow(start), Some(0));
        assert_eq!(throttle.allow(start + Duration::from_secs(1)), None);
        assert_eq!(throttle.allow(start + Duration::from_secs(9)), None);
        assert_eq!(throttle.allow(start + Duration::from_secs(10)), Some(2));
    }
}
