//! One askama struct per page; every page extends `templates/base.html`, and every struct
//! carries `demo` for its header. Askama escapes every `{{ }}` in `.html` templates, so room
//! titles and profile fields are always shown as text.

use crate::clock::Timestamp;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Renders a page, or a plain-text 500 if the template itself fails (never recursing into the
/// error page, which could fail the same way).
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "template failed to render");
            let text = "Internal error: a page failed to render.";
            (StatusCode::INTERNAL_SERVER_ERROR, text).into_response()
        }
    }
}

/// `GET /`: the two flows, as two buttons.
#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexTemplate {
    pub demo: bool,
    /// A one-line notice above the buttons, e.g. "Your sign-in expired; sign in again."
    pub notice: Option<&'static str>,
    /// The session already holds tokens: the page also links to /granted.
    pub signed_in: bool,
}

/// `GET /granted`: what to do with the tokens.
#[derive(Template)]
#[template(path = "granted.html")]
pub struct GrantedTemplate {
    pub demo: bool,
    /// "authorization code" or "device sign-in".
    pub via: &'static str,
    /// The scopes Webex granted, space-separated ("" when Webex did not say).
    pub scope: String,
    /// When the access token expires, in words ("in 13 days", "in 42 minutes").
    pub expires_in_words: String,
    /// "NAME (EMAIL)" of a verified id_token (Login with Webex); `None` without one.
    pub signed_in_as: Option<String>,
}

/// One row of the spaces table.
pub struct RoomRow {
    pub title: String,
    /// "group" or "direct" (as Webex says it).
    pub kind: String,
    /// Webex's timestamp as given ("" when absent), shown as it is when it does not parse.
    pub last_activity: String,
    /// `last_activity` read, when it is RFC 3339 (parsed once, by [`RoomRow::new`]).
    pub activity: Option<Timestamp>,
}

impl RoomRow {
    pub fn new(title: String, kind: String, last_activity: String) -> Self {
        Self {
            activity: Timestamp::parse(&last_activity),
            title,
            kind,
            last_activity,
        }
    }
}

/// `GET /spaces`: the user's rooms, filtered and sorted as the query asked.
#[derive(Template)]
#[template(path = "spaces.html")]
pub struct SpacesTemplate {
    pub demo: bool,
    /// The rooms shown, in order.
    pub rooms: Vec<RoomRow>,
    /// How many rooms the user has in all.
    pub total: usize,
    /// The filter as the user typed it (capped), "" for none.
    pub query: String,
    /// `activity` or `title`.
    pub sort: &'static str,
    pub signed_in_as: Option<String>,
}

/// `GET /sign-in`: the pending device flow.
#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInTemplate {
    pub demo: bool,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    /// `data:image/png;base64,...` of the QR code of `verification_uri_complete`.
    pub qr_data_uri: String,
    /// The link's host when it is this computer: no phone can open the QR code; the page says so.
    pub loopback_host: Option<String>,
    /// Seconds left before the code expires, of its whole lifetime (for the progress bar).
    pub expires_in: u64,
    pub lifetime: u64,
    /// As `/device/status` says it (pending, granted, denied, expired, error), and in words.
    pub status: &'static str,
    pub status_text: &'static str,
    /// The flow has ended: the page offers "start again" instead of the QR code.
    pub finished: bool,
}

/// `GET /whoami`: the profile from `/people/me`.
#[derive(Template)]
#[template(path = "whoami.html")]
pub struct WhoamiTemplate {
    pub demo: bool,
    pub display_name: String,
    pub avatar: Option<String>,
    pub emails: Vec<String>,
    pub org_id: Option<String>,
    pub status: Option<String>,
    /// The whole `/people/me` JSON, pretty-printed.
    pub raw_json: String,
    pub signed_in_as: Option<String>,
}

/// Every failure: what happened (with the failure's status, which a `/problem` page shows
/// though it answers 200), what to do next.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorTemplate {
    pub demo: bool,
    pub page: crate::web::error::ErrorPage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_html() {
        let page = render(&IndexTemplate {
            demo: true,
            notice: None,
            signed_in: false,
        });
        assert_eq!(page.status(), StatusCode::OK);
        let content_type = &page.headers()[axum::http::header::CONTENT_TYPE];
        assert_eq!(content_type, "text/html; charset=utf-8");
        assert_eq!(page.headers().len(), 1);
    }
}
