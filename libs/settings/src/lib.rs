#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::{collections::BTreeMap, time::Duration};

use domain::{PriceRules, Rates, TaxRate};

use secrecy::SecretString;
use serde::Deserialize;

mod capacity;
mod profile;
mod stripe_keys;

pub use profile::{LOCAL_SECRETS, Process, Profile};
pub use stripe_keys::StripeMode;

/// The error type of this library.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A source could not be read or a value has the wrong type.
    #[error("configuration could not be loaded")]
    Load(#[from] config::ConfigError),
    /// A value is out of its allowed range.
    #[error("invalid setting `{key}`: {reason}")]
    Invalid {
        /// The setting, as `section.key`.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Under the `production` profile, a setting is missing, a documented local value or unsafe
    /// next to the others (see [`Settings::check_profile`]).
    #[error(
        "{setting} {reason} (APP__PROFILE=production; APP__PROFILE=local is for the local stack)"
    )]
    Unsafe {
        /// The environment variable, as `APP__SECTION__KEY`.
        setting: &'static str,
        /// What is wrong with it and what to set.
        reason: &'static str,
    },
}

/// Every setting of every process; each process reads the sections it needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Which rules the settings must pass at start-up (`APP__PROFILE`: `local` or, by default,
    /// `production`; see [`Settings::check_profile`]).
    #[serde(default)]
    pub profile: Profile,
    /// PostgreSQL.
    #[serde(default)]
    pub database: DatabaseSettings,
    /// Redis (sessions, carts, catalogue cache).
    #[serde(default)]
    pub redis: RedisSettings,
    /// SQS (LocalStack locally).
    #[serde(default)]
    pub sqs: SqsSettings,
    /// The web-server's HTTP listener.
    #[serde(default)]
    pub http: HttpSettings,
    /// The outbox relay.
    #[serde(default)]
    pub relay: RelaySettings,
    /// The SQS consumer loop every worker runs.
    #[serde(default)]
    pub worker: WorkerSettings,
    /// What the shop calls itself and where shoppers reach it (links in e-mails).
    #[serde(default)]
    pub shop: ShopSettings,
    /// Invoice contents: seller, tax, shipping fee.
    #[serde(default)]
    pub invoice: InvoiceSettings,
    /// The SMTP server e-mails go through.
    #[serde(default)]
    pub smtp: SmtpSettings,
    /// The shipping partner's API.
    #[serde(default)]
    pub shipping: ShippingSettings,
    /// Stripe (localstripe locally).
    #[serde(default)]
    pub stripe: StripeSettings,
    /// The Prometheus metrics port of the relay and the workers.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// The order lifecycle: expiry of unpaid orders, when an order counts as stuck.
    #[serde(default)]
    pub orders: OrdersSettings,
    /// The web-server's in-process rate limits per client and per session.
    #[serde(default)]
    pub limits: LimitSettings,
    /// The web-server's live order streams: how many may be open at once.
    #[serde(default)]
    pub streams: StreamSettings,
}

/// The web-server's rate limits (`APP__LIMITS__…`): each one lets `…_BURST` requests through at
/// once and then `…_PER_MINUTE` a minute, evenly spaced (a token bucket: GCRA). "Per client" is
/// per IP address (an IPv6 client per /64 network), as `http.trusted_proxies` tells it; "per
/// session" per session cookie.
///
/// The defaults are meant for a real shop: a household or an office sharing one address (NAT)
/// shopping at once is never refused in normal use, a script hammering one path is after a few
/// seconds. Every value must be at least 1; there is no switch to turn a limit off: a very high
/// value does that (the local stack, the tests and the benchmark set them so).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitSettings {
    /// Any shopper API request (catalogue, cart, orders, sign-in), per client: the backstop
    /// (`APP__LIMITS__API_PER_CLIENT_BURST`, default 300). A page of the shop makes a handful of
    /// requests; 300 at once covers dozens of shoppers behind one address opening pages together.
    pub api_per_client_burst: u32,
    /// … then this many a minute (`APP__LIMITS__API_PER_CLIENT_PER_MINUTE`, default 1200 =
    /// 20/s): a hundred shoppers behind one address browsing steadily, while a flood from one
    /// address is refused (and costs no Redis or PostgreSQL call).
    pub api_per_client_per_minute: u32,
    /// New sessions (a request without a valid session cookie), per client
    /// (`APP__LIMITS__NEW_SESSION_PER_CLIENT_BURST`, default 30). A browser makes one and keeps its
    /// cookie (its first page may make two or three at once); every session is a Redis key that
    /// lives 30 days, so a cookie-less script must not mint them at will.
    pub new_session_per_client_burst: u32,
    /// … then this many a minute (`APP__LIMITS__NEW_SESSION_PER_CLIENT_PER_MINUTE`, default 10:
    /// ten new visitors a minute behind one address, 600 an hour).
    pub new_session_per_client_per_minute: u32,
    /// Cart writes (`PUT`/`DELETE /api/cart/items/…`) per session
    /// (`APP__LIMITS__CART_WRITE_PER_SESSION_BURST`, default 20): a shopper clicking a quantity
    /// up quickly.
    pub cart_write_per_session_burst: u32,
    /// … then this many a minute (`APP__LIMITS__CART_WRITE_PER_SESSION_PER_MINUTE`, default 60,
    /// one a second: faster than anyone edits a cart for long).
    pub cart_write_per_session_per_minute: u32,
    /// Cart writes per client (`APP__LIMITS__CART_WRITE_PER_CLIENT_BURST`, default 100): the
    /// sessions behind one address together.
    pub cart_write_per_client_burst: u32,
    /// … then this many a minute (`APP__LIMITS__CART_WRITE_PER_CLIENT_PER_MINUTE`, default 300).
    pub cart_write_per_client_per_minute: u32,
    /// Checkouts (`POST /api/orders`, whatever their answer) per session
    /// (`APP__LIMITS__CHECKOUT_PER_SESSION_BURST`, default 10): a shopper correcting a form or
    /// trying another card several times.
    pub checkout_per_session_burst: u32,
    /// … then this many a minute (`APP__LIMITS__CHECKOUT_PER_SESSION_PER_MINUTE`, default 10).
    pub checkout_per_session_per_minute: u32,
    /// Checkouts per client (`APP__LIMITS__CHECKOUT_PER_CLIENT_BURST`, default 30).
    pub checkout_per_client_burst: u32,
    /// … then this many a minute (`APP__LIMITS__CHECKOUT_PER_CLIENT_PER_MINUTE`, default 60: an
    /// order a second from one address is a busy office, not a person).
    pub checkout_per_client_per_minute: u32,
    /// Cancellations (`POST /api/orders/…/cancel`) per session
    /// (`APP__LIMITS__CANCEL_PER_SESSION_BURST`, default 10).
    pub cancel_per_session_burst: u32,
    /// … then this many a minute (`APP__LIMITS__CANCEL_PER_SESSION_PER_MINUTE`, default 10).
    pub cancel_per_session_per_minute: u32,
    /// Cancellations per client (`APP__LIMITS__CANCEL_PER_CLIENT_BURST`, default 30).
    pub cancel_per_client_burst: u32,
    /// … then this many a minute (`APP__LIMITS__CANCEL_PER_CLIENT_PER_MINUTE`, default 60).
    pub cancel_per_client_per_minute: u32,
    /// Sign-in link requests (`POST /api/sign-in/requests`) per client, in process
    /// (`APP__LIMITS__SIGN_IN_PER_CLIENT_BURST`, default 10). The e-mails themselves are limited
    /// in Redis across instances (`shop.sign_in_per_client`, `shop.sign_in_per_address`); this
    /// one sheds a flood before it costs a Redis call.
    pub sign_in_per_client_burst: u32,
    /// … then this many a minute (`APP__LIMITS__SIGN_IN_PER_CLIENT_PER_MINUTE`, default 2: above
    /// the Redis limit's 10 per 15 minutes, so that one decides in normal use).
    pub sign_in_per_client_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            api_per_client_burst: 300,
            api_per_client_per_minute: 1200,
            new_session_per_client_burst: 30,
            new_session_per_client_per_minute: 10,
            cart_write_per_session_burst: 20,
            cart_write_per_session_per_minute: 60,
            cart_write_per_client_burst: 100,
            cart_write_per_client_per_minute: 300,
            checkout_per_session_burst: 10,
            checkout_per_session_per_minute: 10,
            checkout_per_client_burst: 30,
            checkout_per_client_per_minute: 60,
            cancel_per_session_burst: 10,
            cancel_per_session_per_minute: 10,
            cancel_per_client_burst: 30,
            cancel_per_client_per_minute: 60,
            sign_in_per_client_burst: 10,
            sign_in_per_client_per_minute: 2,
        }
    }
}

