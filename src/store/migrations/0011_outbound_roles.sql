-- History rows of every role DESIGN.md names: `agent` (a person at the business, their id in the
-- payload's agentId) and `note` (never shown to the person) join user, assistant, system, tool.
-- An outbound envelope's own row is a reply: it is written with its delivery status and answers itself.
ALTER TABLE messages DROP CONSTRAINT messages_role_check;
ALTER TABLE messages ADD CONSTRAINT messages_role_check
  CHECK (role IN ('user', 'assistant', 'agent', 'system', 'tool', 'note'));
