-- The file store (src/files/): every file a person or a bot sent, on every channel.
-- Content-addressed: the bytes of one content (SHA-256) are stored once, in chunks, however many
-- messages carry them; `files` rows are the references. When the last reference goes (its session
-- removed by retention or erasure, an unclaimed upload expiring), a trigger removes the bytes.

-- One content. `blob_id` names its chunks, which are written (under that id) while the upload
-- streams, before the hash is known.
CREATE TABLE file_blobs (
  sha256 text PRIMARY KEY,
  blob_id uuid NOT NULL UNIQUE,
  size bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The bytes, in chunks of at most 256 KiB: neither writing nor reading ever holds a whole file.
-- Chunks whose blob_id has no file_blobs row are an upload in progress (or one that died: the
-- expiry job removes those after a day).
CREATE TABLE file_chunks (
  blob_id uuid NOT NULL,
  seq integer NOT NULL,
  data bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (blob_id, seq)
);

-- A file as one message carries it: its name and sniffed type, and the session it belongs to
-- (absent while an upload or a channel's download waits for its message's turn; set when the
-- message is recorded).
CREATE TABLE files (
  id uuid PRIMARY KEY,
  sha256 text NOT NULL REFERENCES file_blobs (sha256),
  session_id uuid REFERENCES sessions (id) ON DELETE CASCADE,
  bot text NOT NULL,
  name text NOT NULL,
  type text NOT NULL,
  size bigint NOT NULL,
  -- Who put it there: 'person' (inbound) or 'bot' (SHOW IMAGE, SEND FILE, ctx.talk).
  origin text NOT NULL DEFAULT 'person',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_session ON files (session_id);
CREATE INDEX files_sha256 ON files (sha256);
CREATE INDEX files_unclaimed ON files (created_at) WHERE session_id IS NULL;

-- Reference counting: the last file row of a content takes the content with it.
CREATE FUNCTION files_release_blob() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM file_blobs b
   WHERE b.sha256 = OLD.sha256
     AND NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = OLD.sha256);
  RETURN NULL;
END $$;
CREATE TRIGGER files_release_blob AFTER DELETE ON files
  FOR EACH ROW EXECUTE FUNCTION files_release_blob();

CREATE FUNCTION file_blobs_drop_chunks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM file_chunks WHERE blob_id = OLD.blob_id;
  RETURN NULL;
END $$;
CREATE TRIGGER file_blobs_drop_chunks AFTER DELETE ON file_blobs
  FOR EACH ROW EXECUTE FUNCTION file_blobs_drop_chunks();

-- Secrets the hub makes for itself once and every process shares (the signing key of file links).
CREATE TABLE hub_secrets (
  name text PRIMARY KEY,
  value text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
