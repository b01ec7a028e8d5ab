-- Each claim entry's first chunk (false: a newer epoch owns the lane), and its session in the
-- shared session cache ({session id, cached value}; false: unknown). Shared by claim.lua and
-- top-up.lua. The session part saves the drainer's first turn the round trip that checks its copy
-- of the session (src/cache/redis-cache.ts): the keys are that cache's, `<cache>lane:<lane>` (the
-- lane's session id) and `<cache><session id>:snapshot` (cache '': none).
local function chunks(entries, base, chunk, cache)
  local out, sessions = {}, {}
  for i, entry in ipairs(entries) do
    local bar = string.find(entry, '|', 1, true)
    local lane = string.sub(entry, bar + 1)
    sessions[i] = false
    if redis.call('GET', base .. 'sched:' .. lane) == string.sub(entry, 1, bar - 1) then
      out[i] = redis.call('LRANGE', base .. 'lane:' .. lane, 0, tonumber(chunk) - 1)
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
