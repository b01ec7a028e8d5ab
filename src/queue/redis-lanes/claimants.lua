-- KEYS: claimants (the index take.lua adds a job to when it claims lanes)   ARGV: base
-- The wake jobs that hold claimed lanes, each with its claim entries: {wake, entries, wake,
-- entries, ...}. A job whose claims were all released leaves the index here, in the same step
-- that sees its claim set empty (a claim of its afterwards adds it again).
local out = {}
for _, wake in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local held = redis.call('SMEMBERS', ARGV[1] .. 'claims:' .. wake)
  if #held == 0 then
    redis.call('SREM', KEYS[1], wake)
  else
    out[#out + 1] = wake
    out[#out + 1] = held
  end
end
return out
