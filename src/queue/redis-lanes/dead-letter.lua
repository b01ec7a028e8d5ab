-- KEYS: lane, dead, depth   ARGV: item, record
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
redis.call('DECRBY', KEYS[3], 1)
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
