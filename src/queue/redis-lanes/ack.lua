-- KEYS: lane, depth   ARGV: items in order
local popped = 0
for i = 1, #ARGV do
  if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[i] then break end
  redis.call('LPOP', KEYS[1])
  popped = popped + 1
end
if popped > 0 then redis.call('DECRBY', KEYS[2], popped) end
return popped
