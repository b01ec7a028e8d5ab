-- When no wake job is marked, marks a new one for the caller to add. Returns its number or 0.
local function wake(waking, seq)
  if redis.call('EXISTS', waking) == 1 then return 0 end
  local n = redis.call('INCR', seq)
  redis.call('SET', waking, n)
  return n
end
