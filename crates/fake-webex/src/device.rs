//! The device grant: `/v1/device/authorize`, `/v1/device/token` polls, and the `/verify` page.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use askama::Template;
use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use rand::Rng;
use serde_json::json;

use super::{
    Counter, Endpoint, Fault, Forgery,
    faults::take_fault,
    ids::{random_bytes, sha256_hex, uuid_from_bytes},
    server::{Fake, World},
    tokens::TokenGrant,
    wire::{
        ApiError, MALFORMED, Reply, basic_credentials, form_pairs, json_response, message, render,
        require_form,
    },
};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const TOO_FAST: &str = "The client is polling too quickly.";
const UNKNOWN_CODE: &str = "This code is unknown, expired or already used.";

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

/// Every device flow started, kept for the whole run, found by either of its codes.
#[derive(Default)]
pub(super) struct DeviceFlows {
    by_device_code: HashMap<String, DeviceFlow>,
    /// User code → device code of the newest flow handed that user code. A user code is only
    /// handed out again once no pending flow holds it, and a flow that stopped being pending
    /// never is again, so the newest flow with a user code is the only one that can be pending.
    newest_by_user_code: HashMap<String, String>,
    /// `sha256_hex(user code)` → user code: `verification_uri_complete` carries only the hash.
    user_code_by_hash: HashMap<String, String>,
    pub last_user_code: Option<String>,
}

impl DeviceFlows {
    fn newest(&self, user_code: &str) -> Option<&DeviceFlow> {
        let device_code = self.newest_by_user_code.get(user_code)?;
        self.by_device_code.get(device_code)
    }

    fn newest_mut(&mut self, user_code: &str) -> Option<&mut DeviceFlow> {
        let device_code = self.newest_by_user_code.get(user_code)?;
        self.by_device_code.get_mut(device_code)
    }

    fn insert(&mut self, flow: DeviceFlow) {
        let (device_code, user_code) = (flow.device_code.clone(), flow.user_code.clone());
        self.user_code_by_hash
            .insert(sha256_hex(&user_code), user_code.clone());
        self.newest_by_user_code
            .insert(user_code.clone(), device_code.clone());
        self.by_device_code.insert(device_code, flow);
        self.last_user_code = Some(user_code);
    }
}

/// What `/device/authorize` hands out.
pub(super) struct DeviceStart {
    pub device_code: String,
    pub user_code: String,
    pub expires_in: u64,
    pub interval: u64,
}

impl Fake {
    /// Webex puts a hash of the user code in the link, never the code itself.
    pub fn verification_uri_complete(&self, user_code: &str) -> String {
        format!("{}/verify?userCode={}", self.origin, sha256_hex(user_code))
    }
}

impl World {
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
                .devices
                .newest(&candidate)
                .is_some_and(DeviceFlow::is_pending)
            {
                break candidate;
            }
        };
        let device_code = uuid_from_bytes(random_bytes());
        self.issued.push(device_code.clone());
        let (expires_in, interval) = (self.config.device_expires_in, self.config.device_interval);
        self.devices.insert(DeviceFlow {
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
        Ok(DeviceStart {
            device_code,
            user_code,
            expires_in,
            interval,
        })
    }

    pub fn record_poll(&mut self, device_code: &str, arrival: Instant) {
        if let Some(flow) = self.devices.by_device_code.get_mut(device_code) {
            flow.polls.push(arrival);
        }
    }

    /// One `/device/token` poll past client authentication; `forced_slow_down`: a `SlowDown`
    /// fault; `forgery`: how to forge the grant's id_token (there is no nonce on this grant).
    pub fn poll_device(
        &mut self,
        device_code: &str,
        client_id: &str,
        arrival: Instant,
        forced_slow_down: bool,
        forgery: Option<&Forgery>,
    ) -> Result<TokenGrant, ApiError> {
        let expiry_error = self.config.device_expiry_error.clone();
        let flow = self.devices.by_device_code.get_mut(device_code);
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
                let mut grant = self.grant(&client_id, &scope, refresh);
                if self.config.device_id_tokens {
                    grant.id_token = self.id_token(&client_id, &scope, None, forgery);
                }
                Ok(grant)
            }
        }
    }

    /// Approves or denies the newest pending, unexpired flow with that user code; false if none.
    pub fn decide_device(&mut self, user_code: &str, approve: bool) -> bool {
        let flow = self.devices.newest_mut(user_code);
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

    /// The newest flow with that user code, pending or not.
    pub fn flow_by_user_code(&self, user_code: &str) -> Option<&DeviceFlow> {
        self.devices.newest(user_code)
    }

    /// The pending flow whose user code hashes to `hash` (`userCode` of the complete URI).
    pub fn pending_flow_by_hash(&self, hash: &str) -> Option<&DeviceFlow> {
        // The stored hashes are lowercase hex, so this matches the hash case-insensitively.
        let user_code = self
            .devices
            .user_code_by_hash
            .get(&hash.to_ascii_lowercase())?;
        self.devices.newest(user_code).filter(|f| f.is_pending())
    }
}