/// Caps on the web-server's live order streams, `GET /api/orders/{id}/events`
/// (`APP__STREAMS__…`). A stream opened with an order link counts for the session that opened it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StreamSettings {
    /// Streams one session may hold open at once (`APP__STREAMS__PER_SESSION`, default 5): one
    /// per order page open in a tab. A browser opens at most 6 connections to the shop over
    /// HTTP/1.1, so a session with more open streams would starve its own other requests anyway;
    /// one more is answered `429 too_many_streams`.
    pub per_session: usize,
    /// Streams one web-server process holds open at once, all sessions together
    /// (`APP__STREAMS__PER_PROCESS`, default 1000); one more is answered `429 streams_full`.
    /// Each open stream holds a connection (a file descriptor) and about 35–40 KB of memory
    /// (measured on a release build: 53 MB resident with 1000 streams, 86 MB with 2000), so the
    /// default keeps the web-server within its 80 MB. Mind the process's open-file limit.
    pub per_process: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            per_session: 5,
            per_process: 1000,
        }
    }
}

impl LimitSettings {
    /// Every value with its setting's name (`limits.…`), for validation.
    fn values(&self) -> [(&'static str, u32); 18] {
        [
            ("limits.api_per_client_burst", self.api_per_client_burst),
            (
                "limits.api_per_client_per_minute",
                self.api_per_client_per_minute,
            ),
            (
                "limits.new_session_per_client_burst",
                self.new_session_per_client_burst,
            ),
            (
                "limits.new_session_per_client_per_minute",
                self.new_session_per_client_per_minute,
            ),
            (
                "limits.cart_write_per_session_burst",
                self.cart_write_per_session_burst,
            ),
            (
                "limits.cart_write_per_session_per_minute",
                self.cart_write_per_session_per_minute,
            ),
            (
                "limits.cart_write_per_client_burst",
                self.cart_write_per_client_burst,
            ),
            (
                "limits.cart_write_per_client_per_minute",
                self.cart_write_per_client_per_minute,
            ),
            (
                "limits.checkout_per_session_burst",
                self.checkout_per_session_burst,
            ),
            (
                "limits.checkout_per_session_per_minute",
                self.checkout_per_session_per_minute,
            ),
            (
                "limits.checkout_per_client_burst",
                self.checkout_per_client_burst,
            ),
            (
                "limits.checkout_per_client_per_minute",
                self.checkout_per_client_per_minute,
            ),
            (
                "limits.cancel_per_session_burst",
                self.cancel_per_session_burst,
            ),
            (
                "limits.cancel_per_session_per_minute",
                self.cancel_per_session_per_minute,
            ),
            (
                "limits.cancel_per_client_burst",
                self.cancel_per_client_burst,
            ),
            (
                "limits.cancel_per_client_per_minute",
                self.cancel_per_client_per_minute,
            ),
            (
                "limits.sign_in_per_client_burst",
                self.sign_in_per_client_burst,
            ),
            (
                "limits.sign_in_per_client_per_minute",
                self.sign_in_per_client_per_minute,
            ),
        ]
    }

    /// # Errors
    /// [`SettingsError::Invalid`] naming the first value that is 0.
    fn validate(&self) -> Result<(), SettingsError> {
        match self.values().into_iter().find(|(_, value)| *value == 0) {
            Some((key, _)) => Err(SettingsError::Invalid {
                key,
                reason: "must be at least 1 (a burst of 0 or 0 a minute would refuse everything)",
            }),
            None => Ok(()),
        }
    }
}

impl StreamSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        if self.per_session == 0 {
            return Err(SettingsError::Invalid {
                key: "streams.per_session",
                reason: "must be at least 1",
            });
        }
        if self.per_process < self.per_session {
            return Err(SettingsError::Invalid {
                key: "streams.per_process",
                reason: "must be at least streams.per_session",
            });
        }
        Ok(())
    }
}

/// Order lifecycle settings (`APP__ORDERS__…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OrdersSettings {
    /// An order not paid this many seconds after it was placed is cancelled as `expired`
    /// (`APP__ORDERS__EXPIRE_AFTER_S`, default 1800 = 30 min).
    pub expire_after_s: u64,
    /// How often the sweeper looks for expired orders and counts stuck ones, in seconds
    /// (`APP__ORDERS__SWEEP_INTERVAL_S`).
    pub sweep_interval_s: u64,
    /// Orders expired per sweeper transaction (`APP__ORDERS__SWEEP_BATCH`).
    pub sweep_batch: i64,
    /// A non-settled order older than this many seconds counts as stuck (the
    /// `chargeflow_orders_stuck` gauge; `chargeflow-admin orders stuck` has its own limit).
    pub stuck_after_s: u64,
}

impl Default for OrdersSettings {
    fn default() -> Self {
        OrdersSettings {
            expire_after_s: 1800,
            sweep_interval_s: 15,
            sweep_batch: 100,
            stuck_after_s: 900,
        }
    }
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// Connection URL (`APP__DATABASE__URL`).
    pub url: SecretString,
    /// Pool size (`APP__DATABASE__MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// How long to wait for a pooled connection, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// A pooled connection idle at least this long (milliseconds) is tested with a round trip
    /// before it is handed out (`APP__DATABASE__TEST_IDLE_MS`); one that ran a statement more
    /// recently is handed out as it is. 0 tests every one.
    pub test_idle_ms: u64,
}

