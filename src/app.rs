//! [`App`]: the wiring, as a list: start the fake Webex (demo mode), open the store, build the
//! state, build the router, serve until shutdown.

use crate::config::{Config, Mode};
use crate::device_flow::DeviceFlows;
use crate::identity::{Verifier, wants_openid};
use crate::secret::Secret;
use crate::serve;
use crate::state::{AppState, SignIn};
use crate::store;
use crate::telemetry::{self, PrometheusHandle};
#[cfg(feature = "test-support")]
use crate::test_support::Probe;
use crate::web;
use crate::webex::{Credentials, WebexClient};
use axum::Router;
use axum::http::HeaderValue;
use fake_webex::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, FakeConfig, FakeWebex};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use url::Host;

/// At shutdown, the store gets this long to release this instance's device-flow leases.
const RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A built app, bound to its listener, ready to serve.
pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    fake: Option<FakeWebex>,
    limiter: web::ClientLimiter,
    /// The Prometheus listener (`METRICS_ADDR`) and what it renders.
    metrics: Option<(TcpListener, PrometheusHandle)>,
}

impl App {
    /// Binds `LISTEN_ADDR` and builds the app.
    pub async fn build(config: Config) -> io::Result<Self> {
        let addr = config.listen_addr;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            let problem = format!("LISTEN_ADDR (or PORT): cannot bind {addr}: {e}");
            io::Error::new(e.kind(), problem)
        })?;
        Self::with_listener(config, listener).await
    }

    /// Builds the app on a listener the caller bound (tests bind `127.0.0.1:0`).
    pub async fn with_listener(mut config: Config, listener: TcpListener) -> io::Result<Self> {
        config.bound_to(listener.local_addr()?);
        // 1. Webex: the real one, or the fake on its own loopback port (demo mode).
        let (webex, fake) = webex_client(&config).await?;
        // 2. The store: one that cannot be opened stops start-up with a line naming the key.
        let store = store::open(&config.session_store, &config.encryption_keys)
            .await
            .map_err(|e| io::Error::other(format!("SESSION_STORE: {e}")))?;
        // 3. The state every request shares; one id_token verifier (one key cache) for both flows.
        let identity = Verifier::new(webex.clone(), config.oidc_issuers.clone());
        let flows = DeviceFlows::new(
            store.flows,
            webex.clone(),
            config.max_pending_flows,
            config.max_pending_flows_per_client,
            config.abandoned_flow,
            wants_openid(&config.device_scopes).then(|| identity.clone()),
        );
        // The fake serves the demo avatar from its own origin.
        let avatar_origins: Vec<String> = fake.iter().map(FakeWebex::origin).collect();
        let csp = HeaderValue::from_str(&web::content_security_policy(&avatar_origins))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
        let state = AppState::new(
            Arc::new(config),
            SignIn {
                webex,
                flows,
                identity,
            },
            store.session_locks,
            store.sessions,
            csp,
        );
        // 4. The router and its layers.
        let limiter = web::ClientLimiter::new(
            state.config().rate_limit_per_minute,
            state.config().client_ip_header.clone(),
        );
        let router = web::router(state.clone(), state.sessions().clone(), limiter.clone());
        // 5. The metrics listener, when asked for: never on the public one.
        let metrics = match state.config().metrics_addr {
            None => None,
            Some(addr) => Some(metrics_listener(addr).await?),
        };
        Ok(Self {
            listener,
            router,
            state,
            fake,
            limiter,
            metrics,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served (`METRICS_ADDR`, bound); `None` when unset.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn config(&self) -> &Config {
        self.state.config()
    }

    /// The embedded fake Webex, in demo mode.
    pub fn fake(&self) -> Option<&FakeWebex> {
        self.fake.as_ref()
    }

    /// A read-only view into the running app, for tests and the benchmark.
    #[cfg(feature = "test-support")]
    pub fn probe(&self) -> Probe {
        Probe(self.state.clone())
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes; then drains, stops this instance's device pollers and
    /// releases their leases, so another instance takes the flows over without waiting for them.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let flows = self.state.flows().clone();
        let housekeeping = tokio::spawn(flows.clone().housekeeping());
        let limiter = self.limiter.clone();
        let mut background = tokio::task::JoinSet::new();
        background.spawn(self.state.sessions().clone().sweep_expired());
        if let Some((listener, handle)) = self.metrics {
            background.spawn(web::serve_metrics(listener, handle, self.state.clone()));
        }
        background.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                limiter.forget_idle_clients();
            }
        });
        let (config, drain) = (self.state.config(), serve::DRAIN_TIMEOUT);
        serve::serve(self.listener, self.router, config, drain, shutdown).await;
        // Drained: no request can start a flow now. Housekeeping goes first (it would renew
        // the leases), then the pollers, then the leases themselves.
        housekeeping.abort();
        let _ = housekeeping.await;
        background.shutdown().await;
        // Bounded, so a store that hangs cannot hold up the exit; failing is not fatal: the
        // leases lapse by themselves within `store::LEASE`.
        match tokio::time::timeout(RELEASE_TIMEOUT, flows.stop()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(released)) => tracing::info!(released, "released the device flows' leases"),
            Ok(Err(err)) => tracing::warn!(%err, "cannot release the device flows' leases"),
            Err(_) => tracing::warn!("the store took too long to release the device flows' leases"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Binds `METRICS_ADDR` and installs the process's Prometheus recorder.
async fn metrics_listener(addr: SocketAddr) -> io::Result<(TcpListener, PrometheusHandle)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("METRICS_ADDR: cannot bind {addr}: {e}")))?;
    let handle = telemetry::prometheus()
        .map_err(|e| io::Error::other(format!("METRICS_ADDR: cannot record metrics: {e}")))?;
    Ok((listener, handle))
}

