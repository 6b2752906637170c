//! Checkout throughput and latency through HTTP, next to a plain SQL transaction that writes
//! the same rows (idempotency key, stock, customer, order, lines, timeline, outbox) at the same
//! concurrency, against the same database.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::stats::{self, Phase};

#[derive(clap::Args)]
pub struct Args {
    /// Shoppers checking out at the same time.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Checkouts per phase (after a warm-up of one per shopper).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db_url = testkit::fresh_database()
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let pool = testkit::pool(&db_url, u32::try_from(args.concurrency)? + 2)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    sqlx::query("UPDATE products SET stock = 1000000000")
        .execute(&pool)
        .await?;
    let products: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, price_minor FROM products ORDER BY id")
            .fetch_all(&pool)
            .await?;

    let baseline = plain_sql(&pool, &products, &args).await?;
    let base_url = spawn_web_server(&db_url, args.concurrency).await?;
    let checkout = http(&base_url, &products, &args).await?;

    println!(
        "\n## Checkout ({} concurrent shoppers, {} orders per phase)\n",
        args.concurrency, args.requests
    );
    println!("{}", stats::header());
    println!("{}", baseline.row());
    println!("{}", checkout.row());
    println!(
        "\ncheckout / plain SQL throughput: {:.2} (target ≥ 0.5); checkout p99 {:.1} ms (target < 50 ms)",
        checkout.per_second() / baseline.per_second(),
        checkout.percentile_ms(99.0)
    );
    Ok(())
}

/// Two lines per order, chosen by the shopper and the round so that shoppers overlap on products.
fn lines(products: &[(i64, i64)], shopper: usize, round: usize) -> [(i64, i64); 2] {
    let a = (shopper + round) % products.len();
    let b = (a + 1 + shopper % (products.len() - 1)) % products.len();
    let (a, b) = if products[a].0 < products[b].0 {
        (a, b)
    } else {
        (b, a)
    };
    [products[a], products[b]]
}

async fn plain_sql(pool: &PgPool, products: &[(i64, i64)], args: &Args) -> anyhow::Result<Phase> {
    let per_shopper = args.requests / args.concurrency;
    let shoppers = (0..args.concurrency).map(|shopper| async move {
        let mut latencies = Vec::with_capacity(per_shopper);
        for round in 0..=per_shopper {
            let started = Instant::now();
            plain_checkout(pool, &lines(products, shopper, round), shopper).await?;
            if round > 0 {
                latencies.push(started.elapsed());
            }
        }
        anyhow::Ok(latencies)
    });
    measure("plain SQL transaction (baseline)", shoppers).await
}

async fn plain_checkout(
    pool: &PgPool,
    lines: &[(i64, i64); 2],
    shopper: usize,
) -> anyhow::Result<()> {
    let owner = format!("{:064x}", shopper);
    let order_id = Uuid::now_v7();
    let ids = [lines[0].0, lines[1].0];
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO idempotency_keys (owner_session, idempotency_key, request_hash) VALUES ($1, $2, 'x')")
        .bind(&owner).bind(order_id.to_string()).execute(&mut *tx).await?;
    // Lock the products in id order, as checkout does: two transactions taking the same rows in
    // different orders would deadlock.
    sqlx::query("SELECT id FROM products WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ids[..])
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE products SET stock = stock - 1 WHERE id = ANY($1)")
        .bind(&ids[..])
        .execute(&mut *tx)
        .await?;
    let customer: Uuid = sqlx::query_scalar(
        "INSERT INTO customers (id, email, name) VALUES ($1, $2, 'Bench') ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(Uuid::now_v7()).bind(format!("bench-{shopper}@example.com")).fetch_one(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO orders (id, customer_id, owner_session, currency, subtotal_minor, payment_method,
                             ship_name, ship_line1, ship_city, ship_postal_code, ship_country, correlation_id)
         VALUES ($1, $2, $3, 'EUR', $4, 'pm_card_visa', 'Bench', '1 Road', 'Town', '12345', 'DE', 'bench')",
    )
    .bind(order_id).bind(customer).bind(&owner).bind(lines[0].1 + lines[1].1).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO order_items (order_id, line_no, product_id, sku, name, unit_price_minor, quantity)
         SELECT $1, n, id, 'SKU', 'name', price, 1 FROM unnest($2::bigint[], $3::bigint[]) WITH ORDINALITY AS l(id, price, n)",
    )
    .bind(order_id).bind(&ids[..]).bind([lines[0].1, lines[1].1]).execute(&mut *tx).await?;
    let event_id = Uuid::now_v7();
    sqlx::query("INSERT INTO order_timeline (event_id, order_id, event_type, occurred_at) VALUES ($1, $2, 'order.placed', now())")
        .bind(event_id).bind(order_id).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO outbox (event_id, event_type, aggregate_id, envelope) VALUES ($1, 'order.placed', $2, $3)")
        .bind(event_id).bind(order_id).bind(json!({"payload": {"lines": lines}})).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

async fn spawn_web_server(db_url: &str, concurrency: usize) -> anyhow::Result<String> {
    let pool_size = (concurrency + 5).to_string();
    let prefix = format!("bench{}:", Uuid::new_v4().simple());
    let settings = testkit::test_settings(&[
        ("APP__DATABASE__URL", db_url),
        ("APP__DATABASE__MAX_CONNECTIONS", &pool_size),
        ("APP__REDIS__KEY_PREFIX", &prefix),
        ("APP__HTTP__ADDR", "127.0.0.1:0"),
    ]);
    let app = web_server::Application::build(settings).await?;
    let url = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run(std::future::pending()));
    Ok(url)
}

async fn http(base_url: &str, products: &[(i64, i64)], args: &Args) -> anyhow::Result<Phase> {
    let per_shopper = args.requests / args.concurrency;
    let shoppers = (0..args.concurrency).map(|shopper| async move {
        let client = reqwest::Client::builder().cookie_store(true).build()?;
        let mut latencies = Vec::with_capacity(per_shopper);
        for round in 0..=per_shopper {
            let body = order_body(&lines(products, shopper, round), shopper);
            let started = Instant::now();
            let response = client
                .post(format!("{base_url}/api/orders"))
                .header("Idempotency-Key", Uuid::new_v4().to_string())
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().as_u16() == 201,
                "checkout answered {}",
                response.status()
            );
            if round > 0 {
                latencies.push(started.elapsed());
            }
        }
        anyhow::Ok(latencies)
    });
    measure("POST /api/orders", shoppers).await
}

fn order_body(lines: &[(i64, i64); 2], shopper: usize) -> serde_json::Value {
    json!({
        "customer": {"name": "Bench Shopper", "email": format!("bench-{shopper}@example.com"),
                     "address": {"line1": "1 Road", "city": "Town", "postal_code": "12345", "country": "DE"}},
        "items": lines.iter().map(|(id, _)| json!({"product_id": id, "quantity": 1})).collect::<Vec<_>>(),
        "payment_method": "pm_card_visa"
    })
}

async fn measure<F>(name: &str, shoppers: impl Iterator<Item = F>) -> anyhow::Result<Phase>
where
    F: Future<Output = anyhow::Result<Vec<Duration>>>,
{
    let started = Instant::now();
    let results = join_all(shoppers).await;
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    for result in results {
        latencies.extend(result?);
    }
    Ok(Phase::new(name, elapsed, latencies))
}
