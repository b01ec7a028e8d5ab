-- Names the replay of a job set aside as failed, unless its id names another job now (the id was
-- scheduled again since: that newer job stands). Records what the replay is (`scheduler:adding`),
-- as a schedule does, for a re-add if the replaying process dies before BullMQ has the job.
-- KEYS: ids, adding   ARGV: id, the set-aside job's id, the replay's job id, its adding record
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
