-- KEYS: claims, ready, waking, wakeSeq   ARGV: max, base, chunk, cache prefix ('': none), wake,
--   lingerMs (needs chunks.lua and take.lua)
-- Returns {entries, next wake or 0, each entry's first chunk (false: a newer epoch owns the lane),
-- each entry's session in the shared session cache (chunks.lua), 1 when the job lingers}.
local cache = ARGV[4] or ''
-- A job started again (its worker died, or a lane of it failed) gets back the lanes it holds.
if redis.call('EXISTS', KEYS[1]) == 1 then
  local held = redis.call('SMEMBERS', KEYS[1])
  local out, sessions = chunks(held, ARGV[2], ARGV[3], cache)
  return {held, 0, out, sessions, 0}
end
-- With lingerMs, a job that takes lanes keeps the mark while their drains run (take.lua).
return take(KEYS, ARGV[1], ARGV[5], ARGV[6] or '0', false, ARGV[2], ARGV[3], cache)
