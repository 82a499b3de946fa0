//! `/rooms` (page by page, following `Link: rel="next"` only to Webex's own origin, at most
//! [`MAX_ROOM_PAGES`] and [`MAX_ROOM_BYTES`]) and `/people/me`.

use super::body::MAX_BODY;
use super::{WebexClient, WebexError, decode, read_within, send, undecodable};
use crate::secret::Secret;
use reqwest::header::LINK;
use serde::Deserialize;
use url::Url;

/// At 100 rooms a page: 10,000 rooms. Past that we stop rather than loop on a broken cursor.
pub const MAX_ROOM_PAGES: usize = 100;
/// All pages of one listing together: 10,000 real rooms are about 6 MB of JSON. Without it,
/// 100 pages of just under [`MAX_BODY`] each would all be read for one `/spaces` page.
pub const MAX_ROOM_BYTES: usize = 16 * MAX_BODY;

/// One room, as much of it as the spaces page shows. Webex may omit any of these.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    pub title: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub last_activity: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RoomsBody {
    items: Vec<Room>,
}

/// The rooms of one `/rooms` body.
pub fn rooms_of_page(body: &[u8]) -> Result<Vec<Room>, serde_json::Error> {
    serde_json::from_slice::<RoomsBody>(body).map(|body| body.items)
}

/// Where the next page of a `/rooms` listing is, and what is left of the listing's caps: a
/// plain value, so a token-refreshing retry can ask for the same page again.
#[derive(Clone, Debug)]
pub struct PageRequest {
    url: Url,
    /// Pages fetched before this one.
    fetched: usize,
    /// What is left of [`MAX_ROOM_BYTES`] for this page and the ones after it.
    bytes_left: usize,
}

/// One page of `/rooms`: its rooms, and the next page to ask for, if any.
pub struct RoomsPage {
    pub rooms: Vec<Room>,
    pub next: Option<PageRequest>,
}

/// The profile fields the page shows, plus the whole JSON.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// Required, as `displayName` is: a profile without an id or a name is not a profile.
    #[serde(rename = "id")]
    _id: String,
    pub display_name: String,
    pub avatar: Option<String>,
    #[serde(default)]
    pub emails: Vec<String>,
    pub org_id: Option<String>,
    pub status: Option<String>,
    #[serde(skip)]
    pub raw: serde_json::Value,
}

impl WebexClient {
    /// The first page of the user's rooms (100 a page, Webex's default); each page's `next` is
    /// the one to ask [`Self::rooms_page`] for after it.
    pub fn first_rooms_page(&self) -> PageRequest {
        let mut url = self.endpoint("rooms");
        url.query_pairs_mut().append_pair("max", "100");
        PageRequest {
            url,
            fetched: 0,
            bytes_left: MAX_ROOM_BYTES,
        }
    }

    /// The page of `/rooms` that `page` points to (a `next` link is used verbatim); its `next`
    /// is `None` after the last page, or at [`MAX_ROOM_PAGES`].
    pub async fn rooms_page(
        &self,
        token: &Secret,
        page: &PageRequest,
    ) -> Result<RoomsPage, WebexError> {
        let response = send(self.http.get(page.url.clone()).bearer_auth(token.expose())).await?;
        let links = response.headers().get_all(LINK).iter();
        let next = next_link(links.filter_map(|v| v.to_str().ok()), &page.url);
        let limit = page.bytes_left.min(MAX_BODY);
        let (body, tracking_id) = read_within(response, "room list", limit).await?;
        if let Some(next) = &next
            && next.origin() != self.base.origin()
        {
            // The next link gets our bearer token: it must point where the first page did (the
            // same scheme, host and port).
            tracing::warn!(
                host = next.host_str(),
                "Webex sent a next link to another host; not following it"
            );
            return Err(WebexError::Decode {
                what: "pagination link (it points to another host)",
                tracking_id: None,
            });
        }
        let rooms =
            rooms_of_page(&body).map_err(|err| undecodable("room list", &err, tracking_id))?;
        let fetched = page.fetched.saturating_add(1);
        let next = next.and_then(|url| {
            if fetched >= MAX_ROOM_PAGES {
                tracing::warn!(pages = MAX_ROOM_PAGES, "stopped following /rooms pages");
                return None;
            }
            Some(PageRequest {
                url,
                fetched,
                bytes_left: page.bytes_left.saturating_sub(body.len()),
            })
        });
        Ok(RoomsPage { rooms, next })
    }

