//! `/rooms` (page by page, following `Link: rel="next"` only to Webex's own origin, at most
//! [`MAX_ROOM_PAGES`] and [`MAX_ROOM_BYTES`]) and `/people/me`.

use super::body::MAX_BODY;
use super::{WebexClient, WebexError, decode, json_error, read_within, send};
use crate::secret::Secret;
use bytes::Bytes;
use reqwest::header::LINK;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Mutex;
use url::Url;

/// At 100 rooms a page: 10,000 rooms. Past that we stop rather than loop on a broken cursor.
pub const MAX_ROOM_PAGES: usize = 100;
/// All pages of one listing together: 10,000 real rooms are about 6 MB of JSON. Without it,
/// 100 pages of just under [`MAX_BODY`] each would all be held for one `/spaces` page. Each page
/// after the first is held in a buffer of its own length, so a listing holds at most this plus
/// the first page's buffer (see [`super::body::read_capped`]).
pub const MAX_ROOM_BYTES: usize = 16 * MAX_BODY;

/// One room, as much of it as the spaces page shows, its text borrowed from the page's body
/// (owned only where the JSON escapes a character). Webex may omit any of these.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room<'a> {
    #[serde(default, borrow, deserialize_with = "borrowed")]
    pub title: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed", rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    pub last_activity: Option<Cow<'a, str>>,
}

/// An optional string borrowed from the input when it has no escape. serde borrows a
/// `Cow<str>` field marked `borrow`, but not one inside an `Option`: that one is always owned.
fn borrowed<'de: 'a, 'a, D>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'a>>::deserialize(deserializer)?.map(|text| text.0))
}

#[derive(Debug, Deserialize)]
struct RoomsBody<'a> {
    #[serde(borrow)]
    items: Vec<Room<'a>>,
}

/// The rooms of one `/rooms` body, borrowing from it.
///
/// The body is checked to be UTF-8 once, as a whole: `from_slice` checks each string it reads
/// on its own, about 1,300 short checks for a page of 100 rooms (15 % of the work of a
/// `GET /spaces` in callgrind's count). A body that is not UTF-8 throughout (a stray byte in a field we skip) takes
/// the string-by-string way, so it reads exactly as before.
pub fn rooms_of_page(body: &[u8]) -> Result<Vec<Room<'_>>, serde_json::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str::<RoomsBody<'_>>(text),
        Err(_) => serde_json::from_slice::<RoomsBody<'_>>(body),
    }
    .map(|body| body.items)
}

/// One page of `/rooms` as Webex sent it (a 2xx body within the caps, not read yet):
/// [`RoomsPage::rooms`] reads its rooms, borrowing their text from it, so a page's titles are
/// never copied into strings of their own.
pub struct RoomsPage {
    body: Bytes,
    tracking_id: Option<String>,
}

impl RoomsPage {
    pub fn rooms(&self) -> Result<Vec<Room<'_>>, WebexError> {
        rooms_of_page(&self.body).map_err(|err| {
            let tracking_id = self.tracking_id.clone();
            let err = json_error(&err);
            tracing::warn!(what = "room list", err = %err, tracking_id = tracking_id.as_deref(), "Webex sent a body we cannot read");
            WebexError::Decode {
                what: "room list",
                tracking_id,
            }
        })
    }
}

/// A fetched page and where the next one is, if anywhere.
struct Fetched {
    page: RoomsPage,
    next: Option<Url>,
}

/// The user's rooms, page by page: `while let Some(page) = pages.next(&token).await? { … }`,
/// then [`RoomsPage::rooms`] of each (the pages are kept, so the rows can borrow from them).
/// A failed page can be asked for again (after a token refresh); it is not skipped.
///
/// `next` takes `&self` (the cursor sits behind a mutex, never held across an await) so that
/// it can be called from the plain `Fn` closure a token-refreshing retry loop takes.
pub struct RoomPages<'a> {
    client: &'a WebexClient,
    cursor: Mutex<Cursor>,
}

