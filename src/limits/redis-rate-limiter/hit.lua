-- One atomic step per hit: drop the hits older than the window, count the rest, and record this
-- hit only when it fits. The clock is Redis's own (TIME), so gateways with skewed clocks agree.
-- A sorted set per key holds the allowed hits' times (score, ms) and expires with its window;
-- a named hit (ARGV[4] = 1) already in it is allowed again without being counted twice.
-- Returns {allowed (0/1), retryAfterMs, remaining}.
-- KEYS: window   ARGV: limit, windowMs, member, named (1: the member is a hit id)
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if ARGV[4] == '1' and redis.call('ZSCORE', key, ARGV[3]) then return {1, 0, limit - count} end
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
  return {1, 0, limit - count - 1}
end
local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now, 0}
