//! The settings and the command line: [`SETTINGS`] lists every key the server reads with its
//! flag, default and help; `--help` shows them all with their environment variables, and
//! `--version`. The values go to `Config::from_lookup` unchanged (so every message names the key),
//! which takes the applied defaults from the same table (a default is written once); tests check
//! that `.env.example` and `Config` use no key outside it.

use clap::{Arg, ArgMatches, Command};

/// `RUST_LOG`'s default.
pub const DEFAULT_LOG_FILTER: &str = "webex_oauth_axum=info,warn";

/// One setting: its environment variable, flag, default (as `--help` shows it) and what it does.
pub struct Setting {
    pub key: &'static str,
    pub flag: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    /// Whether `default` is the value used when unset (else it says what happens then).
    pub applied: bool,
}

type Text = &'static str;

/// A setting whose `default` is the value used when it is unset.
const fn applied(key: Text, flag: Text, default: Text, help: Text) -> Setting {
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
        ..applied(key, flag, default, help)
    }
}

/// Every setting the server reads, in the order of README's configuration table.
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    note("WEBEX_CLIENT_ID", "webex-client-id", "unset: demo mode on an embedded fake Webex", "Integration client id"),
    note("WEBEX_CLIENT_SECRET", "webex-client-secret", "required with WEBEX_CLIENT_ID", "Integration client secret (prefer the environment: flags show in `ps`)"),
    note("WEBEX_REDIRECT_URI", "webex-redirect-uri", "http://localhost:<listen port>/oauth", "Redirect URI registered with Webex; https makes the session cookie Secure"),
    applied("WEBEX_SCOPES", "webex-scopes", "openid email profile spark:all", "Scopes of the authorization-code flow (space-separated)"),
    applied("WEBEX_DEVICE_SCOPES", "webex-device-scopes", "openid email profile meeting:recordings_read spark:all spark:kms", "Scopes of the device flow (space-separated)"),
    applied("WEBEX_API_BASE", "webex-api-base", "https://webexapis.com/v1", "Base of every Webex URL"),
    note("WEBEX_OIDC_ISSUERS", "webex-oidc-issuers", "unset: the discovery issuer and Webex's idbroker hosts only", "id_token issuers also accepted (comma-separated https URLs, each matched exactly)"),
    note("LISTEN_ADDR", "listen-addr", "127.0.0.1:10060, or 0.0.0.0:$PORT when PORT is set", "Address to bind"),
    note("PORT", "port", "unset", "Port to bind on every interface when LISTEN_ADDR is unset (what hosting platforms set)"),
    applied("SESSION_STORE", "session-store", "sqlite://data/sessions.db", "Where sessions and device flows live: memory, sqlite://PATH or redis://HOST:PORT[/DB]"),
    applied("MAX_PENDING_DEVICE_FLOWS", "max-pending-device-flows", "10000", "Pending device sign-ins accepted; past it, Sign-In answers 503"),
    applied("MAX_PENDING_FLOWS_PER_CLIENT", "max-pending-flows-per-client", "5", "Pending device sign-ins per client address (IPv6: per /64); past it, Sign-In answers 429"),
    applied("HEADER_READ_TIMEOUT_SECS", "header-read-timeout-secs", "10", "Seconds a client has to send its request headers"),
    applied("MAX_CONNECTIONS", "max-connections", "10000", "Connections served at once; more wait in the backlog"),
    applied("MAX_CONNECTIONS_PER_CLIENT", "max-connections-per-client", "64", "Connections one peer address (IPv6: one /64) may hold; more are closed at once (off with CLIENT_IP_HEADER)"),
    applied("RATE_LIMIT_PER_MINUTE", "rate-limit-per-minute", "20", "GET (or HEAD) /login and POST /sign-in per client address per minute"),
    note("CLIENT_IP_HEADER", "client-ip-header", "unset: the peer address", "Header whose last hop is the client address (behind your proxy)"),
    applied("ABANDONED_FLOW_SECS", "abandoned-flow-secs", "60", "A device sign-in whose page nobody watched this long stops"),
    note("ALLOWED_HOSTS", "allowed-hosts", "unset", "Host values accepted besides the redirect URI's and the listen address (comma-separated)"),
    note("ENCRYPTION_KEYS", "encryption-keys", "unset", "Keys that encrypt tokens in the store: comma-separated base64 of 32 bytes; the first encrypts"),
    note("METRICS_ADDR", "metrics-addr", "unset: no metrics", "Address of the Prometheus listener (GET /metrics there only)"),
    applied("LOG_FORMAT", "log-format", "text", "Log lines as text or json (one object a line)"),
    applied("RUST_LOG", "rust-log", DEFAULT_LOG_FILTER, "Log filter (tracing EnvFilter syntax)"),
];

/// The value `key` takes when unset, if the table gives one.
pub(crate) fn default_of(key: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .find(|s| s.key == key && s.applied)
        .map(|s| s.default)
}

/// The command line of the server binary.
pub fn command() -> Command {
    let args = SETTINGS.iter().map(|s| {
        Arg::new(s.key)
            .long(s.flag)
            .env(s.key)
            // Help must never print a secret that happens to be in the environment.
            .hide_env_values(true)
            .value_name("VALUE")
            .help(format!("{} [default: {}]", s.help, s.default))
    });
    Command::new("webex-oauth-axum")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Webex's OAuth samples (authorization code + PKCE, device grant) as one Axum server; \
             without WEBEX_CLIENT_ID it runs in demo mode on an embedded fake Webex.",
        )
        .after_help(
            "Every setting is read from its environment variable (or .env in the working \
             directory); a flag overrides it. A bad value stops start-up with a line naming the key.",
        )
        .args(args)
}

/// The value of `key` in parsed arguments (flag, else environment), for `Config::from_lookup`.
pub fn value(matches: &ArgMatches, key: &str) -> Option<String> {
    matches.try_get_one::<String>(key).ok().flatten().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_flag_overrides_the_environment_and_reaches_the_config() {
        let matches = command()
            .try_get_matches_from(["webex-oauth-axum", "--listen-addr", "127.0.0.1:18090"])
            .unwrap();
        let config = crate::Config::from_lookup(|key| value(&matches, key)).unwrap();
        assert_eq!(config.listen_addr.port(), 18090);
        assert_eq!(config.redirect_uri.as_str(), "http://localhost:18090/oauth");
    }

    /// The keys `from_lookup` asks for, in demo and in live mode, are exactly the ones `--help`
    /// lists (and `.env.example` is checked against the same list in tests/cli.rs).
    #[test]
    fn every_key_read_is_a_listed_setting() {
        let asked = std::cell::RefCell::new(BTreeSet::new());
        for live in [false, true] {
            crate::Config::from_lookup(|key| {
                asked.borrow_mut().insert(key.to_owned());
                (live && key.starts_with("WEBEX_CLIENT_")).then(|| "x".to_owned())
            })
            .unwrap();
        }
        let listed: BTreeSet<String> = SETTINGS.iter().map(|s| s.key.to_owned()).collect();
        assert_eq!(asked.into_inner(), listed);
    }
}
