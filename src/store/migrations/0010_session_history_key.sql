-- Every session a key ever had, ended ones too, newest activity last: a person's first message
-- asks when they last talked with the bot (`last_interaction`), which without this index read
-- every session of the bot's channel, once per new session.
CREATE INDEX sessions_key_activity ON sessions (bot, channel, native_key, last_activity_at);
