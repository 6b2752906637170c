-- "My orders" on any device (issue 13, point 5): one-time sign-in links mailed to an address,
-- and the sessions they signed in; sign-in e-mails recorded once like the order e-mails.
--
-- Upgrades a database of the previous release; init.sql itself already holds the result (a new
-- database records this migration as applied).

-- One row per "find my orders" request, written with its outbox row in one transaction whether
-- or not the address has orders. The link's token is never stored: it is an HMAC of the id
-- (domain::links). Used at most once (`used_at`), and only before `expires_at`.
CREATE TABLE sign_in_requests (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL CHECK (email LIKE '%_@_%.__%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    -- What the e-mail worker did: sent or rejected (see sent_emails), no_orders (nothing is
    -- sent to an address without orders), stale (already used or expired when it came).
    mail_outcome  text        CHECK (mail_outcome IN ('sent', 'rejected', 'no_orders', 'stale')),
    CHECK (expires_at > created_at),
    CHECK (used_at IS NULL OR used_at <= expires_at)
);

-- Expired requests by age, for the purge (they hold an e-mail address).
CREATE INDEX sign_in_requests_by_expiry ON sign_in_requests (expires_at);

-- The customers a session may see the orders of, besides the ones it placed itself: written
-- when the session opens a sign-in link. `owner_session` is the SHA-256 of the session id, as
-- on orders.
CREATE TABLE session_grants (
    owner_session  text        NOT NULL CHECK (owner_session ~ '^[0-9a-f]{64}$'),
    customer_id    uuid        NOT NULL REFERENCES customers (id),
    granted_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_session, customer_id)
);

-- Grants by age, for the purge: a sign-in lasts `relay.session_grant_retention_s` (30 days, a
-- session's idle life), then the shopper signs in again.
CREATE INDEX session_grants_by_age ON session_grants (granted_at);

-- A customer's orders (a signed-in session's list and the access check), and the customers of
-- an address whatever its letter case (sign-in).
CREATE INDEX orders_by_customer ON orders (customer_id, created_at DESC);
CREATE INDEX customers_by_email_lower ON customers (lower(email));

-- A sign-in e-mail belongs to no order.
ALTER TABLE sent_emails ALTER COLUMN order_id DROP NOT NULL;
ALTER TABLE sent_emails ADD CONSTRAINT sent_emails_order_check
    CHECK (order_id IS NOT NULL OR kind = 'sign_in');
