//! `App`: binds the listener, starts the fake Webex in demo mode, builds the router and its
//! layers, and serves until shutdown.

use crate::config::{Config, Mode, SessionStore as StoreConfig};
use crate::device_flows::DeviceFlows;
use crate::fake_webex::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, FakeConfig, FakeWebex};
use crate::secret::Secret;
use crate::security;
use crate::state::{AppState, Shared};
use crate::store::{self, FlowStore, LEASE_RENEW};
use crate::tokens::RefreshLocks;
use crate::webex::{Credentials, WebexClient};
use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::from_fn_with_state;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{CachingSessionStore, Expiry, SessionManagerLayer, SessionStore};
use tower_sessions_moka_store::MokaStore;
use tower_sessions_redis_store::RedisStore;
use tower_sessions_sqlx_store::SqliteStore;
use tracing::Level;

/// A session nobody used for this long is gone (see `tokens::TOUCH_EVERY_SECS`).
pub const SESSION_INACTIVITY: time::Duration = time::Duration::days(30);
/// The in-memory store keeps at most this many sessions (least used go first), so a flood of
/// `/login` requests cannot grow memory without bound.
const MAX_MEMORY_SESSIONS: u64 = 100_000;
/// Form posts here are tiny; anything bigger is refused.
const MAX_BODY_BYTES: usize = 16 * 1024;

pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    fake: Option<FakeWebex>,
    sessions: Sessions,
}

/// The session store behind `SESSION_STORE`.
enum Sessions {
    /// Moka evicts each session at its own expiry date and caps the count; tower-sessions'
    /// MemoryStore never deletes expired sessions.
    Memory(MokaStore),
    /// A memory cache in front of the file; expired rows are deleted by the store's own task,
    /// started by `run_until`.
    Sqlite {
        cached: CachingSessionStore<MokaStore, SqliteStore>,
        sqlite: SqliteStore,
    },
    /// Each session is a key that expires with the session.
    Redis(RedisStore<fred::prelude::Pool>),
}

