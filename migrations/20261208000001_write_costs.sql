-- What PostgreSQL does for every order's writes, made cheaper (issue 15: its CPU per order).
--
-- Per-column checks of the tables the pipeline writes become domains. PostgreSQL evaluates
-- every CHECK constraint of a table on every INSERT and UPDATE of a row, whichever columns it
-- sets, and rebuilds each constraint's expression from its stored text for every statement:
-- each status change of an order re-checked its currency, country, payment method and session
-- hash. A domain is checked only when a value is written to a column of that type, from an
-- expression kept ready in the type cache. The rules are the same, and a violation is the same
-- SQLSTATE (23514, check_violation). Checks that relate two columns stay table constraints;
-- order_items keeps its own (a generated column reads its unit price).
--
-- The invoice counter gets a fill factor of 10 (at the end, and in init.sql).
--
-- Changing a column's type to a domain with a check rewrites the table under an exclusive lock
-- (docs/DEPLOY.md: 4.2 s for 100,000 orders and their rows here): run it when the shop is quiet.
--
-- Upgrades a database of the previous release; init.sql itself already holds the result (a new
-- database records this migration as applied).

CREATE DOMAIN currency_code AS char(3) CHECK (VALUE ~ '^[A-Z]{3}$');
CREATE DOMAIN country_code AS char(2) CHECK (VALUE ~ '^[A-Z]{2}$');
CREATE DOMAIN minor_units AS bigint CHECK (VALUE >= 0);
CREATE DOMAIN session_hash AS text CHECK (VALUE ~ '^[0-9a-f]{64}$');
CREATE DOMAIN payment_method_id AS text CHECK (VALUE ~ '^pm_[A-Za-z0-9_]+$');
CREATE DOMAIN order_status AS text CHECK (VALUE IN (
    'placed', 'invoiced', 'paid', 'shipped', 'delivered',
    'payment_failed', 'refunded', 'cancelled'));
CREATE DOMAIN order_cancel_reason AS text
    CHECK (VALUE IN ('shopper', 'operator', 'expired', 'payment_unusable'));
CREATE DOMAIN event_type_name AS text CHECK (VALUE ~ '^[a-z]+\.[a-z_]+$');
CREATE DOMAIN consumer_name AS text CHECK (VALUE ~ '^[a-z][a-z0-9_-]*$');
CREATE DOMAIN invoice_number AS text CHECK (VALUE ~ '^INV-[0-9]{4}-[0-9]{6,}$');
CREATE DOMAIN pdf_document AS bytea CHECK (substring(VALUE FROM 1 FOR 5) = '\x255044462d'::bytea);
CREATE DOMAIN email_kind AS text CHECK (VALUE ~ '^[a-z_]+$');
CREATE DOMAIN email_outcome AS text CHECK (VALUE IN ('sent', 'rejected'));
CREATE DOMAIN payment_status AS text
    CHECK (VALUE IN ('pending', 'requires_action', 'succeeded', 'failed', 'refunded', 'cancelled'));
CREATE DOMAIN stripe_payment_intent_id AS text CHECK (VALUE ~ '^pi_');
CREATE DOMAIN stripe_refund_id AS text CHECK (VALUE ~ '^re_');

ALTER TABLE products
    DROP CONSTRAINT products_price_minor_check,
    DROP CONSTRAINT products_currency_check,
    ALTER COLUMN price_minor TYPE minor_units,
    ALTER COLUMN currency TYPE currency_code;

ALTER TABLE orders
    DROP CONSTRAINT orders_owner_session_check,
    DROP CONSTRAINT orders_currency_check,
    DROP CONSTRAINT orders_subtotal_minor_check,
    DROP CONSTRAINT orders_payment_method_check,
    DROP CONSTRAINT orders_ship_country_check,
    DROP CONSTRAINT orders_cancel_reason_check,
    DROP CONSTRAINT orders_status_check,
    ALTER COLUMN owner_session TYPE session_hash,
    ALTER COLUMN status TYPE order_status,
    ALTER COLUMN currency TYPE currency_code,
    ALTER COLUMN subtotal_minor TYPE minor_units,
    ALTER COLUMN payment_method TYPE payment_method_id,
    ALTER COLUMN ship_country TYPE country_code,
    ALTER COLUMN cancel_reason TYPE order_cancel_reason;
-- A default keeps the type it was written for: written again for the new one.
ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'placed';

ALTER TABLE session_grants
    DROP CONSTRAINT session_grants_owner_session_check,
    ALTER COLUMN owner_session TYPE session_hash;

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_owner_session_check,
    ALTER COLUMN owner_session TYPE session_hash;

ALTER TABLE outbox
    DROP CONSTRAINT outbox_event_type_check,
    ALTER COLUMN event_type TYPE event_type_name;

ALTER TABLE inbox
    DROP CONSTRAINT inbox_consumer_check,
    ALTER COLUMN consumer TYPE consumer_name;

ALTER TABLE invoices
    DROP CONSTRAINT invoices_number_check,
    DROP CONSTRAINT invoices_currency_check,
    DROP CONSTRAINT invoices_subtotal_minor_check,
    DROP CONSTRAINT invoices_shipping_minor_check,
    DROP CONSTRAINT invoices_tax_minor_check,
    DROP CONSTRAINT invoices_pdf_check,
    ALTER COLUMN number TYPE invoice_number,
    ALTER COLUMN currency TYPE currency_code,
    ALTER COLUMN subtotal_minor TYPE minor_units,
    ALTER COLUMN shipping_minor TYPE minor_units,
    ALTER COLUMN tax_minor TYPE minor_units,
    ALTER COLUMN pdf TYPE pdf_document;

ALTER TABLE sent_emails
    DROP CONSTRAINT sent_emails_kind_check,
    DROP CONSTRAINT sent_emails_status_check,
    ALTER COLUMN kind TYPE email_kind,
    ALTER COLUMN status TYPE email_outcome;

-- A trigger that names a column must not be there while that column's type changes.
DROP TRIGGER order_changed_notify ON payments;
ALTER TABLE payments
    DROP CONSTRAINT payments_payment_intent_id_check,
    DROP CONSTRAINT payments_currency_check,
    DROP CONSTRAINT payments_refund_id_check,
    DROP CONSTRAINT payments_status_check,
    ALTER COLUMN payment_intent_id TYPE stripe_payment_intent_id,
    ALTER COLUMN currency TYPE currency_code,
    ALTER COLUMN status TYPE payment_status,
    ALTER COLUMN refund_id TYPE stripe_refund_id;
ALTER TABLE payments ALTER COLUMN status SET DEFAULT 'pending';
CREATE TRIGGER order_changed_notify AFTER INSERT OR UPDATE OF status, amount_minor, failure_reason
    ON payments FOR EACH ROW EXECUTE FUNCTION order_part_changed_notify();

-- The year's invoice counter row is updated by every invoice: its page is pruned after ~20 dead
-- versions instead of ~200 (see init.sql).
ALTER TABLE invoice_counters SET (fillfactor = 10);