/// Redis settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// Connection URL (`APP__REDIS__URL`).
    pub url: SecretString,
    /// Prefix of every key this deployment writes (`APP__REDIS__KEY_PREFIX`).
    pub key_prefix: String,
}

/// SQS settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SqsSettings {
    /// Endpoint override, for LocalStack (`APP__SQS__ENDPOINT_URL`); empty means AWS's own.
    pub endpoint_url: String,
    /// AWS region (`APP__SQS__REGION`).
    pub region: String,
    /// Queue names are `<prefix><consumer>.fifo` (`APP__SQS__QUEUE_PREFIX`).
    pub queue_prefix: String,
}

/// HTTP listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Address to listen on (`APP__HTTP__ADDR`).
    pub addr: String,
    /// Folder with the built front end, served at `/` (`APP__HTTP__STATIC_DIR`).
    pub static_dir: String,
    /// Whether the session cookie is marked `Secure` (`APP__HTTP__SECURE_COOKIES`).
    pub secure_cookies: bool,
    /// Seconds the catalogue stays cached in Redis (`APP__HTTP__CATALOGUE_CACHE_S`).
    pub catalogue_cache_s: u64,
    /// How many proxies in front of the web-server append to `X-Forwarded-For`
    /// (`APP__HTTP__TRUSTED_PROXIES`, default 0). 0: a client is the connection's peer address;
    /// 1 behind one load balancer: the last `X-Forwarded-For` entry; n: the n-th from the end.
    /// Used for the per-client rate limits (`limits`, and the sign-in links' in Redis).
    pub trusted_proxies: usize,
}

/// Outbox relay settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RelaySettings {
    /// Rows claimed per transaction (`APP__RELAY__BATCH_SIZE`).
    pub batch_size: i64,
    /// Claim-and-publish loops running at once (`APP__RELAY__CONCURRENCY`).
    pub concurrency: usize,
    /// `SendMessageBatch` calls in flight at once, all loops together
    /// (`APP__RELAY__SQS_IN_FLIGHT`, default 16). More did not publish faster: with 80 calls at
    /// once (4 loops of 20) the local queue service drained a backlog at 0.70–0.75× the rate of
    /// a plain loop with 16 (docs/OUTBOX.md).
    pub sqs_in_flight: usize,
    /// Poll interval when no notification arrives, in milliseconds.
    pub poll_interval_ms: u64,
    /// Delay after a first failed publish, in milliseconds; doubles per attempt.
    pub backoff_base_ms: u64,
    /// Longest delay between attempts, in milliseconds.
    pub backoff_max_ms: u64,
    /// How long published rows are kept before the purge, in seconds.
    pub retention_s: u64,
    /// How long `inbox` rows are kept, in seconds (`APP__RELAY__INBOX_RETENTION_S`): longer
    /// than a message can live in a queue (14 days at most), so no redelivery outlives its row.
    pub inbox_retention_s: u64,
    /// How long saved checkout answers are kept, in seconds
    /// (`APP__RELAY__IDEMPOTENCY_KEY_RETENTION_S`, 24 h as Stripe keeps its keys).
    pub idempotency_key_retention_s: u64,
    /// How long handled Stripe and partner webhook ids are kept, in seconds
    /// (`APP__RELAY__WEBHOOK_EVENT_RETENTION_S`, 3 days: Stripe's retry horizon).
    pub webhook_event_retention_s: u64,
    /// How long a "find my orders" request (it holds an e-mail address) is kept after it
    /// expired, in seconds (`APP__RELAY__SIGN_IN_REQUEST_RETENTION_S`, 1 day).
    pub sign_in_request_retention_s: u64,
    /// How long a session stays signed in for a customer by an e-mailed link, in seconds
    /// (`APP__RELAY__SESSION_GRANT_RETENTION_S`, 30 days: a session's idle life).
    pub session_grant_retention_s: u64,
    /// How often the purge runs, in seconds.
    pub purge_interval_s: u64,
    /// Timeout of one SQS call, in milliseconds.
    pub sqs_timeout_ms: u64,
    /// Under AWS Lambda: how long one (scheduled) invocation keeps relaying, in seconds
    /// (`APP__RELAY__LAMBDA_RUN_S`); it stops earlier when the invocation's deadline is near.
    pub lambda_run_s: u64,
    /// While busy (the last claim found rows, but fewer than `batch_size`), the next claim waits
    /// for that batch to be published and starts this long after the last one at the earliest,
    /// in milliseconds (`APP__RELAY__LINGER_MS`, default 30, at most 1000): rows committed
    /// meanwhile go out together, in fuller `SendMessageBatch` calls. An idle relay claims at
    /// once on a notification, and a full claim (a backlog) is followed at once. Higher values
    /// trade commit-to-SQS lag for fewer SQS requests per order: measured at 50 orders/s on two
    /// cores, 5 ms gave 4.2–4.3 SQS requests per order and a lag of 26–33 ms p50 under that load,
    /// 20 ms 3.8 and 33 ms, 30 ms 3.5 and 37 ms (`bench relay` at 200 events/s alone: 10.5, 28.6
    /// and 39 ms p50).
    pub linger_ms: u64,
}

/// Settings of the SQS consumer loop (`APP__WORKER__…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Messages handled at once by one process (`APP__WORKER__IN_FLIGHT`).
    pub in_flight: usize,
    /// Long-poll wait of one receive, in seconds (0–20).
    pub wait_time_s: i32,
    /// Visibility timeout set on receive, in seconds (`APP__WORKER__VISIBILITY_TIMEOUT_S`,
    /// default 15); renewed every third of it while a handler works, so only a message whose
    /// handler runs longer than that costs a visibility change. Short, so that the messages of a
    /// worker that died come back to the others within seconds rather than a minute. Under
    /// Lambda, the records of a batch are held for this long at a time in the same way.
    pub visibility_timeout_s: i32,
    /// Longest time one handler may run before it is abandoned and retried, in seconds.
    pub handler_timeout_s: u64,
    /// Redelivery delay after a first retryable failure, in seconds; grows ×4 per receive.
    pub retry_base_s: i32,
    /// Longest redelivery delay, in seconds.
    pub retry_max_s: i32,
    /// Timeout of one SQS call, in milliseconds.
    pub sqs_timeout_ms: u64,
    /// After a receive that found messages but fewer than it asked for (the queue ran dry while
    /// busy), the next receive starts this long after it returned at the earliest, in
    /// milliseconds (`APP__WORKER__RECEIVE_LINGER_MS`, default 100, at most 5000); a receive
    /// also waits up to this long while fewer than half a batch of slots (five of ten, or half
    /// of a smaller `in_flight`) are free. Messages arriving meanwhile come in one fuller
    /// receive. An empty long poll is followed at once (it already waited), a full receive too.
    pub receive_linger_ms: u64,
    /// How long finished messages wait for others to share their `DeleteMessageBatch` call, in
    /// milliseconds from the first one (`APP__WORKER__DELETE_LINGER_MS`, default 500; below half
    /// the visibility timeout). Ten finished messages go at once, so under load deletes go ten at
    /// a time (a worker taking 20 messages a second or more fills them within the linger), and
    /// an idle worker deletes half a second after finishing. The wait holds up nothing of the
    /// pipeline but the next message of the same order on the same queue (FIFO: an order's
    /// e-mails follow each other at most this much later); a kill within it costs a redelivery
    /// that the inbox drops.
    pub delete_linger_ms: u64,
}