impl App {
    /// Binds `LISTEN_ADDR` and builds the app.
    pub async fn build(config: Config) -> io::Result<Self> {
        let listener = TcpListener::bind(config.listen_addr).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("LISTEN_ADDR: cannot bind {}: {e}", config.listen_addr),
            )
        })?;
        Self::with_listener(config, listener).await
    }

    /// Builds the app on a listener the caller bound (tests bind `127.0.0.1:0`).
    pub async fn with_listener(config: Config, listener: TcpListener) -> io::Result<Self> {
        let (api_base, creds, fake) = match &config.mode {
            Mode::Live {
                client_id,
                client_secret,
            } => (
                config.api_base.clone(),
                Credentials {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                },
                None,
            ),
            Mode::Demo => {
                let fake = FakeWebex::spawn(FakeConfig {
                    redirect_uris: vec![config.redirect_uri.to_string()],
                    ..FakeConfig::default()
                })
                .await?;
                let base = url::Url::parse(&fake.base_url()).map_err(io::Error::other)?;
                let creds = Credentials {
                    client_id: DEMO_CLIENT_ID.to_owned(),
                    client_secret: Secret::new(DEMO_CLIENT_SECRET),
                };
                (base, creds, Some(fake))
            }
        };
        let webex = WebexClient::new(
            api_base,
            creds,
            config.connect_timeout,
            config.request_timeout,
        )
        .map_err(io::Error::other)?;
        // The store first: one that cannot be opened stops start-up with a line naming the key.
        let (flow_store, sessions) = match &config.session_store {
            StoreConfig::Memory => (
                FlowStore::memory(),
                Sessions::Memory(MokaStore::new(Some(MAX_MEMORY_SESSIONS))),
            ),
            StoreConfig::Sqlite(path) => {
                let pool = store::open_sqlite(path)
                    .await
                    .map_err(|e| io::Error::other(format!("SESSION_STORE: {e}")))?;
                let sqlite = SqliteStore::new(pool.clone());
                sqlite
                    .migrate()
                    .await
                    .map_err(|e| io::Error::other(format!("SESSION_STORE: {e}")))?;
                // Reads come from memory; writes go to both. One instance owns the file, so
                // the cache cannot go stale.
                let cached = CachingSessionStore::new(
                    MokaStore::new(Some(MAX_MEMORY_SESSIONS)),
                    sqlite.clone(),
                );
                (FlowStore::Sqlite(pool), Sessions::Sqlite { cached, sqlite })
            }
            StoreConfig::Redis(url) => {
                let pool = store::open_redis(url)
                    .await
                    .map_err(|e| io::Error::other(format!("SESSION_STORE: {e}")))?;
                (
                    FlowStore::Redis(pool.clone()),
                    Sessions::Redis(RedisStore::new(pool)),
                )
            }
        };
        let flows = DeviceFlows::new(flow_store.clone(), webex.clone(), config.max_pending_flows);
        // The fake serves the demo avatar from its own origin.
        let avatar_origins: Vec<String> = fake.iter().map(FakeWebex::origin).collect();
        let csp = HeaderValue::from_str(&security::content_security_policy(&avatar_origins))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
        let state = AppState::new(Shared {
            csp,
            store: flow_store,
            config: Arc::new(config),
            webex,
            flows,
            refresh_locks: RefreshLocks::default(),
        });
        let router = match &sessions {
            Sessions::Memory(store) => router(state.clone(), store.clone()),
            Sessions::Sqlite { cached, .. } => router(state.clone(), cached.clone()),
            Sessions::Redis(store) => router(state.clone(), store.clone()),
        };
        Ok(Self {
            listener,
            router,
            state,
            fake,
            sessions,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The embedded fake Webex, in demo mode.
    pub fn fake(&self) -> Option<&FakeWebex> {
        self.fake.as_ref()
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish and stops this
    /// instance's device pollers (their flows stay in the store for the next start).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let flows = self.state.flows.clone();
        let housekeeping = tokio::spawn(async move {
            // Keep this instance's leases, adopt the flows nobody polls (all of them, right
            // after a restart), and forget flows that expired long ago.
            let mut tick = tokio::time::interval(LEASE_RENEW);
            for round in 0u64.. {
                tick.tick().await;
                if let Err(err) = flows.renew_leases().await {
                    tracing::warn!(%err, "cannot renew the device flows' leases");
                }
                if let Err(err) = flows.adopt_orphans().await {
                    tracing::warn!(%err, "cannot look for orphaned device flows");
                }
                if round % 20 == 0 {
                    match flows.purge().await {
                        Ok(0) => {}
                        Ok(purged) => tracing::debug!(purged, "forgot expired device flows"),
                        Err(err) => tracing::warn!(%err, "cannot purge expired device flows"),
                    }
                }
            }
        });
        let deletion = match &self.sessions {
            Sessions::Sqlite { sqlite, .. } => Some(tokio::spawn(
                sqlite
                    .clone()
                    .continuously_delete_expired(Duration::from_secs(60)),
            )),
            Sessions::Memory(_) | Sessions::Redis(_) => None,
        };
        let flows = self.state.flows.clone();
        let result = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        housekeeping.abort();
        if let Some(task) = deletion {
            task.abort();
        }
        flows.stop_pollers();
        result
    }
}

/// The router with its layers. The order matters (the last `.layer` is the outermost):
/// trace → guard (query limit, cross-site check, error pages, security headers) → body limit →
/// sessions → panic catcher → routes, so that error pages are rendered for everything inside,
/// including a failed session save or a panic, logged inside the request's span, and carry
/// the headers.
pub fn router<S: SessionStore + Clone>(state: AppState, store: S) -> Router {
    let sessions = SessionManagerLayer::new(store)
        .with_name("webex_oauth_session")
        // Lax, not Strict: the browser must send the cookie on the redirect back from Webex,
        // or the callback could never find its state (tower-sessions defaults to Strict).
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_secure(state.config.secure_cookies())
        .with_expiry(Expiry::OnInactivity(SESSION_INACTIVITY));
    crate::routes::router(state.clone())
        .layer(CatchPanicLayer::new())
        .layer(sessions)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(from_fn_with_state(state, security::guard))
        .layer(
            TraceLayer::new_for_http()
                // The path only: the query of /oauth carries the authorization code.
                .make_span_with(|request: &Request| {
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
