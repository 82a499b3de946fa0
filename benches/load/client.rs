//! The load client.

use crate::REQUEST_TIMEOUT;
use crate::report::ms;
use reqwest::header::HeaderMap;
use std::time::{Duration, Instant};

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
}

impl LoadResult {
    pub fn summary(&self) -> String {
        format!(
            "{:.0} req/s, p50 {}, p99 {}",
            self.rps,
            ms(self.p50),
            ms(self.p99)
        )
    }
}

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
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let ok = matches!(connection.get().await, Ok(200));
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
    all.sort_unstable();
    LoadResult {
        rps: all.len() as f64 / measure.as_secs_f64(),
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        requests: all.len(),
        errors,
    }
}

/// The load client's connection: a minimal HTTP/1.1 keep-alive client over one TCP stream that
/// sends the same GET again and again and reads each response whole (status line, headers,
/// `Content-Length` bytes of body). A general client (reqwest) costs several times more CPU a
/// request, which on two cores is taken from the servers being measured.
pub struct Connection {
    pub addr: String,
    pub request: Vec<u8>,
    pub stream: Option<tokio::net::TcpStream>,
    pub buffer: Vec<u8>,
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
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n").into_bytes();
        for (name, value) in &target.headers {
            request.extend_from_slice(name.as_str().as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        Self {
            addr,
            request,
            stream: None,
            buffer: Vec::with_capacity(64 * 1024),
        }
    }

    /// One request; the status code of its response. Any error drops the connection.
    pub async fn get(&mut self) -> std::io::Result<u16> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange()).await;
        match result {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(err)) => {
                self.stream = None;
                Err(err)
            }
            Err(_) => {
                self.stream = None;
                Err(std::io::ErrorKind::TimedOut.into())
            }
        }
    }

    pub async fn exchange(&mut self) -> std::io::Result<u16> {
        use std::io::{Error, ErrorKind};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if self.stream.is_none() {
            let stream = tokio::net::TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected");
        stream.write_all(&self.request).await?;
        // Headers: read until the blank line.
        self.buffer.clear();
        let header_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            if self.buffer.len() > 64 * 1024 {
                return Err(Error::new(ErrorKind::InvalidData, "headers too long"));
            }
            if stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
        };
        let head = std::str::from_utf8(&self.buffer[..header_end])
            .map_err(|_| Error::new(ErrorKind::InvalidData, "headers are not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|line| line.strip_prefix("HTTP/1.1 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "bad status line"))?;
        let mut length = None;
        let mut close = false;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let length =
            length.ok_or_else(|| Error::new(ErrorKind::InvalidData, "no Content-Length"))?;
        // Body: count the bytes, keep none.
        let mut remaining = length
            .checked_sub(self.buffer.len() - header_end)
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "more bytes than announced"))?;
        while remaining > 0 {
            self.buffer.clear();
            let read = stream.read_buf(&mut self.buffer).await?;
            if read == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            remaining = remaining
                .checked_sub(read)
                .ok_or_else(|| Error::new(ErrorKind::InvalidData, "more bytes than announced"))?;
        }
        if close {
            self.stream = None;
        }
        Ok(status)
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