/// Shop identity used in e-mails, and the shopper's signed links (`APP__SHOP__…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ShopSettings {
    /// The shop's name.
    pub name: String,
    /// The address shoppers open, without a trailing slash; order links start with it.
    pub public_url: String,
    /// The key of the order links in e-mails and of the one-time sign-in links
    /// (`APP__SHOP__LINK_SECRET`, at least 32 bytes; from the secret store in AWS). Empty by
    /// default: the web-server and the email-service refuse to start without one
    /// ([`ShopSettings::link_key`]); the other processes do not need it. Changing it makes every
    /// link sent so far stop working.
    pub link_secret: SecretString,
    /// How long an order link in an e-mail works, in seconds, counted from the event the e-mail
    /// is about (`APP__SHOP__ORDER_LINK_TTL_S`, default 90 days).
    pub order_link_ttl_s: u64,
    /// How long a one-time sign-in link works, in seconds (`APP__SHOP__SIGN_IN_TTL_S`, default
    /// 900 = 15 min).
    pub sign_in_ttl_s: u64,
    /// Sign-in links one e-mail address may ask for per window
    /// (`APP__SHOP__SIGN_IN_PER_ADDRESS`, default 3).
    pub sign_in_per_address: u32,
    /// Sign-in links one client (IP address) may ask for per window
    /// (`APP__SHOP__SIGN_IN_PER_CLIENT`, default 10).
    pub sign_in_per_client: u32,
    /// The rate limits' fixed window, in seconds (`APP__SHOP__SIGN_IN_WINDOW_S`, default 900).
    pub sign_in_window_s: u64,
}

/// Invoice settings (`APP__INVOICE__…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct InvoiceSettings {
    /// The seller's company name.
    pub seller_name: String,
    /// The seller's postal address, lines separated by `|`.
    pub seller_address: String,
    /// The seller's VAT id; empty for none.
    pub seller_vat_id: String,
    /// The seller's contact e-mail.
    pub seller_email: String,
    /// Tax rate in basis points (1900 = 19 %), on goods and shipping.
    pub tax_rate_bp: u32,
    /// Flat shipping fee per order, in minor units of the order's currency.
    pub shipping_fee_minor: i64,
    /// Destination countries with rates of their own, by ISO 3166-1 alpha-2 code
    /// (`APP__INVOICE__COUNTRIES__AT__TAX_RATE_BP=2000`,
    /// `APP__INVOICE__COUNTRIES__AT__SHIPPING_FEE_MINOR=690`); a rate not given is the default's.
    pub countries: BTreeMap<String, CountryRates>,
}

/// The rates of one destination country (`APP__INVOICE__COUNTRIES__<CC>__…`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct CountryRates {
    /// Tax rate in basis points; the default rate when not given.
    pub tax_rate_bp: Option<u32>,
    /// Shipping fee in minor units; the default fee when not given.
    pub shipping_fee_minor: Option<i64>,
}

impl InvoiceSettings {
    /// The price rules every quote, invoice and charge uses (see [`domain::pricing`]).
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] for a rate above 100 %, a negative fee or a country code that is
    /// not two letters; [`Settings::load`] has already refused those.
    pub fn price_rules(&self) -> Result<PriceRules, SettingsError> {
        let rates = |bp: u32, shipping_minor: i64| -> Result<Rates, SettingsError> {
            if shipping_minor < 0 {
                return Err(SettingsError::Invalid {
                    key: "invoice.shipping_fee_minor",
                    reason: "must not be negative",
                });
            }
            let tax_rate = TaxRate::from_basis_points(bp).map_err(|_| SettingsError::Invalid {
                key: "invoice.tax_rate_bp",
                reason: "must be at most 10000 (100 %)",
            })?;
            Ok(Rates {
                shipping_minor,
                tax_rate,
            })
        };
        let default = rates(self.tax_rate_bp, self.shipping_fee_minor)?;
        let mut countries = Vec::with_capacity(self.countries.len());
        for (code, own) in &self.countries {
            if code.len() != 2 || !code.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(SettingsError::Invalid {
                    key: "invoice.countries",
                    reason: "keys must be two-letter ISO 3166-1 country codes such as AT",
                });
            }
            let bp = own.tax_rate_bp.unwrap_or(self.tax_rate_bp);
            let fee = own.shipping_fee_minor.unwrap_or(self.shipping_fee_minor);
            countries.push((code.to_ascii_uppercase(), rates(bp, fee)?));
        }
        Ok(PriceRules::new(default, countries))
    }
}

/// SMTP settings (`APP__SMTP__…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmtpSettings {
    /// SMTP host.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// Whether to require STARTTLS (off for the local sink).
    pub starttls: bool,
    /// User name; empty for none.
    pub username: String,
    /// Password (only with a user name).
    pub password: SecretString,
    /// The `From` address of every e-mail.
    pub from: String,
    /// Timeout of one SMTP conversation, in milliseconds.
    pub timeout_ms: u64,
    /// Folder with the e-mail templates.
    pub templates_dir: String,
    /// E-mails one email-service process handles at once (`APP__SMTP__IN_FLIGHT`, default 32):
    /// the email-service's own in-flight, taking the place of `APP__WORKER__IN_FLIGHT` there,
    /// and the most SMTP connections it keeps open. Higher than other workers' because an
    /// e-mail holds no pool connection while the server talks (two short statements around the
    /// conversation), so its slots wait on SMTP and SQS, not on the database pool.
    pub in_flight: usize,
}

/// The largest accepted `smtp.in_flight`.
pub const MAX_SMTP_IN_FLIGHT: usize = 256;

impl SmtpSettings {
    /// # Errors
    /// [`SettingsError::Invalid`] naming `smtp.in_flight` when it is 0 or above
    /// [`MAX_SMTP_IN_FLIGHT`].
    fn validate(&self) -> Result<(), SettingsError> {
        if !(1..=MAX_SMTP_IN_FLIGHT).contains(&self.in_flight) {
            return Err(SettingsError::Invalid {
                key: "smtp.in_flight",
                reason: "must be between 1 and 256",
            });
        }
        Ok(())
    }
}

/// Stripe settings (`APP__STRIPE__…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StripeSettings {
    /// The API's base URL (`APP__STRIPE__API_BASE`): localstripe locally, `https://api.stripe.com` in production.
    pub api_base: String,
    /// The secret API key.
    pub secret_key: SecretString,
    /// The webhook endpoint's signing secret (`whsec_…`).
    pub webhook_secret: SecretString,
    /// How old a webhook's signature timestamp may be, in seconds.
    pub webhook_tolerance_s: i64,
    /// Timeout of one Stripe call, in milliseconds.
    pub timeout_ms: u64,
    /// The publishable key (`pk_test_…` / `pk_live_…`) the checkout page loads Stripe.js and
    /// the Payment Element with (`APP__STRIPE__PUBLISHABLE_KEY`; default unset or empty: the
    /// page offers Stripe's test payment methods, as the local stack wants). Public by design,
    /// so a plain string: `GET /api/config` hands it to every browser. A secret key here, or a
    /// key of the other mode than `APP__STRIPE__SECRET_KEY`, is refused at start-up (see
    /// [`StripeSettings::publishable_key`]).
    pub publishable_key: Option<String>,
}

