//! The pages behind a sign-in: `GET /granted`, `GET /spaces` (every page of `/rooms`) and
//! `GET /whoami` (`/people/me`). All of them go through [`Authed`], which refreshes tokens.

use crate::error::{AppError, Result};
use crate::state::AppState;
use crate::templates::{GrantedTemplate, RoomRow, SpacesTemplate, WhoamiTemplate, render};
use crate::tokens::{Authed, unix_now};
use crate::webex::WebexError;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

/// At 100 rooms a page: 10,000 rooms. Past that we stop rather than loop on a broken cursor.
const MAX_ROOM_PAGES: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/granted", get(granted))
        .route("/spaces", get(spaces))
        .route("/whoami", get(whoami))
}

async fn granted(State(state): State<AppState>, authed: Authed) -> Result<Response> {
    let tokens = &authed.tokens;
    Ok(render(&GrantedTemplate {
        demo: state.config.is_demo(),
        via: tokens.grant.describe(),
        scope: tokens.scope.clone().unwrap_or_default(),
        expires_in_words: in_words(tokens.expires_in(unix_now())),
    }))
}

async fn spaces(State(state): State<AppState>, mut authed: Authed) -> Result<Response> {
    let webex = &state.webex;
    let mut rooms = Vec::new();
    let mut next = Some(webex.rooms_url());
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        if pages > MAX_ROOM_PAGES {
            tracing::warn!(pages = MAX_ROOM_PAGES, "stopped following /rooms pages");
            break;
        }
        let url = &url;
        let page = authed
            .call(|token| async move { webex.rooms_page(&token, url).await })
            .await?;
        rooms.extend(page.items.into_iter().map(|room| RoomRow {
            title: room.title.unwrap_or_else(|| "(untitled)".into()),
            kind: room.kind.unwrap_or_default(),
            last_activity: room.last_activity.unwrap_or_default(),
        }));
        if let Some(url) = &page.next {
            // The next link gets our bearer token: it must point where the first page did.
            if !webex.same_origin(url) {
                tracing::warn!(
                    host = url.host_str(),
                    "Webex sent a next link to another host; not following it"
                );
                return Err(AppError::Webex(WebexError::Decode {
                    what: "pagination link (it points to another host)",
                    tracking_id: None,
                }));
            }
        }
        next = page.next;
    }
    Ok(render(&SpacesTemplate {
        demo: state.config.is_demo(),
        rooms,
    }))
}

async fn whoami(State(state): State<AppState>, mut authed: Authed) -> Result<Response> {
    let webex = &state.webex;
    let person = authed
        .call(|token| async move { webex.people_me(&token).await })
        .await?;
    Ok(render(&WhoamiTemplate {
        demo: state.config.is_demo(),
        raw_json: serde_json::to_string_pretty(&person.raw).unwrap_or_default(),
        display_name: person.display_name,
        avatar: person.avatar,
        emails: person.emails,
        org_id: person.org_id,
        status: person.status,
    }))
}

/// "in 13 days", "in 42 minutes"...
fn in_words(secs: u64) -> String {
    let (n, unit) = match secs {
        0 => return "now".into(),
        s if s < 120 => (s, "second"),
        s if s < 2 * 3600 => (s / 60, "minute"),
        s if s < 2 * 86400 => (s / 3600, "hour"),
        s => (s / 86400, "day"),
    };
    format!("in {n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_words() {
        assert_eq!(super::in_words(0), "now");
        assert_eq!(super::in_words(61), "in 61 seconds");
        assert_eq!(super::in_words(3000), "in 50 minutes");
        assert_eq!(super::in_words(1209599), "in 13 days");
    }
}
