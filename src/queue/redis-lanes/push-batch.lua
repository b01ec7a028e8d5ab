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
local base = ARGV[1]
local ttl = ARGV[2]
local out = {0}
local now
for i = 3, #ARGV, 6 do
  local lane, item, id, window = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local dedupe = base .. 'dedupe:' .. id
  local status = 1
  if id ~= '' and redis.call('EXISTS', dedupe) == 1 then
    status = 0
  elseif window ~= '' then
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local windowMs = tonumber(ARGV[i + 5])
    local member = 'id:' .. id
    redis.call('ZREMRANGEBYSCORE', window, '-inf', now - windowMs)
    if not redis.call('ZSCORE', window, member) then
      if redis.call('ZCARD', window) >= tonumber(ARGV[i + 4]) then
        status = 2
      else
        redis.call('ZADD', window, now, member)
        redis.call('PEXPIRE', window, windowMs)
      end
    end
  end
  if status == 1 then
    if id ~= '' then redis.call('SET', dedupe, '1', 'PX', ttl) end
    local marked = enqueue(base .. 'lane:' .. lane, base .. 'sched:' .. lane, KEYS[1], KEYS[2], KEYS[3],
      KEYS[4], KEYS[5], item, lane)
    if marked > 0 then out[1] = marked end
  end
  out[#out + 1] = status
end
return out
