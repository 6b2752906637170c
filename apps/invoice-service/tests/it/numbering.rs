//! Numbering apart from rendering: the year's counter is locked only while a number is taken and
//! committed, never while an invoice waits to be issued; what happens to a numbered invoice when
//! the worker dies, or the order is cancelled, before it is issued.
//!
//! Each test stops the worker right before step 3 (handler module doc) by holding the event's
//! inbox row in an open transaction of its own: the worker's insert of that row waits for it.

use std::time::Duration;

use invoice_service::InvoiceHandler;
use sqlx::{Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::Poller;

use crate::helpers::{Harness, harness};

/// Holds `event_id`'s inbox row uncommitted, so that the worker's own insert of it waits.
pub(crate) async fn hold_inbox(h: &Harness, event_id: Uuid) -> Transaction<'static, Postgres> {
    let mut tx = h.pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO inbox (consumer, event_id) VALUES ('invoice', $1)")
        .bind(event_id)
        .execute(&mut *tx)
        .await
        .expect("inbox row");
    tx
}

/// Waits until the order's invoice is numbered (its row committed without a PDF) and the worker
/// waits on the held inbox row: it is between numbering and issuing.
pub(crate) async fn wait_numbered_and_waiting(h: &Harness, order_id: Uuid) {
    testkit::eventually(
        "the invoice numbered and the worker waiting to issue it",
        Duration::from_secs(20),
        || async {
            let pending = sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM invoices WHERE order_id = $1 AND pdf IS NULL",
            )
            .bind(order_id)
            .fetch_one(&h.pool)
            .await
            .expect("count");
            let waiting = h
                .count(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .await;
            pending == 1 && waiting > 0
        },
    )
    .await
    .expect("worker between numbering and issue");
}

/// The order's invoice number and whether its PDF is stored.
pub(crate) async fn invoice_of(h: &Harness, order_id: Uuid) -> (i64, bool) {
    sqlx::query_as("SELECT seq, pdf IS NOT NULL FROM invoices WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&h.pool)
        .await
        .expect("invoice row")
}

async fn start_poller(h: &Harness) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let settings = h.settings();
    let handler = InvoiceHandler::new(&settings.invoice).expect("handler");
    let poller = Poller::connect(&settings, handler).await.expect("poller");
    let stop = CancellationToken::new();
    let running = tokio::spawn(poller.run(stop.clone()));
    (stop, running)
}

fn body(event: &domain::EventEnvelope) -> String {
    serde_json::to_string(event).expect("json")
}

#[tokio::test]
async fn an_invoice_waiting_to_be_issued_holds_no_counter_lock_and_the_next_order_is_invoiced_meanwhile()
 {
    let h = harness().await;
    let first = h.place_order().await;
    let second = h.place_order().await;
    let held = hold_inbox(&h, first.event_id).await;
    let (stop, running) = start_poller(&h).await;
    h.send(&[body(&first)]).await;
    wait_numbered_and_waiting(&h, first.order_id).await;

    // Under the old single transaction the counter row stayed locked until the commit.
    let mut probe = h.pool.begin().await.expect("begin");
    let last: i64 = sqlx::query_scalar("SELECT last_seq FROM invoice_counters FOR UPDATE NOWAIT")
        .fetch_one(&mut *probe)
        .await
        .expect("the counter row is not locked while an invoice waits to be issued");
    probe.rollback().await.expect("rollback");
    assert_eq!(last, 1);
    assert_eq!(
        orders::read::invoice_pdf(&h.pool, first.order_id)
            .await
            .expect("read"),
        None,
        "a numbered invoice without its PDF is not shown"
    );
    assert!(
        orders::read::invoice(&h.pool, first.order_id)
            .await
            .expect("read")
            .is_none()
    );

    h.send(&[body(&second)]).await;
    h.wait_status(second.order_id, "invoiced", Duration::from_secs(20))
        .await;
    assert_eq!(invoice_of(&h, second.order_id).await, (2, true));
    assert_eq!(h.status(first.order_id).await, "placed");

    held.rollback().await.expect("release the inbox row");
    h.wait_status(first.order_id, "invoiced", Duration::from_secs(20))
        .await;
    stop.cancel();
    running.await.expect("the worker stops cleanly");
    assert_eq!(invoice_of(&h, first.order_id).await, (1, true));
    assert!(
        orders::read::invoice_pdf(&h.pool, first.order_id)
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'invoice.generated'")
            .await,
        2,
        "one invoice.generated per order"
    );
}

