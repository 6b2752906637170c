//! The gateway: catalogue, session and cart, checkout, the shopper's order pages (reachable by
//! the one rule of [`access`]), and "find my orders" sign-in by e-mailed link ([`sign_in`]).
//!
//! [`Application::build`] wires the routes over PostgreSQL, Redis and SQS; `main.rs` only loads
//! settings and runs it until a shutdown signal. Handlers parse their input into domain types,
//! call one function of [`checkout`] or a repository, and map the result; every error is an
//! [`error::ApiError`]. `GET /metrics` serves the Prometheus series of [`metrics`]. Open order
//! pages follow their order live through one PostgreSQL listener per process ([`streams`]).

pub mod access;
mod cart;
mod catalogue;
pub mod checkout;
pub mod client;
pub mod error;
mod json;
pub mod limits;
pub mod metrics;
pub mod partner;
mod routes;
pub mod session;
pub mod sign_in;
pub mod signature;
pub mod streams;
pub mod stripe;
pub mod trace;
mod webhooks;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use secrecy::ExposeSecret;
use settings::Settings;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// PostgreSQL.
    pub pool: PgPool,
    /// Redis: sessions, carts, catalogue cache.
    pub redis: redis::aio::ConnectionManager,
    /// SQS, for the readiness check.
    pub sqs: aws_sdk_sqs::Client,
    /// The loaded settings.
    pub settings: Arc<Settings>,
    /// Shipping fees and tax rates by destination: every quote, the cart's and the checkout's.
    pub prices: Arc<domain::PriceRules>,
    /// Prefix of every Redis key.
    pub key_prefix: Arc<str>,
    /// Cancelled when the server shuts down: long-lived responses (event streams) end on it.
    pub shutdown: CancellationToken,
    /// When the orders-by-status gauge was last counted (see [`metrics`]).
    pub orders_counted_at: Arc<tokio::sync::Mutex<Option<std::time::Instant>>>,
    /// The in-process rate limits per client and per session ([`limits`]).
    pub limits: Arc<limits::Limits>,
    /// The open live order streams, fed by the process's one order change listener.
    pub streams: streams::Streams,
    /// Reads PaymentIntents for the order page's 3-D Secure step ([`stripe::action`]).
    pub stripe: stripe::intents::StripeReader,
}

impl AppState {
    /// The key of order and sign-in links (`shop.link_secret`, checked at start-up).
    pub fn link_key(&self) -> &[u8] {
        self.settings.shop.link_secret.expose_secret().as_bytes()
    }
}

/// A bound, not yet serving, web-server.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// The operations listener (`/metrics`, `/readyz`, `/healthz`), when one is configured.
    ops: Option<(TcpListener, axum::Router)>,
    shutdown: CancellationToken,
    /// Cleaned periodically while serving ([`limits::clean_periodically`]).
    limits: Arc<limits::Limits>,
    /// The order change listener, run with the server ([`streams`]).
    changes: streams::Listener,
    streams: streams::Streams,
}

impl Application {
    /// Connects to the services and binds the listener (`http.addr`; port 0 picks a free one).
    ///
    /// # Errors
    /// When the link secret is missing or too short, PostgreSQL or Redis cannot be reached, or
    /// the address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings
            .shop
            .link_key()
            .context("Order and sign-in links cannot be signed")?;
        telemetry::metrics::install();
        metrics::describe();
        streams::describe();
        let pool = settings
            .database
            .connect()
            .await
            .context("Failed to connect to PostgreSQL")?;
        let redis = redis::Client::open(settings.redis.url.expose_secret())
            .context("Invalid Redis URL")?
            .get_connection_manager()
            .await
            .context("Failed to connect to Redis")?;
        let changes = streams::Listener::connect(&settings.database)
            .await
            .context("Failed to listen for order changes")?;
        let streams = streams::Streams::new(
            settings.streams.clone(),
            settings.database.max_connections as usize / 4,
        );
        let sqs = sqs_transport::connect(&settings.sqs, Duration::from_secs(2)).await;
        let listener = TcpListener::bind(&settings.http.addr)
            .await
            .with_context(|| format!("Failed to bind {}", settings.http.addr))?;
        let prices = settings
            .invoice
            .price_rules()
            .context("Invalid price rules")?;
        let state = AppState {
            pool,
            prices: Arc::new(prices),
            redis,
            sqs,
            key_prefix: settings.redis.key_prefix.as_str().into(),
            shutdown: CancellationToken::new(),
            orders_counted_at: Arc::default(),
            limits: Arc::new(limits::Limits::new(&settings)),
            stripe: stripe::intents::StripeReader::new(&settings.stripe)
                .context("Failed to build the Stripe client")?,
            settings: Arc::new(settings),
            streams: streams.clone(),
        };
        // As for the relay and the workers, metrics are not worth dying for: a taken port is
        // logged and the shop runs on without its operations listener.
        let ops = match state.settings.metrics.listen_addr("web-server") {
            Some(addr) => match TcpListener::bind(&addr).await {
                Ok(ops_listener) => Some((ops_listener, routes::ops_router(state.clone()))),
                Err(error) => {
                    tracing::error!(addr, error = %error, "could not bind the operations port: running without /metrics and /readyz");
                    None
                }
            },
            None => None,
        };
        Ok(Application {
            listener,
            ops,
            shutdown: state.shutdown.clone(),
            limits: state.limits.clone(),
            router: routes::router(state),
            changes,
            streams,
        })
    }

    /// The address of the operations listener (`/metrics`, `/readyz`), if there is one.
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn ops_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.ops
            .as_ref()
            .map(|(listener, _)| listener.local_addr())
            .transpose()
    }

    /// The open live order streams (to watch their number).
    pub fn streams(&self) -> streams::Streams {
        self.streams.clone()
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves; requests in flight finish first.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let token = self.shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            token.cancel();
        });
        tokio::spawn(limits::clean_periodically(
            self.limits,
            self.shutdown.clone(),
        ));
        tokio::spawn(self.changes.run(self.streams, self.shutdown.clone()));
        if let Some((listener, router)) = self.ops {
            let stop = self.shutdown.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(error) = served {
                    tracing::error!(error = %error, "the operations listener failed");
                }
            });
        }
        // The peer address is the client of the per-client rate limits (see [`client`]).
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(self.shutdown.cancelled_owned())
            .await
    }
}
