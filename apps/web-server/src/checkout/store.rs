//! The SQL statements of a checkout, one function each, all inside the caller's transaction.

use chrono::{DateTime, Utc};
use domain::{Address, Customer};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Begins a checkout's transaction, planning its statements once per connection
/// (`plan_cache_mode = force_generic_plan`, in the round trip of the `BEGIN`). Left to choose,
/// PostgreSQL plans the `id = ANY($1)` statements ([`read_products`], [`lock_products`],
/// [`reserve_stock`]) anew at every checkout, because a plan for the actual ids looks cheaper
/// than one for any ids: measured with `pg_stat_statements.track_planning` during `bench
/// report`, planning the stock reservation took 0.26 ms a checkout, three times its execution.
/// The generic plans are the same scans.
pub async fn begin(pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
    pool.begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
        .await
}

/// A product row as the checkout read it.
#[derive(Debug, sqlx::FromRow)]
pub struct Product {
    pub id: i64,
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub stock: i32,
}

/// A saved checkout answer.
#[derive(Debug, sqlx::FromRow)]
pub struct SavedResponse {
    pub request_hash: String,
    pub response_status: Option<i16>,
    pub response_body: Option<serde_json::Value>,
}

/// The order row to insert.
pub struct NewOrder<'a> {
    pub id: Uuid,
    pub owner: &'a str,
    pub currency: &'a str,
    pub quote: &'a domain::InvoiceTotals,
    pub payment_method: &'a str,
    pub ship_name: &'a str,
    pub address: &'a Address,
    pub correlation_id: &'a str,
}

/// Claims an idempotency key for this checkout. `false` means the key is taken: a concurrent
/// attempt with the same key waits here until the first one commits or rolls back.
#[tracing::instrument(level = "debug", name = "checkout.claim_idempotency_key", skip_all, fields(db.system.name = "postgresql"))]
pub async fn claim_idempotency_key(
    conn: &mut PgConnection,
    owner: &str,
    key: &str,
    request_hash: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (owner_session, idempotency_key, request_hash)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(owner)
    .bind(key)
    .bind(request_hash)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The answer saved under an idempotency key.
#[tracing::instrument(level = "debug", name = "checkout.saved_response", skip_all, fields(db.system.name = "postgresql"))]
pub async fn saved_response(
    conn: &mut PgConnection,
    owner: &str,
    key: &str,
) -> sqlx::Result<Option<SavedResponse>> {
    sqlx::query_as(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys
         WHERE owner_session = $1 AND idempotency_key = $2",
    )
    .bind(owner)
    .bind(key)
    .fetch_optional(conn)
    .await
}

/// Saves the answer under the key claimed earlier in this transaction.
#[tracing::instrument(level = "debug", name = "checkout.save_response", skip_all, fields(db.system.name = "postgresql"))]
pub async fn save_response(
    conn: &mut PgConnection,
    owner: &str,
    key: &str,
    status: u16,
    body: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4
         WHERE owner_session = $1 AND idempotency_key = $2",
    )
    .bind(owner)
    .bind(key)
    .bind(i16::try_from(status).unwrap_or(500))
    .bind(body)
    .execute(conn)
    .await?;
    Ok(())
}

