-- KEYS: lane, sched   ARGV: epoch, count
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
return redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
