//! The load client: one task a connection, each a keep-alive HTTP/1.1 connection of hyper's,
//! repeating one GET until a deadline and recording every latency and the bytes of every
//! response on the wire; and the headers a browser sends with a page load.

use crate::REQUEST_TIMEOUT;
use crate::report::ms;
use axum::body::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper::header::{CONTENT_ENCODING, COOKIE, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Chrome's reduced `User-Agent` on Linux (only the major version changes from release to
/// release).
pub const CHROME_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/143.0.0.0 Safari/537.36";

/// Where a page load starts, as `Sec-Fetch-Site` tells it.
#[derive(Clone, Copy)]
pub enum Site {
    /// Typed into the address bar, or a bookmark.
    None,
    /// A link on one of the site's own pages.
    SameOrigin,
}

/// The headers Chrome sends when it loads a page (a top-level navigation by the user), with
/// `cookie` when the case is signed in. Header names go out in lower case, as hyper writes them.
pub fn browser_headers(site: Site, cookie: Option<&str>) -> HeaderMap {
    let site = match site {
        Site::None => "none",
        Site::SameOrigin => "same-origin",
    };
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept-language", "en-US,en;q=0.9"),
        ("user-agent", CHROME_USER_AGENT),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", site),
        ("sec-fetch-user", "?1"),
        ("upgrade-insecure-requests", "1"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if let Some(cookie) = cookie {
        headers.insert(
            COOKIE,
            HeaderValue::from_str(cookie).expect("a cookie value"),
        );
    }
    headers
}

/// What a bare client (curl, a monitor) sends: no header but the cookie, if any.
pub fn bare_headers(cookie: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(cookie) = cookie {
        headers.insert(
            COOKIE,
            HeaderValue::from_str(cookie).expect("a cookie value"),
        );
    }
    headers
}

/// What one connection requests, over and over.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub headers: HeaderMap,
}

pub struct LoadResult {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub requests: usize,
    pub errors: usize,
    /// What the measured responses took on the wire, all together.
    pub bytes: Wire,
    /// Every measured latency in µs, sorted (so runs can be combined).
    latencies: Vec<u32>,
    window: Duration,
}

/// Bytes of responses as the client read them: status line, headers, body framing (chunk
/// sizes) and body, as they came (compressed or not); and the body alone, still encoded.
#[derive(Clone, Default)]
pub struct Wire {
    pub wire: u64,
    pub body: u64,
    /// The `Content-Encoding` of the responses (the first one's; `identity` when none).
    pub encoding: Option<String>,
}

impl Wire {
    fn add(&mut self, other: Wire) {
        self.wire += other.wire;
        self.body += other.body;
        if self.encoding.is_none() {
            self.encoding = other.encoding;
        }
    }
}

impl LoadResult {
    fn new(mut latencies: Vec<u32>, errors: usize, bytes: Wire, window: Duration) -> Self {
        latencies.sort_unstable();
        Self {
            rps: latencies.len() as f64 / window.as_secs_f64(),
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
            requests: latencies.len(),
            errors,
            bytes,
            latencies,
            window,
        }
    }

    /// Mean bytes of a response on the wire.
    pub fn wire_per_response(&self) -> u64 {
        self.bytes.wire / self.requests.max(1) as u64
    }

    /// Mean bytes of a response's body as sent (compressed when it was).
    pub fn body_per_response(&self) -> u64 {
        self.bytes.body / self.requests.max(1) as u64
    }

    /// "2,915 B a response on the wire (body 2,612 B, br)".
    pub fn wire_summary(&self) -> String {
        format!(
            "{} B a response on the wire (body {} B, {})",
            thousands(self.wire_per_response()),
            thousands(self.body_per_response()),
            self.bytes.encoding.as_deref().unwrap_or("identity")
        )
    }

    /// Several runs of the same target as one: their requests over their windows together,
    /// percentiles over all their latencies.
    pub fn combine(parts: Vec<LoadResult>) -> Self {
        let window = parts.iter().map(|p| p.window).sum();
        let errors = parts.iter().map(|p| p.errors).sum();
        let mut bytes = Wire::default();
        let mut latencies = Vec::new();
        for part in parts {
            bytes.add(part.bytes);
            latencies.extend(part.latencies);
        }
        Self::new(latencies, errors, bytes, window)
    }

    pub fn summary(&self) -> String {
        format!(
            "{:.0} req/s, p50 {}, p99 {}",
            self.rps,
            ms(self.p50),
            ms(self.p99)
        )
    }
}

/// At tens of thousands of requests a second, hours of window.
const MAX_REQUESTS_PER_CONNECTION: usize = 100_000_000;

/// One keep-alive connection per target, each looping until the deadline. Latencies are kept
/// from requests started after the warm-up; req/s counts those over the measured window.
pub async fn load(targets: &[Target], warmup: Duration, measure: Duration) -> LoadResult {
    let begin = Instant::now();
    let measured_from = begin + warmup;
    let until = measured_from + measure;
    let mut tasks = Vec::with_capacity(targets.len());
    for target in targets {
        let mut connection = Connection::new(target);
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(64 * 1024);
            let mut errors = 0usize;
            let mut bytes = Wire::default();
            // Bounded in time (the deadline) and in count (a cap no run comes near; reaching
            // it would cut the window short, so it fails the run rather than skew req/s).
            for n in 0.. {
                assert!(
                    n < MAX_REQUESTS_PER_CONNECTION,
                    "a load connection reached {MAX_REQUESTS_PER_CONNECTION} requests"
                );
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let answer = connection.get().await;
                let ok = matches!(answer, Ok((StatusCode::OK, _)));
                if sent >= measured_from {
                    if let Ok((StatusCode::OK, response)) = answer {
                        let micros = sent.elapsed().as_micros();
                        latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                        bytes.add(response);
                    } else {
                        errors += 1;
                    }
                }
                if !ok {
                    // A refused connection must not spin.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            (latencies, errors, bytes)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut bytes = Wire::default();
    for task in tasks {
        let (latencies, errs, read) = task.await.expect("load task");
        all.extend(latencies);
        errors += errs;
        bytes.add(read);
    }
    LoadResult::new(all, errors, bytes, measure)
}

/// Requests and answers are whole in memory: an empty request body, a response body drained.
type Body = http_body_util::Empty<Bytes>;

/// The load client's connection: hyper's own HTTP/1.1 client connection over one keep-alive
/// TCP stream, driven by the task that uses it (no task of its own), sending the same GET again
/// and again and reading each response whole. A general client (reqwest, with its pool) costs
/// more CPU a request, which on two cores is taken from the servers being measured. A server
/// that closes the connection after a response (Werkzeug does, every time) gets a new one for
/// the next request, as a browser would open one.
pub struct Connection {
    addr: String,
    /// Origin-form: the path and query.
    uri: Uri,
    /// `Host` and the target's own headers.
    headers: HeaderMap,
    link: Option<Link>,
    /// Bytes read from the server, over every stream this connection opened.
    read: Arc<AtomicU64>,
}

/// One open HTTP/1.1 connection: the handle to send on, and the connection future that does the
/// reading and writing. It is polled only while a request is under way, by that request.
struct Link {
    sender: http1::SendRequest<Body>,
    io: Pin<Box<http1::Connection<TokioIo<Counted>, Body>>>,
}

/// A TCP stream that counts the bytes read from it. Only one request is under way on a
/// connection at a time, and each response is read whole, so what it reads during one exchange
/// is that response as it came over the wire.
struct Counted {
    stream: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        this.read.fetch_add(read as u64, Ordering::Relaxed);
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Connection {
    pub fn new(target: &Target) -> Self {
        let url = url::Url::parse(&target.url).expect("a target URL");
        assert_eq!(url.scheme(), "http", "the load client speaks plain HTTP");
        let host = url.host_str().expect("a host");
        let addr = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        let mut headers = target.headers.clone();
        headers.insert(HOST, HeaderValue::from_str(&addr).expect("a Host header"));
        Self {
            addr,
            uri: path.parse().expect("a request path"),
            headers,
            link: None,
            read: Arc::default(),
        }
    }

    /// One request, bounded by [`REQUEST_TIMEOUT`]; the status of its response and the bytes it
    /// took. Any error, and a connection the server closed, drop the connection: the next
    /// request opens another.
    pub async fn get(&mut self) -> Result<(StatusCode, Wire), String> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange()).await;
        let result = result.unwrap_or_else(|_| Err("timed out".to_owned()));
        if result.is_err() || self.link.as_ref().is_some_and(|l| l.sender.is_closed()) {
            self.link = None;
        }
        result
    }

    async fn exchange(&mut self) -> Result<(StatusCode, Wire), String> {
        if self.link.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let stream = Counted {
                stream,
                read: self.read.clone(),
            };
            let (sender, io) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            self.link = Some(Link {
                sender,
                io: Box::pin(io),
            });
        }
        let read_before = self.read.load(Ordering::Relaxed);
        let (result, closed) = {
            let Link { sender, io } = self.link.as_mut().expect("connected");
            let mut request = Request::new(Body::new());
            *request.uri_mut() = self.uri.clone();
            *request.headers_mut() = self.headers.clone();
            let exchange = async {
                sender.ready().await.map_err(|e| e.to_string())?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let encoding = response
                    .headers()
                    .get(CONTENT_ENCODING)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                // Body: count its bytes, keep none.
                let mut body_bytes = 0u64;
                let mut body = response.into_body();
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| e.to_string())?;
                    if let Some(data) = frame.data_ref() {
                        body_bytes += data.len() as u64;
                    }
                }
                Ok((status, body_bytes, encoding))
            };
            let mut exchange = std::pin::pin!(exchange);
            tokio::select! {
                biased;
                result = &mut exchange => (result, false),
                ended = io.as_mut() => {
                    // The connection is done (closed, or failed); what it read may still complete
                    // the response. It must not be polled again.
                    let result = match (exchange.await, ended) {
                        (Ok(status), _) => Ok(status),
                        (Err(err), Ok(())) => Err(err),
                        (Err(_), Err(err)) => Err(err.to_string()),
                    };
                    (result, true)
                }
            }
        };
        if closed {
            self.link = None;
        }
        let wire = self
            .read
            .load(Ordering::Relaxed)
            .saturating_sub(read_before);
        result.map(|(status, body, encoding)| {
            let bytes = Wire {
                wire,
                body,
                encoding: Some(encoding.unwrap_or_else(|| "identity".to_owned())),
            };
            (status, bytes)
        })
    }
}

/// 44512 → "44,512".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nearest-rank percentile of sorted microseconds.
pub fn percentile(sorted_micros: &[u32], p: f64) -> Duration {
    if sorted_micros.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted_micros.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_micros.len()) - 1;
    Duration::from_micros(u64::from(sorted_micros[index]))
}
