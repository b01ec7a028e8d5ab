-- A mail's failures to be fetched whole and its failures to be handled were one count (`failures`):
-- two failed fetches and then one failed handling set a mail aside as if its handling had failed
-- three times (EMAIL_MAX_FAILURES). They are counted apart now: `fetch_failures` the fetches,
-- `failures` the handling. A row whose latest failure was a fetch takes its count as fetches.
ALTER TABLE email_failures ADD COLUMN fetch_failures integer NOT NULL DEFAULT 0;
UPDATE email_failures SET fetch_failures = failures, failures = 0 WHERE reason LIKE 'fetch failed: %';
