-- KEYS: dead   ARGV: cutoff (an ISO 8601 UTC time, as `at` is written), most to drop
-- Letters are appended as they are set aside, so the oldest is at the head: drops letters from
-- the head while theirs was set aside before the cutoff. A letter that does not parse could be
-- neither listed nor replayed: it goes too. Returns how many were dropped.
local dropped = 0
local most = tonumber(ARGV[2])
while dropped < most do
  local raw = redis.call('LINDEX', KEYS[1], 0)
  if not raw then break end
  local ok, letter = pcall(cjson.decode, raw)
  local at = ok and type(letter) == 'table' and letter.at or nil
  if type(at) == 'string' and at >= ARGV[1] then break end
  redis.call('LPOP', KEYS[1])
  dropped = dropped + 1
end
return dropped
