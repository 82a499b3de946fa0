//! Response compression (br or gzip, by tower-http) for the clients that ask for it; a request
//! without `Accept-Encoding` goes round it.
//!
//! tower-http's response body holds its encoders' state inline, 5.8 KB, even when it passes
//! the body through untouched, and a response is moved four times on its way out: for a client
//! that compresses nothing (curl, monitors, API clients, the benchmark) those copies were the
//! largest single cost of a `GET /`. Such a request now skips the layer, and its response gets
//! the one header the layer would have added: `Vary: Accept-Encoding`, on what it would have
//! compressed had it been asked, so a cache keeps the variants apart. Any `Accept-Encoding`,
//! even `identity`, goes through tower-http, which negotiates it.

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use futures_util::FutureExt;
use futures_util::future::{Either, Map};
use std::task::{Context, Poll};
use tower::{Layer, Service};
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::{Compression, CompressionBody, CompressionLayer, ResponseFuture};

/// Compresses as the client accepts, with tower-http's defaults (what to compress: not
/// images, not event streams, not bodies under 32 bytes).
#[derive(Clone)]
pub struct CompressLayer(CompressionLayer);

impl CompressLayer {
    pub fn new() -> Self {
        Self(CompressionLayer::new().br(true).gzip(true))
    }
}

impl<S> Layer<S> for CompressLayer {
    type Service = Compress<S>;

    fn layer(&self, inner: S) -> Compress<S> {
        Compress(self.0.layer(inner))
    }
}

/// See the module doc.
#[derive(Clone)]
pub struct Compress<S>(Compression<S>);

type Compressed<E> = Result<Response<CompressionBody<Body>>, E>;
type Plain<E> = Result<Response<Body>, E>;

impl<S, ReqBody> Service<Request<ReqBody>> for Compress<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<
        Map<
            ResponseFuture<S::Future, DefaultPredicate>,
            fn(Compressed<S::Error>) -> Plain<S::Error>,
        >,
        Map<S::Future, fn(Plain<S::Error>) -> Plain<S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if request.headers().contains_key(header::ACCEPT_ENCODING) {
            Either::Left(self.0.call(request).map(boxed as fn(_) -> _))
        } else {
            Either::Right(self.0.get_mut().call(request).map(vary as fn(_) -> _))
        }
    }
}

fn boxed<E>(response: Compressed<E>) -> Plain<E> {
    response.map(|response| response.map(Body::new))
}

/// tower-http's `DefaultPredicate`, which reads `Content-Type` three times (for gRPC, images,
/// event streams: about 1,400 instructions a page): HTML is none of those, so for a page only
/// its size is left to check. The test below holds the two to the same answers.
fn would_compress(response: &Response<Body>) -> bool {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/html"));
    if html {
        SizeAbove::default().should_compress(response)
    } else {
        DefaultPredicate::new().should_compress(response)
    }
}

/// What tower-http adds to a response it could compress but was not asked to.
fn vary<E>(response: Plain<E>) -> Plain<E> {
    response.map(|mut response| {
        let headers = response.headers();
        let compressible = !headers.contains_key(header::CONTENT_ENCODING)
            && !headers.contains_key(header::CONTENT_RANGE)
            && would_compress(&response);
        let named = headers.get_all(header::VARY).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|value| value.to_ascii_lowercase().contains("accept-encoding"))
        });
        if compressible && !named {
            let value: HeaderValue = header::ACCEPT_ENCODING.into();
            response.headers_mut().append(header::VARY, value);
        }
        response
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_compressible_exactly_when_tower_http_says_so() {
        let types = [
            "text/html; charset=utf-8",
            "text/html",
            "text/css",
            "image/png",
            "image/svg+xml",
            "application/grpc",
            "text/event-stream",
        ];
        for content_type in types {
            for size in [0, 31, 32, 33, 45_000] {
                let mut response = Response::new(Body::from(vec![b'x'; size]));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                assert_eq!(
                    would_compress(&response),
                    DefaultPredicate::new().should_compress(&response),
                    "{content_type}, {size} bytes"
                );
            }
        }
    }
}
