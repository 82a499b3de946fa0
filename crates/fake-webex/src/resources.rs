//! The API resources: the generated rooms and `/v1/rooms` pages, `/v1/people/me`, the avatar.

use std::{collections::HashMap, sync::Arc};

use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use serde_json::json;

use super::{
    Counter, Endpoint, Fault,
    faults::take_fault,
    ids::{iso_millis, org_id, person_id, uuid_from_seed, webex_id},
    server::Fake,
    server::World,
    wire::{ApiError, JSON, MALFORMED, Reply, authorization, json_response},
};

const MAX_PAGE: u64 = 1000;

/// A room as `/rooms` lists it (contract §5; the optional `teamId`/`description` are left out).
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct Room {
    pub id: String,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub is_locked: bool,
    pub last_activity: String,
    pub creator_id: String,
    pub created: String,
    pub owner_id: String,
    pub is_announcement_only: bool,
    pub is_read_only: bool,
    pub is_public: bool,
}

/// The newest activity: 2026-03-02T09:15:12.481Z; later rooms are older.
const LAST_ACTIVITY_MS: i64 = 1_772_442_912_481;
const CREATED_MS: i64 = 1_748_764_800_000;
/// Titles the app must escape or render correctly; they come first so they land on page one.
const SPECIAL_TITLES: &str = concat!(
    "<script>alert(\"x\")</script> & friends|Tom & Jerry's \"Q&A\"|",
    "Café ☕ Zürich|東京オフィス|Ünïcødé 🎉"
);
const TOPICS: &str = concat!(
    "Design review|Sprint planning|Release train|Customer escalations|",
    "Platform guild|Incident review|Hiring loop|Book club"
);
/// Direct (1:1) rooms are titled with the other person's name.
const PEOPLE: &str = concat!(
    "Grace Hopper|Alan Turing|Katherine Johnson|Edsger Dijkstra|Barbara Liskov|",
    "Donald Knuth|Margaret Hamilton|Dennis Ritchie|Frances Allen|Ken Thompson"
);

/// `count` deterministic rooms, most recently active first.
pub(super) fn build_rooms(count: usize) -> Vec<Room> {
    let specials: Vec<&str> = SPECIAL_TITLES.split('|').collect();
    let topics: Vec<&str> = TOPICS.split('|').collect();
    let people: Vec<&str> = PEOPLE.split('|').collect();
    (0..count)
        .map(|i| {
            // Every fifth room (after the specials) is a 1:1 with someone, while names last.
            let person = (i % 5 == 0 && i > 0)
                .then(|| people.get(i / 5 - 1))
                .flatten();
            let (title, kind) = match (specials.get(i), person) {
                (Some(special), _) => (special.to_string(), "group"),
                (None, Some(name)) => (name.to_string(), "direct"),
                (None, None) => (format!("{} {i}", topics[i % topics.len()]), "group"),
            };
            let creator = person.copied().unwrap_or(people[i % people.len()]);
            let (n, group) = (i as i64, kind == "group");
            Room {
                id: webex_id("ROOM", &uuid_from_seed(&format!("room-{i}"))),
                title,
                kind,
                is_locked: group && i % 7 == 3,
                // About 37 minutes between rooms, with varying milliseconds.
                last_activity: iso_millis(LAST_ACTIVITY_MS - n * 2_233_517),
                creator_id: person_id(if i % 3 == 0 { "Ada Lovelace" } else { creator }),
                created: iso_millis(CREATED_MS - n * 21_600_137),
                owner_id: org_id(),
                is_announcement_only: group && i % 11 == 6,
                is_read_only: false,
                is_public: group && i % 13 == 8,
            }
        })
        .collect()
}

/// The cursor is opaque to clients; here it is just the offset, base64url-encoded.
fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    text.strip_prefix("offset:")?.parse().ok()
}

