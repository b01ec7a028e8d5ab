-- When no wake job is marked, marks a new one for the caller to add. Returns its number or 0.
-- Once a script has seen the mark (or made it), it does not look again: nothing else runs
-- while a script does, so a batch of pushes checks `waking` once, not once per new lane.
local waking_seen = false
local function wake(waking, seq)
  if waking_seen then return 0 end
  waking_seen = true
  if redis.call('EXISTS', waking) == 1 then return 0 end
  local n = redis.call('INCR', seq)
  redis.call('SET', waking, n)
  return n
end
