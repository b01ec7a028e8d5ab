-- KEYS: dedupe, lane, sched, ready, epoch, depth, waking, wakeSeq   ARGV: item, dedupeTtlMs, lane, useDedupe
if ARGV[4] == '1' and redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) == false then return {0, 0} end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[6])
if redis.call('EXISTS', KEYS[3]) == 1 then return {1, 0} end
local epoch = redis.call('INCR', KEYS[5])
redis.call('SET', KEYS[3], epoch)
redis.call('RPUSH', KEYS[4], epoch .. '|' .. ARGV[3])
return {1, wake(KEYS[7], KEYS[8])}