/// The active products among `ids`, read without a lock: the checkout prices and checks the
/// order from them, and [`reserve_stock`] takes the stock at the end, checking them again.
#[tracing::instrument(level = "debug", name = "checkout.read_products", skip_all, fields(db.system.name = "postgresql"))]
pub async fn read_products(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as(
        "SELECT id, sku, name, price_minor, currency::text AS currency, stock
         FROM products WHERE id = ANY($1) AND active ORDER BY id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// [`read_products`], locking the rows until the transaction ends (in id order, a fixed order, so
/// that concurrent checkouts cannot deadlock on each other's rows). `NO KEY UPDATE`, as the
/// stock update takes: every concurrent checkout's order lines hold `KEY SHARE` on the products
/// they reference (their foreign key), which a `FOR UPDATE` would wait for — two checkouts of one
/// product would each wait for the other's.
#[tracing::instrument(level = "debug", name = "checkout.lock_products", skip_all, fields(db.system.name = "postgresql"))]
pub async fn lock_products(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as(
        "SELECT id, sku, name, price_minor, currency::text AS currency, stock
         FROM products WHERE id = ANY($1) AND active ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Takes `quantities` off the stock of products `ids`, each only if it is still active, has that
/// much stock and still costs `prices` (as read by [`read_products`]); the rows are locked in id
/// order (`NO KEY UPDATE`, see [`lock_products`]) and stay locked until the transaction ends. Returns how many products were reserved: fewer
/// than `ids` means one changed since it was read, and the caller gives up.
///
/// The last statement of a checkout before its answer is saved, so that a product every shopper
/// buys is locked for one statement and a commit, not for the whole checkout.
#[tracing::instrument(level = "debug", name = "checkout.reserve_stock", skip_all, fields(db.system.name = "postgresql"))]
pub async fn reserve_stock(
    conn: &mut PgConnection,
    ids: &[i64],
    quantities: &[i32],
    prices: &[i64],
) -> sqlx::Result<u64> {
    let reserved = sqlx::query(
        "WITH locked AS MATERIALIZED (
             SELECT id FROM products WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE
         )
         UPDATE products p SET stock = p.stock - r.quantity, updated_at = now()
         FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS r(id, quantity, price_minor), locked l
         WHERE p.id = r.id AND l.id = p.id AND p.active
           AND p.stock >= r.quantity AND p.price_minor = r.price_minor",
    )
    .bind(ids)
    .bind(quantities)
    .bind(prices)
    .execute(conn)
    .await?;
    Ok(reserved.rows_affected())
}

/// Inserts, in one statement, the order in status `placed` with its lines (priced from the
/// products read) and its customer; returns the order's creation time.
///
/// The customer is the one with this e-mail address, created if new. An existing customer is
/// never changed: whoever knows an address could otherwise rename that person in their later
/// e-mails; each order keeps the name it was placed with (`orders.ship_name`), which is what
/// e-mails use. (The no-op update makes a concurrent first order with the same address wait and
/// then use the row it created.) The foreign keys of the order and its lines are checked at the
/// end of the statement, when the customer and the order exist.
#[tracing::instrument(level = "debug", name = "checkout.insert_order", skip_all, fields(db.system.name = "postgresql"))]
pub async fn insert_order(
    conn: &mut PgConnection,
    order: &NewOrder<'_>,
    customer: &Customer,
    products: &[&Product],
    quantities: &[i32],
) -> sqlx::Result<DateTime<Utc>> {
    let line_nos: Vec<i16> = (1..).take(products.len()).collect();
    let ids: Vec<i64> = products.iter().map(|p| p.id).collect();
    let skus: Vec<&str> = products.iter().map(|p| p.sku.as_str()).collect();
    let names: Vec<&str> = products.iter().map(|p| p.name.as_str()).collect();
    let prices: Vec<i64> = products.iter().map(|p| p.price_minor).collect();
    sqlx::query_scalar(
        "WITH customer AS (
             INSERT INTO customers (id, email, name) VALUES ($16, $17, $18)
             ON CONFLICT (email) DO UPDATE SET email = customers.email
             RETURNING id
         ), placed AS (
             INSERT INTO orders (id, customer_id, owner_session, currency, subtotal_minor,
                                 payment_method, ship_name, ship_line1, ship_city,
                                 ship_postal_code, ship_country, correlation_id, shipping_minor,
                                 tax_rate_bp, tax_minor, total_minor)
             SELECT $1, customer.id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
             FROM customer
             RETURNING created_at
         ), lines AS (
             INSERT INTO order_items (order_id, line_no, product_id, sku, name, unit_price_minor,
                                      quantity)
             SELECT $1, * FROM unnest($19::smallint[], $20::bigint[], $21::text[], $22::text[],
                                      $23::bigint[], $24::int[])
         )
         SELECT created_at FROM placed",
    )
    .bind(order.id)
    .bind(order.owner)
    .bind(order.currency)
    .bind(order.quote.subtotal_minor)
    .bind(order.payment_method)
    .bind(order.ship_name)
    .bind(&order.address.line1)
    .bind(&order.address.city)
    .bind(&order.address.postal_code)
    .bind(&order.address.country)
    .bind(order.correlation_id)
    .bind(order.quote.shipping_minor)
    .bind(i32::try_from(order.quote.tax_rate.basis_points()).unwrap_or(i32::MAX))
    .bind(order.quote.tax_minor)
    .bind(order.quote.total_minor)
    .bind(Uuid::now_v7())
    .bind(customer.email.as_str())
    .bind(&customer.name)
    .bind(line_nos)
    .bind(ids)
    .bind(skus)
    .bind(names)
    .bind(prices)
    .bind(quantities)
    .fetch_one(conn)
    .await
}