    /// `/people/me`.
    pub async fn people_me(&self, token: &Secret) -> Result<Person, WebexError> {
        let request = self.http.get(self.endpoint("people/me"));
        let response = send(request.bearer_auth(token.expose())).await?;
        let (raw, _): (serde_json::Value, _) = decode(response, "profile", MAX_BODY).await?;
        // Read from a borrow: a clone would double what Webex made us hold.
        let mut person = Person::deserialize(&raw).map_err(|_| WebexError::Decode {
            what: "profile",
            tracking_id: None,
        })?;
        // Only http(s) avatars go into an <img src>.
        let web = |a: &String| a.starts_with("https://") || a.starts_with("http://");
        person.avatar = person.avatar.filter(web);
        person.raw = raw;
        Ok(person)
    }
}

/// The `rel="next"` target of RFC 8288 `Link` header values, resolved against the page's URL.
pub fn next_link<'a>(values: impl Iterator<Item = &'a str>, base: &Url) -> Option<Url> {
    for value in values {
        let mut rest = value;
        while let Some(start) = rest.find('<') {
            let (target, after) = rest[start + 1..].split_once('>')?;
            // This link's parameters run to the next link (`, <`), or to the end.
            let params = after.split('<').next().unwrap_or_default();
            if params.split(';').any(is_rel_next) {
                return base.join(target.trim()).ok();
            }
            rest = after;
        }
    }
    None
}

fn is_rel_next(param: &str) -> bool {
    let Some((name, value)) = param.split_once('=') else {
        return false;
    };
    let rels = value.trim().trim_end_matches(',').trim().trim_matches('"');
    name.trim().eq_ignore_ascii_case("rel")
        && rels
            .split_whitespace()
            .any(|rel| rel.eq_ignore_ascii_case("next"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(value: &str) -> Option<String> {
        let base = Url::parse("https://webexapis.com/v1/rooms?max=100").unwrap();
        next_link(std::iter::once(value), &base).map(String::from)
    }

    #[test]
    fn finds_next_among_several_links_relative_or_not() {
        let several = r#"<https://a/first>; rel="first", <https://a/next?x=1,2>; rel="next", <https://a/prev>; rel=prev"#;
        for (value, want) in [
            (r#"<https://a/r?c=abc>; rel="next""#, "https://a/r?c=abc"),
            (several, "https://a/next?x=1,2"),
            ("<https://a/n>;rel=next", "https://a/n"),
            (r#"<https://a/n>; a="x"; REL="prev next""#, "https://a/n"),
            (r#"</r?c=2>; rel="next""#, "https://webexapis.com/r?c=2"),
        ] {
            assert_eq!(next(value).as_deref(), Some(want), "{value}");
        }
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
        let ok: Person =
            serde_json::from_str(r#"{"id":"p","displayName":"Ada","extra":[1]}"#).unwrap();
        assert!(ok.avatar.is_none() && ok.emails.is_empty());
        for bad in [
            r#"{"unexpected":true}"#,
            r#"{"id":"p"}"#,
            r#"{"displayName":"Ada"}"#,
            r#"{"id":"p","displayName":"A","emails":"x"}"#,
        ] {
            assert!(serde_json::from_str::<Person>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn room_json_tolerates_missing_fields() {
        let json = br#"{"items":[{"id":"x"},{"title":"t","type":"group","lastActivity":"2026"}]}"#;
        let items = rooms_of_page(json).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].title.is_none());
        assert_eq!(items[1].title.as_deref(), Some("t"));
        assert!(rooms_of_page(br#"{"items":"nope"}"#).is_err());
        assert!(rooms_of_page(b"{}").is_err());
        let escaped = rooms_of_page(br#"{"items":[{"title":"Tom \u0026 Jerry"}]}"#).unwrap();
        assert_eq!(escaped[0].title.as_deref(), Some("Tom & Jerry"));
    }
}