#[derive(Template)]
#[template(path = "fake/verify.html")]
struct VerifyPage {
    /// Known code to confirm, or `None` to ask for one.
    user_code: Option<String>,
}

/// `POST /v1/device/authorize`: starts a device flow; no client authentication.
pub(super) async fn device_authorize(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    fake.lock().bump(Counter::DeviceAuthorizations);
    take_fault(&fake, Endpoint::DeviceAuthorize, &body).await?;
    let form = require_form(&headers, &body)?;
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let started = fake
        .lock()
        .start_device(field("client_id"), field("scope"))?;
    let body = json!({
        "device_code": started.device_code,
        "expires_in": started.expires_in,
        "user_code": started.user_code,
        "verification_uri": format!("{}/verify", fake.origin),
        "verification_uri_complete": fake.verification_uri_complete(&started.user_code),
        "interval": started.interval,
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v1/device/token`: one poll of a device flow.
pub(super) async fn device_token(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    // Arrival is taken before any fault delay: tests measure when the client sent the poll.
    let arrival = Instant::now();
    {
        let mut world = fake.lock();
        world.bump(Counter::DevicePolls);
        if let Some(device_code) = form_pairs(&body).get("device_code") {
            world.record_poll(device_code, arrival);
        }
    }
    let (forced_slow_down, forgery) = match take_fault(&fake, Endpoint::DeviceToken, &body).await? {
        Some(Fault::IdToken(forgery)) => (false, Some(forgery)),
        other => (other.is_some(), None),
    };
    let basic = basic_credentials(&headers);
    if !basic.is_some_and(|(id, secret)| fake.lock().is_client(&id, &secret)) {
        return Err(ApiError::invalid_client().into());
    }
    let form = require_form(&headers, &body)?;
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some(DEVICE_GRANT) {
        let text = "The authorization grant type is not supported.";
        return Err(ApiError::bad_request("unsupported_grant_type", text).into());
    }
    let (Some(device_code), Some(client_id)) = (field("device_code"), field("client_id")) else {
        let text = "device_code and client_id are required.";
        return Err(ApiError::bad_request("invalid_request", text).into());
    };
    let mut world = fake.lock();
    let polled = world.poll_device(
        device_code,
        client_id,
        arrival,
        forced_slow_down,
        forgery.as_ref(),
    );
    // A forgery waits for the poll that grants (the pending ones before it issue no id_token).
    if let (Err(_), Some(forgery)) = (&polled, forgery) {
        world.requeue_fault(Endpoint::DeviceToken, Fault::IdToken(forgery));
    }
    Ok(json_response(StatusCode::OK, &polled?))
}

/// `GET /verify`: confirm the code from `verification_uri_complete`, or type one in.
pub(super) async fn verify_page(
    State(fake): State<Arc<Fake>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(hash) = params.get("userCode") else {
        return render(StatusCode::OK, &VerifyPage { user_code: None });
    };
    let user_code = fake
        .lock()
        .pending_flow_by_hash(hash)
        .map(|f| f.user_code.clone());
    match user_code {
        Some(_) => render(StatusCode::OK, &VerifyPage { user_code }),
        None => message(StatusCode::NOT_FOUND, "Unknown code", UNKNOWN_CODE),
    }
}

/// `POST /verify`: the user's decision for a pending device flow.
pub(super) async fn verify_decision(State(fake): State<Arc<Fake>>, body: Bytes) -> Response {
    let form = form_pairs(&body);
    let user_code = form.get("user_code").map_or("", |code| code.trim());
    let approve = form.get("decision").is_some_and(|d| d == "approve");
    match (fake.lock().decide_device(user_code, approve), approve) {
        (false, _) => message(StatusCode::NOT_FOUND, "Unknown code", UNKNOWN_CODE),
        (true, true) => message(
            StatusCode::OK,
            "Approved",
            "Approved: return to your device.",
        ),
        (true, false) => message(
            StatusCode::OK,
            "Denied",
            "Denied: the device stays signed out.",
        ),
    }
}
