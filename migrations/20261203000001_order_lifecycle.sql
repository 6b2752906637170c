-- The order lifecycle (issue "every order finishes"): delivered orders, cancellation with a
-- reason, PaymentIntents cancelled at Stripe, and the partner's delivery notices.
--
-- Upgrades a database built by the init.sql of 2026-12-03 and earlier; init.sql itself already
-- holds the result (a new database records this migration as applied).

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN (
    'placed', 'invoiced', 'paid', 'shipped', 'delivered',
    'payment_failed', 'refunded', 'cancelled'));

-- Set when a cancellation is accepted (an unpaid order is then `cancelled`; a paid one stays
-- `paid` until billing has refunded it).
ALTER TABLE orders ADD COLUMN cancel_reason text
    CHECK (cancel_reason IN ('shopper', 'operator', 'expired', 'payment_unusable'));
ALTER TABLE orders ADD COLUMN cancelled_at timestamptz;
ALTER TABLE orders ADD CONSTRAINT orders_cancel_check
    CHECK ((cancel_reason IS NULL) = (cancelled_at IS NULL));

-- The orders still on their way, by age: the expiry sweep and the stuck-order count.
CREATE INDEX orders_unsettled ON orders (created_at) WHERE status IN ('placed', 'invoiced', 'paid');

-- A PaymentIntent cancelled at Stripe because its order was cancelled before it was confirmed.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded', 'cancelled'));

ALTER TABLE shipments ADD COLUMN delivered_at timestamptz;

CREATE TABLE partner_events (
    event_id     text        PRIMARY KEY CHECK (event_id ~ '^evt_'),
    event_type   text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
