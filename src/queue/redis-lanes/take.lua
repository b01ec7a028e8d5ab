-- The step claim.lua and top-up.lua end with (needs chunks.lua), `keys` being theirs (claims,
-- ready, waking, wakeSeq): takes up to `max` ready lanes into the job's claims. More lanes wait:
-- the next job is marked here, in the same step, and added by the caller. Else the job (wake
-- `wake`) keeps the mark for `lingerMs` while it has lanes to drain (`busy`, or lanes taken now):
-- lanes that become ready meanwhile are its to take (top-up.lua), and their producers add no job;
-- the mark lapses if the job's worker dies. Else the mark goes.
-- Returns {entries, next wake or 0, each entry's first chunk, each entry's cached session
-- (chunks.lua), 1 when the job lingers}.
local function take(keys, max, wake, lingerMs, busy, base, chunk, cache)
  local taken = {}
  if tonumber(max) > 0 then taken = redis.call('LPOP', keys[2], max) or {} end
  if #taken > 0 then
    redis.call('SADD', keys[1], unpack(taken))
    -- The index of the jobs that hold claims (claimants.lua): a job that ends without releasing
    -- them is found there, not by scanning every key.
    redis.call('SADD', base .. 'claimants', wake)
  end
  local next = 0
  local lingers = 0
  if redis.call('LLEN', keys[2]) > 0 then
    next = redis.call('INCR', keys[4])
    redis.call('SET', keys[3], next)
  elseif tonumber(lingerMs) > 0 and (busy or #taken > 0) then
    redis.call('SET', keys[3], wake, 'PX', lingerMs)
    lingers = 1
  else
    redis.call('DEL', keys[3])
  end
  local out, sessions = chunks(taken, base, chunk, cache)
  return {taken, next, out, sessions, lingers}
end
