//! A private fake Stripe per test (`scripts/stripe_fake.py`, localstripe, on a free port), and
//! readers that ask it, through its REST API, what the code under test did.
//!
//! The fake keeps everything in memory and accepts any `sk_test_…` key. It knows the test
//! PaymentMethods `pm_card_visa` and `pm_card_mastercard` (succeed) and `pm_card_chargeDeclined`
//! (HTTP 402 `card_error`, `card_declined` / `generic_decline` on confirm); it ignores
//! `Idempotency-Key`. It can be made slow, or made to hold chosen requests until released
//! ([`FakeStripe::set_latency`], [`FakeStripe::hold`]), to test what happens while a call is in
//! flight. See the script's header for everything it changes in localstripe.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{TestResult, free_port, require_env};

/// The fake's script, from the repository.
const FAKE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/stripe_fake.py");

/// The secret key used against the fake (it accepts any `sk_test_…`); the one `env.sh` exports as
/// `APP__STRIPE__SECRET_KEY`.
pub const SECRET_KEY: &str = "sk_test_local";

/// The webhook signing secret `env.sh` exports as `APP__STRIPE__WEBHOOK_SECRET`.
pub const WEBHOOK_SECRET: &str = "whsec_local";

/// Page size when reading lists (localstripe: oldest first, `limit` + `starting_after`).
const PAGE: usize = 100;

/// A running fake Stripe, killed (by process id) when dropped.
pub struct FakeStripe {
    port: u16,
    log: PathBuf,
    child: Option<Child>,
    http: reqwest::Client,
}

impl FakeStripe {
    /// Starts a fake Stripe on a free port, with an empty store.
    ///
    /// # Errors
    /// When it does not answer HTTP within 10 s.
    pub async fn start() -> TestResult<Self> {
        let port = free_port();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut fake = FakeStripe {
            port,
            log: std::env::temp_dir().join(format!("cf-stripe-{port}.log")),
            child: None,
            http,
        };
        fake.spawn()?;
        fake.wait_ready().await?;
        Ok(fake)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The API base URL, without a trailing slash: pass it as `APP__STRIPE__API_BASE`.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The secret key to use against it: pass it as `APP__STRIPE__SECRET_KEY`.
    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    /// The process id while it runs (to pause it with SIGSTOP and resume it with SIGCONT, as the
    /// soak does).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it like a crash (SIGKILL); everything it stored is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) -> TestResult<()> {
        let venv = require_env("CHARGEFLOW_VENV");
        let log = std::fs::File::create(&self.log)?;
        let child = Command::new(format!("{venv}/bin/python"))
            .arg(FAKE_SCRIPT)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self) -> TestResult<()> {
        // Importing localstripe (aiohttp and friends) took over 10 s once on a 2-core machine
        // running two builds beside the tests; the process exiting still ends the wait at once.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(format!(
                    "the fake Stripe on port {} exited ({status}); see {}",
                    self.port,
                    self.log.display()
                )
                .into());
            }
            if self.get("/v1/payment_intents?limit=1").await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "the fake Stripe on port {} did not start; see {}",
            self.port,
            self.log.display()
        )
        .into())
    }

    /// `GET path` (from `/v1/…` on) with the secret key as basic auth; the JSON of a 2xx answer.
    ///
    /// # Errors
    /// When the fake cannot be reached or answers with an error status.
    pub async fn get(&self, path: &str) -> TestResult<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.api_base()))
            .basic_auth(SECRET_KEY, None::<&str>)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            return Err(format!("GET {path}: {status}: {body}").into());
        }
        Ok(body)
    }

    /// Every object of a list endpoint such as `/v1/payment_intents` (`query` without `?`, may be
    /// empty), all pages, oldest first.
    ///
    /// # Errors
    /// When the fake cannot be reached or answers with an error status.
    pub async fn list_all(&self, path: &str, query: &str) -> TestResult<Vec<Value>> {
        let mut items: Vec<Value> = Vec::new();
        loop {
            let mut url = format!("{path}?limit={PAGE}");
            if !query.is_empty() {
                url.push('&');
                url.push_str(query);
            }
            if let Some(last) = items.last().and_then(|item| item["id"].as_str()) {
                url.push_str("&starting_after=");
                url.push_str(last);
            }
            let page = self.get(&url).await?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            let more = page["has_more"].as_bool().unwrap_or(false) && !data.is_empty();
            items.extend(data);
            if !more {
                return Ok(items);
            }
        }
    }

    /// The PaymentIntent with this id.
    ///
    /// # Errors
    /// When it does not exist (404) or the fake cannot be reached.
    pub async fn payment_intent(&self, id: &str) -> TestResult<Value> {
        self.get(&format!("/v1/payment_intents/{id}")).await
    }

    /// Every PaymentIntent whose `metadata.order_id` is `order_id`, oldest first (a declined
    /// attempt stays, with status `requires_payment_method`).
    ///
    /// # Errors
    /// When the fake cannot be reached.
    pub async fn payment_intents_for(&self, order_id: &str) -> TestResult<Vec<Value>> {
        let all = self.list_all("/v1/payment_intents", "").await?;
        Ok(all
            .into_iter()
            .filter(|intent| intent["metadata"]["order_id"].as_str() == Some(order_id))
            .collect())
    }

    /// Every refund of the PaymentIntent `id` (made with `payment_intent` or with its charge),
    /// newest first; empty when it was never charged.
    ///
    /// # Errors
    /// When the PaymentIntent does not exist (404) or the fake cannot be reached.
    pub async fn refunds_for_payment_intent(&self, id: &str) -> TestResult<Vec<Value>> {
        self.list_all("/v1/refunds", &format!("payment_intent={id}"))
            .await
    }

    /// Makes the fake POST every event (of the given types; all when empty) to `url`, signed with
    /// `secret` like Stripe (`Stripe-Signature: t=…,v1=…`), about 1 s after it happens.
    ///
    /// # Errors
    /// When the fake cannot be reached or refuses the endpoint.
    pub async fn register_webhook(
        &self,
        url: &str,
        secret: &str,
        events: &[&str],
    ) -> TestResult<()> {
        let mut form = format!("url={}&secret={}", form_encode(url), form_encode(secret));
        for event in events {
            form.push_str("&events[]=");
            form.push_str(&form_encode(event));
        }
        let response = self
            .http
            .post(format!(
                "{}/_config/webhooks/{}",
                self.api_base(),
                uuid::Uuid::new_v4().simple()
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("registering the webhook {url}: {status}").into());
        }
        Ok(())
    }
}

