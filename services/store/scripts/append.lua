-- Append one sealed event to a story, all or nothing (docs/architecture.md, "The append").
-- Built by services.store.scripts.append; every slot by name:
-- KEYS (4): events (the record stream), head (hash), feed (the partition's projector feed),
--           idempotency (the keyed request's first answer; unused without a fingerprint)
-- ARGV (8): expected_version, expected_hash (the head the decision assumed), version, new_hash,
--           envelope (canonical JSON), fingerprint ('' without a key), ttl (seconds), story
-- Returns {'ok', version} | {'dup', first answer} | {'reused', ''} | {'conflict', head version}
if #KEYS ~= 4 or #ARGV ~= 8 then
  return redis.error_reply('ERR append.lua: expected 4 keys (events, head, feed, idempotency)'
    .. ' and 8 arguments (expected_version, expected_hash, version, new_hash, envelope,'
    .. ' fingerprint, ttl, story), got ' .. #KEYS .. ' keys and ' .. #ARGV .. ' arguments')
end
local events, head, feed, idempotency = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local expected_version, expected_hash = ARGV[1], ARGV[2]
local version, new_hash, envelope = ARGV[3], ARGV[4], ARGV[5]
local fingerprint, ttl, story = ARGV[6], ARGV[7], ARGV[8]

if fingerprint ~= '' then
  local record = redis.call('GET', idempotency)
  if record then
    if string.sub(record, 1, 64) == fingerprint then
      return {'dup', string.sub(record, 66)}
    end
    return {'reused', ''}
  end
end
local stored = redis.call('HMGET', head, 'v', 'h')
local v = stored[1] or '0'
local h = stored[2] or '0000000000000000000000000000000000000000000000000000000000000000'
if v ~= expected_version or h ~= expected_hash then
  return {'conflict', v}
end
-- 'f' is the stored envelope's format, 1; 'e' the envelope. The XADD with an explicit id is the
-- one write that can fail, so it comes first: a script is not rolled back.
redis.call('XADD', events, version .. '-0', 'f', '1', 'e', envelope)
redis.call('HSET', head, 'v', version, 'h', new_hash)
redis.call('XADD', feed, '*', 's', story, 'v', version, '__data__', envelope)
if fingerprint ~= '' then
  redis.call('SET', idempotency, fingerprint .. '\n' .. envelope, 'EX', ttl)
end
return {'ok', version}
