-- KEYS: lock   ARGV: token
-- Deletes the lock only while it still holds this token: a lock that lapsed and was taken by
-- another worker stays that worker's. 1 when deleted, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
