//! The fake's memory and rules: issued codes and tokens, device flows, rooms, faults and counters.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use base64::{
    Engine,
    engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD},
};
use rand::{Rng, RngCore};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Counter, Endpoint, FakeConfig, Fault};

/// The org every fake user, room and token belongs to.
const ORG_UUID: &str = "1eb65fdf-9643-417f-9974-ad72cae0e10f";
/// Webex's text for 400s it cannot attribute to a named OAuth error.
pub(super) const MALFORMED: &str =
    "The request could not be understood by the server due to malformed syntax.";
const TOO_FAST: &str = "The client is polling too quickly.";
const INVALID_REFRESH: &str =
    "The refresh token provided is expired, revoked, malformed, or invalid.";

/// State shared by the server and every `FakeWebex` handle.
pub(super) struct Shared {
    pub origin: String,
    inner: Mutex<Inner>,
}

impl Shared {
    pub fn new(origin: String, config: FakeConfig) -> Self {
        let inner = Inner {
            issued: vec![config.client_secret.clone()],
            rooms: build_rooms(config.room_count),
            config,
            ..Inner::default()
        };
        let inner = Mutex::new(inner);
        Shared { origin, inner }
    }

    /// A panic in one handler must not take the fake down for a whole test run: ignore poison.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Webex puts a hash of the user code in the link, never the code itself.
    pub fn verification_uri_complete(&self, user_code: &str) -> String {
        format!("{}/verify?userCode={}", self.origin, sha256_hex(user_code))
    }
}

/// A Webex error: the status plus the envelope's `message` and `errors[0].description`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub description: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: &str, description: &str) -> Self {
        ApiError {
            status,
            message: message.to_owned(),
            description: description.to_owned(),
        }
    }

    pub fn bad_request(message: &str, description: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message, description)
    }

    pub fn invalid_grant(description: &str) -> Self {
        Self::bad_request("invalid_grant", description)
    }

    pub fn invalid_client() -> Self {
        let text = "Client authentication failed.";
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", text)
    }

    /// The exact 401 real Webex answers for a missing, unknown or expired access token.
    pub fn unauthorized() -> Self {
        let text =
            "The request requires a valid access token set in the Authorization request header.";
        Self::new(StatusCode::UNAUTHORIZED, text, text)
    }

    pub fn forbidden() -> Self {
        let text = "The server understood the request, but refused to fulfill it because \
                    the access token is missing required scopes.";
        Self::new(StatusCode::FORBIDDEN, text, text)
    }
}

/// The token JSON of `/access_token` and `/device/token`.
#[derive(Serialize)]
pub(super) struct TokenGrant {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_token_expires_in: u64,
    pub token_type: &'static str,
    pub scope: String,
}

/// A validated `/authorize` request.
pub(super) struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Normalised to single spaces.
    pub scope: String,
    pub state: Option<String>,
    challenge: Option<Challenge>,
}

#[derive(Clone)]
struct Challenge {
    value: String,
    s256: bool,
}

impl Challenge {
    fn verifies(&self, verifier: &str) -> bool {
        if self.s256 {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == self.value
        } else {
            verifier == self.value
        }
    }
}

struct AuthCode {
    client_id: String,
    redirect_uri: String,
    scope: String,
    challenge: Option<Challenge>,
    expires: Instant,
}

/// An access or refresh token.
struct Token {
    client_id: String,
    scope: String,
    expires: Instant,
    revoked: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    Consumed,
}

pub(super) struct DeviceFlow {
    pub device_code: String,
    pub user_code: String,
    client_id: String,
    scope: String,
    expires: Instant,
    /// Grows by 5 s on each `slow_down` (RFC 8628 §3.5).
    interval: Duration,
    status: DeviceStatus,
    /// Every `/device/token` request naming this flow, faulted or not.
    pub polls: Vec<Instant>,
    /// The last poll that counts for pacing; faulted requests (e.g. a 429) are left out so a
    /// client honouring `Retry-After` is not punished with `slow_down`.
    last_poll: Option<Instant>,
}

impl DeviceFlow {
    fn is_pending(&self) -> bool {
        self.status == DeviceStatus::Pending && Instant::now() < self.expires
    }
}

/// What `/device/authorize` hands out.
pub(super) struct DeviceStart {
    pub device_code: String,
    pub user_code: String,
    pub expires_in: u64,
    pub interval: u64,
}

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

