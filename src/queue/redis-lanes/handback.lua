-- KEYS: sched, epoch, ready, waking, wakeSeq   ARGV: epoch, lane
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 0} end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], epoch)
redis.call('RPUSH', KEYS[3], epoch .. '|' .. ARGV[2])
return {epoch, wake(KEYS[4], KEYS[5])}