/// Metrics port settings (`APP__METRICS__…`).
///
/// The web-server, the relay and each long-running worker serve `GET /metrics` on a small port
/// of their own (never the shop's), by default on 127.0.0.1 at
/// [`MetricsSettings::default_port`]; the web-server's also answers `/readyz`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// `ip:port` of the process's metrics port (`APP__METRICS__ADDR`). Unset: the process's
    /// default port on 127.0.0.1; empty: no metrics port.
    pub addr: Option<String>,
    /// The web-server counts orders by status (one `GROUP BY` over the orders) at most this
    /// often, in seconds, however often it is scraped (`APP__METRICS__ORDERS_REFRESH_S`; unset:
    /// 15; 0: at every scrape).
    pub orders_refresh_s: Option<u64>,
}

impl MetricsSettings {
    /// How often the web-server counts orders by status at most (see `orders_refresh_s`).
    pub fn orders_refresh(&self) -> Duration {
        Duration::from_secs(self.orders_refresh_s.unwrap_or(15))
    }

    /// The default metrics port of a process: `web-server` 9100, `relay` 9101, `invoice` 9102, `billing` 9103,
    /// `shipping` 9104, `email` 9105; `None` for any other name.
    pub fn default_port(process: &str) -> Option<u16> {
        match process {
            "web-server" => Some(9100),
            "relay" => Some(9101),
            "invoice" => Some(9102),
            "billing" => Some(9103),
            "shipping" => Some(9104),
            "email" => Some(9105),
            _ => None,
        }
    }

    /// Where `process` (a name of [`MetricsSettings::default_port`]) serves its metrics: the
    /// configured address, else its default port on 127.0.0.1; `None` when switched off (empty
    /// address) or when the process has no default and none is configured.
    pub fn listen_addr(&self, process: &str) -> Option<String> {
        match self.addr.as_deref() {
            Some("") => None,
            Some(addr) => Some(addr.to_owned()),
            None => Self::default_port(process).map(|port| format!("127.0.0.1:{port}")),
        }
    }
}

/// `APP__SECTION__KEY` variables: the process environment, or the given pairs instead.
fn app_environment(pairs: Option<config::Map<String, String>>) -> config::Environment {
    config::Environment::with_prefix("APP")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(pairs)
}

impl Default for StripeSettings {
    fn default() -> Self {
        StripeSettings {
            api_base: "http://127.0.0.1:8420".into(),
            secret_key: SecretString::from("sk_test_local"),
            webhook_secret: SecretString::from("whsec_local"),
            webhook_tolerance_s: 300,
            timeout_ms: 10_000,
            publishable_key: None,
        }
    }
}

/// Shipping partner settings (`APP__SHIPPING__…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ShippingSettings {
    /// The partner API's base URL, without a trailing slash (`APP__SHIPPING__PARTNER_URL`).
    pub partner_url: String,
    /// Timeout of one call to the partner, in milliseconds.
    pub attempt_timeout_ms: u64,
    /// Longest time one delivery of a message spends on the partner, retries included, in
    /// milliseconds; then the message is left for a later redelivery (never a refund).
    pub deadline_ms: u64,
    /// How long a paid order keeps being retried while the partner is down or rate-limiting,
    /// counted from the payment, in seconds (`APP__SHIPPING__RETRY_BUDGET_S`, default 2 h);
    /// after it the message is parked and the order listed as stuck for an operator.
    pub retry_budget_s: u64,
    /// The secret the partner signs its delivery callbacks with
    /// (`APP__SHIPPING__CALLBACK_SECRET`).
    pub callback_secret: SecretString,
    /// How old a callback's signature timestamp may be, in seconds.
    pub callback_tolerance_s: i64,
    /// Delay before the first retry, in milliseconds; doubles per attempt, with jitter.
    pub backoff_base_ms: u64,
    /// Longest delay between attempts, in milliseconds (a longer `Retry-After` is honoured).
    pub backoff_max_ms: u64,
}

impl Default for ShippingSettings {
    fn default() -> Self {
        ShippingSettings {
            partner_url: "http://127.0.0.1:8430".into(),
            attempt_timeout_ms: 5_000,
            deadline_ms: 20_000,
            retry_budget_s: 7200,
            callback_secret: SecretString::from("partner_whsec_local"),
            callback_tolerance_s: 300,
            backoff_base_ms: 200,
            backoff_max_ms: 5_000,
        }
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            in_flight: 10,
            wait_time_s: 20,
            visibility_timeout_s: 15,
            handler_timeout_s: 30,
            retry_base_s: 2,
            retry_max_s: 300,
            sqs_timeout_ms: 30_000,
            receive_linger_ms: 100,
            delete_linger_ms: 500,
        }
    }
}

impl Default for ShopSettings {
    fn default() -> Self {
        ShopSettings {
            name: "ChargeFlow Outdoor Shop".into(),
            public_url: "http://127.0.0.1:3000".into(),
            link_secret: SecretString::from(""),
            order_link_ttl_s: 90 * 24 * 3600,
            sign_in_ttl_s: 900,
            sign_in_per_address: 3,
            sign_in_per_client: 10,
            sign_in_window_s: 900,
        }
    }
}

/// The shortest accepted `shop.link_secret`, in bytes.
pub const MIN_LINK_SECRET_LEN: usize = 32;

impl ShopSettings {
    /// The link secret's bytes, for the processes that make or check links (the web-server and
    /// the email-service call this at start-up).
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming `shop.link_secret` when it is shorter than
    /// [`MIN_LINK_SECRET_LEN`] bytes (or unset).
    pub fn link_key(&self) -> Result<&[u8], SettingsError> {
        use secrecy::ExposeSecret;
        let key = self.link_secret.expose_secret().as_bytes();
        if key.len() < MIN_LINK_SECRET_LEN {
            return Err(SettingsError::Invalid {
                key: "shop.link_secret",
                reason: "must be set to a random value of at least 32 bytes \
                         (APP__SHOP__LINK_SECRET; scripts/start.sh makes one for the local stack)",
            });
        }
        Ok(key)
    }
}

impl Default for InvoiceSettings {
    fn default() -> Self {
        InvoiceSettings {
            seller_name: "ChargeFlow Outdoor GmbH".into(),
            seller_address: "Example Street 1|10115 Berlin|Germany".into(),
            seller_vat_id: "DE000000000".into(),
            seller_email: "billing@chargeflow.example".into(),
            tax_rate_bp: 1900,
            shipping_fee_minor: 490,
            countries: BTreeMap::new(),
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: 1025,
            starttls: false,
            username: String::new(),
            password: SecretString::from(""),
            from: "ChargeFlow Outdoor Shop <orders@chargeflow.example>".into(),
            timeout_ms: 10_000,
            templates_dir: "apps/email-service/templates".into(),
            in_flight: 32,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/chargeflow"),
            max_connections: 20,
            acquire_timeout_ms: 5_000,
            test_idle_ms: 500,
        }
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: SecretString::from("redis://127.0.0.1:6379"),
            key_prefix: "cf:".into(),
        }
    }
}

