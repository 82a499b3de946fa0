//! The pages behind a sign-in: `GET /granted`, `GET /spaces` (every page of `/rooms`) and
//! `GET /whoami` (`/people/me`), all through [`Authed`], which keeps the tokens fresh.

use super::spaces;
use crate::clock::unix_now;
use crate::state::AppState;
use crate::web::authed::Authed;
use crate::web::error::Result;
use crate::web::templates::{GrantedTemplate, WhoamiTemplate, render};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/granted", get(granted))
        .route("/spaces", get(spaces))
        .route("/whoami", get(whoami))
}

/// `GET /granted`: who signed in, what the tokens allow, and when they expire.
async fn granted(State(state): State<AppState>, authed: Authed) -> Result<Response> {
    let tokens = authed.tokens();
    Ok(render(&GrantedTemplate {
        demo: state.is_demo(),
        via: tokens.grant.describe(),
        scope: tokens.scope.clone().unwrap_or_default(),
        expires_in_words: in_words(tokens.expires_in(unix_now())),
        signed_in_as: authed.signed_in_as().await?,
    }))
}

/// `GET /spaces`: every room of the user, all pages; `?q=` filters by title, `?sort=activity`
/// (the default) or `?sort=title` orders them (see [`spaces::list`]).
async fn spaces(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    mut authed: Authed,
) -> Result<Response> {
    let webex = state.webex();
    let mut next = Some(webex.first_rooms_page());
    let mut rooms = Vec::new();
    while let Some(request) = next {
        let request = &request;
        let page = authed
            .call(|token| async move { webex.rooms_page(&token, request).await })
            .await?;
        rooms.extend(page.rooms);
        next = page.next;
    }
    let mut page = spaces::page(state.is_demo(), rooms, raw.as_deref());
    page.signed_in_as = authed.signed_in_as().await?;
    Ok(render(&page))
}

/// `GET /whoami`: the profile from `/people/me`.
async fn whoami(State(state): State<AppState>, mut authed: Authed) -> Result<Response> {
    let webex = state.webex();
    let person = authed
        .call(|token| async move { webex.people_me(&token).await })
        .await?;
    Ok(render(&WhoamiTemplate {
        demo: state.is_demo(),
        raw_json: serde_json::to_string_pretty(&person.raw).unwrap_or_default(),
        display_name: person.display_name,
        avatar: person.avatar,
        emails: person.emails,
        org_id: person.org_id,
        status: person.status,
        signed_in_as: authed.signed_in_as().await?,
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
