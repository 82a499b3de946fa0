//! Serves the [`crate::static_files`]: at their hashed URLs, cached for a year and
//! immutable; at their plain paths (and `/favicon.ico`), revalidated by `ETag` (304).

use crate::state::AppState;
use crate::static_files::{self, StaticFile};
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// A hashed URL names one content for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A plain path may change with the next release: the browser asks again (cheap: a 304).
const REVALIDATE: &str = "public, no-cache";

pub fn router() -> Router<AppState> {
    let serve = |file: &'static StaticFile, cache: &'static str| {
        get(move |h: HeaderMap| async move { asset(file, cache, &h) })
    };
    let mut router = Router::new();
    for file in static_files::all() {
        router = router
            .route(&file.url, serve(file, IMMUTABLE))
            .route(file.path, serve(file, REVALIDATE));
    }
    let favicon = serve(&static_files::FAVICON_SVG, REVALIDATE);
    router.route("/favicon.ico", favicon)
}

fn asset(file: &'static StaticFile, cache: &'static str, request: &HeaderMap) -> Response {
    let headers = [
        (header::CONTENT_TYPE, file.content_type),
        (header::CACHE_CONTROL, cache),
        (header::ETAG, file.etag.as_str()),
    ];
    let ours = |tag: &str| tag.trim().trim_start_matches("W/") == file.etag || tag.trim() == "*";
    let tags = request.get(header::IF_NONE_MATCH).map(|v| v.to_str());
    if let Some(Ok(tags)) = tags
        && tags.split(',').any(ours)
    {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, file.body).into_response()
}