impl Default for SqsSettings {
    fn default() -> Self {
        SqsSettings {
            endpoint_url: "http://127.0.0.1:4566".into(),
            region: "us-east-1".into(),
            queue_prefix: "chargeflow-".into(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            addr: "127.0.0.1:3000".into(),
            static_dir: "apps/frontend/dist".into(),
            secure_cookies: false,
            catalogue_cache_s: 30,
            trusted_proxies: 0,
        }
    }
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            batch_size: 100,
            concurrency: 4,
            sqs_in_flight: 16,
            poll_interval_ms: 500,
            backoff_base_ms: 500,
            backoff_max_ms: 60_000,
            retention_s: 7 * 24 * 3600,
            inbox_retention_s: 15 * 24 * 3600,
            idempotency_key_retention_s: 24 * 3600,
            webhook_event_retention_s: 3 * 24 * 3600,
            sign_in_request_retention_s: 24 * 3600,
            session_grant_retention_s: 30 * 24 * 3600,
            purge_interval_s: 300,
            sqs_timeout_ms: 10_000,
            lambda_run_s: 50,
            linger_ms: 30,
        }
    }
}

impl Settings {
    /// Loads the settings from the defaults, the optional `APP_CONFIG_FILE` and the environment.
    ///
    /// # Errors
    /// [`SettingsError`] naming the first bad setting.
    pub fn load() -> Result<Self, SettingsError> {
        Self::load_with(&[])
    }

    /// Loads the settings like [`Settings::load`], then lays `overrides` (`APP__…` pairs, for
    /// instance read from a secret store at start-up) over them: they win over the environment.
    ///
    /// # Errors
    /// [`SettingsError`] naming the first bad setting.
    pub fn load_with(overrides: &[(String, String)]) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        if let Ok(file) = std::env::var("APP_CONFIG_FILE") {
            builder = builder.add_source(config::File::with_name(&file));
        }
        builder = builder.add_source(app_environment(None));
        if !overrides.is_empty() {
            builder =
                builder.add_source(app_environment(Some(overrides.iter().cloned().collect())));
        }
        Self::build(builder)
    }

    /// Loads the settings from the defaults and the given `APP__…` pairs only (tests, tools).
    ///
    /// # Errors
    /// [`SettingsError`] naming the first bad setting.
    pub fn from_sources(pairs: &[(&str, &str)]) -> Result<Self, SettingsError> {
        let map = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::build(config::Config::builder().add_source(app_environment(Some(map))))
    }

    fn build(
        builder: config::ConfigBuilder<config::builder::DefaultState>,
    ) -> Result<Self, SettingsError> {
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason| Err(SettingsError::Invalid { key, reason });
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if !(1..=1000).contains(&self.relay.batch_size) {
            return invalid("relay.batch_size", "must be between 1 and 1000");
        }
        if self.relay.concurrency == 0 {
            return invalid("relay.concurrency", "must be at least 1");
        }
        if !(1..=1000).contains(&self.relay.sqs_in_flight) {
            return invalid("relay.sqs_in_flight", "must be between 1 and 1000");
        }
        if self.relay.backoff_base_ms == 0 || self.relay.backoff_max_ms < self.relay.backoff_base_ms
        {
            return invalid(
                "relay.backoff_max_ms",
                "must be at least backoff_base_ms, which must be positive",
            );
        }
        let kept = [
            self.relay.inbox_retention_s,
            self.relay.idempotency_key_retention_s,
            self.relay.webhook_event_retention_s,
            self.relay.sign_in_request_retention_s,
            self.relay.session_grant_retention_s,
        ];
        if kept.iter().any(|&s| s < 3600) {
            return invalid(
                "relay.inbox_retention_s",
                "every bounded table's retention must be at least 3600 s",
            );
        }
        self.validate_worker()?;
        self.validate_lingers()?;
        self.limits.validate()?;
        self.streams.validate()?;
        self.smtp.validate()?;
        self.stripe.validate()?;
        self.invoice.price_rules()?;
        if self.orders.expire_after_s == 0 || self.orders.sweep_interval_s == 0 {
            return invalid(
                "orders.expire_after_s",
                "expire_after_s and sweep_interval_s must be at least 1",
            );
        }
        if !(1..=1000).contains(&self.orders.sweep_batch) {
            return invalid("orders.sweep_batch", "must be between 1 and 1000");
        }
        if self.shop.order_link_ttl_s == 0 || self.shop.sign_in_ttl_s == 0 {
            return invalid(
                "shop.sign_in_ttl_s",
                "order_link_ttl_s and sign_in_ttl_s must be at least 1",
            );
        }
        if self.shop.sign_in_per_address == 0
            || self.shop.sign_in_per_client == 0
            || self.shop.sign_in_window_s == 0
        {
            return invalid(
                "shop.sign_in_window_s",
                "sign_in_per_address, sign_in_per_client and sign_in_window_s must be at least 1",
            );
        }
        if self.sqs.region.is_empty() {
            return invalid("sqs.region", "must not be empty");
        }
        if let Some(addr) = self.metrics.addr.as_deref().filter(|a| !a.is_empty())
            && addr.parse::<std::net::SocketAddr>().is_err()
        {
            return invalid("metrics.addr", "must be empty or an `ip:port` address");
        }
        Ok(())
    }
}

impl Settings {
    fn validate_worker(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason| Err(SettingsError::Invalid { key, reason });
        let worker = &self.worker;
        if worker.in_flight == 0 {
            return invalid("worker.in_flight", "must be at least 1");
        }
        if !(0..=20).contains(&worker.wait_time_s) {
            return invalid("worker.wait_time_s", "must be between 0 and 20");
        }
        if !(2..=43_200).contains(&worker.visibility_timeout_s) {
            return invalid("worker.visibility_timeout_s", "must be between 2 and 43200");
        }
        if worker.retry_base_s < 0 || worker.retry_max_s < worker.retry_base_s {
            return invalid(
                "worker.retry_max_s",
                "must be at least retry_base_s, which must not be negative",
            );
        }
        if worker.handler_timeout_s == 0 {
            return invalid("worker.handler_timeout_s", "must be at least 1");
        }
        Ok(())
    }
}

impl Settings {
    /// The relay's and the workers' batching waits: short enough not to hold messages back.
    fn validate_lingers(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason| Err(SettingsError::Invalid { key, reason });
        if self.relay.linger_ms > 1000 {
            return invalid("relay.linger_ms", "must be at most 1000");
        }
        if self.worker.receive_linger_ms > 5000 {
            return invalid("worker.receive_linger_ms", "must be at most 5000");
        }
        let half_visibility_ms = u64::try_from(self.worker.visibility_timeout_s).unwrap_or(0) * 500;
        if self.worker.delete_linger_ms >= half_visibility_ms {
            return invalid(
                "worker.delete_linger_ms",
                "must be below half of worker.visibility_timeout_s",
            );
        }
        Ok(())
    }
}

