use std::{collections::HashSet, time::Duration};

use futures::future::join_all;

use crate::helpers::Pipeline;

#[tokio::test]
async fn two_hundred_orders_placed_at_once_all_end_invoiced_each_with_one_invoice_and_its_emails() {
    let app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let checkouts = (0..200).map(|i| {
        let app = &app;
        async move {
            app.checkout(
                &app.shopper(),
                &format!("shopper{i}@example.com"),
                &[(mug, 1)],
            )
            .await
        }
    });
    let orders = join_all(checkouts).await;
    assert_eq!(orders.iter().collect::<HashSet<_>>().len(), 200);

    app.wait_invoiced(200, Duration::from_secs(180)).await;
    app.wait_mails(400, Duration::from_secs(180)).await;
    app.wait_queues_idle().await;

    assert_eq!(app.count("SELECT count(*) FROM invoices").await, 200);
    assert_eq!(
        app.count("SELECT count(DISTINCT seq) FROM invoices WHERE seq BETWEEN 1 AND 200")
            .await,
        200,
        "invoice numbers are 1..=200 without gaps"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM sent_emails WHERE status = 'sent'")
            .await,
        400
    );
    let mails = app.sink.messages().expect("mails");
    let ids: HashSet<_> = mails.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!((mails.len(), ids.len()), (400, 400));
}
