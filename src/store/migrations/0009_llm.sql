-- LLM replies and knowledge bases. Runs unchanged on PostgreSQL and on the embedded PGlite.

-- The LLM's summary of a session's older messages ({text, throughSeq, updatedAt}), written with a turn.
ALTER TABLE session_state ADD COLUMN summary jsonb;

-- One row per document of a bot's knowledge base (config/bots/<bot>/kb/<kb>/<path>).
CREATE TABLE kb_documents (
  bot text NOT NULL,
  kb text NOT NULL,
  -- Relative to the knowledge base's folder, with '/': the source name the LLM is shown.
  path text NOT NULL,
  -- SHA-256 of the file's bytes, the chunker's version and the text search language: a document
  -- whose hash is unchanged is not indexed again.
  hash text NOT NULL,
  chunks integer NOT NULL,
  indexed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bot, kb, path)
);

CREATE TABLE kb_chunks (
  bot text NOT NULL,
  kb text NOT NULL,
  path text NOT NULL,
  ord integer NOT NULL,
  content text NOT NULL,
  tokens integer NOT NULL,
  -- Written with the knowledge base's language (to_tsvector(language, content)); searched with the same.
  tsv tsvector NOT NULL,
  PRIMARY KEY (bot, kb, path, ord),
  FOREIGN KEY (bot, kb, path) REFERENCES kb_documents (bot, kb, path) ON DELETE CASCADE
);
CREATE INDEX kb_chunks_tsv ON kb_chunks USING gin (tsv);
