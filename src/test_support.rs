//! Test support: a read-only [`Probe`] into a running [`crate::App`], for the integration tests
//! and the benchmark, and the spaces page's parse-and-render for the benchmark's lean
//! reference. The server itself never uses it; it exists so that tests need no public internals.

use crate::config::Config;
use crate::state::AppState;

/// The store's caps the tests check: anonymous sessions kept, the SQLite WAL's size.
pub use crate::store::{MAX_ANONYMOUS as MAX_ANONYMOUS_SESSIONS, WAL_SIZE_LIMIT};

/// What the tests look at inside a running app. Cloning is cheap.
#[derive(Clone)]
pub struct Probe(pub(crate) AppState);

impl Probe {
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

/// The spaces page for one `/rooms` body, parsed and rendered by `GET /spaces`'s own code, for the
/// benchmark's lean reference (the same work without the app's layers).
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

/// A kind of `/problem?kind=` page (`web::error`): its name, title and the failure's status.
#[derive(Debug)]
pub struct Problem {
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
}

/// Every kind of `/problem?kind=` page.
pub fn problems() -> Vec<Problem> {
    let problem = |kind: &&crate::web::error::Kind| Problem {
        kind: kind.name,
        title: kind.title,
        status: kind.status.as_u16(),
    };
    crate::web::error::KINDS.iter().map(problem).collect()
}
