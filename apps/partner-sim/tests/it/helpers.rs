//! `spawn_sim()`: a simulator on a free port, and the requests the tests send it.

use std::time::Duration;

use partner_sim::{Application, Callback, Delivery, Faults, Secret};
use reqwest::{Client, Response};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// A running simulator and a client for it.
pub struct TestSim {
    pub address: String,
    pub client: Client,
}

/// A simulator whose shutdown the test triggers.
pub struct StoppableSim {
    pub sim: TestSim,
    pub stop: oneshot::Sender<()>,
    pub server: JoinHandle<std::io::Result<()>>,
}

pub async fn spawn_sim() -> TestSim {
    spawn_sim_with(Faults::default()).await
}

pub async fn spawn_sim_with(faults: Faults) -> TestSim {
    spawn_sim_delivering(faults, Delivery::default()).await
}

pub async fn spawn_sim_delivering(faults: Faults, delivery: Delivery) -> TestSim {
    let (sim, _server) = start(faults, delivery, std::future::pending()).await;
    sim
}

pub async fn spawn_stoppable_sim(faults: Faults) -> StoppableSim {
    spawn_stoppable_sim_delivering(faults, Delivery::default()).await
}

pub async fn spawn_stoppable_sim_delivering(faults: Faults, delivery: Delivery) -> StoppableSim {
    let (stop, stopped) = oneshot::channel::<()>();
    let (sim, server) = start(faults, delivery, async {
        let _ = stopped.await;
    })
    .await;
    StoppableSim { sim, stop, server }
}

/// Deliveries after `deliver_after_ms`, posted to `callback_url` (signed with `secret`) if any.
pub fn delivery(callback_url: Option<&str>, secret: &str, deliver_after_ms: u64) -> Delivery {
    let callback = callback_url.map(|url| {
        let url = url.parse().expect("callback URL");
        Callback::new(url, Secret::new(secret)).expect("callback settings")
    });
    Delivery {
        callback,
        deliver_after: Duration::from_millis(deliver_after_ms),
    }
}

async fn start(
    faults: Faults,
    delivery: Delivery,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (TestSim, JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let app = Application::with_delivery(listener, faults, delivery).expect("valid faults");
    let address = format!("http://{}", app.local_addr().expect("bound"));
    let server = tokio::spawn(app.run(shutdown));
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    (TestSim { address, client }, server)
}

impl TestSim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn create(&self, key: &str, body: &Value) -> Response {
        self.create_raw(key, body)
            .await
            .expect("POST /v1/shipments")
    }

    /// Like [`TestSim::create`], but a request that gets no answer is an `Err`, not a panic.
    pub async fn create_raw(&self, key: &str, body: &Value) -> reqwest::Result<Response> {
        self.client
            .post(self.url("/v1/shipments"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
    }

    pub async fn put_faults(&self, faults: &Value) -> Response {
        self.client
            .put(self.url("/v1/_sim/faults"))
            .json(faults)
            .send()
            .await
            .expect("PUT /v1/_sim/faults")
    }

    pub async fn post(&self, path: &str) -> Response {
        self.client.post(self.url(path)).send().await.expect("POST")
    }

    /// Books a shipment for `reference` under `key`; answers its id.
    pub async fn book(&self, key: &str, reference: &str) -> String {
        let created = self.create(key, &shipment_body(reference)).await;
        assert_eq!(created.status().as_u16(), 201);
        let shipment: Value = created.json().await.unwrap();
        shipment["id"].as_str().expect("an id").to_owned()
    }

    /// The shipment `id` as `GET /v1/shipments/{id}` answers it.
    pub async fn shipment(&self, id: &str) -> Value {
        let fetched = self.get(&format!("/v1/shipments/{id}")).await;
        assert_eq!(fetched.status().as_u16(), 200);
        fetched.json().await.unwrap()
    }

    pub async fn cancel(&self, id: &str) -> Response {
        self.post(&format!("/v1/shipments/{id}/cancel")).await
    }

    pub async fn deliver(&self, id: &str) -> Response {
        self.post(&format!("/v1/_sim/shipments/{id}/deliver")).await
    }

    /// `(shipments_created, requests)` for a reference, or in total.
    pub async fn stats(&self, reference: Option<&str>) -> (u64, u64) {
        let body = self.stats_json(reference).await;
        let count = |name: &str| body[name].as_u64().expect("a count");
        (count("shipments_created"), count("requests"))
    }

    /// `GET /v1/_sim/stats` for a reference, or in total.
    pub async fn stats_json(&self, reference: Option<&str>) -> Value {
        let path = reference.map_or_else(
            || "/v1/_sim/stats".to_owned(),
            |r| format!("/v1/_sim/stats?reference={r}"),
        );
        self.get(&path).await.json().await.expect("stats JSON")
    }
}

/// A deliverable shipment request for `reference`.
pub fn shipment_body(reference: &str) -> Value {
    json!({
        "reference": reference,
        "recipient": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical Row",
            "postal_code": "N1 9GU",
            "city": "London",
            "country": "GB"
        },
        "parcels": 1
    })
}

/// Asserts the status and the error code of a JSON error answer; returns the error object.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status for {code}");
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"].clone()
}
