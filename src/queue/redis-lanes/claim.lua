-- KEYS: claims, ready, waking, wakeSeq   ARGV: max, base, chunk, cache prefix ('': none), wake,
--   lingerMs (needs chunks.lua)
-- Returns {entries, next wake or 0, each entry's first chunk (false: a newer epoch owns the lane),
-- each entry's session in the shared session cache (chunks.lua), 1 when the job lingers}.
local cache = ARGV[4] or ''
-- A job started again (its worker died, or a lane of it failed) gets back the lanes it holds.
if redis.call('EXISTS', KEYS[1]) == 1 then
  local held = redis.call('SMEMBERS', KEYS[1])
  local out, sessions = chunks(held, ARGV[2], ARGV[3], cache)
  return {held, 0, out, sessions, 0}
end
local taken = redis.call('LPOP', KEYS[2], ARGV[1])
if not taken then taken = {} end
if #taken > 0 then redis.call('SADD', KEYS[1], unpack(taken)) end
-- More lanes wait: the next job is marked here, in the same step, and added by the caller.
local next = 0
local lingers = 0
if redis.call('LLEN', KEYS[2]) > 0 then
  next = redis.call('INCR', KEYS[4])
  redis.call('SET', KEYS[3], next)
elseif #taken > 0 and tonumber(ARGV[6] or '0') > 0 then
  -- The job keeps the mark while its drains run: lanes that become ready meanwhile are its to
  -- take (top-up.lua), and their producers add no job. The mark lapses if the job's worker dies.
  redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6])
  lingers = 1
else
  redis.call('DEL', KEYS[3])
end
local out, sessions = chunks(taken, ARGV[2], ARGV[3], cache)
return {taken, next, out, sessions, lingers}
