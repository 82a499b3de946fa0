//! The serve loop: accepts connections under a cap, serves each with hyper's HTTP/1 and the
//! timeouts that keep a client from hoarding one, and drains in-flight requests at shutdown.
//!
//! `axum::serve` has none of these knobs, so the loop drives hyper directly, as axum's
//! `serve-with-hyper` example does:
//! - **headers** must arrive within `HEADER_READ_TIMEOUT_SECS` (hyper 1.12 arms that timer on
//!   every `poll_read_head`, so it also closes an idle keep-alive connection);
//! - **idle**: [`IdleTimeout`] closes a connection on which no byte moved either way for
//!   [`IDLE_TIMEOUT`], which also catches a client that stops reading;
//! - **at most `MAX_CONNECTIONS`**: a permit is taken *before* `accept()`, so the rest wait in
//!   the kernel's backlog instead of being accepted and refused;
//! - **at most `MAX_CONNECTIONS_PER_CLIENT`** per peer address ([`crate::client::key`]): one
//!   more is closed at once, unanswered;
//! - **request heads** of at most [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] lines, else hyper's 431;
//! - **accept errors** (EMFILE) are retried after a bounded back-off;
//! - **shutdown**: stop accepting, let in-flight requests finish until the drain deadline, drop
//!   the rest.

use crate::client::PerClient;
use crate::config::Config;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, TimedOut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// hyper's read buffer (`max_buf_size`), which bounds a request's head: a larger one gets a 431.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Header lines a request may have; more get a 431 (hyper's parser keeps up to 100 on the stack).
pub const MAX_HEADERS: usize = 64;
/// A connection on which nothing moved for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At shutdown, in-flight requests get this long to finish; then they are dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Accept errors back off from the first, doubling, up to the second: no spin on EMFILE.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Serves `router` on `listener` under `config`'s limits until `shutdown` completes, then gives
/// in-flight requests `drain` to finish ([`DRAIN_TIMEOUT`]; tests shorten it).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &Config,
    drain: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let permits = Arc::new(Semaphore::new(config.max_connections));
    // Behind a proxy (`CLIENT_IP_HEADER`) every peer is the proxy: no per-peer cap.
    let per_client = PerClient::new(match config.client_ip_header {
        Some(_) => config.max_connections,
        None => config.max_connections_per_client,
    });
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut backoff: Option<Duration> = None;
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {} // reap finished connections
        // `biased`: shutdown is polled first, so its signal handlers are installed before the
        // first accept, and a busy listener never starves a stop.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed; nothing left to serve if it were
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff = None;
                    accepted
                }
                Err(err) if matches!(err.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) => {
                    // That one client gave up during the handshake; the listener is fine.
                    tracing::debug!(%err, "a connection failed before it was accepted");
                    continue;
                }
                Err(err) => {
                    let wait = next_backoff(backoff);
                    backoff = Some(wait);
                    tracing::error!(%err, retry_in_ms = wait.as_millis(), "cannot accept connections");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(wait) => continue,
                    }
                }
            },
        };
        let Some(slot) = per_client.enter(peer.ip()) else {
            // Dropped unanswered and unread.
            tracing::debug!(client = %crate::client::key(peer.ip()), "connection closed: too many from this client");
            continue;
        };
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        let io = TokioIo::new(IdleTimeout::new(stream, IDLE_TIMEOUT));
        let connection = graceful.watch(http.serve_connection(io, service));
        connections.spawn(async move {
            // Timeouts, resets and malformed requests: the client's doing.
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection closed with an error");
            }
            drop((permit, slot));
        });
    }
    drop(listener); // new connections are refused from here on
    let in_flight = graceful.count();
    tracing::info!(
        connections = in_flight,
        "stopped accepting; letting in-flight requests finish"
    );
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_secs = drain.as_secs(),
            "requests still running after the drain deadline are dropped"
        );
    }
    connections.shutdown().await;
}

