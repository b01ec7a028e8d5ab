-- KEYS: dedupe, lane, sched, ready, epoch, depth, waking, wakeSeq   ARGV: item, dedupeTtlMs, lane, useDedupe
if ARGV[4] == '1' and redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) == false then return {0, 0} end
redis.call('INCR', KEYS[6])
return {1, enqueue(KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[7], KEYS[8], ARGV[1], ARGV[3])}
