-- Live order pages (issue "event streams that scale"): every change to what the order page shows
-- is announced with `NOTIFY order_changed, '<order id>'`, which the web-server's one listener per
-- process fans out to the open event streams of that order (apps/web-server/src/streams.rs).
--
-- NOTIFY is delivered at commit, and identical notifications of one transaction fold into one, so
-- a per-row trigger costs one notification per order and transaction. The page shows the order
-- row, its timeline, invoice, payment and shipment; its lines are written only with the order row
-- itself and never change, so they need no trigger.
--
-- Upgrades a database of the previous release; init.sql itself already holds the result (a new
-- database records this migration as applied).

CREATE FUNCTION order_changed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_changed', NEW.id::text);
    RETURN NULL;
END;
$$;

-- The same, for the tables whose rows belong to an order through `order_id`.
CREATE FUNCTION order_part_changed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_changed', NEW.order_id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER order_changed_notify AFTER INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION order_changed_notify();
CREATE TRIGGER order_changed_notify AFTER INSERT ON order_timeline
    FOR EACH ROW EXECUTE FUNCTION order_part_changed_notify();
CREATE TRIGGER order_changed_notify AFTER INSERT OR UPDATE ON invoices
    FOR EACH ROW EXECUTE FUNCTION order_part_changed_notify();
-- The PaymentIntent id billing records on its own, before confirming it, is not shown: only
-- the columns the page shows notify (an extra notifying commit would queue for NOTIFY's lock).
CREATE TRIGGER order_changed_notify AFTER INSERT OR UPDATE OF status, amount_minor, failure_reason
    ON payments FOR EACH ROW EXECUTE FUNCTION order_part_changed_notify();
CREATE TRIGGER order_changed_notify AFTER INSERT OR UPDATE ON shipments
    FOR EACH ROW EXECUTE FUNCTION order_part_changed_notify();