impl RelaySettings {
    /// [`RelaySettings::linger_ms`] as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }
}

impl WorkerSettings {
    /// [`WorkerSettings::receive_linger_ms`] as a duration.
    pub fn receive_linger(&self) -> Duration {
        Duration::from_millis(self.receive_linger_ms)
    }

    /// [`WorkerSettings::delete_linger_ms`] as a duration.
    pub fn delete_linger(&self) -> Duration {
        Duration::from_millis(self.delete_linger_ms)
    }
}

impl DatabaseSettings {
    /// A pool of at most `max_connections` connections to the database.
    ///
    /// # Errors
    /// When PostgreSQL cannot be reached.
    pub async fn connect(&self) -> Result<sqlx::PgPool, sqlx::Error> {
        self.connect_with(self.connect_options()?).await
    }

    /// Like [`DatabaseSettings::connect`], with every prepared statement of the pool's sessions
    /// planned once per session (`plan_cache_mode = force_generic_plan`, sent with the
    /// connection's start-up: no round trip). For a pool whose statements all look rows up by
    /// key: left to choose, PostgreSQL plans a statement over `unnest` of array parameters anew
    /// at every call (a custom plan is always estimated cheaper for the array it sees), which for
    /// a statement of several CTEs costs as much as running it.
    ///
    /// # Errors
    /// When the URL is invalid or PostgreSQL cannot be reached.
    pub async fn connect_with_generic_plans(&self) -> Result<sqlx::PgPool, sqlx::Error> {
        let options = self
            .connect_options()?
            .options([("plan_cache_mode", "force_generic_plan")]);
        self.connect_with(options).await
    }

    fn connect_options(&self) -> Result<sqlx::postgres::PgConnectOptions, sqlx::Error> {
        use secrecy::ExposeSecret;
        self.url.expose_secret().parse()
    }

    async fn connect_with(
        &self,
        options: sqlx::postgres::PgConnectOptions,
    ) -> Result<sqlx::PgPool, sqlx::Error> {
        self.pool_options().connect_with(options).await
    }

    /// The pool's options: at most `max_connections` connections, `acquire_timeout_ms` to wait
    /// for one, and a connection tested before it is handed out only after `test_idle_ms` idle.
    ///
    /// sqlx tests every connection by default (a round trip each time one is taken from the pool,
    /// beside the one it always makes when the connection goes back): in a pipeline that takes a
    /// connection for nearly every statement or short transaction, one more round trip for each.
    /// A connection used within the last `test_idle_ms` is as alive as a test would show; one
    /// that a PostgreSQL restart cut since fails its next statement, which the callers handle as
    /// any lost connection (a worker retries the message, the web-server answers `503`), and the
    /// pool then replaces it.
    pub fn pool_options(&self) -> sqlx::postgres::PgPoolOptions {
        let test_idle = Duration::from_millis(self.test_idle_ms);
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(Duration::from_millis(self.acquire_timeout_ms))
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= test_idle {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
    }
}

impl SqsSettings {
    /// The queue of consumer `consumer` (`invoice`, …): `<queue_prefix><consumer>.fifo`.
    pub fn queue_name(&self, consumer: &str) -> String {
        format!("{}{consumer}.fifo", self.queue_prefix)
    }
}

impl RelaySettings {
    /// [`RelaySettings::poll_interval_ms`] as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_endpoint_means_the_aws_endpoint() {
        let settings = Settings::from_sources(&[("APP__SQS__ENDPOINT_URL", "")]).unwrap();
        assert_eq!(settings.sqs.endpoint_url, "");
    }

    #[test]
    fn overrides_win_over_the_environment() {
        // The process environment of a test run has no APP__SHOP__NAME; the override sets it.
        let overrides = [("APP__SHOP__NAME".to_owned(), "From the secret".to_owned())];
        let settings = Settings::load_with(&overrides).unwrap();
        assert_eq!(settings.shop.name, "From the secret");
    }

    #[test]
    fn the_email_in_flight_defaults_to_32_and_refuses_0_or_too_many_naming_the_setting() {
        assert_eq!(Settings::from_sources(&[]).unwrap().smtp.in_flight, 32);
        let set = |n: &str| Settings::from_sources(&[("APP__SMTP__IN_FLIGHT", n)]);
        assert_eq!(set("8").unwrap().smtp.in_flight, 8);
        for refused in ["0", "257"] {
            let error = set(refused).unwrap_err();
            assert!(error.to_string().contains("smtp.in_flight"), "{error}");
        }
    }

    #[test]
    fn defaults_point_at_the_local_stack() {
        let settings = Settings::from_sources(&[]).unwrap();
        assert_eq!(settings.http.addr, "127.0.0.1:3000");
        assert_eq!(settings.sqs.endpoint_url, "http://127.0.0.1:4566");
        assert_eq!(settings.relay.batch_size, 100);
        assert_eq!(
            settings.worker.visibility_timeout_s, 15,
            "a killed worker's messages come back in seconds"
        );
    }

    #[test]
    fn countries_get_rates_of_their_own_from_nested_keys_and_the_default_for_the_rest() {
        let settings = Settings::from_sources(&[
            ("APP__INVOICE__COUNTRIES__AT__TAX_RATE_BP", "2000"),
            ("APP__INVOICE__COUNTRIES__AT__SHIPPING_FEE_MINOR", "690"),
            ("APP__INVOICE__COUNTRIES__CH__TAX_RATE_BP", "0"),
        ])
        .unwrap();
        let rules = settings.invoice.price_rules().unwrap();
        let at = rules.for_country("AT");
        assert_eq!((at.shipping_minor, at.tax_rate.basis_points()), (690, 2000));
        let ch = rules.for_country("ch");
        assert_eq!((ch.shipping_minor, ch.tax_rate.basis_points()), (490, 0));
        let de = rules.for_country("DE");
        assert_eq!((de.shipping_minor, de.tax_rate.basis_points()), (490, 1900));
    }

