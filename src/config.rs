//! The environment contract (`WEBEX_*`, `LISTEN_ADDR`, `PORT`, `SESSION_STORE`, …), read and checked
//! at start-up; the keys and their defaults are [`settings::SETTINGS`], which `--help` shows.

use crate::secret::Secret;
use std::net::SocketAddr;
use std::time::Duration;
use url::Url;

/// The redirect URI when `WEBEX_REDIRECT_URI` is unset: its port follows the listen port.
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:10060/oauth";
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:10060";
pub const DEFAULT_LOG_FILTER: &str = "webex_oauth_axum=info,warn";

/// `LOG_FORMAT`: how log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line an event (plain text, never coloured).
    Text,
    /// One JSON object a line, with the fields of every enclosing span (for log collectors).
    Json,
}

/// Live against real Webex, or demo on the embedded fake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `WEBEX_CLIENT_ID` is unset: the embedded fake Webex plays Webex.
    Demo,
    /// Real credentials, real Webex (or whatever `WEBEX_API_BASE` points at).
    Live {
        client_id: String,
        client_secret: Secret,
    },
}

/// Where sessions and device flows live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// In this process: lost on restart.
    Memory,
    /// A SQLite file (created, with its folder, mode 0600): survives restarts.
    Sqlite(std::path::PathBuf),
    /// `redis://HOST:PORT[/DB]` (or `rediss://` for TLS): shared by several instances.
    Redis(String),
}

impl std::fmt::Display for StoreConfig {
    /// For the start-up log (a Redis URL may hold a password: only its host is shown).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory (lost on restart)"),
            Self::Sqlite(path) => write!(f, "SQLite file {}", path.display()),
            Self::Redis(url) => {
                let host = Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned));
                write!(f, "Redis at {}", host.unwrap_or_default())
            }
        }
    }
}

