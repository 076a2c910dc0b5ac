-- Append one sealed event to a story, all or nothing (docs/architecture.md, "The append").
-- KEYS[1] events stream   KEYS[2] head hash   KEYS[3] projector feed   KEYS[4] idempotency record
-- ARGV[1] expected version   ARGV[2] expected head hash   ARGV[3] new version   ARGV[4] new hash
-- ARGV[5] envelope JSON      ARGV[6] request fingerprint ('' without a key)   ARGV[7] ttl (s)
-- ARGV[8] story id
-- Returns {'ok', version} | {'dup', first answer} | {'reused', ''} | {'conflict', head version}
if ARGV[6] ~= '' then
  local rec = redis.call('GET', KEYS[4])
  if rec then
    if string.sub(rec, 1, 64) == ARGV[6] then
      return {'dup', string.sub(rec, 66)}
    end
    return {'reused', ''}
  end
end
local head = redis.call('HMGET', KEYS[2], 'v', 'h')
local v = head[1] or '0'
local h = head[2] or '0000000000000000000000000000000000000000000000000000000000000000'
if v ~= ARGV[1] or h ~= ARGV[2] then
  return {'conflict', v}
end
redis.call('XADD', KEYS[1], ARGV[3] .. '-0', 'f', '1', 'e', ARGV[5])
redis.call('HSET', KEYS[2], 'v', ARGV[3], 'h', ARGV[4])
redis.call('XADD', KEYS[3], '*', 's', ARGV[8], 'v', ARGV[3], '__data__', ARGV[5])
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[4], ARGV[6] .. '\n' .. ARGV[5], 'EX', ARGV[7])
end
return {'ok', ARGV[3]}