/// The wait after an accept error, given the previous one (`None` after a success).
fn next_backoff(previous: Option<Duration>) -> Duration {
    let (first, cap) = ACCEPT_BACKOFF;
    previous.map_or(first, |p| p.saturating_mul(2).min(cap))
}

/// An IO that fails with `TimedOut` once no byte moved either way for `idle`. Progress records the
/// time only (no timer update per call); a timer that fires early moves to the new deadline.
struct IdleTimeout<T> {
    inner: T,
    idle: Duration,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
}

type IoPoll<T> = Poll<io::Result<T>>;

impl<T> IdleTimeout<T> {
    fn new(inner: T, idle: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            idle,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    /// Ready with the error once idle for too long; otherwise registers for the deadline.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let deadline = self.last_progress + self.idle;
            if deadline <= Instant::now() {
                return Poll::Ready(io::Error::new(TimedOut, "connection idle for too long"));
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    /// `poll` is a read or write, which `moved` bytes or not.
    fn track<R>(&mut self, cx: &mut Context<'_>, poll: IoPoll<R>, moved: bool) -> IoPoll<R> {
        if moved {
            self.last_progress = Instant::now();
        }
        match poll {
            Poll::Pending => self.poll_idle(cx).map(Err),
            ready => ready,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        let moved = buf.filled().len() > before;
        this.track(cx, poll, moved)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        let moved = matches!(poll, Poll::Ready(Ok(n)) if n > 0);
        this.track(cx, poll, moved)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        let moved = matches!(poll, Poll::Ready(Ok(n)) if n > 0);
        this.track(cx, poll, moved)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn accept_errors_back_off_doubling_up_to_a_second() {
        let waits: Vec<u128> =
            std::iter::successors(Some(next_backoff(None)), |p| Some(next_backoff(Some(*p))))
                .take(10)
                .map(|wait| wait.as_millis())
                .collect();
        assert_eq!(
            waits,
            [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000],
            "bounded, and never zero"
        );
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_and_a_talking_one_does_not() {
        let idle = Duration::from_millis(200);
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut ours = IdleTimeout::new(ours, idle);
        let started = Instant::now();
        // A byte every 50 ms for 600 ms: three idle periods, none of them silent.
        let talker = tokio::spawn(async move {
            for _ in 0..12 {
                theirs.write_all(b"x").await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            theirs // kept open, now silent
        });
        let mut byte = [0u8; 1];
        for _ in 0..12 {
            ours.read_exact(&mut byte).await.unwrap();
        }
        let _theirs = talker.await.unwrap();
        let err = tokio::time::timeout(Duration::from_secs(5), ours.read(&mut byte))
            .await
            .expect("the idle timer fires")
            .unwrap_err();
        assert_eq!(err.kind(), TimedOut);
        // The last byte came at 11 × 50 ms; the timer fires an idle period after it.
        assert!(started.elapsed() >= Duration::from_millis(550) + idle);
    }

    #[tokio::test]
    async fn a_request_still_running_after_the_drain_deadline_is_dropped() {
        let (entered, mut entered_rx) = tokio::sync::mpsc::channel::<()>(1);
        let router = Router::new().route(
            "/hang",
            get(move || async move {
                let _ = entered.send(()).await;
                std::future::pending::<()>().await;
            }),
        );
        let config = Config::from_lookup(|_| None).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n";
            stream.write_all(request).await.unwrap();
            let entered = tokio::time::timeout(Duration::from_secs(5), entered_rx.recv());
            entered.await.unwrap();
            let asked = Instant::now();
            let _ = stop.send(());
            (stream, asked)
        });
        let drain = Duration::from_millis(300);
        let server = serve(listener, router, &config, drain, async {
            let _ = stopped.await;
        });
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops at the drain deadline");
        let (mut stream, asked) = client.await.unwrap();
        assert!(asked.elapsed() >= drain);
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(
            read.is_err() || rest.is_empty(),
            "the dropped request got no answer"
        );
    }
}
