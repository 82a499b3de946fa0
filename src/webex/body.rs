//! The one place a Webex reply's body is read: chunk by chunk, up to a cap, never buffered whole.
//!
//! Webex decides how big a reply is; a broken proxy or a hostile endpoint can send gigabytes.
//! A declared `Content-Length` over the cap is refused before a byte is read; a body without
//! one (chunked) is read until it passes the cap, then dropped, which closes the connection.

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
pub async fn read_capped(mut response: Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    let declared = response.content_length();
    if declared.is_some_and(|len| len > u64::try_from(cap).unwrap_or(u64::MAX)) {
        return Err(ReadError::TooLarge);
    }
    // A declared length within the cap is a fair first guess; without one, start small.
    let first_guess = declared
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(8 * 1024)
        .min(cap);
    let mut body = Vec::with_capacity(first_guess);
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        // `body.len() <= cap` always holds here, so the subtraction cannot wrap.
        if chunk.len() > cap - body.len() {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
