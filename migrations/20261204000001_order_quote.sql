-- The quote (issue "what the shopper is shown is what happens"): the shipping fee, tax rate, tax
-- and total shown before "Place order" are stored with the order; its invoice and its charge use
-- them. Orders placed before this migration have none (NULL): their invoice is priced with the
-- rules in force when it is issued, as before.
--
-- Upgrades a database built by the init.sql of 2026-12-03 and earlier; init.sql itself already
-- holds the result. The new columns are NULL for existing rows (no table rewrite); the checks are
-- added NOT VALID (no scan under the exclusive lock) and validated afterwards, which only needs a
-- lock that lets reads and writes go on.

ALTER TABLE orders
    ADD COLUMN shipping_minor bigint,
    ADD COLUMN tax_rate_bp    integer,
    ADD COLUMN tax_minor      bigint,
    ADD COLUMN total_minor    bigint;

ALTER TABLE orders ADD CONSTRAINT orders_quote_check CHECK (
    num_nulls(shipping_minor, tax_rate_bp, tax_minor, total_minor) IN (0, 4)
    AND shipping_minor >= 0 AND tax_rate_bp BETWEEN 0 AND 10000 AND tax_minor >= 0
    AND total_minor = subtotal_minor + shipping_minor + tax_minor) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_quote_check;