#[tokio::test]
async fn an_order_cancelled_between_numbering_and_issue_keeps_its_numbered_invoice_and_emits_nothing()
 {
    let h = harness().await;
    let event = h.place_order().await;
    let held = hold_inbox(&h, event.event_id).await;
    let (stop, running) = start_poller(&h).await;
    h.send(&[body(&event)]).await;
    wait_numbered_and_waiting(&h, event.order_id).await;

    // The shopper cancels: the worker holds no lock on the order meanwhile.
    let mut tx = h.pool.begin().await.expect("begin");
    let origin = orders::cancel::Origin {
        reason: domain::CancelReason::Shopper,
        correlation_id: "test",
        traceparent: "",
    };
    let cancelled = orders::cancel::cancel(&mut tx, event.order_id, &origin)
        .await
        .expect("cancel");
    tx.commit().await.expect("commit");
    assert_eq!(cancelled, Some(orders::cancel::Cancellation::Cancelled));
    held.rollback().await.expect("release the inbox row");
    testkit::eventually("the event handled", Duration::from_secs(20), || async {
        h.count("SELECT count(*) FROM inbox WHERE consumer = 'invoice'")
            .await
            == 1
    })
    .await
    .expect("inbox row");
    stop.cancel();
    running.await.expect("the worker stops cleanly");

    assert_eq!(h.status(event.order_id).await, "cancelled");
    assert_eq!(
        invoice_of(&h, event.order_id).await,
        (1, true),
        "the number stays taken, by an invoice with its PDF: no gap"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'invoice.generated'")
            .await,
        0,
        "nothing is charged for a cancelled order"
    );
}

#[tokio::test]
async fn the_stored_number_text_is_the_number_the_invoice_shows_past_a_million_too() {
    let h = harness().await;
    let issued_on = chrono::NaiveDate::from_ymd_opt(2031, 5, 6).expect("date");
    sqlx::query("INSERT INTO invoice_counters (year, last_seq) VALUES (2031, 999998)")
        .execute(&h.pool)
        .await
        .expect("counter");
    let totals = domain::InvoiceTotals {
        subtotal_minor: 1000,
        shipping_minor: 0,
        tax_rate: domain::TaxRate::from_basis_points(0).expect("rate"),
        tax_minor: 0,
        total_minor: 1000,
    };
    let mut shown = Vec::new();
    for _ in 0..3 {
        let order_id = h.place_order().await.order_id;
        let mut tx = h.pool.begin().await.expect("begin");
        let invoice = invoice_service::store::Unnumbered {
            order_id,
            issued_on,
            currency: domain::Currency::parse("EUR").expect("currency"),
            totals: &totals,
        };
        let number = invoice_service::store::insert_next_numbered(&mut tx, &invoice)
            .await
            .expect("numbered");
        tx.commit().await.expect("commit");
        let stored: String = sqlx::query_scalar("SELECT number FROM invoices WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&h.pool)
            .await
            .expect("stored number");
        assert_eq!(
            stored,
            number.to_string(),
            "the row and the PDF show one number"
        );
        shown.push(stored);
    }

    assert_eq!(
        shown,
        ["INV-2031-999999", "INV-2031-1000000", "INV-2031-1000001"]
    );
}

#[tokio::test]
async fn a_delivery_that_finds_the_event_handled_when_it_issues_writes_nothing() {
    let h = harness().await;
    let order = h.place_order().await;
    // Another delivery of the event is ending: its inbox row is written, not yet committed.
    let other = hold_inbox(&h, order.event_id).await;
    let (stop, running) = start_poller(&h).await;
    h.send(&[body(&order)]).await;
    wait_numbered_and_waiting(&h, order.order_id).await;

    // It commits (in this test, with nothing else): this delivery's step 3 finds the row.
    other.commit().await.expect("the other delivery ends");
    testkit::wait_drained(&h.sqs, h.queues.url("invoice"), Duration::from_secs(20))
        .await
        .expect("the message is deleted as a duplicate");
    stop.cancel();
    running.await.expect("the worker stops cleanly");

    assert_eq!(
        invoice_of(&h, order.order_id).await,
        (1, false),
        "the PDF is not stored by the duplicate"
    );
    assert_eq!(
        h.status(order.order_id).await,
        "placed",
        "the order is not moved"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'invoice.generated'")
            .await,
        0,
        "nothing is emitted"
    );
}
