-- KEYS: ready, waking, wakeSeq
-- The wake job that ready lanes wait for (marking one if none is), or 0 when none wait.
if redis.call('LLEN', KEYS[1]) == 0 then return 0 end
local marked = wake(KEYS[2], KEYS[3])
if marked > 0 then return marked end
return tonumber(redis.call('GET', KEYS[2]))
