-- The invoice-service numbers an invoice in a short transaction of its own and stores its PDF in
-- the transaction that moves the order to `invoiced`: between the two the row exists with its
-- number and amounts and no PDF, so the year's counter is not locked while a PDF renders.
-- Readers show an invoice only once its PDF is stored.
ALTER TABLE invoices ALTER COLUMN pdf DROP NOT NULL;