/// The Webex client for the configured mode; in demo mode, the fake it talks to.
async fn webex_client(config: &Config) -> io::Result<(WebexClient, Option<FakeWebex>)> {
    let (api_base, client_id, client_secret, fake) = match &config.mode {
        Mode::Live {
            client_id,
            client_secret,
        } => (
            config.api_base.clone(),
            client_id.as_str(),
            client_secret.clone(),
            None,
        ),
        Mode::Demo => {
            // On the app's interface, so a phone that reaches the app reaches the fake too.
            let bind = config.listen_addr.ip();
            let fake_config = FakeConfig {
                redirect_uris: vec![config.redirect_uri.to_string()],
                public_host: demo_link_host(bind, &config.redirect_uri),
                ..FakeConfig::default()
            };
            let fake =
                FakeWebex::spawn_on(TcpListener::bind((bind, 0)).await?, fake_config).await?;
            if !bind.is_loopback() {
                tracing::warn!(
                    origin = %fake.origin(),
                    "demo mode on a network interface: the fake Webex's pages are reachable from the network"
                );
            }
            let base = url::Url::parse(&fake.base_url()).map_err(io::Error::other)?;
            let secret = Secret::new(DEMO_CLIENT_SECRET);
            (base, DEMO_CLIENT_ID, secret, Some(fake))
        }
    };
    let creds = Credentials {
        client_id: client_id.to_owned(),
        client_secret,
    };
    let (connect, request) = (config.connect_timeout, config.request_timeout);
    let webex = WebexClient::new(api_base, creds, connect, request).map_err(io::Error::other)?;
    Ok((webex, fake))
}

/// The host the demo fake puts in its links (so the QR code works on a phone that reaches the
/// app): the redirect URI's, when the fake (bound to `bind`) answers there; else `None`.
fn demo_link_host(bind: IpAddr, redirect_uri: &url::Url) -> Option<String> {
    let answers =
        |ip: IpAddr| bind == ip || bind.is_unspecified() && bind.is_ipv4() == ip.is_ipv4();
    match redirect_uri.host()? {
        Host::Domain(name) if bind.is_unspecified() && name != "localhost" => Some(name.to_owned()),
        Host::Ipv4(ip) if answers(ip.into()) => Some(ip.to_string()),
        Host::Ipv6(ip) if answers(ip.into()) => Some(format!("[{ip}]")),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::demo_link_host;

    #[test]
    fn the_demo_fake_links_to_the_redirect_host_only_where_it_answers() {
        for (bind, redirect, link) in [
            // A LAN address the app is bound to, or any name/address with a wildcard bind.
            ("127.0.0.2", "http://127.0.0.2:1/oauth", Some("127.0.0.2")),
            ("0.0.0.0", "http://192.168.1.5:1/oauth", Some("192.168.1.5")),
            ("0.0.0.0", "http://pc.local:1/oauth", Some("pc.local")),
            ("::", "http://[fe80::1]:1/oauth", Some("[fe80::1]")),
            // Elsewhere the fake would not answer: its bound address.
            ("127.0.0.1", "http://192.168.1.5:1/oauth", None),
            ("0.0.0.0", "http://localhost:1/oauth", None),
            ("127.0.0.1", "http://pc.local:1/oauth", None),
            ("0.0.0.0", "http://[::1]:1/oauth", None),
        ] {
            let host = demo_link_host(bind.parse().unwrap(), &url::Url::parse(redirect).unwrap());
            assert_eq!(host.as_deref(), link, "{bind} {redirect}");
        }
    }
}
