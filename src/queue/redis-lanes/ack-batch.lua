-- The acknowledgements of several claimed lanes (those a worker's drainers reached in the same
-- moment, after one group commit), in one script. For each lane: pops the handled items from its
-- head, each only if it is still there; if that left the lane empty, unschedules it (its own epoch
-- only) and releases the job's claim in the same step: 1. Else the lane's next chunk (saving the
-- drainer a read.lua), or 0 when a newer epoch owns the lane. Per-lane keys are made from the
-- queue's base, as claim.lua does.
-- KEYS: depth   ARGV: base, then per lane: lane, epoch, wake job, claim entry, chunk size, n, n items
local base = ARGV[1]
local out = {}
local popped = 0
local i = 2
while i <= #ARGV do
  local lane, epoch, entry = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local claims = base .. 'claims:' .. ARGV[i + 2]
  local chunk = tonumber(ARGV[i + 4])
  local n = tonumber(ARGV[i + 5])
  local list = base .. 'lane:' .. lane
  local sched = base .. 'sched:' .. lane
  for j = i + 6, i + 5 + n do
    if redis.call('LINDEX', list, 0) ~= ARGV[j] then break end
    redis.call('LPOP', list)
    popped = popped + 1
  end
  i = i + 6 + n
  if redis.call('LLEN', list) > 0 then
    if redis.call('GET', sched) ~= epoch then
      out[#out + 1] = 0
    else
      out[#out + 1] = redis.call('LRANGE', list, 0, chunk - 1)
    end
  else
    if redis.call('GET', sched) == epoch then redis.call('DEL', sched) end
    redis.call('SREM', claims, entry)
    out[#out + 1] = 1
  end
end
if popped > 0 then redis.call('DECRBY', KEYS[1], popped) end
return out
