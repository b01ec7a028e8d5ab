-- The writes a process made in one moment (session cache entries, bus notices), in their order,
-- in one script: one command for the client to make and Redis to parse instead of one each.
-- ARGV, per write: 's', key, value, ttl seconds (SET EX) | 'd', key (DEL) | 'p', channel, message
-- (PUBLISH). Keys are made by the caller: the hub runs on one Redis, not a cluster.
local i = 1
while i <= #ARGV do
  local op = ARGV[i]
  if op == 's' then
    redis.call('SET', ARGV[i + 1], ARGV[i + 2], 'EX', ARGV[i + 3])
    i = i + 4
  elseif op == 'd' then
    redis.call('DEL', ARGV[i + 1])
    i = i + 2
  else
    redis.call('PUBLISH', ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  end
end
return 0