#[derive(Default)]
pub(super) struct Inner {
    pub config: FakeConfig,
    faults: HashMap<Endpoint, VecDeque<Fault>>,
    pub counters: HashMap<Counter, usize>,
    codes: HashMap<String, AuthCode>,
    access: HashMap<String, Token>,
    refresh: HashMap<String, Token>,
    /// In creation order; lookups search backwards so the newest flow with a user code wins.
    flows: Vec<DeviceFlow>,
    pub last_user_code: Option<String>,
    pub issued: Vec<String>,
    pub rooms: Vec<Room>,
}

impl Inner {
    /// Client authentication against the one registered integration.
    pub fn is_client(&self, id: &str, secret: &str) -> bool {
        id == self.config.client_id && secret == self.config.client_secret
    }

    pub fn push_fault(&mut self, endpoint: Endpoint, fault: Fault) {
        self.faults.entry(endpoint).or_default().push_back(fault);
    }

    pub fn pop_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        self.faults.get_mut(&endpoint)?.pop_front()
    }

    pub fn bump(&mut self, counter: Counter) {
        *self.counters.entry(counter).or_default() += 1;
    }

    pub fn revoke_access_tokens(&mut self) {
        self.access.values_mut().for_each(|t| t.revoked = true);
    }

    pub fn revoke_refresh_tokens(&mut self) {
        self.refresh.values_mut().for_each(|t| t.revoked = true);
    }

    /// Checks an `/authorize` request; errors go on an HTML page, never to the redirect URI.
    pub fn validate_authorize(
        &self,
        params: &HashMap<String, String>,
    ) -> Result<AuthorizeRequest, String> {
        let get = |name: &str| params.get(name).map(String::as_str);
        if get("response_type") != Some("code") {
            return Err("response_type must be \"code\".".into());
        }
        let client_id = get("client_id").unwrap_or_default();
        if client_id != self.config.client_id {
            return Err("The client_id is unknown.".into());
        }
        let redirect_uri = get("redirect_uri").unwrap_or_default();
        if !self
            .config
            .redirect_uris
            .iter()
            .any(|uri| uri == redirect_uri)
        {
            return Err("The redirect_uri is not registered for this integration.".into());
        }
        let scope = self.check_scope(get("scope").unwrap_or_default())?;
        let challenge = match get("code_challenge").filter(|c| !c.is_empty()) {
            None => None,
            // RFC 7636 §4.3: a challenge without a method is "plain".
            Some(value) => match get("code_challenge_method").unwrap_or("plain") {
                method @ ("S256" | "plain") => Some(Challenge {
                    value: value.to_owned(),
                    s256: method == "S256",
                }),
                other => return Err(format!("Unsupported code_challenge_method {other:?}.")),
            },
        };
        Ok(AuthorizeRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scope,
            state: get("state").map(str::to_owned),
            challenge,
        })
    }

    /// A non-empty, space-separated list of registered scopes, normalised.
    fn check_scope(&self, scope: &str) -> Result<String, String> {
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        if scopes.is_empty() {
            return Err("invalid_scope: no scope was requested.".into());
        }
        if let Some(bad) = scopes
            .iter()
            .find(|s| !self.config.registered_scopes.iter().any(|r| r == *s))
        {
            return Err(format!(
                "invalid_scope: {bad} is not registered for this integration."
            ));
        }
        Ok(scopes.join(" "))
    }

    pub fn issue_code(&mut self, request: &AuthorizeRequest) -> String {
        let code = random_token();
        self.issued.push(code.clone());
        let stored = AuthCode {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            challenge: request.challenge.clone(),
            expires: Instant::now() + self.config.code_ttl,
        };
        self.codes.insert(code.clone(), stored);
        code
    }

    /// `grant_type=authorization_code`. The code is removed before any check, so every use,
    /// even a failed one, consumes it.
    pub fn exchange_code(
        &mut self,
        client_id: &str,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<TokenGrant, ApiError> {
        let stored = self.codes.remove(code).ok_or_else(|| {
            ApiError::invalid_grant("The authorization code is invalid or was already used.")
        })?;
        let problem = match (&stored.challenge, verifier) {
            _ if Instant::now() >= stored.expires => Some("The authorization code has expired."),
            _ if stored.client_id != client_id => Some("The code was issued to another client."),
            _ if redirect_uri != Some(&stored.redirect_uri) => {
                Some("The redirect_uri does not match.")
            }
            (None, Some(_)) => Some("A code_verifier was sent but no code_challenge was given."),
            (Some(_), None) => Some("The code_verifier is required."),
            (Some(_), Some(v)) if !is_valid_verifier(v) => Some("The code_verifier is malformed."),
            (Some(c), Some(v)) if !c.verifies(v) => Some("The code_verifier does not match."),
            _ => None,
        };
        if let Some(problem) = problem {
            return Err(ApiError::invalid_grant(problem));
        }
        let refresh = self.mint(true, client_id, &stored.scope);
        Ok(self.grant(client_id, &stored.scope, refresh))
    }

    /// `grant_type=refresh_token`: a new access token; the refresh token changes only if rotating.
    pub fn refresh(&mut self, client_id: &str, token: &str) -> Result<TokenGrant, ApiError> {
        let now = Instant::now();
        let stored = self
            .refresh
            .get(token)
            .filter(|t| !t.revoked && now < t.expires && t.client_id == client_id)
            .ok_or_else(|| ApiError::invalid_grant(INVALID_REFRESH))?;
        let scope = stored.scope.clone();
        // Unrotated, the remaining lifetime keeps counting down, as in Webex's logged responses.
        let remaining = stored.expires.saturating_duration_since(now).as_secs();
        let refresh = if self.config.rotate_refresh_tokens {
            self.refresh.remove(token);
            self.mint(true, client_id, &scope)
        } else {
            (token.to_owned(), remaining)
        };
        Ok(self.grant(client_id, &scope, refresh))
    }

    /// A new access or refresh token with its lifetime in seconds, remembered for `issued_secrets`.
    fn mint(&mut self, refresh: bool, client_id: &str, scope: &str) -> (String, u64) {
        let token = random_token();
        self.issued.push(token.clone());
        let (map, ttl) = match refresh {
            true => (&mut self.refresh, self.config.refresh_token_ttl),
            false => (&mut self.access, self.config.access_token_ttl),
        };
        let (client_id, scope) = (client_id.to_owned(), scope.to_owned());
        let expires = Instant::now() + ttl;
        map.insert(
            token.clone(),
            Token {
                client_id,
                scope,
                expires,
                revoked: false,
            },
        );
        (token, ttl.as_secs())
    }

    /// The token JSON: a new access token plus the given refresh token and its lifetime.
    fn grant(&mut self, client_id: &str, scope: &str, refresh: (String, u64)) -> TokenGrant {
        let (access_token, expires_in) = self.mint(false, client_id, scope);
        TokenGrant {
            access_token,
            expires_in,
            refresh_token: refresh.0,
            refresh_token_expires_in: refresh.1,
            token_type: "Bearer",
            scope: scope.to_owned(),
        }
    }

    /// Checks a Bearer token and that it carries one of `scopes`.
    pub fn check_access(
        &self,
        authorization: Option<&str>,
        scopes: &[&str],
    ) -> Result<(), ApiError> {
        let token = authorization
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(ApiError::unauthorized)?;
        let now = Instant::now();
        let stored = self
            .access
            .get(token)
            .filter(|t| !t.revoked && now < t.expires)
            .ok_or_else(ApiError::unauthorized)?;
        if stored.scope.split(' ').any(|s| scopes.contains(&s)) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn start_device(&mut self, client_id: &str, scope: &str) -> Result<DeviceStart, ApiError> {
        if client_id != self.config.client_id {
            return Err(ApiError::bad_request(MALFORMED, "Client Id is invalid"));
        }
        let scope = self.check_scope(scope).map_err(|_| {
            ApiError::bad_request(
                "invalid_scope",
                "The requested scope is invalid, unknown, or malformed.",
            )
        })?;
        // Six digits leave a million codes; redraw until no live flow uses it.
        let user_code = loop {
            let candidate = format!("{:06}", rand::rng().random_range(0..1_000_000));
            if !self
                .flows
                .iter()
                .any(|f| f.is_pending() && f.user_code == candidate)
            {
                break candidate;
            }
        };
        let device_code = uuid_from_bytes(random_bytes());
        self.issued.push(device_code.clone());
        let (expires_in, interval) = (self.config.device_expires_in, self.config.device_interval);
        self.flows.push(DeviceFlow {
            device_code: device_code.clone(),
            user_code: user_code.clone(),
            client_id: client_id.to_owned(),
            scope,
            expires: Instant::now() + Duration::from_secs(expires_in),
            interval: Duration::from_secs(interval),
            status: DeviceStatus::Pending,
            polls: Vec::new(),
            last_poll: None,
        });
        self.last_user_code = Some(user_code.clone());
        Ok(DeviceStart {
            device_code,
            user_code,
            expires_in,
            interval,
        })
    }

    pub fn record_poll(&mut self, device_code: &str, arrival: Instant) {
        if let Some(flow) = self.flows.iter_mut().find(|f| f.device_code == device_code) {
            flow.polls.push(arrival);
        }
    }

    /// One `/device/token` poll past client authentication; `forced_slow_down`: a `SlowDown` fault.
    pub fn poll_device(
        &mut self,
        device_code: &str,
        client_id: &str,
        arrival: Instant,
        forced_slow_down: bool,
    ) -> Result<TokenGrant, ApiError> {
        let expiry_error = self.config.device_expiry_error.clone();
        let flow = self.flows.iter_mut().find(|f| f.device_code == device_code);
        let Some(flow) = flow.filter(|f| f.client_id == client_id) else {
            return Err(ApiError::invalid_grant(
                "Unknown device code for this client.",
            ));
        };
        let reject =
            |message: &str, description: &str| Err(ApiError::bad_request(message, description));
        // A forced slow_down leaves the flow alone, pacing included.
        if forced_slow_down {
            return reject("slow_down", TOO_FAST);
        }
        let previous = flow.last_poll.replace(arrival);
        let too_fast =
            previous.is_some_and(|p| arrival.saturating_duration_since(p) < flow.interval);
        match flow.status {
            _ if Instant::now() >= flow.expires => {
                reject(&expiry_error, "The device code has expired.")
            }
            DeviceStatus::Denied => reject("access_denied", "The user denied the request."),
            DeviceStatus::Consumed => reject("invalid_grant", "The device code was already used."),
            DeviceStatus::Pending if too_fast => {
                flow.interval += Duration::from_secs(5);
                reject("slow_down", TOO_FAST)
            }
            DeviceStatus::Pending => {
                let text = "The authorization request is still pending.";
                Err(ApiError::new(
                    StatusCode::PRECONDITION_REQUIRED,
                    "authorization_pending",
                    text,
                ))
            }
            DeviceStatus::Approved => {
                flow.status = DeviceStatus::Consumed;
                let (client_id, scope) = (flow.client_id.clone(), flow.scope.clone());
                let refresh = self.mint(true, &client_id, &scope);
                Ok(self.grant(&client_id, &scope, refresh))
            }
        }
    }

    /// Approves or denies the newest pending, unexpired flow with that user code; false if none.
    pub fn decide_device(&mut self, user_code: &str, approve: bool) -> bool {
        let flow = self
            .flows
            .iter_mut()
            .rev()
            .find(|f| f.user_code == user_code);
        let Some(flow) = flow.filter(|f| f.is_pending()) else {
            return false;
        };
        flow.status = if approve {
            DeviceStatus::Approved
        } else {
            DeviceStatus::Denied
        };
        true
    }

    pub fn flow_by_user_code(&self, user_code: &str) -> Option<&DeviceFlow> {
        self.flows.iter().rev().find(|f| f.user_code == user_code)
    }

    /// The pending flow whose user code hashes to `hash` (`userCode` of the complete URI).
    pub fn pending_flow_by_hash(&self, hash: &str) -> Option<&DeviceFlow> {
        self.flows
            .iter()
            .rev()
            .find(|f| f.is_pending() && sha256_hex(&f.user_code).eq_ignore_ascii_case(hash))
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// An opaque code or token shaped like Webex's: `<base64url>_<cluster>_<org uuid>`.
fn random_token() -> String {
    let body = URL_SAFE_NO_PAD.encode(random_bytes::<48>());
    format!("{body}_PF84_{ORG_UUID}")
}

pub(super) fn tracking_id() -> String {
    format!("ROUTER_{}", uuid_from_bytes(random_bytes()).to_uppercase())
}

fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Formats 16 bytes as a version-4 UUID.
fn uuid_from_bytes(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A UUID derived from `seed`, so rooms and people keep their ids across runs.
fn uuid_from_seed(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid_from_bytes(bytes)
}

/// Webex ids are unpadded base64 of `ciscospark://us/<KIND>/<uuid>`.
fn webex_id(kind: &str, uuid: &str) -> String {
    STANDARD_NO_PAD.encode(format!("ciscospark://us/{kind}/{uuid}"))
}

pub(super) fn person_id(seed: &str) -> String {
    webex_id("PEOPLE", &uuid_from_seed(seed))
}

pub(super) fn org_id() -> String {
    webex_id("ORGANIZATION", ORG_UUID)
}

/// `2026-03-02T09:15:12.481Z` from Unix milliseconds (by hand: `time` needs no extra features).
pub(super) fn iso_millis(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ms.rem_euclid(1000)
    )
}

/// The newest activity: 2026-03-02T09:15:12.481Z; later rooms are older.
pub(super) const LAST_ACTIVITY_MS: i64 = 1_772_442_912_481;
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
fn build_rooms(count: usize) -> Vec<Room> {
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
