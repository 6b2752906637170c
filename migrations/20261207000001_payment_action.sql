-- A payment can wait for the shopper's action (3-D Secure): billing leaves its PaymentIntent
-- `requires_action` and the order `invoiced` until the shopper confirms it on the order page,
-- or the order expires (apps/billing-service/src/charge.rs, "How the order ends").
ALTER TABLE payments
    DROP CONSTRAINT payments_status_check,
    ADD CONSTRAINT payments_status_check
        CHECK (status IN ('pending', 'requires_action', 'succeeded', 'failed', 'refunded', 'cancelled'));
