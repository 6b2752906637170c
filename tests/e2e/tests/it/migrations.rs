//! Upgrades in place: a database built by the previous release's `init.sql`
//! (`tests/fixtures/init-2026-12-03.sql`, that file as of commit 95ef700), holding orders in every
//! state of that release, upgraded with `chargeflow-admin`'s migrator, has the same schema as a
//! database built by today's `init.sql` (compared with `pg_dump --schema-only`), and its old
//! orders still read, cancel and finish.

use std::path::PathBuf;

use domain::CancelReason;
use orders::{Cancellation, Origin, delivery::Delivery};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

/// The schema of the release before migrations existed.
const PREVIOUS_INIT_SQL: &str = include_str!("../../../fixtures/init-2026-12-03.sql");

/// Every status the previous release could store.
const OLD_STATUSES: [&str; 7] = [
    "placed",
    "invoiced",
    "paid",
    "shipped",
    "payment_failed",
    "refunded",
    "cancelled",
];

/// A new, empty database built from `schema`; returns its URL.
async fn database_from(schema: &str) -> String {
    let server = std::env::var("APP__DATABASE__URL").expect("run through scripts/test.sh");
    let name = format!("cf_migr_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&server).await.unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let url = testkit::with_database(&server, &name);
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(schema.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    url
}

/// An order of one unit of product 1 in `status`, with the rows the old workers wrote for it
/// and its unit taken from the stock.
async fn old_order(pool: &PgPool, status: &str) -> Uuid {
    let order_id = Uuid::now_v7();
    testkit::orders::write_order(pool, order_id).await.unwrap();
    let statements = [
        "UPDATE orders SET status = $2 WHERE id = $1",
        "UPDATE products SET stock = stock - 2 WHERE id = 1",
        "INSERT INTO order_timeline (event_id, order_id, event_type, occurred_at)
         VALUES (gen_random_uuid(), $1, 'order.placed', now())",
    ];
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id)
            .bind(status)
            .execute(pool)
            .await
            .unwrap();
    }
    if ["paid", "shipped", "refunded"].contains(&status) {
        sqlx::query(
            "INSERT INTO payments (order_id, payment_intent_id, amount_minor, currency, status, refund_id)
             VALUES ($1, 'pi_' || replace($1::text, '-', ''), 2900, 'EUR', $2, $3)",
        )
        .bind(order_id)
        .bind(if status == "refunded" { "refunded" } else { "succeeded" })
        .bind((status == "refunded").then(|| format!("re_{}", order_id.simple())))
        .execute(pool)
        .await
        .unwrap();
    }
    if status == "shipped" {
        sqlx::query(
            "INSERT INTO shipments (order_id, partner_shipment_id, carrier, tracking_number)
             VALUES ($1, 'shp_' || $1::text, 'ParcelNet', 'PN000000000042')",
        )
        .bind(order_id)
        .execute(pool)
        .await
        .unwrap();
    }
    order_id
}

fn pg_dump() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir).join("pg_dump");
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's PostgreSQL")
        .filter_map(|e| Some(e.ok()?.path().join("bin/pg_dump")))
        .filter(|p| p.exists())
        .collect();
    found.sort_by_key(|p| {
        let version = p
            .components()
            .nth(4)
            .map(|c| c.as_os_str().to_string_lossy().to_string());
        version.and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
    });
    found
        .pop()
        .expect("a pg_dump under /usr/lib/postgresql/*/bin")
}

/// The schema as `pg_dump --schema-only` prints it, without comments, settings and the
/// session-bound `\restrict` lines.
async fn schema_of(url: &str) -> String {
    let output = tokio::process::Command::new(pg_dump())
        .args(["--schema-only", "--no-owner", "--no-privileges", "-d", url])
        .output()
        .await
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("--") && !l.starts_with('\\'))
        .filter(|l| !l.starts_with("SET ") && !l.starts_with("SELECT pg_catalog.set_config"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn status(pool: &PgPool, order_id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_database_of_the_previous_release_is_upgraded_to_todays_schema_and_its_orders_go_on() {
    let old_url = database_from(PREVIOUS_INIT_SQL).await;
    let new_url = database_from(testkit::SCHEMA).await;
    let old = testkit::pool(&old_url, 3).await.unwrap();
    let mut ids = Vec::new();
    for status in OLD_STATUSES {
        ids.push((status, old_order(&old, status).await));
    }
    let stock_before: i32 = sqlx::query_scalar("SELECT stock FROM products WHERE id = 1")
        .fetch_one(&old)
        .await
        .unwrap();

    let report = admin::db::migrate(&old, false)
        .await
        .expect("migrations apply");

    assert_eq!(report.pending, 0);
    assert_eq!(schema_of(&old_url).await, schema_of(&new_url).await);
    for (status, order_id) in &ids {
        let read = orders::read::find_by_id(&old, *order_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.status, *status);
        assert_eq!(read.cancel_reason, None);
    }
    let origin = Origin {
        reason: CancelReason::Operator,
        correlation_id: "migration-test",
        traceparent: "",
    };
    let by_status = |s: &str| ids.iter().find(|(status, _)| *status == s).unwrap().1;
    let mut tx = old.begin().await.unwrap();
    let placed = orders::cancel(&mut tx, by_status("placed"), &origin)
        .await
        .unwrap();
    let paid = orders::cancel(&mut tx, by_status("paid"), &origin)
        .await
        .unwrap();
    let shipped = orders::cancel(&mut tx, by_status("shipped"), &origin)
        .await
        .unwrap();
    let delivered = orders::delivery::record_delivery(
        &mut tx,
        &format!("shp_{}", by_status("shipped")),
        chrono::Utc::now(),
        "migration-test",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(placed, Some(Cancellation::Cancelled));
    assert_eq!(paid, Some(Cancellation::RefundRequested));
    assert!(matches!(shipped, Some(Cancellation::NotCancellable(_))));
    assert_eq!(delivered, Some(Delivery::Delivered(by_status("shipped"))));
    assert_eq!(status(&old, by_status("placed")).await, "cancelled");
    assert_eq!(status(&old, by_status("shipped")).await, "delivered");
    let stock_after: i32 = sqlx::query_scalar("SELECT stock FROM products WHERE id = 1")
        .fetch_one(&old)
        .await
        .unwrap();
    assert_eq!(
        stock_after,
        stock_before + 2,
        "the cancelled order's units are back"
    );
}

#[tokio::test]
async fn a_new_database_records_every_migration_as_applied_with_the_files_checksums() {
    let url = database_from(testkit::SCHEMA).await;
    let pool = testkit::pool(&url, 2).await.unwrap();

    let before = admin::db::status(&pool).await.unwrap();
    // The migrator refuses to run when a recorded checksum differs from its file's.
    let after = admin::db::migrate(&pool, false)
        .await
        .expect("nothing to apply");

    assert_eq!(before.pending, 0, "init.sql lists every migration");
    assert_eq!(after.pending, 0);
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded as usize, admin::db::MIGRATOR.iter().count());
}
