//! `GET /` (the two buttons) and `GET /healthz`.

use crate::error::Result;
use crate::state::AppState;
use crate::templates::{IndexTemplate, render};
use crate::web::session::WebSession;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        // Liveness only: it never touches the store.
        .route("/healthz", get(|| async { "ok" }))
}

/// `GET /`: the landing page. `?notice=` only selects one of our fixed messages; its value is never shown.
async fn index(
    State(state): State<AppState>,
    session: WebSession,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let notice = match query.as_deref() {
        Some("notice=reauth") => {
            Some("Your Webex sign-in has expired or was revoked. Please sign in again.")
        }
        _ => None,
    };
    Ok(render(&IndexTemplate {
        demo: state.is_demo(),
        notice,
        signed_in: session.has_tokens().await?,
    }))
}
