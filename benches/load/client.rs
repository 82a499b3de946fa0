//! The load client: one task a connection, each a keep-alive HTTP/1.1 connection of hyper's,
//! repeating one GET until a deadline and recording every latency.

use crate::REQUEST_TIMEOUT;
use crate::report::ms;
use axum::body::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper::header::{HOST, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

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
    /// Every measured latency in µs, sorted (so runs can be combined).
    latencies: Vec<u32>,
    window: Duration,
}

impl LoadResult {
    fn new(mut latencies: Vec<u32>, errors: usize, window: Duration) -> Self {
        latencies.sort_unstable();
        Self {
            rps: latencies.len() as f64 / window.as_secs_f64(),
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
            requests: latencies.len(),
            errors,
            latencies,
            window,
        }
    }

    /// Several runs of the same target as one: their requests over their windows together,
    /// percentiles over all their latencies.
    pub fn combine(parts: Vec<LoadResult>) -> Self {
        let window = parts.iter().map(|p| p.window).sum();
        let errors = parts.iter().map(|p| p.errors).sum();
        let latencies = parts.into_iter().flat_map(|p| p.latencies).collect();
        Self::new(latencies, errors, window)
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
                let ok = matches!(connection.get().await, Ok(StatusCode::OK));
                if sent >= measured_from {
                    if ok {
                        let micros = sent.elapsed().as_micros();
                        latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                    } else {
                        errors += 1;
                    }
                }
                if !ok {
                    // A refused connection must not spin.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, errs) = task.await.expect("load task");
        all.extend(latencies);
        errors += errs;
    }
    LoadResult::new(all, errors, measure)
}

/// Requests and answers are whole in memory: an empty request body, a response body drained.
type Body = http_body_util::Empty<Bytes>;

/// The load client's connection: hyper's own HTTP/1.1 client connection over one keep-alive
/// TCP stream, driven by the task that uses it (no task of its own), sending the same GET again
/// and again and reading each response whole. A general client (reqwest, with its pool) costs
/// more CPU a request, which on two cores is taken from the servers being measured.
pub struct Connection {
    addr: String,
    /// Origin-form: the path and query.
    uri: Uri,
    /// `Host` and the target's own headers.
    headers: HeaderMap,
    link: Option<Link>,
}

/// One open HTTP/1.1 connection: the handle to send on, and the connection future that does the
/// reading and writing. It is polled only while a request is under way, by that request.
struct Link {
    sender: http1::SendRequest<Body>,
    io: Pin<Box<http1::Connection<TokioIo<TcpStream>, Body>>>,
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
        }
    }

    /// One request, bounded by [`REQUEST_TIMEOUT`]; the status of its response. Any error, and
    /// a connection the server closed, drop the connection: the next request opens another.
    pub async fn get(&mut self) -> Result<StatusCode, String> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange()).await;
        let result = result.unwrap_or_else(|_| Err("timed out".to_owned()));
        if result.is_err() || self.link.as_ref().is_some_and(|l| l.sender.is_closed()) {
            self.link = None;
        }
        result
    }

    async fn exchange(&mut self) -> Result<StatusCode, String> {
        if self.link.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (sender, io) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            self.link = Some(Link {
                sender,
                io: Box::pin(io),
            });
        }
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
                // Body: count the frames, keep none.
                let mut body = response.into_body();
                while let Some(frame) = body.frame().await {
                    frame.map_err(|e| e.to_string())?;
                }
                Ok(status)
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
        result
    }
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
