//! The soak's shoppers: one every `1 / rate` seconds, each with a session of its own, a basket
//! made from its number (so that a run can be repeated), and a browser's patience — a refused
//! checkout is sent again with the same `Idempotency-Key` until it is answered or the deadline
//! passes.

use std::time::{Duration, Instant, SystemTime};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Plan;

/// Between two attempts of a refused request.
const RETRY_AFTER: Duration = Duration::from_millis(250);
/// A request not answered by then is refused (and sent again).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Destinations, in turn: the shop's default rates and two countries with rates of their own.
const COUNTRIES: [&str; 4] = ["DE", "AT", "CH", "GB"];

/// How an order is meant to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Paid and shipped.
    Ship,
    /// Declined by the card network: `payment_failed`.
    Decline,
    /// Refused by the partner (postal code `000…`): `refunded`.
    Undeliverable,
}

impl Intent {
    /// Shopper `i`'s intent: every 20th is declined, every 25th undeliverable (never both).
    pub(crate) fn of(i: u32) -> Self {
        if i % 20 == 7 {
            Intent::Decline
        } else if i % 25 == 11 {
            Intent::Undeliverable
        } else {
            Intent::Ship
        }
    }

    /// The end states the order may settle in.
    pub(crate) fn ends(self) -> &'static [&'static str] {
        match self {
            Intent::Ship => &["shipped", "delivered"],
            Intent::Decline => &["payment_failed"],
            Intent::Undeliverable => &["refunded"],
        }
    }
}

/// What became of one shopper's checkout.
#[derive(Debug, Clone)]
pub(crate) struct Checkout {
    pub(crate) intent: Intent,
    /// The order of the `201` answer.
    pub(crate) order_id: Option<Uuid>,
    pub(crate) answered_at: Option<SystemTime>,
    /// When each refused request (session or checkout) was sent.
    pub(crate) refused: Vec<SystemTime>,
    /// The `201` was replayed from the idempotency key.
    pub(crate) replayed: bool,
    /// An answer that is neither a success nor worth a retry, or `no answer before the deadline`.
    pub(crate) rejected: Option<String>,
}

/// The answer to one request.
enum Answer {
    Placed { order_id: Uuid, replayed: bool },
    Refused,
    Rejected(String),
}

/// Every shopper of the run.
#[derive(Debug, Clone)]
pub(crate) struct Shoppers {
    address: String,
    products: Vec<i64>,
    plan: Plan,
}

impl Shoppers {
    pub(crate) fn new(address: &str, products: &[i64], plan: Plan) -> Self {
        Shoppers {
            address: address.to_owned(),
            products: products.to_vec(),
            plan,
        }
    }

