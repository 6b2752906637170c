use std::time::Duration;

use crate::helpers::{Pipeline, pdf_text};

#[tokio::test]
async fn placing_an_order_ends_invoiced_with_a_stored_pdf_and_two_emails() {
    let app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let knife = app.add_product("E2E-KNIFE", "Pocket knife", 3900).await;
    let shopper = app.shopper();
    let order_id = app
        .checkout(&shopper, "ada@example.com", &[(mug, 2), (knife, 1)])
        .await;

    app.wait_invoiced(1, Duration::from_secs(30)).await;
    app.wait_mails(2, Duration::from_secs(30)).await;
    assert_eq!(app.status(order_id).await, "invoiced");

    // 2 × 14.50 + 39.00 = 68.00; shipping 4.90; 19 % of 72.90 = 13.851 → 13.85; total 86.75.
    let (number, total, pdf): (String, i64, Vec<u8>) =
        sqlx::query_as("SELECT number, total_minor, pdf FROM invoices WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&app.pool)
            .await
            .expect("invoice row");
    assert_eq!(total, 8675);
    let year = chrono::Datelike::year(&chrono::Utc::now());
    assert_eq!(number, format!("INV-{year}-000001"));
    let (_, text) = pdf_text(&pdf);
    let reference = domain::order_reference(order_id);
    for expected in [
        &number[..],
        &reference[..],
        "E2E-MUG",
        "Enamel mug",
        "E2E-KNIFE",
        "Pocket knife",
        "68.00 EUR",
        "4.90 EUR",
        "13.85 EUR",
        "86.75 EUR",
    ] {
        assert!(
            text.contains(expected),
            "the PDF text lacks {expected:?}:\n{text}"
        );
    }

    let mails = app.sink.messages().expect("mails");
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let confirmation = mails
        .iter()
        .find(|m| m.attachments.is_empty())
        .expect("confirmation");
    let invoice = mails
        .iter()
        .find(|m| !m.attachments.is_empty())
        .expect("invoice e-mail");
    for mail in [confirmation, invoice] {
        assert_eq!(mail.to, "ada@example.com");
        assert!(
            mail.text.contains("Ada Lovelace") && mail.html.contains("Ada Lovelace"),
            "{mail:#?}"
        );
        for part in [&mail.subject, &mail.text, &mail.html] {
            assert!(
                part.contains(&reference),
                "{reference} in every part: {mail:#?}"
            );
        }
        assert!(!mail.text.contains("pm_card_visa") && !mail.html.contains("pm_card_visa"));
    }
    assert!(confirmation.text.contains("Enamel mug") && confirmation.html.contains("Enamel mug"));
    assert!(invoice.subject.contains(&number), "{}", invoice.subject);
    let (name, content_type, bytes) = &invoice.attachments[0];
    assert_eq!(
        (name.as_str(), content_type.as_str()),
        (format!("{number}.pdf").as_str(), "application/pdf")
    );
    assert_eq!(bytes, &pdf, "the attachment is the stored PDF");
    assert_ne!(confirmation.message_id, invoice.message_id);

    let download = shopper
        .get(format!("{}/api/orders/{order_id}/invoice.pdf", app.address))
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "application/pdf");
    assert_eq!(
        download.bytes().await.expect("bytes").as_ref(),
        pdf.as_slice()
    );
    let stranger = app
        .shopper()
        .get(format!("{}/api/orders/{order_id}/invoice.pdf", app.address))
        .send()
        .await
        .expect("download");
    assert_eq!(
        stranger.status(),
        404,
        "another session must not get the invoice"
    );
}

#[tokio::test]
async fn the_order_page_links_the_invoice_once_it_exists() {
    let app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let shopper = app.shopper();
    let order_id = app.checkout(&shopper, "ada@example.com", &[(mug, 1)]).await;
    app.wait_invoiced(1, Duration::from_secs(30)).await;

    let order: serde_json::Value = shopper
        .get(format!("{}/api/orders/{order_id}", app.address))
        .send()
        .await
        .expect("order")
        .json()
        .await
        .expect("json");
    assert_eq!(order["status"], "invoiced");
    assert_eq!(
        order["invoice_url"],
        format!("/api/orders/{order_id}/invoice.pdf")
    );
    let types: Vec<&str> = order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .filter(|t| !t.starts_with("email."))
        .collect();
    assert_eq!(types, ["order.placed", "invoice.generated"]);
}
