-- Write one story's projected state from version from_version to to_version, the change messages
-- of those versions and the audit indexes, and acknowledge the feed entries they came in, all or
-- nothing (docs/architecture.md, "The projector"). Applies only where the stored state is at
-- from_version: a redelivered or already-applied event is never applied twice.
-- Built by services.store.scripts.project; every slot by name:
-- KEYS (9): meta (hash), entries (hash), order (zset), stories (the partition's, zset),
--   changes (the story's stream), partition_changes (the stream gateways tail),
--   entry_index (zset of '<entry id>:<version, 12 digits>': every event about an entry but its
--   publication, which is its score in order), checkpoints (hash), feed (the partition's)
-- ARGV: 11 fixed slots: from_version, to_version, meta_json, pinned (entry id or ''),
--   pinned_json (or ''), key_events (JSON), activity (score, microseconds), story,
--   changes_kept, partition_changes_kept, group;
--   then five counted sections, each a count n followed by its items:
--   changes: n pairs (version, change JSON), in version order
--   entries: n pairs (id, entry JSON), then n pairs (published version, id)
--   index: n members of entry_index
--   checkpoints: n pairs (version, checkpoint JSON)
--   acks: n feed entry ids (acknowledged in group)
-- Returns -1 when written, else the stored version (the caller re-reads and folds again).
local FIXED = 11
local function arity(detail)
  return redis.error_reply('ERR project.lua: expected 9 keys (meta, entries, order, stories,'
    .. ' changes, partition_changes, entry_index, checkpoints, feed) and 11 fixed arguments'
    .. ' followed by five counted sections (changes, entries, index, checkpoints, acks): '
    .. detail)
end
if #KEYS ~= 9 then
  return arity('got ' .. #KEYS .. ' keys')
end
-- Each section's count slot, checked before anything is read or written: the counts must add
-- up to #ARGV exactly.
local sections = {{'changes', 2}, {'entries', 4}, {'index', 1}, {'checkpoints', 2}, {'acks', 1}}
local at, count = {}, {}
local next_at = FIXED + 1
for _, section in ipairs(sections) do
  local n = tonumber(ARGV[next_at])
  if n == nil or n < 0 then
    return arity('no count for ' .. section[1] .. ' at argument ' .. next_at .. ' of ' .. #ARGV)
  end
  at[section[1]], count[section[1]] = next_at, n
  next_at = next_at + 1 + n * section[2]
end
if next_at - 1 ~= #ARGV then
  return arity('the counts add up to ' .. (next_at - 1) .. ' arguments, got ' .. #ARGV)
end
local meta, entries, order, stories = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local changes, partition_changes, entry_index = KEYS[5], KEYS[6], KEYS[7]
local checkpoints, feed = KEYS[8], KEYS[9]
local from_version, to_version = tonumber(ARGV[1]), ARGV[2]
local meta_json, pinned, pinned_json, key_events = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local activity, story = ARGV[7], ARGV[8]
local changes_kept, partition_changes_kept, group = tonumber(ARGV[9]), ARGV[10], ARGV[11]

-- Each section is written with one multi-argument command per CHUNK items, not one command per
-- event: a batch of a hundred events costs a few calls, not hundreds.
local CHUNK = 1000
local function many(command, key, prefix, first, n, width)
  for from = first, first + n * width - 1, CHUNK * width do
    local to = math.min(from + CHUNK * width - 1, first + n * width - 1)
    if prefix then
      local args = {}
      for i = from, to do
        args[#args + 1] = prefix
        args[#args + 1] = ARGV[i]
      end
      redis.call(command, key, unpack(args))
    else
      redis.call(command, key, unpack(ARGV, from, to))
    end
  end
end

local cur = tonumber(redis.call('HGET', meta, 'version') or '0')
if cur ~= from_version then
  return cur
end
-- The stream writes come first: a script is not rolled back, so nothing that could fail runs
-- after the version moves. A story's changes stream may already hold these versions when its
-- state was rebuilt from the record; they are the same changes, so they are not written again.
-- A run of versions goes into each changes stream as one entry (fields: version, change JSON,
-- ...; the story's entry has the id of the run's last version).
local last = 0
local top = redis.call('XREVRANGE', changes, '+', '-', 'COUNT', 1)
if top[1] then
  last = tonumber(string.match(top[1][1], '^(%d+)'))
end
local n = count.changes
local first, stop = at.changes + 1, at.changes + 2 * n
while first <= stop and tonumber(ARGV[first]) <= last do
  first = first + 2
end
-- The story's stream keeps every change from (newest - kept + 1) on: an entry goes only when the
-- last version it holds is older than that (MINID), so at least the last `kept` changes stay.
local keep = math.max(0, tonumber(to_version) - changes_kept + 1)
for from = first, stop, CHUNK * 2 do
  local to = math.min(from + CHUNK * 2 - 1, stop)
  redis.call('XADD', changes, 'MINID', '~', keep, ARGV[to - 1] .. '-0', unpack(ARGV, from, to))
  redis.call('XADD', partition_changes, 'MAXLEN', '~', partition_changes_kept, '*', 's', story,
    unpack(ARGV, from, to))
end
redis.call('HSET', meta, 'version', to_version, 'json', meta_json, 'pinned', pinned,
  'pinned_json', pinned_json, 'key_events', key_events)
redis.call('ZADD', stories, activity, story)
n = count.entries
if n > 0 then
  many('HSET', entries, nil, at.entries + 1, n, 2)
  many('ZADD', order, nil, at.entries + 1 + 2 * n, n, 2)
end
n = count.index
if n > 0 then  -- score 0: the members sort by name, so one entry's versions are one lex range
  many('ZADD', entry_index, '0', at.index + 1, n, 1)
end
n = count.checkpoints
if n > 0 then
  many('HSET', checkpoints, nil, at.checkpoints + 1, n, 2)
end
n = count.acks
if n > 0 then
  redis.call('XACK', feed, group, unpack(ARGV, at.acks + 1, at.acks + n))
end
return -1
