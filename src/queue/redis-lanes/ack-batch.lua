-- The acknowledgements of several claimed lanes (those a worker's drainers reached in the same
-- moment, after one group commit), in one script. For each lane: pops the handled items from its
-- head, each only if it is still there; if that left the lane empty, unschedules it (its own epoch
-- only) and releases the job's claim in the same step: 1. Else the lane's next chunk (saving the
-- drainer a read.lua), or 0 when a newer epoch owns the lane. Per-lane keys are made from the
-- queue's base, as claim.lua does. Last, the length of the ready list: a lingering wake job of the
-- worker takes those lanes (lane-runner.ts).
-- One LRANGE reads the handled items and the chunk after them, and one LPOP takes the handled
-- ones: a lane costs the same few commands whatever the size of its chunk.
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
  local head = redis.call('LRANGE', list, 0, n + chunk - 1)
  local k = 0
  while k < n and head[k + 1] == ARGV[i + 6 + k] do k = k + 1 end
  if k > 0 then
    redis.call('LPOP', list, k)
    popped = popped + k
  end
  i = i + 6 + n
  if #head > k then
    if redis.call('GET', sched) ~= epoch then
      out[#out + 1] = 0
    else
      local rest = {}
      for j = k + 1, math.min(#head, k + chunk) do rest[#rest + 1] = head[j] end
      out[#out + 1] = rest
    end
  else
    if redis.call('GET', sched) == epoch then redis.call('DEL', sched) end
    redis.call('SREM', claims, entry)
    out[#out + 1] = 1
  end
end
if popped > 0 then redis.call('DECRBY', KEYS[1], popped) end
out[#out + 1] = redis.call('LLEN', base .. 'ready')
return out
