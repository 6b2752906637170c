-- no-transaction
-- The inbox by age, for the purge of rows past their retention (libs/outbox/src/retention.rs).
-- Built CONCURRENTLY, so the workers go on writing the inbox meanwhile; that needs this
-- migration to run outside a transaction (the line above). Should the build fail, PostgreSQL
-- leaves an INVALID index behind: `DROP INDEX CONCURRENTLY inbox_by_age;`, then migrate again.
CREATE INDEX CONCURRENTLY inbox_by_age ON inbox (processed_at);
