-- The unique index on `messages.envelope_id` without the replies (issue 19). Only a turn's own
-- envelope row carries an envelope id; its replies and notes, most of the history, carry NULL,
-- and a unique constraint's index holds an entry for every NULL too: one of the seven B-tree
-- entries a message and its reply wrote. The partial index holds the envelope rows only and
-- answers every lookup by envelope id (`envelope_id = …` implies NOT NULL: the replay check of
-- the group commit, `isEnvelopeRecorded`, the duplicates of a batch) and the inbound insert's
-- ON CONFLICT (which names its predicate, src/store/turns.ts). On an existing database the new
-- index is built from the rows there (a scan of `messages`, writes wait meanwhile), then the
-- old one dropped. Runs unchanged on PostgreSQL and on the embedded PGlite.
CREATE UNIQUE INDEX messages_envelope_id ON messages (envelope_id) WHERE envelope_id IS NOT NULL;
ALTER TABLE messages DROP CONSTRAINT messages_envelope_id_key;