    /// Starts one shopper every `1 / rate` seconds; each one's outcome, in shopper order.
    pub(crate) async fn run(self) -> Vec<Checkout> {
        let load = Duration::from_secs_f64(f64::from(self.plan.orders) / self.plan.rate);
        let give_up = Instant::now() + load + self.plan.deadline;
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / self.plan.rate));
        let mut shoppers = Vec::new();
        for i in 0..self.plan.orders {
            ticker.tick().await;
            shoppers.push(tokio::spawn(self.clone().shop(i, give_up)));
        }
        let mut checkouts = Vec::new();
        for (i, shopper) in shoppers.into_iter().enumerate() {
            checkouts.push(shopper.await.unwrap_or_else(|e| Checkout {
                rejected: Some(format!("the shopper task failed: {e}")),
                ..Checkout::new(Intent::of(i as u32))
            }));
        }
        checkouts
    }

    /// Opens a session, then checks out, each retried while refused.
    async fn shop(self, i: u32, give_up: Instant) -> Checkout {
        let mut checkout = Checkout::new(Intent::of(i));
        let client = match Client::builder()
            .cookie_store(true)
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
        {
            Ok(client) => client,
            Err(e) => return checkout.rejected(format!("no HTTP client: {e}")),
        };
        let cart = format!("{}/api/cart", self.address);
        while !client
            .get(&cart)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            checkout.refused.push(SystemTime::now());
            if Instant::now() > give_up {
                return checkout.rejected("no session before the deadline".to_owned());
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
        self.place(&client, i, checkout, give_up).await
    }

    async fn place(
        &self,
        client: &Client,
        i: u32,
        mut checkout: Checkout,
        give_up: Instant,
    ) -> Checkout {
        let key = Uuid::new_v4().to_string();
        let body = self.body(i, checkout.intent);
        loop {
            let sent = SystemTime::now();
            match attempt(client, &self.address, &key, &body).await {
                Answer::Placed { order_id, replayed } => {
                    checkout.order_id = Some(order_id);
                    checkout.answered_at = Some(SystemTime::now());
                    checkout.replayed = replayed;
                    return checkout;
                }
                Answer::Rejected(why) => return checkout.rejected(why),
                Answer::Refused => checkout.refused.push(sent),
            }
            if Instant::now() > give_up {
                return checkout.rejected("no answer before the deadline".to_owned());
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    /// Shopper `i`'s checkout: one to three products, one or two of each.
    fn body(&self, i: u32, intent: Intent) -> Value {
        let n = self.products.len();
        let mut items: Vec<(i64, u32)> = Vec::new();
        for k in 0..=(i % 3) {
            let product = self.products[(i as usize * 7 + k as usize * 5) % n];
            if !items.iter().any(|(p, _)| *p == product) {
                items.push((product, 1 + (i + k) % 2));
            }
        }
        let (payment_method, postal_code) = match intent {
            Intent::Ship => ("pm_card_visa", "10115"),
            Intent::Decline => ("pm_card_chargeDeclined", "10115"),
            Intent::Undeliverable => ("pm_card_visa", "00011"),
        };
        json!({
            "customer": {
                "name": "Soak Shopper",
                "email": format!("soak{i}@example.com"),
                "address": {"line1": "1 Main St", "city": "Springfield", "postal_code": postal_code,
                            "country": COUNTRIES[i as usize % COUNTRIES.len()]},
            },
            "items": items.iter().map(|(id, q)| json!({"product_id": id, "quantity": q})).collect::<Vec<_>>(),
            "payment_method": payment_method,
        })
    }
}

impl Checkout {
    fn new(intent: Intent) -> Self {
        Checkout {
            intent,
            order_id: None,
            answered_at: None,
            refused: Vec::new(),
            replayed: false,
            rejected: None,
        }
    }

    fn rejected(mut self, why: String) -> Self {
        self.rejected = Some(why);
        self
    }
}

/// One `POST /api/orders`: placed (maybe replayed), refused (worth a retry), or rejected.
async fn attempt(client: &Client, address: &str, key: &str, body: &Value) -> Answer {
    let Ok(response) = client
        .post(format!("{address}/api/orders"))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
    else {
        return Answer::Refused;
    };
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let Ok(answer) = response.json::<Value>().await else {
        return Answer::Refused;
    };
    let code = answer["error"]["code"].as_str().unwrap_or_default();
    match status {
        StatusCode::CREATED => match answer["order_id"].as_str().map(str::parse) {
            Some(Ok(order_id)) => Answer::Placed { order_id, replayed },
            _ => Answer::Rejected(format!("a 201 without an order id: {answer}")),
        },
        s if s.is_server_error() => Answer::Refused,
        StatusCode::CONFLICT if code == "idempotency_key_in_use" => Answer::Refused,
        s => Answer::Rejected(format!("{s} {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shoppers() -> Shoppers {
        let plan = Plan {
            orders: 300,
            rate: 4.0,
            fault: Duration::from_secs(3),
            gap: Duration::from_secs(5),
            deadline: Duration::from_secs(120),
        };
        Shoppers::new("http://127.0.0.1:1", &(1..=12).collect::<Vec<_>>(), plan)
    }

    #[test]
    fn every_end_is_meant_by_some_shoppers_and_none_is_meant_twice() {
        let intents: Vec<Intent> = (0..300).map(Intent::of).collect();
        let of = |i| intents.iter().filter(|x| **x == i).count();
        assert_eq!(
            (
                of(Intent::Ship),
                of(Intent::Decline),
                of(Intent::Undeliverable)
            ),
            (273, 15, 12)
        );
        let reduced: Vec<Intent> = (0..30).map(Intent::of).collect();
        assert!(reduced.contains(&Intent::Decline) && reduced.contains(&Intent::Undeliverable));
    }

    #[test]
    fn a_basket_holds_one_to_three_different_products() {
        let shoppers = shoppers();
        for i in 0..300 {
            let body = shoppers.body(i, Intent::of(i));
            let items = body["items"].as_array().expect("items");
            let mut ids: Vec<i64> = items
                .iter()
                .map(|l| l["product_id"].as_i64().unwrap())
                .collect();
            ids.dedup();
            assert!(
                (1..=3).contains(&items.len()) && ids.len() == items.len(),
                "{body}"
            );
        }
        let undeliverable = shoppers.body(11, Intent::Undeliverable);
        assert!(
            undeliverable["customer"]["address"]["postal_code"]
                .as_str()
                .unwrap()
                .starts_with("000")
        );
    }
}