struct Cursor {
    next: Option<Url>,
    fetched: usize,
    /// What is left of [`MAX_ROOM_BYTES`] for the pages still to come.
    bytes_left: usize,
}

impl RoomPages<'_> {
    /// The next page; `None` after the last page, or at [`MAX_ROOM_PAGES`].
    pub async fn next(&self, token: &Secret) -> Result<Option<RoomsPage>, WebexError> {
        let (url, limit, first) = {
            let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
            if cursor.next.is_some() && cursor.fetched >= MAX_ROOM_PAGES {
                tracing::warn!(pages = MAX_ROOM_PAGES, "stopped following /rooms pages");
                cursor.next = None;
            }
            match &cursor.next {
                Some(url) => (
                    url.clone(),
                    cursor.bytes_left.min(MAX_BODY),
                    cursor.fetched == 0,
                ),
                None => return Ok(None),
            }
        };
        let (mut fetched, read) = self.client.rooms_page(token, &url, limit).await?;
        if !first {
            // A body kept as the chunk it came in can hold all of hyper's read buffer (up to
            // about 408 KB, whatever its length). One such page is fine; a hundred of them would
            // hold far more than MAX_ROOM_BYTES, so every later page gets a buffer of its length.
            fetched.page.body = Bytes::copy_from_slice(&fetched.page.body);
        }
        if let Some(next) = &fetched.next
            && !self.client.same_origin(next)
        {
            // The next link gets our bearer token: it must point where the first page did.
            tracing::warn!(
                host = next.host_str(),
                "Webex sent a next link to another host; not following it"
            );
            return Err(WebexError::Decode {
                what: "pagination link (it points to another host)",
                tracking_id: None,
            });
        }
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        cursor.fetched = cursor.fetched.saturating_add(1);
        cursor.bytes_left = cursor.bytes_left.saturating_sub(read);
        cursor.next = fetched.next;
        Ok(Some(fetched.page))
    }
}

/// The profile fields the page shows, plus the whole JSON.
#[derive(Debug)]
pub struct Person {
    pub display_name: String,
    pub avatar: Option<String>,
    pub emails: Vec<String>,
    pub org_id: Option<String>,
    pub status: Option<String>,
    pub raw: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersonFields {
    /// Required: a profile without an id or a name is not a profile.
    #[serde(rename = "id")]
    _id: String,
    display_name: String,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

impl WebexClient {
    /// Every room of the user, page by page (100 a page, Webex's default).
    pub fn room_pages(&self) -> RoomPages<'_> {
        let mut first = self.endpoint("rooms");
        first.query_pairs_mut().append_pair("max", "100");
        RoomPages {
            client: self,
            cursor: Mutex::new(Cursor {
                next: Some(first),
                fetched: 0,
                bytes_left: MAX_ROOM_BYTES,
            }),
        }
    }

    /// Fetches one page of `/rooms` at `url` (the first page, or a `next` link used verbatim),
    /// of at most `limit` bytes; also returns how many it read.
    async fn rooms_page(
        &self,
        token: &Secret,
        url: &Url,
        limit: usize,
    ) -> Result<(Fetched, usize), WebexError> {
        let response = send(self.http.get(url.clone()).bearer_auth(token.expose())).await?;
        let next = next_link(
            response
                .headers()
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok()),
            url,
        );
        let (body, tracking_id) = read_within(response, "room list", limit).await?;
        let read = body.len();
        let page = RoomsPage { body, tracking_id };
        Ok((Fetched { page, next }, read))
    }

    /// `/people/me`.
    pub async fn people_me(&self, token: &Secret) -> Result<Person, WebexError> {
        let response = send(
            self.http
                .get(self.endpoint("people/me"))
                .bearer_auth(token.expose()),
        )
        .await?;
        let raw: serde_json::Value = decode(response, "profile").await?;
        // Read from a borrow: a clone would double what Webex made us hold.
        let fields = PersonFields::deserialize(&raw).map_err(|_| WebexError::Decode {
            what: "profile",
            tracking_id: None,
        })?;
        Ok(Person {
            display_name: fields.display_name,
            // Only http(s) avatars go into an <img src>.
            avatar: fields
                .avatar
                .filter(|a| a.starts_with("https://") || a.starts_with("http://")),
            emails: fields.emails,
            org_id: fields.org_id,
            status: fields.status,
            raw,
        })
    }
}

