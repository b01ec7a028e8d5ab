-- A lingering wake job (one that kept the mark, claim.lua) takes the lanes that became ready
-- while its drains ran (needs chunks.lua). Nothing when the mark is no longer the job's (it
-- lapsed, or went to a newer job). Then, as claim.lua: lanes left ready (the job had no room for
-- them) mark the next job; else the job keeps the mark if `linger` and it drains something, or
-- lets it go.
-- KEYS: claims, ready, waking, wakeSeq
-- ARGV: wake, max, base, chunk, lingerMs (0: let go), busy (1: drains run), cache prefix ('': none)
-- Returns {entries, next wake or 0, each entry's first chunk, each entry's cached session
-- (chunks.lua), 1 when the job still lingers}.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {{}, 0, {}, {}, 0} end
local taken = {}
if tonumber(ARGV[2]) > 0 then taken = redis.call('LPOP', KEYS[2], ARGV[2]) or {} end
if #taken > 0 then redis.call('SADD', KEYS[1], unpack(taken)) end
local next = 0
local lingers = 0
if redis.call('LLEN', KEYS[2]) > 0 then
  next = redis.call('INCR', KEYS[4])
  redis.call('SET', KEYS[3], next)
elseif tonumber(ARGV[5]) > 0 and (ARGV[6] == '1' or #taken > 0) then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[5])
  lingers = 1
else
  redis.call('DEL', KEYS[3])
end
local out, sessions = chunks(taken, ARGV[3], ARGV[4], ARGV[7] or '')
return {taken, next, out, sessions, lingers}
