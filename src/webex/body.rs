//! The one place a Webex reply's body is read: up to a cap (`http_body_util::Limited`), since a
//! broken proxy or a hostile endpoint can send gigabytes. A declared `Content-Length` over the
//! cap is refused before a byte is read; a chunked body is read until it passes the cap, then
//! dropped, which closes the connection.

use http_body_util::{BodyExt, Limited};
use reqwest::Response;

/// The most a 2xx body may be. Webex's largest reply we read, a page of 100 rooms, is about 60 KB.
pub const MAX_BODY: usize = 1024 * 1024;
/// The most of an error body we read to classify it: Webex's envelopes are a few hundred bytes.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// Why a capped read stopped: the body is (or says it is) over the cap, or the connection failed.
#[derive(Debug)]
pub enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

/// The whole body, if it is at most `cap` bytes.
pub async fn read_capped(response: Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    let declared = response.content_length();
    if declared.is_some_and(|len| len > u64::try_from(cap).unwrap_or(u64::MAX)) {
        return Err(ReadError::TooLarge);
    }
    let body = Limited::new(reqwest::Body::from(response), cap)
        .collect()
        .await;
    match body {
        Ok(body) => Ok(body.to_bytes().into()),
        Err(err) => Err(match err.downcast::<reqwest::Error>() {
            Ok(err) => ReadError::Transport(*err),
            // The other error `Limited` gives: the body passed the cap.
            Err(_) => ReadError::TooLarge,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Path;

    /// A loopback server whose `/{n}/{size}` answers `n` chunks of `size` bytes each (chunked, no
    /// length), and `/whole/{size}` one body of `size` bytes with its length.
    async fn server() -> String {
        let chunked = |Path((n, size)): Path<(u8, usize)>| async move {
            let chunks = (0..n).map(move |i| Ok::<_, std::io::Error>(vec![i; size]));
            axum::body::Body::from_stream(futures_util::stream::iter(chunks))
        };
        let whole = |Path(size): Path<usize>| async move { vec![7u8; size] };
        let app = axum::Router::new()
            .route("/{n}/{size}", axum::routing::get(chunked))
            .route("/whole/{size}", axum::routing::get(whole));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    async fn read(base: &str, path: &str, cap: usize) -> Result<Vec<u8>, ReadError> {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        read_capped(response, cap).await
    }

    #[tokio::test]
    async fn a_body_in_one_or_many_chunks_is_read_whole_within_the_cap_and_refused_past_it() {
        let base = server().await;
        let many: Vec<u8> = (0..40u8).flat_map(|i| vec![i; 1000]).collect();
        // Exactly the cap is within it; empty is a body too.
        for (path, cap, want) in [
            ("/whole/45000", 64 * 1024, vec![7u8; 45_000]),
            ("/40/1000", 64 * 1024, many.clone()),
            ("/40/1000", 40_000, many),
            ("/0/1000", 10, Vec::new()),
            ("/1/1000", 1000, vec![0u8; 1000]),
        ] {
            assert_eq!(read(&base, path, cap).await.unwrap(), want, "{path} {cap}");
        }
        // Over the cap, declared or not, it is refused.
        for (path, cap) in [
            ("/whole/45000", 44_999),
            ("/40/1000", 39_999),
            ("/1/1000", 999),
        ] {
            let read = read(&base, path, cap).await;
            assert!(matches!(read, Err(ReadError::TooLarge)), "{path} {cap}");
        }
    }
}
