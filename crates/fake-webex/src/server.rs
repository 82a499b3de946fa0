//! The fake's server: the shared handle (`Fake`), the records behind its lock (`World`), routes.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, OnceLock},
};

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use sha2::{Digest, Sha256};

use super::{
    Counter, Endpoint, FakeConfig, Fault, consent,
    device::{self, DeviceFlows},
    ids::tracking_id,
    oidc::{self, SigningKeys},
    resources::{self, Room, build_rooms},
    tokens::{self, AuthCode, Token},
    wire::ApiError,
};

const NOT_FOUND: &str = "The requested resource could not be found.";

/// What the server and every `FakeWebex` handle share: the origin and the locked records.
pub(super) struct Fake {
    pub origin: String,
    world: Mutex<World>,
}

impl Fake {
    pub fn new(origin: String, config: FakeConfig) -> Self {
        let world = World {
            issued: vec![config.client_secret.clone()],
            rooms: build_rooms(config.room_count),
            config,
            ..World::default()
        };
        let world = Mutex::new(world);
        Fake { origin, world }
    }

    /// A panic in one handler must not take the fake down for a whole test run: ignore poison.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Everything the fake remembers; each concern's module keeps its part and the rules for it.
#[derive(Default)]
pub(super) struct World {
    pub config: FakeConfig,
    /// Queued per endpoint, popped one per request (`faults.rs`).
    pub faults: HashMap<Endpoint, VecDeque<Fault>>,
    pub counters: HashMap<Counter, usize>,
    /// Authorization codes, access and refresh tokens, by value (`tokens.rs`).
    pub codes: HashMap<String, AuthCode>,
    pub access: HashMap<String, Token>,
    pub refresh: HashMap<String, Token>,
    pub devices: DeviceFlows,
    /// The client secret and every code, token and device code handed out, for `issued_secrets`.
    pub issued: Vec<String>,
    pub rooms: Vec<Room>,
    /// Each `/rooms` page served so far, as its JSON bytes, by (first, end) index.
    pub room_pages: HashMap<(usize, usize), axum::body::Bytes>,
    /// The keys that sign id_tokens (`oidc.rs`).
    pub signing: SigningKeys,
    /// What `Fault::EchoForm` echoed: the tracking id of each answer, and the form (`faults.rs`).
    pub echoed: Vec<(String, HashMap<String, String>)>,
}

impl World {
    pub fn bump(&mut self, counter: Counter) {
        *self.counters.entry(counter).or_default() += 1;
    }
}

pub(super) fn router(fake: Arc<Fake>) -> Router {
    Router::new()
        .route(
            "/v1/authorize",
            get(consent::authorize_page).post(consent::authorize_decision),
        )
        .route("/v1/access_token", post(tokens::access_token))
        .route("/v1/device/authorize", post(device::device_authorize))
        .route("/v1/device/token", post(device::device_token))
        .route(
            "/verify",
            get(device::verify_page).post(device::verify_decision),
        )
        .route("/v1/rooms", get(resources::rooms))
        .route("/v1/people/me", get(resources::people_me))
        .route("/v1/.well-known/openid-configuration", get(oidc::discovery))
        .route("/v1/verification", get(oidc::verification))
        .route("/v1/userinfo", get(oidc::userinfo))
        .route("/avatar.svg", get(resources::avatar))
        .route(
            "/static/style.css",
            get(|h: HeaderMap| async move { STYLE.serve(&h) }),
        )
        .route(
            "/favicon.svg",
            get(|h: HeaderMap| async move { FAVICON.serve(&h) }),
        )
        .route(
            "/favicon.ico",
            get(|h: HeaderMap| async move { FAVICON.serve(&h) }),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, NOT_FOUND, NOT_FOUND) })
        .layer(middleware::map_response(add_tracking_id))
        .with_state(fake)
}

/// A file the fake's pages link to, revalidated by a strong `ETag` of its content.
struct Asset {
    content_type: &'static str,
    body: &'static str,
    /// The quoted SHA-256 of `body`, computed on the first request.
    etag: OnceLock<String>,
}

/// The app's own stylesheet, so the fake's pages share its look, dark mode included (the file is
/// included, not imported: the fake depends on nothing else in the crate).
static STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("../../../static/style.css"),
    etag: OnceLock::new(),
};

/// The app's key on the demo badge's amber: a tab of the fake is told apart from the app's at a
/// glance.
static FAVICON: Asset = Asset {
    content_type: "image/svg+xml",
    body: concat!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" width="32" height="32">"##,
        r##"<title>Fake Webex</title><rect width="32" height="32" rx="8" fill="#b45309"/>"##,
        r##"<circle cx="11" cy="16" r="5" fill="none" stroke="#fff" stroke-width="3"/>"##,
        r##"<path d="M16 16h10M22 16v4.5M25.5 16v3.5" fill="none" stroke="#fff" "##,
        r##"stroke-width="3" stroke-linecap="round"/></svg>"##,
    ),
    etag: OnceLock::new(),
};

impl Asset {
    fn serve(&self, request: &HeaderMap) -> Response {
        let etag = self
            .etag
            .get_or_init(|| format!("\"{:x}\"", Sha256::digest(self.body.as_bytes())));
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
        let headers = [
            (header::CONTENT_TYPE, self.content_type.to_owned()),
            (header::CACHE_CONTROL, "public, no-cache".to_owned()),
            (header::ETAG, etag.clone()),
        ];
        if fresh {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        (headers, self.body).into_response()
    }
}

/// Every Webex response carries a `TrackingID`; envelopes set their own so body and header agree.
async fn add_tracking_id(mut response: Response) -> Response {
    if !response.headers().contains_key("trackingid")
        && let Ok(value) = HeaderValue::from_str(&tracking_id())
    {
        response.headers_mut().insert("trackingid", value);
    }
    response
}
