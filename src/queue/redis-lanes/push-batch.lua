-- Queues the envelopes a gateway accepted in the same moment, in one script: each is deduplicated,
-- counted against its session's rate limit where it has one (the window of
-- src/limits/redis-rate-limiter/hit.lua, a named hit), and queued, in order, each as push.lua would.
-- One script and one round trip for many messages instead of one each; the per-item keys are made
-- here from the queue's base (as claim.lua does): the hub runs on one Redis, not a cluster.
-- KEYS: ready, epoch, depth, waking, wakeSeq
-- ARGV: base, dedupeTtlMs, then 6 per item: lane, item, dedupe id ('': none), window key ('': no
--   limit), limit, windowMs (the member is 'id:' .. dedupe id)
-- Returns {wake job the caller must add or 0, then per item 0: a duplicate (nothing counted),
--   1: queued, 2: the window is full (nothing counted, nothing queued)}.
-- What a message costs here is what it costs every message, so each step is the fewest commands:
-- the dedupe mark is made by SET NX (taken back if the window refuses the item: nothing else ran
-- in between); the window's expired hits are dropped only when it holds `limit` hits or more
-- (fewer can never refuse, expired or not, and the set never grows past `limit`); ZADD NX counts a
-- hit the window does not hold yet; `depth` is counted once for the batch.
local base = ARGV[1]
local ttl = ARGV[2]
local out = {0}
local queued = 0
local now
for i = 3, #ARGV, 6 do
  local lane, item, id, window = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local dedupe = base .. 'dedupe:' .. id
  local status = 1
  if id ~= '' and not redis.call('SET', dedupe, '1', 'NX', 'PX', ttl) then
    status = 0
  elseif window ~= '' then
    local limit = tonumber(ARGV[i + 4])
    local windowMs = tonumber(ARGV[i + 5])
    local member = 'id:' .. id
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    if redis.call('ZCARD', window) >= limit then
      redis.call('ZREMRANGEBYSCORE', window, '-inf', now - windowMs)
      -- Full: only a hit it already holds (a redelivery) is let through, uncounted.
      if redis.call('ZCARD', window) >= limit and not redis.call('ZSCORE', window, member) then
        status = 2
        if id ~= '' then redis.call('DEL', dedupe) end
      end
    end
    if status == 1 and redis.call('ZADD', window, 'NX', now, member) == 1 then
      redis.call('PEXPIRE', window, windowMs)
    end
  end
  if status == 1 then
    queued = queued + 1
    local marked = enqueue(base .. 'lane:' .. lane, base .. 'sched:' .. lane, KEYS[1], KEYS[2], KEYS[4],
      KEYS[5], item, lane)
    if marked > 0 then out[1] = marked end
  end
  out[#out + 1] = status
end
if queued > 0 then redis.call('INCRBY', KEYS[3], queued) end
return out