impl FakeStripe {
    /// Answers the 3-D Secure test bank's page for the PaymentIntent `id` as a shopper would:
    /// "Complete" (`success`) or "Fail" (scripts/stripe_fake.py, 12.). Without a return address,
    /// so the fake answers with its page instead of a redirect.
    ///
    /// # Errors
    /// When the fake cannot be reached or refuses (the intent does not wait for 3-D Secure).
    pub async fn authenticate(&self, id: &str, success: bool) -> TestResult<()> {
        let outcome = if success { "complete" } else { "fail" };
        let response = self
            .http
            .post(format!("{}/_test_bank/{id}", self.api_base()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("outcome={outcome}"))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the test bank refused {id}: {status}").into());
        }
        Ok(())
    }

    /// A PaymentIntent for `order_id`, created and confirmed with the 3-D Secure test card
    /// (`pm_card_authenticationRequired`): `requires_action`, as billing leaves it.
    ///
    /// # Errors
    /// When the fake cannot be reached or refuses.
    pub async fn three_d_secure_intent(
        &self,
        order_id: &str,
        amount_minor: i64,
    ) -> TestResult<Value> {
        let form = format!(
            "amount={amount_minor}&currency=eur&payment_method=pm_card_authenticationRequired\
             &confirm=true&metadata[order_id]={order_id}"
        );
        let response = self
            .http
            .post(format!("{}/v1/payment_intents", self.api_base()))
            .basic_auth(SECRET_KEY, None::<&str>)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            return Err(format!("creating a 3-D Secure intent: {status}: {body}").into());
        }
        Ok(body)
    }
}

impl FakeStripe {
    /// Makes every API request wait `ms` milliseconds before the fake handles it (0: none).
    ///
    /// # Errors
    /// When the fake cannot be reached or refuses the value.
    pub async fn set_latency(&self, ms: u64) -> TestResult<()> {
        self.config(reqwest::Method::POST, "latency", &format!("ms={ms}"))
            .await
            .map(drop)
    }

    /// Holds every API request whose `"<METHOD> <path>"` matches the regular expression
    /// `request` (such as `POST /v1/payment_intents/[^/]+/confirm$`) until [`FakeStripe::release`].
    ///
    /// # Errors
    /// When the fake cannot be reached or refuses the expression.
    pub async fn hold(&self, request: &str) -> TestResult<()> {
        let form = format!("request={}", form_encode(request));
        self.config(reqwest::Method::POST, "hold", &form)
            .await
            .map(drop)
    }

    /// How many requests the fake is holding right now.
    ///
    /// # Errors
    /// When the fake cannot be reached.
    pub async fn held(&self) -> TestResult<u64> {
        let state = self.config(reqwest::Method::GET, "hold", "").await?;
        state["held"]
            .as_u64()
            .ok_or_else(|| format!("no count of held requests in {state}").into())
    }

    /// Lets every held request go on, and stops holding.
    ///
    /// # Errors
    /// When the fake cannot be reached.
    pub async fn release(&self) -> TestResult<()> {
        self.config(reqwest::Method::DELETE, "hold", "")
            .await
            .map(drop)
    }

    /// A call to one of the fake's `/_config/<what>` switches (see the script's header).
    async fn config(&self, method: reqwest::Method, what: &str, form: &str) -> TestResult<Value> {
        let response = self
            .http
            .request(method, format!("{}/_config/{what}", self.api_base()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            return Err(format!("/_config/{what}: {status}: {body}").into());
        }
        Ok(body)
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
