-- Deletes the id's entry only while it still names this job (the job was not replaced since).
-- KEYS: ids   ARGV: id, job id
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
