-- KEYS: lane, depth, sched, claims   ARGV: epoch, claim entry, chunk size, items in order
-- Acknowledges; if that left the lane empty, unschedules it and releases the job's claim in the same
-- step and returns 1. Else returns the lane's next chunk (saving the drainer a read.lua), or 0 when
-- a newer epoch owns the lane.
local popped = 0
for i = 4, #ARGV do
  if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[i] then break end
  redis.call('LPOP', KEYS[1])
  popped = popped + 1
end
if popped > 0 then redis.call('DECRBY', KEYS[2], popped) end
if redis.call('LLEN', KEYS[1]) > 0 then
  if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
  return redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('SREM', KEYS[4], ARGV[2])
return 1
