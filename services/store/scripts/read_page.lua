-- Read one page of a story's state in one atomic step: its meta, pin and key events and the
-- page's entries, as project.lua last wrote them together, so a page never mixes two versions
-- (a page labelled version V never shows an entry as it was at V+1). All keys share the story's
-- partition slot. Built by services.store.scripts.read_page; every slot by name:
-- KEYS (3): meta (hash: json, pinned_json, key_events), order (sorted set: entry id by the
--           version it was published at), entries (hash: entry id -> entry JSON)
-- ARGV (2): high (the highest score taken: '+inf', or '(<before>' for the page before it),
--           count (entries to take, newest first: the page's limit + 1, to know if there is more)
-- Returns {json, pinned_json, key_events, entry JSON...}, or {false} when the story does not exist.
if #KEYS ~= 3 or #ARGV ~= 2 then
  return redis.error_reply('ERR read_page.lua: expected 3 keys (meta, order, entries) and 2'
    .. ' arguments (high, count), got ' .. #KEYS .. ' keys and ' .. #ARGV .. ' arguments')
end
local meta, order, entries = KEYS[1], KEYS[2], KEYS[3]
local high, count = ARGV[1], ARGV[2]
local head = redis.call('HMGET', meta, 'json', 'pinned_json', 'key_events')
if not head[1] then
  return {false}
end
local ids = redis.call('ZREVRANGEBYSCORE', order, high, '-inf', 'LIMIT', 0, count)
if #ids > 0 then
  local found = redis.call('HMGET', entries, unpack(ids))
  for i = 1, #found do
    head[3 + i] = found[i]
  end
end
return head
