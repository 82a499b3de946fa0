//! The settings table: every key the server reads, its flag, its default and what it does.
//! `Config::from_lookup` takes the applied defaults from it and `crate::cli` builds `--help` from
//! it, so a default is written once.

use super::DEFAULT_LOG_FILTER;

/// One setting: its environment variable, its command-line flag, its default (as `--help`
/// shows it) and what it does.
pub struct Setting {
    pub key: &'static str,
    pub flag: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    /// Whether `default` is the value used when the key is unset (else it only describes what
    /// happens then).
    pub applied: bool,
}

type Text = &'static str;

/// A setting whose `default` is the value used when it is unset.
const fn value(key: Text, flag: Text, default: Text, help: Text) -> Setting {
    Setting {
        key,
        flag,
        default,
        help,
        applied: true,
    }
}

/// A setting whose `default` says what happens when it is unset.
const fn note(key: Text, flag: Text, default: Text, help: Text) -> Setting {
    Setting {
        applied: false,
        ..value(key, flag, default, help)
    }
}

/// Every setting the server reads, in the order of README's configuration table.
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    note("WEBEX_CLIENT_ID", "webex-client-id", "unset: demo mode on an embedded fake Webex", "Integration client id"),
    note("WEBEX_CLIENT_SECRET", "webex-client-secret", "required with WEBEX_CLIENT_ID", "Integration client secret (prefer the environment: flags show in `ps`)"),
    note("WEBEX_REDIRECT_URI", "webex-redirect-uri", "http://localhost:<listen port>/oauth", "Redirect URI registered with Webex; https makes the session cookie Secure"),
    value("WEBEX_SCOPES", "webex-scopes", "openid email profile spark:all", "Scopes of the authorization-code flow (space-separated)"),
    value("WEBEX_DEVICE_SCOPES", "webex-device-scopes", "openid email profile meeting:recordings_read spark:all spark:kms", "Scopes of the device flow (space-separated)"),
    value("WEBEX_API_BASE", "webex-api-base", "https://webexapis.com/v1", "Base of every Webex URL"),
    note("WEBEX_OIDC_ISSUERS", "webex-oidc-issuers", "unset: the discovery issuer and Webex's idbroker hosts only", "id_token issuers also accepted (comma-separated https URLs, each matched exactly)"),
    note("LISTEN_ADDR", "listen-addr", "127.0.0.1:10060, or 0.0.0.0:$PORT when PORT is set", "Address to bind"),
    note("PORT", "port", "unset", "Port to bind on every interface when LISTEN_ADDR is unset (what hosting platforms set)"),
    value("SESSION_STORE", "session-store", "sqlite://data/sessions.db", "Where sessions and device flows live: memory, sqlite://PATH or redis://HOST:PORT[/DB]"),
    value("MAX_PENDING_DEVICE_FLOWS", "max-pending-device-flows", "10000", "Pending device sign-ins accepted; past it, Sign-In answers 503"),
    value("MAX_PENDING_FLOWS_PER_CLIENT", "max-pending-flows-per-client", "5", "Pending device sign-ins per client address (IPv6: per /64); past it, Sign-In answers 429"),
    value("HEADER_READ_TIMEOUT_SECS", "header-read-timeout-secs", "10", "Seconds a client has to send its request headers"),
    value("MAX_CONNECTIONS", "max-connections", "10000", "Connections served at once; more wait in the backlog"),
    value("MAX_CONNECTIONS_PER_CLIENT", "max-connections-per-client", "64", "Connections one peer address (IPv6: one /64) may hold; more are closed at once (off with CLIENT_IP_HEADER)"),
    value("RATE_LIMIT_PER_MINUTE", "rate-limit-per-minute", "20", "GET (or HEAD) /login and POST /sign-in per client address per minute"),
    note("CLIENT_IP_HEADER", "client-ip-header", "unset: the peer address", "Header whose last hop is the client address (behind your proxy)"),
    value("ABANDONED_FLOW_SECS", "abandoned-flow-secs", "60", "A device sign-in whose page nobody watched this long stops"),
    note("ALLOWED_HOSTS", "allowed-hosts", "unset", "Host values accepted besides the redirect URI's and the listen address (comma-separated)"),
    note("ENCRYPTION_KEYS", "encryption-keys", "unset", "Keys that encrypt tokens in the store: comma-separated base64 of 32 bytes; the first encrypts"),
    note("METRICS_ADDR", "metrics-addr", "unset: no metrics", "Address of the Prometheus listener (GET /metrics there only)"),
    value("LOG_FORMAT", "log-format", "text", "Log lines as text or json (one object a line)"),
    value("RUST_LOG", "rust-log", DEFAULT_LOG_FILTER, "Log filter (tracing EnvFilter syntax)"),
];

/// The value `key` takes when unset, if the table gives one.
pub(super) fn default_of(key: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .find(|s| s.key == key && s.applied)
        .map(|s| s.default)
}
