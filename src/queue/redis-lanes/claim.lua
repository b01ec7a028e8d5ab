-- KEYS: claims, ready, waking, wakeSeq   ARGV: max, base, chunk
-- Returns {entries, next wake or 0, each entry's first chunk (false: a newer epoch owns the lane)}.
local function chunks(entries)
  local out = {}
  for i, entry in ipairs(entries) do
    local bar = string.find(entry, '|', 1, true)
    local lane = string.sub(entry, bar + 1)
    if redis.call('GET', ARGV[2] .. 'sched:' .. lane) == string.sub(entry, 1, bar - 1) then
      out[i] = redis.call('LRANGE', ARGV[2] .. 'lane:' .. lane, 0, tonumber(ARGV[3]) - 1)
    else
      out[i] = false
    end
  end
  return out
end
-- A job started again (its worker died, or a lane of it failed) gets back the lanes it holds.
if redis.call('EXISTS', KEYS[1]) == 1 then
  local held = redis.call('SMEMBERS', KEYS[1])
  return {held, 0, chunks(held)}
end
local taken = redis.call('LPOP', KEYS[2], ARGV[1])
if not taken then taken = {} end
if #taken > 0 then redis.call('SADD', KEYS[1], unpack(taken)) end
-- More lanes wait: the next job is marked here, in the same step, and added by the caller.
local next = 0
if redis.call('LLEN', KEYS[2]) > 0 then
  next = redis.call('INCR', KEYS[4])
  redis.call('SET', KEYS[3], next)
else
  redis.call('DEL', KEYS[3])
end
return {taken, next, chunks(taken)}
