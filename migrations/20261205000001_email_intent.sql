-- E-mails recorded apart from the work around them (issue 15, point 4): the e-mail worker commits
-- its intent to send an event's e-mail, with the Message-ID, in a short transaction of its own
-- before it talks to the SMTP server, and marks it answered in another right after the server's
-- answer, together with the `sent_emails` row (apps/email-service/src/handler.rs). A redelivery
-- that finds the intent answered sends nothing; one that finds it unanswered sends again with the
-- same Message-ID, once the claim of the delivery that made it has run out.
--
-- Upgrades a database of the previous release; init.sql itself already holds the result (a new
-- database records this migration as applied).

CREATE TABLE email_intents (
    event_id       uuid        PRIMARY KEY,
    -- The `Message-ID` header value every attempt of this e-mail carries.
    message_id     text        NOT NULL UNIQUE,
    -- Deliveries that handed (or tried to hand) the e-mail to the server; more than 1 means an
    -- attempt's answer was not recorded and the e-mail may have gone out twice.
    attempts       integer     NOT NULL DEFAULT 1 CHECK (attempts > 0),
    -- Until when the delivery that made the last attempt may still be talking to the server or
    -- recording its answer (its handler timeout): no other delivery sends before then.
    claimed_until  timestamptz NOT NULL,
    -- When the server's answer was recorded (`sent_emails`); null while it is not.
    answered_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The e-mails the previous release recorded were answered when they were recorded.
INSERT INTO email_intents (event_id, message_id, claimed_until, answered_at, created_at)
SELECT event_id, message_id, created_at, created_at, created_at FROM sent_emails;
