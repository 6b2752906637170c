-- Handled Stripe and partner webhook ids by age, for the purge of rows past their retention
-- (libs/outbox/src/retention.rs). Both tables hold a few rows per order: built in place.
CREATE INDEX stripe_events_by_age ON stripe_events (received_at);
CREATE INDEX partner_events_by_age ON partner_events (received_at);