    #[test]
    fn a_country_rate_out_of_range_or_a_bad_country_code_is_refused() {
        for (key, value) in [
            ("APP__INVOICE__COUNTRIES__AT__TAX_RATE_BP", "10001"),
            ("APP__INVOICE__COUNTRIES__AT__SHIPPING_FEE_MINOR", "-1"),
            ("APP__INVOICE__COUNTRIES__AUT__TAX_RATE_BP", "2000"),
        ] {
            let refused = Settings::from_sources(&[(key, value)]);
            assert!(
                matches!(refused, Err(SettingsError::Invalid { .. })),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn environment_variables_override_nested_keys() {
        let settings = Settings::from_sources(&[
            ("APP__RELAY__BATCH_SIZE", "10"),
            ("APP__REDIS__KEY_PREFIX", "t1:"),
            ("APP__DATABASE__TEST_IDLE_MS", "0"),
        ])
        .unwrap();
        assert_eq!(settings.relay.batch_size, 10);
        assert_eq!(settings.redis.key_prefix, "t1:");
        assert_eq!(settings.database.test_idle_ms, 0);
    }

    #[test]
    fn each_process_has_its_own_default_metrics_port_and_an_empty_address_switches_it_off() {
        let defaults = Settings::from_sources(&[]).unwrap();
        assert_eq!(
            defaults.metrics.listen_addr("relay").as_deref(),
            Some("127.0.0.1:9101")
        );
        assert_eq!(
            defaults.metrics.listen_addr("email").as_deref(),
            Some("127.0.0.1:9105")
        );
        assert_eq!(
            defaults.metrics.listen_addr("web-server").as_deref(),
            Some("127.0.0.1:9100")
        );
        let off = Settings::from_sources(&[("APP__METRICS__ADDR", "")]).unwrap();
        assert_eq!(off.metrics.listen_addr("relay"), None);
        let set = Settings::from_sources(&[("APP__METRICS__ADDR", "127.0.0.1:0")]).unwrap();
        assert_eq!(
            set.metrics.listen_addr("billing").as_deref(),
            Some("127.0.0.1:0")
        );
    }

    #[test]
    fn a_metrics_address_that_is_not_ip_and_port_is_refused() {
        let err = Settings::from_sources(&[("APP__METRICS__ADDR", "nowhere")]).unwrap_err();
        assert!(err.to_string().contains("metrics.addr"), "{err}");
    }

    #[test]
    fn a_missing_or_short_link_secret_is_refused_by_those_who_need_it() {
        let unset = Settings::from_sources(&[]).unwrap();
        let err = unset.shop.link_key().unwrap_err();
        assert!(err.to_string().contains("shop.link_secret"), "{err}");
        let short = Settings::from_sources(&[("APP__SHOP__LINK_SECRET", "too short")]).unwrap();
        assert!(short.shop.link_key().is_err());
        let good = "k".repeat(MIN_LINK_SECRET_LEN);
        let set = Settings::from_sources(&[("APP__SHOP__LINK_SECRET", &good)]).unwrap();
        assert_eq!(set.shop.link_key().unwrap(), good.as_bytes());
        assert_eq!(set.shop.order_link_ttl_s, 90 * 24 * 3600);
        assert_eq!(set.shop.sign_in_ttl_s, 900);
    }

    #[test]
    fn rate_limits_default_to_a_shops_and_refuse_a_zero_naming_the_setting() {
        let defaults = Settings::from_sources(&[]).unwrap().limits;
        assert_eq!(
            (
                defaults.checkout_per_client_burst,
                defaults.checkout_per_client_per_minute
            ),
            (30, 60)
        );
        let set = Settings::from_sources(&[
            ("APP__LIMITS__CHECKOUT_PER_SESSION_BURST", "3"),
            ("APP__LIMITS__CHECKOUT_PER_SESSION_PER_MINUTE", "120"),
        ])
        .unwrap()
        .limits;
        assert_eq!(
            (
                set.checkout_per_session_burst,
                set.checkout_per_session_per_minute
            ),
            (3, 120)
        );
        assert_eq!(
            set.checkout_per_client_burst, 30,
            "the others keep their defaults"
        );
        for key in [
            "APP__LIMITS__API_PER_CLIENT_BURST",
            "APP__LIMITS__NEW_SESSION_PER_CLIENT_PER_MINUTE",
            "APP__LIMITS__SIGN_IN_PER_CLIENT_PER_MINUTE",
        ] {
            let err = Settings::from_sources(&[(key, "0")]).unwrap_err();
            let name = key.trim_start_matches("APP__LIMITS__").to_lowercase();
            assert!(err.to_string().contains(&format!("limits.{name}")), "{err}");
        }
        let negative = Settings::from_sources(&[("APP__LIMITS__CANCEL_PER_CLIENT_BURST", "-1")]);
        assert!(negative.is_err(), "not a count");
    }

    #[test]
    fn stream_caps_default_to_five_per_session_and_a_thousand_per_process_and_refuse_nonsense() {
        let defaults = Settings::from_sources(&[]).unwrap();
        assert_eq!(defaults.streams.per_session, 5);
        assert_eq!(defaults.streams.per_process, 1000);
        let set = Settings::from_sources(&[
            ("APP__STREAMS__PER_SESSION", "2"),
            ("APP__STREAMS__PER_PROCESS", "10"),
        ])
        .unwrap();
        assert_eq!((set.streams.per_session, set.streams.per_process), (2, 10));
        let none = Settings::from_sources(&[("APP__STREAMS__PER_SESSION", "0")]).unwrap_err();
        assert!(none.to_string().contains("streams.per_session"), "{none}");
        let below = Settings::from_sources(&[("APP__STREAMS__PER_PROCESS", "4")]).unwrap_err();
        assert!(below.to_string().contains("streams.per_process"), "{below}");
    }

    #[test]
    fn the_batching_waits_default_to_a_few_milliseconds_and_refuse_long_ones() {
        let defaults = Settings::from_sources(&[]).unwrap();
        assert_eq!(defaults.relay.linger_ms, 30);
        assert_eq!(defaults.worker.receive_linger_ms, 100);
        assert_eq!(defaults.worker.delete_linger_ms, 500);
        let set = Settings::from_sources(&[
            ("APP__RELAY__LINGER_MS", "0"),
            ("APP__WORKER__RECEIVE_LINGER_MS", "0"),
            ("APP__WORKER__DELETE_LINGER_MS", "0"),
        ])
        .unwrap();
        assert_eq!(set.relay.linger(), Duration::ZERO);
        assert_eq!(set.worker.receive_linger(), Duration::ZERO);
        assert_eq!(set.worker.delete_linger(), Duration::ZERO);
        for (key, value, name) in [
            ("APP__RELAY__LINGER_MS", "1001", "relay.linger_ms"),
            (
                "APP__WORKER__RECEIVE_LINGER_MS",
                "5001",
                "worker.receive_linger_ms",
            ),
            (
                "APP__WORKER__DELETE_LINGER_MS",
                "7500",
                "worker.delete_linger_ms",
            ),
        ] {
            let err = Settings::from_sources(&[(key, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn the_relay_bounds_its_sqs_calls_in_flight() {
        let defaults = Settings::from_sources(&[]).unwrap();
        assert_eq!(defaults.relay.sqs_in_flight, 16);
        let set = Settings::from_sources(&[("APP__RELAY__SQS_IN_FLIGHT", "64")]).unwrap();
        assert_eq!(set.relay.sqs_in_flight, 64);
        for value in ["0", "1001"] {
            let err = Settings::from_sources(&[("APP__RELAY__SQS_IN_FLIGHT", value)]).unwrap_err();
            assert!(err.to_string().contains("relay.sqs_in_flight"), "{err}");
        }
    }

    #[test]
    fn an_out_of_range_value_names_its_setting() {
        let err = Settings::from_sources(&[("APP__RELAY__BATCH_SIZE", "0")]).unwrap_err();
        assert!(err.to_string().contains("relay.batch_size"), "{err}");
    }
}
