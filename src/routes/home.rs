//! `GET /` (the two buttons) and `GET /healthz`.

use crate::error::Result;
use crate::state::AppState;
use crate::templates::{IndexTemplate, render};
use crate::tokens;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok" }))
}

/// The landing page. `?notice=` only selects one of our fixed messages; its value is never shown.
async fn index(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let notice = match query.as_deref() {
        Some("notice=reauth") => {
            Some("Your Webex sign-in has expired or was revoked. Please sign in again.")
        }
        _ => None,
    };
    Ok(render(&IndexTemplate {
        demo: state.config.is_demo(),
        notice,
        signed_in: tokens::has_tokens(&session).await?,
    }))
}
