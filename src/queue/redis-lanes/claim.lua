-- KEYS: claims, ready, waking, wakeSeq   ARGV: max, base, chunk, cache prefix ('': none)
-- Returns {entries, next wake or 0, each entry's first chunk (false: a newer epoch owns the lane),
-- each entry's session in the shared session cache ({session id, cached value}; false: unknown)}.
-- The session part saves the drainer's first turn the round trip that checks its copy of the
-- session (src/cache/redis-cache.ts): the keys are that cache's, `<prefix>lane:<lane>` (the
-- lane's session id) and `<prefix><session id>:snapshot`.
local cache = ARGV[4] or ''
local function chunks(entries)
  local out, sessions = {}, {}
  for i, entry in ipairs(entries) do
    local bar = string.find(entry, '|', 1, true)
    local lane = string.sub(entry, bar + 1)
    sessions[i] = false
    if redis.call('GET', ARGV[2] .. 'sched:' .. lane) == string.sub(entry, 1, bar - 1) then
      out[i] = redis.call('LRANGE', ARGV[2] .. 'lane:' .. lane, 0, tonumber(ARGV[3]) - 1)
      if cache ~= '' then
        local id = redis.call('GET', cache .. 'lane:' .. lane)
        if id then sessions[i] = {id, redis.call('GET', cache .. id .. ':snapshot')} end
      end
    else
      out[i] = false
    end
  end
  return out, sessions
end
-- A job started again (its worker died, or a lane of it failed) gets back the lanes it holds.
if redis.call('EXISTS', KEYS[1]) == 1 then
  local held = redis.call('SMEMBERS', KEYS[1])
  local out, sessions = chunks(held)
  return {held, 0, out, sessions}
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
local out, sessions = chunks(taken)
return {taken, next, out, sessions}
