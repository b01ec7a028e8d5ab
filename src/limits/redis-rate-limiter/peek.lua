-- The same window read without recording anything: {allowed (0/1), retryAfterMs, remaining}.
-- KEYS: window   ARGV: limit, windowMs
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = redis.call('ZCOUNT', key, '(' .. (now - window), '+inf')
if count < limit then return {1, 0, limit - count} end
local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (now - window), '+inf', 'WITHSCORES', 'LIMIT', count - limit, 1)
return {0, tonumber(oldest[2]) + window - now, 0}
