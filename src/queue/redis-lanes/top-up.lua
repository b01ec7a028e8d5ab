-- A lingering wake job (one that kept the mark, claim.lua) takes the lanes that became ready
-- while its drains ran (needs chunks.lua and take.lua). Nothing when the mark is no longer the
-- job's (it lapsed, or went to a newer job). Then, as claim.lua: lanes left ready (the job had no
-- room for them) mark the next job; else the job keeps the mark if `linger` and it drains
-- something, or lets it go.
-- KEYS: claims, ready, waking, wakeSeq
-- ARGV: wake, max, base, chunk, lingerMs (0: let go), busy (1: drains run), cache prefix ('': none)
-- Returns {entries, next wake or 0, each entry's first chunk, each entry's cached session
-- (chunks.lua), 1 when the job still lingers}.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {{}, 0, {}, {}, 0} end
return take(KEYS, ARGV[2], ARGV[1], ARGV[5], ARGV[6] == '1', ARGV[3], ARGV[4], ARGV[7] or '')
