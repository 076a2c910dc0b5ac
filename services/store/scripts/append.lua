-- Append one sealed event to a story, all or nothing (docs/architecture.md, "The append").
-- Built by services.store.scripts.append; every slot by name:
-- KEYS (5): events (the record stream), head (hash), feed (the partition's projector feed),
--           idempotency (the keyed request's first answer; unused without a fingerprint),
--           mark (the store's identity on this partition)
-- ARGV (9): expected_version, expected_hash (the head the decision assumed), version, new_hash,
--           envelope (canonical JSON), fingerprint ('' without a key), ttl (seconds), story,
--           store (the id the writer knows this store by)
-- Returns {'ok', version} | {'dup', first answer (or this envelope, already appended)} | {'reused', ''} | {'conflict', head version}
--       | {'lost', the mark found or ''} (the store is not the one the writer knows: nothing done)
if #KEYS ~= 5 or #ARGV ~= 9 then
  return redis.error_reply('ERR append.lua: expected 5 keys (events, head, feed, idempotency,'
    .. ' mark) and 9 arguments (expected_version, expected_hash, version, new_hash, envelope,'
    .. ' fingerprint, ttl, story, store), got ' .. #KEYS .. ' keys and ' .. #ARGV .. ' arguments')
end
local events, head, feed, idempotency, mark = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local expected_version, expected_hash = ARGV[1], ARGV[2]
local version, new_hash, envelope = ARGV[3], ARGV[4], ARGV[5]
local fingerprint, ttl, story, store = ARGV[6], ARGV[7], ARGV[8], ARGV[9]

-- First, whether this is still the store the writer knows: one wiped (or swapped) under it
-- would otherwise take a story's version 1 again.
local found = redis.call('GET', mark)
if found ~= store then
  return {'lost', found or ''}
end

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
  -- This very call may have run before: its reply was lost and it was sent again (a cluster
  -- client resends after a connection error). The record then holds this envelope at this
  -- version, and the first run's answer is the answer.
  if tonumber(v) >= tonumber(version) then
    local at = redis.call('XRANGE', events, version .. '-0', version .. '-0')
    if at[1] and at[1][2][4] == envelope then
      return {'dup', envelope}
    end
  end
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
