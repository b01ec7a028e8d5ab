-- Appends an item to its lane; a lane not scheduled yet gets a new epoch on the ready list (needs
-- wake.lua). The caller counts the item in `depth` (push-batch.lua once for the whole batch).
-- Returns the wake job the caller must add, or 0.
local function enqueue(lane, sched, ready, epoch, waking, wakeSeq, item, name)
  redis.call('RPUSH', lane, item)
  if redis.call('EXISTS', sched) == 1 then return 0 end
  local n = redis.call('INCR', epoch)
  redis.call('SET', sched, n)
  redis.call('RPUSH', ready, n .. '|' .. name)
  return wake(waking, wakeSeq)
end
