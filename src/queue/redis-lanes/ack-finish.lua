-- KEYS: lane, depth, sched, claims   ARGV: epoch, claim entry, items in order
-- Acknowledges, and unschedules the lane (releasing the job's claim) in the same step if that left it empty.
local popped = 0
for i = 3, #ARGV do
  if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[i] then break end
  redis.call('LPOP', KEYS[1])
  popped = popped + 1
end
if popped > 0 then redis.call('DECRBY', KEYS[2], popped) end
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('SREM', KEYS[4], ARGV[2])
return 1