/// The `rel="next"` target of RFC 8288 `Link` header values, resolved against the page's URL.
pub fn next_link<'a>(values: impl Iterator<Item = &'a str>, base: &Url) -> Option<Url> {
    for value in values {
        let mut rest = value;
        while let Some(start) = rest.find('<') {
            let after = &rest[start + 1..];
            let end = after.find('>')?;
            let target = &after[..end];
            let params_and_more = &after[end + 1..];
            // This link's parameters run to the next link (`, <`), or to the end.
            let params = match params_and_more.find('<') {
                Some(next) => &params_and_more[..next],
                None => params_and_more,
            };
            if params.split(';').any(is_rel_next) {
                return base.join(target.trim()).ok();
            }
            rest = params_and_more;
        }
    }
    None
}

fn is_rel_next(param: &str) -> bool {
    let Some((name, value)) = param.split_once('=') else {
        return false;
    };
    name.trim().eq_ignore_ascii_case("rel")
        && value
            .trim()
            .trim_end_matches(',')
            .trim()
            .trim_matches('"')
            .split_whitespace()
            .any(|rel| rel.eq_ignore_ascii_case("next"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn next(value: &str) -> Option<String> {
        let base = Url::parse("https://webexapis.com/v1/rooms?max=100").unwrap();
        next_link(std::iter::once(value), &base).map(String::from)
    }

    #[test]
    fn finds_next_among_several_links() {
        assert_eq!(
            next(r#"<https://webexapis.com/v1/rooms?cursor=abc>; rel="next""#).as_deref(),
            Some("https://webexapis.com/v1/rooms?cursor=abc")
        );
        assert_eq!(
            next(r#"<https://a/first>; rel="first", <https://a/next?x=1,2>; rel="next", <https://a/prev>; rel=prev"#).as_deref(),
            Some("https://a/next?x=1,2")
        );
        assert_eq!(
            next("<https://a/n>;rel=next").as_deref(),
            Some("https://a/n")
        );
        assert_eq!(
            next(r#"<https://a/n>; title="x"; REL="prev next""#).as_deref(),
            Some("https://a/n")
        );
    }

    #[test]
    fn relative_targets_resolve_against_the_page() {
        assert_eq!(
            next(r#"</v1/rooms?cursor=2>; rel="next""#).as_deref(),
            Some("https://webexapis.com/v1/rooms?cursor=2")
        );
    }

    #[test]
    fn malformed_or_other_links_give_none() {
        for value in [
            "",
            "garbage",
            "<https://a/unclosed; rel=next",
            r#"<https://a/p>; rel="prev""#,
            r#"<https://a/p>; rel="nextpage""#,
            r#"https://a/n; rel="next""#,
            "<>; rel",
            "<<<>>>",
        ] {
            assert_eq!(next(value), None, "{value}");
        }
    }

    #[test]
    fn person_json_needs_id_and_display_name_and_tolerates_the_rest() {
        let ok: PersonFields =
            serde_json::from_str(r#"{"id":"p","displayName":"Ada","extra":[1]}"#).unwrap();
        assert!(ok.avatar.is_none() && ok.emails.is_empty());
        for bad in [
            r#"{"unexpected":true}"#,
            r#"{"id":"p"}"#,
            r#"{"displayName":"Ada"}"#,
            r#"{"id":"p","displayName":"A","emails":"x"}"#,
        ] {
            assert!(serde_json::from_str::<PersonFields>(bad).is_err(), "{bad}");
        }
    }

    /// A loopback `/v1/rooms` of three pages linked by `Link: rel="next"`, each with a few
    /// kilobytes of headers (hyper reads them into the buffer the body is cut from).
    async fn three_pages() -> Url {
        use axum::extract::Query;
        use axum::response::AppendHeaders;
        let rooms = axum::routing::get(|Query(q): Query<HashMap<String, String>>| async move {
            let page: u8 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let mut headers = vec![("x-padding", "x".repeat(4000))];
            if page < 3 {
                let next = page + 1;
                headers.push(("link", format!(r#"</v1/rooms?page={next}>; rel="next""#)));
            }
            let body = format!(r#"{{"items":[{{"title":"room {page}","type":"group"}}]}}"#);
            (AppendHeaders(headers), body)
        });
        let app = axum::Router::new().route("/v1/rooms", rooms);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Url::parse(&base).unwrap()
    }

    #[tokio::test]
    async fn every_page_is_read_and_pages_after_the_first_own_a_buffer_of_their_length() {
        let creds = crate::webex::Credentials {
            client_id: "id".into(),
            client_secret: Secret::new("secret"),
        };
        let timeout = std::time::Duration::from_secs(5);
        let client = WebexClient::new(three_pages().await, creds, timeout, timeout).unwrap();
        let pages = client.room_pages();
        let token = Secret::new("token");
        let mut kept = Vec::new();
        while let Some(page) = pages.next(&token).await.unwrap() {
            kept.push(page);
            assert!(kept.len() <= 3, "the cursor ran past the last page");
        }
        let titles: Vec<String> = kept
            .iter()
            .map(|page| {
                page.rooms().unwrap()[0]
                    .title
                    .as_deref()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(titles, ["room 1", "room 2", "room 3"]);
        // A body cut from hyper's read buffer holds the rest of that buffer too (here, at least
        // the kilobytes after the headers); a copied one holds just its length.
        for (n, page) in kept.into_iter().enumerate().skip(1) {
            let len = page.body.len();
            let held = page.body.try_into_mut().map(|buffer| buffer.capacity());
            assert_eq!(held, Ok(len), "page {} holds more than its length", n + 1);
        }
    }

    #[test]
    fn room_json_tolerates_missing_fields() {
        let json = br#"{"items":[{"id":"x"},{"title":"t","type":"group","lastActivity":"2026"}]}"#;
        let items = rooms_of_page(json).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].title.is_none());
        assert!(
            matches!(items[1].title, Some(Cow::Borrowed("t"))),
            "borrowed"
        );
        assert!(rooms_of_page(br#"{"items":"nope"}"#).is_err());
        assert!(rooms_of_page(b"{}").is_err());
        // An escaped character makes that one string owned.
        let escaped = rooms_of_page(br#"{"items":[{"title":"Tom & Jerry"}]}"#).unwrap();
        assert_eq!(escaped[0].title.as_deref(), Some("Tom & Jerry"));
    }

    #[test]
    fn a_body_with_a_byte_that_is_not_utf8_reads_as_before() {
        // Not UTF-8 in a field the page skips: from_slice never looks at it, so neither do we.
        let skipped = b"{\"items\":[{\"id\":\"a\xff\",\"title\":\"kept\"}]}";
        let rooms = rooms_of_page(skipped).unwrap();
        assert!(matches!(rooms[0].title, Some(Cow::Borrowed("kept"))));
        // In a field the page shows, it is an error either way.
        let shown = b"{\"items\":[{\"title\":\"a\xff\"}]}";
        assert!(serde_json::from_slice::<RoomsBody<'_>>(shown).is_err());
        assert!(rooms_of_page(shown).is_err());
        // Valid UTF-8 beyond ASCII borrows, as it did.
        let rooms =
            rooms_of_page("{\"items\":[{\"title\":\"Caf\u{e9} \u{1f600}\"}]}".as_bytes()).unwrap();
        assert!(matches!(
            rooms[0].title,
            Some(Cow::Borrowed("Caf\u{e9} \u{1f600}"))
        ));
    }
}
