-- Billing without the order's row lock across Stripe calls (issue 15, point 3): the billing
-- worker claims an order's payment in a short transaction, calls Stripe holding no lock and no
-- connection, and records the result in another. The claim says which event's handling may call
-- Stripe about the payment, and until when: another event's handling (a cancellation's, a failed
-- shipment's refund) waits for it to end, while a redelivery of the same event takes it over at
-- once (apps/billing-service/src/claim.rs).
--
-- Upgrades a database of the previous release; init.sql itself already holds the result (a new
-- database records this migration as applied). Adds two nullable columns (no rewrite); the
-- check scans the table once, and every existing row passes it.

ALTER TABLE payments
    ADD COLUMN claim_event uuid,
    ADD COLUMN claimed_until timestamptz,
    ADD CONSTRAINT payments_claim_check CHECK ((claim_event IS NULL) = (claimed_until IS NULL));
