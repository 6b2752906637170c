//! `Receiver::start(n)`: a callback receiver on a free port of 127.0.0.1 that records every
//! request and answers the first `n` with `500`, the others with `200`.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;

/// The secret the tests sign callbacks with.
pub const SECRET: &str = "whsec_test_secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("callback body is JSON")
    }

    pub fn event_id(&self) -> String {
        self.json()["id"].as_str().expect("an event id").to_owned()
    }

    /// Checks the `Partner-Signature` header as a receiver would; returns its timestamp.
    pub fn verified_timestamp(&self, secret: &str) -> i64 {
        let header = self.headers["partner-signature"].to_str().unwrap();
        let (t, v1) = header
            .split_once(',')
            .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
            .unwrap_or_else(|| panic!("malformed signature header {header}"));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&self.body);
        let signature = hex::decode(v1).expect("v1 is hex");
        assert!(
            mac.verify_slice(&signature).is_ok(),
            "bad signature {header}"
        );
        t.parse().expect("t is unix seconds")
    }
}

struct Recorder {
    fail_first: usize,
    received: Mutex<Vec<Received>>,
}

/// A running receiver.
pub struct Receiver {
    pub url: String,
    recorder: Arc<Recorder>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        let recorder = Arc::new(Recorder {
            fail_first,
            received: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hooks/partner", listener.local_addr().unwrap());
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&recorder));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, recorder }
    }

    /// What was received so far.
    pub fn received(&self) -> Vec<Received> {
        self.recorder.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests came (failing after `within`); returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{} callbacks after {within:?}, wanted {n}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn record(
    State(recorder): State<Arc<Recorder>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut received = recorder.received.lock().unwrap();
    received.push(Received {
        headers,
        body,
        at: Instant::now(),
    });
    if received.len() <= recorder.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}
