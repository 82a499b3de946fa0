//! What `GET /spaces` shows of the rooms: the `?q=` filter (a case-insensitive substring of the
//! title) and the `?sort=` order (last activity, newest first, or title), as one pure function
//! of the rooms and the query, [`list`]; [`page`] makes the whole page of the rooms.

use crate::web::templates::{RoomRow, SpacesTemplate};
use crate::webex::Room;
use std::cmp::Ordering;

/// The longest filter kept, in characters (a title is rarely longer; the rest is dropped).
pub const MAX_QUERY_CHARS: usize = 100;

/// The orders the page offers; anything else reads as the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Newest activity first; rooms without a (readable) time last.
    #[default]
    Activity,
    /// By title, ignoring case; equal titles newest first.
    Title,
}

impl SortBy {
    /// Its value in `?sort=`.
    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::Activity => "activity",
            SortBy::Title => "title",
        }
    }
}

/// The page's query string, read leniently: never an error.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SpacesQuery {
    /// Trimmed, at most [`MAX_QUERY_CHARS`] characters; "" for no filter.
    pub q: String,
    pub sort: SortBy,
}

impl SpacesQuery {
    /// From the raw query string; the first `q` and the first `sort` count, the rest is ignored.
    pub fn from_raw(raw: Option<&str>) -> Self {
        let [q, sort] = super::first_values(raw, ["q", "sort"]);
        let q = q.unwrap_or_default();
        let mut q: String = q.trim().chars().take(MAX_QUERY_CHARS).collect();
        q.truncate(q.trim_end().len());
        let sort = match sort.as_deref() {
            Some("title") => SortBy::Title,
            _ => SortBy::Activity,
        };
        SpacesQuery { q, sort }
    }
}

/// The page of `GET /spaces` for `rooms` (every page of `/rooms`) and the raw query string.
pub fn page(demo: bool, rooms: Vec<Room>, raw_query: Option<&str>) -> SpacesTemplate {
    let query = SpacesQuery::from_raw(raw_query);
    let rooms = rooms.into_iter().map(|room| {
        let title = room.title.unwrap_or_else(|| "(untitled)".to_owned());
        RoomRow::new(
            title,
            room.kind.unwrap_or_default(),
            room.last_activity.unwrap_or_default(),
        )
    });
    let (rooms, total) = list(rooms.collect(), &query);
    SpacesTemplate {
        demo,
        rooms,
        total,
        sort: query.sort.as_str(),
        query: query.q,
        signed_in_as: None,
    }
}

/// The rooms whose title contains `query.q` (ignoring case by Unicode's simple lowercase
/// mapping, as the page's script does) in `query.sort` order, and how many there were in all.
pub fn list(mut rooms: Vec<RoomRow>, query: &SpacesQuery) -> (Vec<RoomRow>, usize) {
    let total = rooms.len();
    if !query.q.is_empty() {
        let needle: String = fold(&query.q).collect();
        rooms.retain(|room| fold(&room.title).collect::<String>().contains(&needle));
    }
    let by_title = |a: &RoomRow, b: &RoomRow| fold(&a.title).cmp(fold(&b.title));
    match query.sort {
        SortBy::Activity => rooms.sort_by(newest_first),
        SortBy::Title => rooms.sort_by(|a, b| by_title(a, b).then_with(|| newest_first(a, b))),
    }
    (rooms, total)
}

fn fold(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(char::to_lowercase)
}

/// `None` sorts below every time, so reversed it comes last.
fn newest_first(a: &RoomRow, b: &RoomRow) -> Ordering {
    b.activity.cmp(&a.activity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_string_is_read_leniently() {
        let q = |raw| SpacesQuery::from_raw(Some(raw));
        assert_eq!(q("").sort, SortBy::Activity);
        assert_eq!(q("sort=title").sort, SortBy::Title);
        assert_eq!(q("sort=TITLE;drop").sort, SortBy::Activity);
        assert_eq!(q("sort=oops&sort=title").sort, SortBy::Activity);
        assert_eq!(q("q=%20%20T%C3%B6kyo+&q=other").q, "Tökyo");
        assert_eq!(q("q=%FF%FE").q, "\u{fffd}\u{fffd}");
        let long = "é".repeat(500);
        assert_eq!(q(&format!("q={long}")).q.chars().count(), MAX_QUERY_CHARS);
        assert_eq!(SpacesQuery::from_raw(None), SpacesQuery::default());
    }

    /// The rest of the order and the filter: tests/api/spaces.rs.
    #[test]
    fn title_order_ignores_case_and_equal_titles_are_newest_first() {
        let rooms = [
            ("beta", "2026-03-01T10:00:00.000Z"),
            ("Alpha", ""),
            ("東京オフィス", "2026-03-02T10:00:00.000Z"),
            ("ÜBER team", "not a time"),
            ("alpha", "2026-02-01T10:00:00Z"),
        ];
        let rooms = rooms.map(|(title, at)| RoomRow::new(title.into(), "group".into(), at.into()));
        let (shown, _) = list(rooms.into(), &SpacesQuery::from_raw(Some("sort=title")));
        let titles: Vec<_> = shown.iter().map(|r| &*r.title).collect();
        let want = ["alpha", "Alpha", "beta", "ÜBER team", "東京オフィス"];
        assert_eq!(titles, want);
    }
}
