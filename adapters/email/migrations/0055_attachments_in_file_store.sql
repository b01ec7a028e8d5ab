-- Email attachments live in the file store (src/files/) only. Until now their bytes were also
-- kept here, in email_attachments; this moves every row's bytes into the store and drops the
-- table. Each attachment keeps its id: the `files` row gets the same uuid, so an old envelope's
-- ref `email-attachment:<id>` still names it (readEmailAttachment reads the store).
-- The content is stored once (SHA-256), in 256 KiB chunks, as the store writes it; the file
-- belongs to the session the mail became, and goes with it (retention, erasure). An attachment
-- of a mail that became no session's message has nobody to read it and is not moved.

CREATE TEMPORARY TABLE email_attachments_moving AS
SELECT a.id, encode(sha256(a.content), 'hex') AS sha256, a.content, a.size,
       coalesce(nullif(a.filename, ''), 'file') AS name, a.content_type AS type,
       s.id AS session_id, s.bot, a.created_at
  FROM email_attachments a
  JOIN email_messages e ON e.message_id = a.message_id AND e.direction = 'in'
  JOIN messages m ON m.envelope_id = e.envelope_id
  JOIN sessions s ON s.id = m.session_id;

WITH contents AS (
  SELECT DISTINCT ON (sha256) sha256, content FROM email_attachments_moving
), added AS (
  INSERT INTO file_blobs (sha256, blob_id, size)
  SELECT sha256, gen_random_uuid(), length(content) FROM contents
  ON CONFLICT (sha256) DO NOTHING
  RETURNING sha256, blob_id
)
INSERT INTO file_chunks (blob_id, seq, data)
SELECT added.blob_id, part.seq, substring(c.content FROM part.seq * 262144 + 1 FOR 262144)
  FROM added
  JOIN contents c ON c.sha256 = added.sha256
  CROSS JOIN LATERAL generate_series(0, greatest(0, (length(c.content) - 1) / 262144)) AS part(seq);

INSERT INTO files (id, sha256, session_id, bot, name, type, size, origin, created_at)
SELECT id, sha256, session_id, bot, name, type, size, 'person', created_at
  FROM email_attachments_moving
ON CONFLICT (id) DO NOTHING;

DROP TABLE email_attachments_moving;
DROP TABLE email_attachments;
