//! The one place a Webex reply's body is read: chunk by chunk, up to a cap, never buffered whole.
//!
//! Webex decides how big a reply is; a broken proxy or a hostile endpoint can send gigabytes.
//! A declared `Content-Length` over the cap is refused before a byte is read; a body without
//! one (chunked) is read until it passes the cap, then dropped, which closes the connection.

use bytes::Bytes;
use reqwest::Response;

/// The most a 2xx body may be. Webex's largest reply we read, a page of 100 rooms, is about 60 KB.
pub const MAX_BODY: usize = 1024 * 1024;
/// The most of an error body we read to classify it: Webex's envelopes are a few hundred bytes.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// Why a capped read stopped short.
#[derive(Debug)]
pub enum ReadError {
    /// The body is (or says it is) longer than the cap.
    TooLarge,
    /// The connection failed or timed out while reading.
    Transport(reqwest::Error),
}

/// The whole body, if it is at most `cap` bytes.
///
/// A body that arrives in one chunk (a page of rooms from an HTTP/1 upstream, mostly; HTTP/2
/// sends at most 16 KB a frame) is that chunk, not a copy of it; only a body in several chunks is
/// copied, once, into one buffer. A kept chunk shares hyper's read buffer, so it can hold more
/// memory than its length: at most hyper's largest buffer (about 408 KB). A caller that keeps
/// many bodies must copy them (`RoomPages` keeps only the first page's chunk as it came).
pub async fn read_capped(mut response: Response, cap: usize) -> Result<Bytes, ReadError> {
    let declared = response.content_length();
    if declared.is_some_and(|len| len > u64::try_from(cap).unwrap_or(u64::MAX)) {
        return Err(ReadError::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    let mut read = 0;
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        // `read <= cap` always holds here, so the subtraction cannot wrap.
        if chunk.len() > cap - read {
            return Err(ReadError::TooLarge);
        }
        read += chunk.len();
        match (&first, &mut joined) {
            (None, _) => first = Some(chunk),
            (Some(_), Some(joined)) => joined.extend_from_slice(&chunk),
            (Some(head), None) => {
                // A declared length within the cap is a fair guess of the whole; without one,
                // twice what came so far.
                let guess = declared
                    .and_then(|len| usize::try_from(len).ok())
                    .unwrap_or(read.saturating_mul(2))
                    .clamp(read, cap);
                let mut buffer = Vec::with_capacity(guess);
                buffer.extend_from_slice(head);
                buffer.extend_from_slice(&chunk);
                joined = Some(buffer);
            }
        }
    }
    Ok(match (joined, first) {
        (Some(joined), _) => Bytes::from(joined),
        (None, first) => first.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;

    /// A loopback server whose `/{n}/{size}` answers `n` chunks of `size` bytes each (chunked, no
    /// length), and `/whole/{size}` one body of `size` bytes with its length.
    async fn server() -> String {
        let app = axum::Router::new()
            .route(
                "/{n}/{size}",
                get(
                    |axum::extract::Path((n, size)): axum::extract::Path<(u8, usize)>| async move {
                        let chunks = (0..n)
                            .map(move |i| Ok::<_, std::io::Error>(Bytes::from(vec![i; size])));
                        Body::from_stream(futures_util::stream::iter(chunks))
                    },
                ),
            )
            .route(
                "/whole/{size}",
                get(
                    |axum::extract::Path(size): axum::extract::Path<usize>| async move {
                        vec![7u8; size]
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    async fn read(base: &str, path: &str, cap: usize) -> Result<Bytes, ReadError> {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        read_capped(response, cap).await
    }

    #[tokio::test]
    async fn a_body_in_one_or_many_chunks_is_read_whole_within_the_cap() {
        let base = server().await;
        assert_eq!(
            read(&base, "/whole/45000", 64 * 1024).await.unwrap(),
            vec![7u8; 45_000]
        );
        let many = read(&base, "/40/1000", 64 * 1024).await.unwrap();
        let want: Vec<u8> = (0..40u8).flat_map(|i| vec![i; 1000]).collect();
        assert_eq!(many, want);
        // Exactly the cap is within it; empty is a body too.
        assert_eq!(read(&base, "/40/1000", 40_000).await.unwrap().len(), 40_000);
        assert!(read(&base, "/0/1000", 10).await.unwrap().is_empty());
        assert_eq!(read(&base, "/1/1000", 1000).await.unwrap(), vec![0u8; 1000]);
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_declared_or_not() {
        let base = server().await;
        assert!(matches!(
            read(&base, "/whole/45000", 44_999).await,
            Err(ReadError::TooLarge)
        ));
        assert!(matches!(
            read(&base, "/40/1000", 39_999).await,
            Err(ReadError::TooLarge)
        ));
        assert!(matches!(
            read(&base, "/1/1000", 999).await,
            Err(ReadError::TooLarge)
        ));
    }
}
