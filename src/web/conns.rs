//! What keeps the listen port serving when anyone in the cluster can reach
//! it: a cap on open connections that makes room by closing the oldest
//! connection not inside a request, a deadline on a write that makes no
//! progress, and an accept loop that backs off (and says so once in a
//! while) instead of spinning when the process runs out of descriptors.
//!
//! The header-read and keep-alive deadline is hyper's `header_read_timeout`
//! (it runs while a connection waits for a request head, idle or not);
//! `crate::serve` sets it from [`Limits::read_timeout`].
//!
//! Why evict rather than refuse (Prometheus's `LimitListener` blocks
//! `accept` at the cap): an attacker who holds every slot with idle or
//! never-reading connections would then lock the real scraper out. Here a
//! new connection at the cap closes the oldest one that is not inside a
//! request (idle, half-sent header, or a response its client does not read),
//! so a scraper that connects is served; only connections that are all busy
//! at once (requests relay is answering) make a new one wait for a slot.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;

/// The listen port's limits (flags of `relay run`, Prometheus's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `--web.max-connections`: open connections at most (Prometheus: 512).
    pub max_connections: usize,
    /// `--web.read-timeout`: how long a connection may take to send a
    /// request head, counted from when it starts waiting for one (so also
    /// how long an idle keep-alive connection is kept).
    pub read_timeout: Duration,
    /// How long a response write may make no progress (a client that does
    /// not read) before the connection is closed.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// One open connection as the registry sees it.
struct Open {
    /// Inside a request (from its head to the response handed to hyper).
    busy: bool,
    /// Closes the connection when notified.
    close: Arc<Notify>,
}

/// The open connections, oldest first (ids grow).
#[derive(Default)]
struct Table {
    next: u64,
    open: BTreeMap<u64, Open>,
}

/// The open connections of one listener.
#[derive(Default)]
pub struct Registry {
    table: Mutex<Table>,
}

/// A connection's place in the registry; leaving it (drop) frees the slot.
pub struct Slot {
    registry: Arc<Registry>,
    id: u64,
    close: Arc<Notify>,
}

/// Why a new connection got no slot.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl Registry {
    /// A slot for a new connection. At `max` open connections the oldest
    /// one not inside a request is told to close and its slot is taken; when
    /// every connection is inside a request there is no slot.
    pub fn admit(self: &Arc<Self>, max: usize) -> Result<Slot, Full> {
        let mut table = self.lock();
        if table.open.len() >= max.max(1) && !Self::evict_oldest_idle(&mut table) {
            return Err(Full);
        }
        let id = table.next;
        table.next += 1;
        let close = Arc::new(Notify::new());
        table.open.insert(
            id,
            Open {
                busy: false,
                close: close.clone(),
            },
        );
        Ok(Slot {
            registry: self.clone(),
            id,
            close,
        })
    }

    /// Closes the oldest connection not inside a request (when out of file
    /// descriptors, so that `accept` can succeed again). False if none.
    pub fn shed(&self) -> bool {
        Self::evict_oldest_idle(&mut self.lock())
    }

    /// Open connections now.
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn evict_oldest_idle(table: &mut Table) -> bool {
        let oldest = table.open.iter().find(|(_, c)| !c.busy).map(|(id, _)| *id);
        match oldest.and_then(|id| table.open.remove(&id)) {
            Some(evicted) => {
                // notify_one keeps the wake-up for a connection task that
                // is not waiting yet.
                evicted.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves a consistent table.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Slot {
    /// Resolves when the registry wants this connection closed.
    pub async fn evicted(&self) {
        self.close.notified().await;
    }

    /// Marks the connection inside a request until the guard is dropped.
    pub fn busy(&self) -> Busy {
        self.set_busy(true);
        Busy {
            registry: self.registry.clone(),
            id: self.id,
        }
    }

    fn set_busy(&self, busy: bool) {
        set_busy(&self.registry, self.id, busy);
    }
}

fn set_busy(registry: &Registry, id: u64, busy: bool) {
    if let Some(open) = registry.lock().open.get_mut(&id) {
        open.busy = busy;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.lock().open.remove(&self.id);
    }
}

/// A request in progress on a connection (see [`Slot::busy`]).
pub struct Busy {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        set_busy(&self.registry, self.id, false);
    }
}

/// An I/O stream whose writes fail with `TimedOut` after making no progress
/// for a while, so a client that never reads its response does not keep
/// the connection (and the snapshot the response holds) forever.
pub struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        WriteDeadline {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// After a write that is pending: the error once the deadline passed.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of the response for the write timeout",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.check(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

use std::future::Future as _;

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, polled)
    }
}

/// The accept loop's pause after a failure (Go's `http.Server`: 5 ms,
/// doubling up to 1 s), and a log line at most every `LOG_EVERY` counting
/// the failures in between, so running out of descriptors neither spins a
/// core nor floods the log.
pub struct AcceptBackoff {
    delay: Duration,
    failures: u64,
    logged: Option<Instant>,
}

const FIRST_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            delay: FIRST_DELAY,
            failures: 0,
            logged: None,
        }
    }
}

impl AcceptBackoff {
    /// A failed accept: logs when due, then returns how long to pause.
    pub fn failed(&mut self, error: &io::Error, open: usize) -> Duration {
        self.failures += 1;
        let due = self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY);
        if due {
            tracing::warn!(error = %error, failures = self.failures, open_connections = open, "accepting connections fails; retrying with a pause");
            self.logged = Some(Instant::now());
            self.failures = 0;
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(MAX_DELAY);
        delay
    }

    /// A successful accept ends the pauses.
    pub fn succeeded(&mut self) {
        self.delay = FIRST_DELAY;
    }
}

/// Whether an accept error means the process is out of descriptors.
pub fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let registry = Arc::new(Registry::default());
        let first = registry.admit(3).expect("room");
        let second = registry.admit(3).expect("room");
        let _busy = first.busy();
        let third = registry.admit(3).expect("room");
        assert_eq!(registry.len(), 3);
        // The first is inside a request: the second (oldest idle) goes.
        let fourth = registry.admit(3).expect("an idle one to evict");
        assert_eq!(registry.len(), 3);
        let evicted = futures_ready(second.evicted());
        assert!(evicted, "the second connection was told to close");
        assert!(!futures_ready(third.evicted()));
        drop(second);
        assert_eq!(registry.len(), 3, "an evicted slot is not counted twice");
        // All busy: no room.
        let (_b3, _b4) = (third.busy(), fourth.busy());
        assert_eq!(registry.admit(3).err(), Some(Full));
        assert!(!registry.shed());
        drop(_b3);
        assert!(registry.shed());
        assert_eq!(registry.len(), 2);
    }

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(out_of_descriptors(&e));
        let delays: Vec<_> = (0..10).map(|_| b.failed(&e, 0)).collect();
        assert_eq!(delays[0], Duration::from_millis(5));
        assert_eq!(delays[1], Duration::from_millis(10));
        assert_eq!(delays[9], Duration::from_secs(1));
        b.succeeded();
        assert_eq!(b.failed(&e, 0), Duration::from_millis(5));
    }

    /// Whether a future is ready at its first poll.
    fn futures_ready(f: impl std::future::Future<Output = ()>) -> bool {
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        f.as_mut().poll(&mut Context::from_waker(waker)).is_ready()
    }
}