/// The checked settings; each field's key and default are in [`settings::SETTINGS`].
#[derive(Clone, Debug)]
pub struct Config {
    /// `WEBEX_CLIENT_ID` / `WEBEX_CLIENT_SECRET`.
    pub mode: Mode,
    /// `WEBEX_REDIRECT_URI`: where Webex sends the browser back with the code.
    pub redirect_uri: Url,
    /// True when `WEBEX_REDIRECT_URI` is unset: the redirect URI is `http://localhost:PORT/oauth`
    /// with the port the app is actually bound to (`App::with_listener` sets it).
    pub redirect_uri_follows_port: bool,
    /// `WEBEX_SCOPES`, of the authorization-code flow. With `openid` (the default), a flow also
    /// proves who signed in (Login with Webex, `crate::identity`).
    pub scopes: String,
    /// `WEBEX_DEVICE_SCOPES`, of the device flow.
    pub device_scopes: String,
    /// `WEBEX_API_BASE`: every Webex URL derives from it (ignored in demo mode).
    pub api_base: Url,
    /// `WEBEX_OIDC_ISSUERS`: id_token issuers accepted besides the discovery issuer and Webex's
    /// idbroker hosts (`identity::issuer`), each exactly as written.
    pub oidc_issuers: Vec<String>,
    /// `LISTEN_ADDR`, else `0.0.0.0:$PORT` (see `listen_addr`); `App::with_listener` replaces
    /// it with the address actually bound.
    pub listen_addr: SocketAddr,
    /// `SESSION_STORE`.
    pub session_store: StoreConfig,
    /// `MAX_PENDING_DEVICE_FLOWS`: past it, new device sign-ins get a 503.
    pub max_pending_flows: usize,
    /// `MAX_PENDING_FLOWS_PER_CLIENT`, counted on this instance; past it, Sign-In gets a 429.
    pub max_pending_flows_per_client: usize,
    /// `HEADER_READ_TIMEOUT_SECS`.
    pub header_read_timeout: Duration,
    /// `MAX_CONNECTIONS`: the rest wait in the backlog.
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_CLIENT`. Not applied with `CLIENT_IP_HEADER` (every peer is then
    /// your proxy).
    pub max_connections_per_client: usize,
    /// `RATE_LIMIT_PER_MINUTE`, with a burst of that size.
    pub rate_limit_per_minute: u32,
    /// `CLIENT_IP_HEADER`: its last hop is the client address; unset, the peer address is.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// `ABANDONED_FLOW_SECS`.
    pub abandoned_flow: Duration,
    /// `ALLOWED_HOSTS`, lowercase.
    pub allowed_hosts: Vec<String>,
    /// `ENCRYPTION_KEYS`: the first encrypts tokens in the store, all decrypt. Empty: see
    /// `store::open` for what each backend does.
    pub encryption_keys: Vec<EncryptionKey>,
    /// `METRICS_ADDR`: a listener of its own for `/metrics`, never the public one.
    pub metrics_addr: Option<SocketAddr>,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `RUST_LOG` (tracing's `EnvFilter` syntax), checked here.
    pub log_filter: String,
    /// Webex HTTP timeouts (not in the environment contract; tests shorten them).
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// A request still unanswered after this gets the 504 page (30 s; tests shorten it).
    pub handler_timeout: Duration,
}

pub use crate::crypto::EncryptionKey;

/// A configuration error: one line naming the key and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    pub key: &'static str,
    pub problem: String,
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads the configuration through `lookup` (the command line and environment, or a map in
    /// tests).
    /// An empty value counts as unset; an unset key takes the table's default, if any.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .or_else(|| settings::default_of(key).map(str::to_owned))
        };

        let mode = match get("WEBEX_CLIENT_ID") {
            None => Mode::Demo,
            Some(client_id) => {
                let client_secret = get("WEBEX_CLIENT_SECRET").ok_or_else(|| {
                    invalid(
                        "WEBEX_CLIENT_SECRET",
                        "required when WEBEX_CLIENT_ID is set",
                    )
                })?;
                if client_id
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(invalid("WEBEX_CLIENT_ID", "must not contain spaces"));
                }
                Mode::Live {
                    client_id,
                    client_secret: Secret::new(client_secret),
                }
            }
        };

        let listen_addr = listen_addr(&get)?;
        let redirect_uri = get("WEBEX_REDIRECT_URI");
        let redirect_uri_follows_port = redirect_uri.is_none();
        let redirect_uri = redirect_uri.as_deref().unwrap_or(DEFAULT_REDIRECT_URI);
        let mut redirect_uri = http_url("WEBEX_REDIRECT_URI", redirect_uri)?;
        if redirect_uri_follows_port {
            follow_port(&mut redirect_uri, listen_addr.port());
        }
        if redirect_uri.query().is_some() || redirect_uri.fragment().is_some() {
            return Err(invalid(
                "WEBEX_REDIRECT_URI",
                "must not have a query or a fragment",
            ));
        }
        // Fields in the order they are checked: the first bad value is the one reported.
        let config = Self {
            mode,
            redirect_uri,
            redirect_uri_follows_port,
            api_base: http_url("WEBEX_API_BASE", &get("WEBEX_API_BASE").unwrap_or_default())?,
            oidc_issuers: oidc::issuers(get("WEBEX_OIDC_ISSUERS"))?,
            scopes: scope_list(&get, "WEBEX_SCOPES")?,
            device_scopes: scope_list(&get, "WEBEX_DEVICE_SCOPES")?,
            listen_addr,
            session_store: store_config(&get("SESSION_STORE").unwrap_or_default())?,
            max_pending_flows: count(&get, "MAX_PENDING_DEVICE_FLOWS")?,
            max_pending_flows_per_client: count(&get, "MAX_PENDING_FLOWS_PER_CLIENT")?,
            header_read_timeout: Duration::from_secs(positive(&get, "HEADER_READ_TIMEOUT_SECS")?),
            max_connections: count(&get, "MAX_CONNECTIONS")?,
            max_connections_per_client: count(&get, "MAX_CONNECTIONS_PER_CLIENT")?,
            rate_limit_per_minute: u32::try_from(positive(&get, "RATE_LIMIT_PER_MINUTE")?)
                .map_err(|_| invalid("RATE_LIMIT_PER_MINUTE", "is too large"))?,
            client_ip_header: get("CLIENT_IP_HEADER")
                .map(|name| {
                    axum::http::HeaderName::try_from(name.as_str()).map_err(|_| {
                        invalid("CLIENT_IP_HEADER", format!("{name:?} is not a header name"))
                    })
                })
                .transpose()?,
            abandoned_flow: Duration::from_secs(positive(&get, "ABANDONED_FLOW_SECS")?),
            allowed_hosts: list(get("ALLOWED_HOSTS").as_deref())
                .map(str::to_ascii_lowercase)
                .collect(),
            encryption_keys: list(get("ENCRYPTION_KEYS").as_deref())
                .enumerate()
                .map(|(i, k)| {
                    EncryptionKey::from_base64(k).ok_or_else(|| {
                        let n = i + 1;
                        let problem = format!(
                            "key {n} is not the base64 of 32 bytes (make one with `openssl rand -base64 32`)"
                        );
                        invalid("ENCRYPTION_KEYS", problem)
                    })
                })
                .collect::<Result<_, _>>()?,
            metrics_addr: get("METRICS_ADDR")
                .map(|raw| socket_addr("METRICS_ADDR", &raw))
                .transpose()?,
            log_format: match get("LOG_FORMAT").unwrap_or_default().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    let problem = format!("{other:?} is neither text nor json");
                    return Err(invalid("LOG_FORMAT", problem));
                }
            },
            log_filter: log_filter(get("RUST_LOG").unwrap_or_default())?,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            handler_timeout: Duration::from_secs(30),
        };
        if matches!(config.session_store, StoreConfig::Redis(_))
            && config.encryption_keys.is_empty()
        {
            return Err(invalid(
                "ENCRYPTION_KEYS",
                "required when SESSION_STORE is redis:// or rediss:// (every instance must share the key; make one with `openssl rand -base64 32`)",
            ));
        }
        Ok(config)
    }

    pub fn is_demo(&self) -> bool {
        self.mode == Mode::Demo
    }

    /// Cookies get `Secure` when the app is served over https (judged from the redirect URI).
    pub fn secure_cookies(&self) -> bool {
        self.redirect_uri.scheme() == "https"
    }

    /// The `Host` values served (the redirect URI's authority, the listen address, the bound
    /// address and `ALLOWED_HOSTS`), and the `Origin`s accepted for form posts (the same hosts
    /// under the redirect URI's scheme).
    pub fn served_hosts(&self, bound: Option<SocketAddr>) -> (Vec<String>, Vec<String>) {
        let mut hosts = vec![authority(&self.redirect_uri)];
        hosts.push(self.listen_addr.to_string());
        if let Some(addr) = bound {
            hosts.push(addr.to_string());
            if addr.ip().is_loopback() {
                hosts.push(format!("localhost:{}", addr.port()));
            }
        }
        hosts.extend(self.allowed_hosts.iter().cloned());
        hosts.sort();
        hosts.dedup();
        let scheme = self.redirect_uri.scheme();
        let origins = hosts.iter().map(|h| format!("{scheme}://{h}")).collect();
        (hosts, origins)
    }

    /// Records the address the app is actually bound to (`127.0.0.1:0` becomes a real port); the
    /// default redirect URI follows it.
    pub fn bound_to(&mut self, addr: SocketAddr) {
        self.listen_addr = addr;
        if self.redirect_uri_follows_port {
            follow_port(&mut self.redirect_uri, addr.port());
        }
    }

    /// The URL to open in a browser: the redirect URI's origin, so the session cookie set on
    /// the landing page comes back on the OAuth callback.
    pub fn public_origin(&self) -> String {
        self.redirect_uri.origin().ascii_serialization()
    }
}

/// `LISTEN_ADDR`; unset, `0.0.0.0:$PORT` with `PORT`, else [`DEFAULT_LISTEN_ADDR`].
fn listen_addr(get: &impl Fn(&str) -> Option<String>) -> Result<SocketAddr, ConfigError> {
    if let Some(raw) = get("LISTEN_ADDR") {
        return socket_addr("LISTEN_ADDR", &raw);
    }
    let Some(raw) = get("PORT") else {
        return socket_addr("LISTEN_ADDR", DEFAULT_LISTEN_ADDR);
    };
    // A platform that sets PORT routes outside traffic to it on every interface: loopback
    // would be unreachable there.
    let port: u16 = raw
        .parse()
        .map_err(|_| invalid("PORT", format!("{raw:?} is not a port number (0-65535)")))?;
    Ok(SocketAddr::from(([0, 0, 0, 0], port)))
}

/// `SESSION_STORE`. A store URL may carry a password: no message shows the value itself.
fn store_config(store: &str) -> Result<StoreConfig, ConfigError> {
    let invalid = |problem: String| invalid("SESSION_STORE", problem);
    if store == "memory" {
        return Ok(StoreConfig::Memory);
    }
    if store.starts_with("redis://") || store.starts_with("rediss://") {
        let url = Url::parse(store).map_err(|e| {
            invalid(format!(
                "the Redis URL does not parse ({e}); its text is not shown"
            ))
        })?;
        if url.host().is_none() {
            return Err(invalid("the Redis URL has no host".into()));
        }
        return Ok(StoreConfig::Redis(store.to_owned()));
    }
    match store.strip_prefix("sqlite://") {
        Some(path) if !path.is_empty() => Ok(StoreConfig::Sqlite(path.into())),
        _ => Err(invalid(
            "the value is not supported (its text is not shown: it may hold a password); use memory, sqlite://PATH, redis://HOST:PORT[/DB] or rediss://…".into(),
        )),
    }
}

/// `RUST_LOG`, checked as tracing's `EnvFilter` parses it.
fn log_filter(filter: String) -> Result<String, ConfigError> {
    match tracing_subscriber::EnvFilter::builder().parse(&filter) {
        Ok(_) => Ok(filter),
        Err(e) => Err(invalid(
            "RUST_LOG",
            format!("{filter:?} is not a log filter ({e})"),
        )),
    }
}

/// The entries of a comma-separated list, trimmed, empty ones left out.
fn list(raw: Option<&str>) -> impl Iterator<Item = &str> {
    let entries = raw.unwrap_or_default().split(',').map(str::trim);
    entries.filter(|entry| !entry.is_empty())
}

fn socket_addr(key: &'static str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.parse().map_err(|_| {
        invalid(
            key,
            format!("{raw:?} is not an address like 127.0.0.1:10060"),
        )
    })
}

/// The default redirect URI's port is the listen port (not the other way round: an explicit
/// `WEBEX_REDIRECT_URI` may be a proxy's public https URL, on another port).
fn follow_port(url: &mut Url, port: u16) {
    // Cannot fail on an http:// URL with a host (the default); were it to, the URL keeps its port.
    let _ = url.set_port(Some(port));
}

/// A positive whole number under `key` (the table gives each a default).
fn positive(get: &impl Fn(&str) -> Option<String>, key: &'static str) -> Result<u64, ConfigError> {
    let raw = get(key).unwrap_or_default();
    raw.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(key, format!("{raw:?} is not a positive whole number")))
}

/// A positive count under `key` that fits a `usize`.
fn count(get: &impl Fn(&str) -> Option<String>, key: &'static str) -> Result<usize, ConfigError> {
    usize::try_from(positive(get, key)?).map_err(|_| invalid(key, "is too large"))
}

/// `host[:port]` of a URL, as a browser sends it in `Host` (the port only when not the default).
pub fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn http_url(key: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| invalid(key, format!("{raw:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            key,
            format!("{raw:?} must be an http:// or https:// URL with a host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(key, "must not carry a user name or password"));
    }
    Ok(url)
}

fn scope_list(
    get: &impl Fn(&str) -> Option<String>,
    key: &'static str,
) -> Result<String, ConfigError> {
    let raw = get(key).unwrap_or_default();
    let scopes: Vec<&str> = raw.split_whitespace().collect();
    if let Some(bad) = scopes.iter().find(|s| {
        !s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        return Err(invalid(key, format!("{bad:?} is not a valid scope")));
    }
    Ok(scopes.join(" "))
}

mod oidc;
pub mod settings;
#[cfg(test)]
mod tests;
