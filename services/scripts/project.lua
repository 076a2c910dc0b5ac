-- Write one story's projected state from version ARGV[1] to ARGV[2], all or nothing
-- (docs/architecture.md, "The projector"). Applies only where the stored state is at ARGV[1]:
-- a redelivered or already-applied event is never applied twice.
-- KEYS[1] meta hash   KEYS[2] entries hash   KEYS[3] order zset   KEYS[4] key-events zset
-- KEYS[5] partition's stories zset
-- ARGV[1] from version   ARGV[2] to version   ARGV[3] meta JSON   ARGV[4] pinned entry id or ''
-- ARGV[5] activity score (ms)   ARGV[6] story id
-- then per changed entry: id, entry JSON, published version, '1' if a key event else '0'
-- Returns -1 when written, else the stored version (the caller re-reads and folds again).
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur ~= tonumber(ARGV[1]) then
  return cur
end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'json', ARGV[3], 'pinned', ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[6])
for i = 7, #ARGV, 4 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i])
  if ARGV[i + 3] == '1' then
    redis.call('ZADD', KEYS[4], ARGV[i + 2], ARGV[i])
  else
    redis.call('ZREM', KEYS[4], ARGV[i])
  end
end
return -1
