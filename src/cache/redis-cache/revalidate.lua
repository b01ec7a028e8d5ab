-- Whether the cached snapshot is at the caller's version, reading only its head (`<version>|`):
-- 1 when it is, the snapshot when it is another, false when there is none.
-- KEYS: snapshot   ARGV: version, head bytes
local head = redis.call('GETRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
if head == '' then return false end
local bar = string.find(head, '|', 1, true)
if bar and string.sub(head, 1, bar - 1) == ARGV[1] then return 1 end
return redis.call('GET', KEYS[1])