impl World {
    /// `{"items": [...]}` of the rooms in `range`, serialized once and then served as stored
    /// bytes: the rooms never change, and a static upstream keeps the fake's own JSON encoding
    /// out of what the benchmark measures.
    fn rooms_json(&mut self, range: std::ops::Range<usize>) -> Bytes {
        let key = (range.start, range.end);
        if let Some(body) = self.room_pages.get(&key) {
            return body.clone();
        }
        let items = self.rooms.get(range).unwrap_or_default();
        let body = Bytes::from(serde_json::to_vec(&json!({ "items": items })).unwrap_or_default());
        self.room_pages.insert(key, body.clone());
        body
    }
}

/// `GET /v1/rooms`: one page, with an absolute `Link: <…>; rel="next"` while more remain.
pub(super) async fn rooms(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    fake.lock().bump(Counter::RoomsCalls);
    let link_fault = take_fault(&fake, Endpoint::Rooms, &[]).await?;
    let mut world = fake.lock();
    world.check_access(authorization(&headers), &["spark:all", "spark:rooms_read"])?;

    // Above the cap Webex clamps; zero or garbage is rejected (a strict choice, contract §8.11).
    let max = match params.get("max").map(|m| m.parse::<u64>()) {
        None => 100,
        Some(Ok(max)) if max >= 1 => max.min(MAX_PAGE) as usize,
        Some(_) => return Err(ApiError::bad_request(MALFORMED, "max must be 1 to 1000.").into()),
    };
    let total = world.rooms.len();
    let offset = match params.get("cursor").map(|c| decode_cursor(c)) {
        None => 0,
        Some(Some(offset)) if offset <= total => offset,
        Some(_) => return Err(ApiError::bad_request(MALFORMED, "The cursor is invalid.").into()),
    };
    let end = (offset + max).min(total);
    let link = |origin: &str, at: usize| {
        let cursor = encode_cursor(at);
        format!("<{origin}/v1/rooms?max={max}&cursor={cursor}>; rel=\"next\"")
    };
    let (range, next) = match link_fault {
        // A page may be empty yet still be followed by a link; point it at the page we skipped.
        Some(Fault::EmptyPageWithNext) => (offset..offset, Some(link(&fake.origin, offset))),
        // Present even on the last page, so a client that follows links blindly is caught.
        Some(Fault::ForeignNextLink) => (offset..end, Some(link("https://attacker.example", end))),
        _ => (offset..end, (end < total).then(|| link(&fake.origin, end))),
    };
    let body = world.rooms_json(range);
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response();
    if let Some(Ok(value)) = next.map(|next| HeaderValue::from_str(&next)) {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// `GET /v1/people/me`: the signed-in user, always Ada Lovelace.
pub(super) async fn people_me(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Reply {
    fake.lock().bump(Counter::PeopleCalls);
    take_fault(&fake, Endpoint::PeopleMe, &[]).await?;
    fake.lock()
        .check_access(authorization(&headers), &["spark:all", "spark:people_read"])?;
    let person = json!({
        "id": person_id("Ada Lovelace"),
        "emails": ["ada@example.com"],
        "phoneNumbers": [{ "type": "work", "value": "+1 555 0100", "primary": true }],
        "displayName": "Ada Lovelace",
        "nickName": "Ada",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "avatar": format!("{}/avatar.svg", fake.origin),
        "orgId": org_id(),
        "created": "2024-05-01T12:00:00.000Z",
        "lastActivity": iso_millis(LAST_ACTIVITY_MS),
        "status": "active",
        "type": "person",
    });
    Ok(json_response(StatusCode::OK, &person))
}

pub(super) async fn avatar() -> Response {
    // Ada's initials on a blue circle.
    let svg = concat!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">"##,
        r##"<circle cx="48" cy="48" r="48" fill="#0a62c9"/><text x="48" y="60" "##,
        r##"font-family="sans-serif" font-size="36" font-weight="bold" fill="#fff" "##,
        r##"text-anchor="middle">AL</text></svg>"##
    );
    ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
}
