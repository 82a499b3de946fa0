//! Test support: a read-only [`Probe`] into a running [`crate::App`], for the integration tests
//! and the benchmark, and the spaces page's parse-and-render for the benchmark's lean
//! reference. The server itself never uses it; it exists so that tests need no public internals.

use crate::config::Config;
use crate::state::AppState;

/// How many anonymous sessions this process keeps open at most (see `store::session_cache`).
pub const MAX_ANONYMOUS_SESSIONS: u64 = crate::store::MAX_ANONYMOUS;
/// What the SQLite WAL is cut back to when it starts over (see `store::sqlite`).
pub const WAL_SIZE_LIMIT: u64 = crate::store::WAL_SIZE_LIMIT;

/// What the tests look at inside a running app. Cloning is cheap.
#[derive(Clone)]
pub struct Probe(AppState);

impl Probe {
    pub(crate) fn new(state: AppState) -> Self {
        Self(state)
    }

    pub fn config(&self) -> &Config {
        self.0.config()
    }

    /// Device-flow poller tasks running in this instance.
    pub fn active_pollers(&self) -> usize {
        self.0.flows().active_pollers()
    }

    /// Device flows recorded in the store (pending, or finished and not yet claimed or purged).
    pub async fn flow_count(&self) -> usize {
        self.0.flows().len().await
    }

    /// Sessions the memory store holds: (signed in, anonymous).
    pub async fn cached_sessions(&self) -> (u64, u64) {
        self.0.sessions().cached().await
    }

    /// Sessions refreshing their tokens (or waiting to) in this instance now.
    pub fn refreshes_in_progress(&self) -> usize {
        self.0.session_locks().len()
    }
}

/// The spaces page for one `/rooms` body, parsed and rendered as `GET /spaces` does it (the
/// same parser, rows, order and template), for the benchmark's lean reference: the same work
/// without the app's layers, which follows the page when it changes.
pub fn render_spaces_page(
    demo: bool,
    rooms_body: &[u8],
    signed_in_as: Option<String>,
) -> Result<String, String> {
    let rooms = crate::webex::rooms_of_page(rooms_body).map_err(|e| e.to_string())?;
    let mut page = crate::web::spaces_page(demo, rooms, None);
    page.signed_in_as = signed_in_as;
    askama::Template::render(&page).map_err(|e| e.to_string())
}

/// Every kind of `/problem?kind=` page (see `web::error`).
pub fn problem_kinds() -> Vec<&'static str> {
    crate::web::error::KINDS
        .iter()
        .map(|kind| kind.name)
        .collect()
}

/// What a `/problem?kind=` page shows of its kind: its title, and the status of the failure it
/// reports (as text on the page).
pub struct Problem {
    pub title: &'static str,
    pub status: u16,
}

impl Problem {
    /// The kind named `kind`, if there is one.
    pub fn of(kind: &str) -> Option<Self> {
        let kind = crate::web::error::Kind::named(kind)?;
        Some(Self {
            title: kind.title,
            status: kind.status.as_u16(),
        })
    }
}
