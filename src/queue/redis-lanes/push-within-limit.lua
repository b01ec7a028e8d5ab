-- As push.lua, for a message counted against its session's rate limit in the same step (the
-- window of src/limits/redis-rate-limiter/hit.lua, a named hit): one script per message instead of two.
-- Returns {0, 0}: a duplicate (nothing counted); {2, 0}: the window is full (nothing counted, nothing
-- queued: the caller decides the slow way); else as push.lua.
-- KEYS: dedupe, lane, sched, ready, epoch, depth, waking, wakeSeq, window
-- ARGV: item, dedupeTtlMs, lane, limit, windowMs, member
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local window = KEYS[9]
local limit = tonumber(ARGV[4])
local windowMs = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', window, '-inf', now - windowMs)
if not redis.call('ZSCORE', window, ARGV[6]) then
  if redis.call('ZCARD', window) >= limit then return {2, 0} end
  redis.call('ZADD', window, now, ARGV[6])
  redis.call('PEXPIRE', window, windowMs)
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return {1, enqueue(KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[1], ARGV[3])}
