-- Write one story's projected state from version ARGV[1] to ARGV[2], the change messages of those
-- versions and the audit indexes, all or nothing (docs/architecture.md, "The projector"). Applies
-- only where the stored state is at ARGV[1]: a redelivered or already-applied event is never
-- applied twice.
-- KEYS[1] meta hash   KEYS[2] entries hash   KEYS[3] order zset   KEYS[4] partition's stories zset
-- KEYS[5] story's changes stream   KEYS[6] partition's changes stream (what gateways tail)
-- KEYS[7] entry index zset (members '<entry id>:<version, 12 digits>', every event about an entry
--         but its publication, which is its score in KEYS[3])   KEYS[8] checkpoints hash
-- KEYS[9] the partition's feed (its delivered entries are acknowledged here, with the state)
-- ARGV[1] from version   ARGV[2] to version   ARGV[3] meta JSON   ARGV[4] pinned entry id or ''
-- ARGV[5] pinned entry JSON or ''   ARGV[6] key-events JSON   ARGV[7] activity score (microseconds)
-- ARGV[8] story id   ARGV[9] story changes kept   ARGV[10] partition changes kept
-- then five counted sections, each a count n followed by its items:
--   changes: n pairs (version, change JSON), in version order
--   entries: n pairs (id, entry JSON), then n pairs (published version, id)
--   entry index: n members
--   checkpoints: n pairs (version, checkpoint JSON)
--   acknowledgements: the group, then n feed entry ids
-- Each section is written with one multi-argument command per CHUNK items, not one command per
-- event: a batch of a hundred events costs a few calls, not hundreds. So the changes of a run of
-- versions go into both change streams as one entry each (fields: version, change JSON, ...;
-- the story's entry has the id of the run's last version), where one XADD per change per stream
-- was a fifth of the server's time under a backlog (bench/projector.py).
-- Returns -1 when written, else the stored version (the caller re-reads and folds again).
local CHUNK = 1000
local function many(command, key, prefix, first, count, width)
  for at = first, first + count * width - 1, CHUNK * width do
    local last = math.min(at + CHUNK * width - 1, first + count * width - 1)
    if prefix then
      local args = {}
      for i = at, last do
        args[#args + 1] = prefix
        args[#args + 1] = ARGV[i]
      end
      redis.call(command, key, unpack(args))
    else
      redis.call(command, key, unpack(ARGV, at, last))
    end
  end
end
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur ~= tonumber(ARGV[1]) then
  return cur
end
-- The stream writes come first: a script is not rolled back, so nothing that could fail runs
-- after the version moves. A story's changes stream may already hold these versions when its
-- state was rebuilt from the record; they are the same changes, so they are not written again.
local last = 0
local top = redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
if top[1] then
  last = tonumber(string.match(top[1][1], '^(%d+)'))
end
local at = 11
local n = tonumber(ARGV[at])
local first = at + 1
while first <= at + 2 * n and tonumber(ARGV[first]) <= last do
  first = first + 2
end
-- The story's stream keeps every change from (newest - kept + 1) on: an entry goes only when the
-- last version it holds is older than that (MINID), so at least the last `kept` changes stay.
local keep = math.max(0, tonumber(ARGV[2]) - tonumber(ARGV[9]) + 1)
for from = first, at + 2 * n, CHUNK * 2 do
  local to = math.min(from + CHUNK * 2 - 1, at + 2 * n)
  redis.call('XADD', KEYS[5], 'MINID', '~', keep, ARGV[to - 1] .. '-0', unpack(ARGV, from, to))
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[10], '*', 's', ARGV[8],
    unpack(ARGV, from, to))
end
at = at + 2 * n + 1
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'json', ARGV[3], 'pinned', ARGV[4],
  'pinned_json', ARGV[5], 'key_events', ARGV[6])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[8])
n = tonumber(ARGV[at])
if n > 0 then
  many('HSET', KEYS[2], nil, at + 1, n, 2)
  many('ZADD', KEYS[3], nil, at + 1 + 2 * n, n, 2)
end
at = at + 4 * n + 1
n = tonumber(ARGV[at])
if n > 0 then  -- score 0: the members sort by name, so one entry's versions are one lex range
  many('ZADD', KEYS[7], '0', at + 1, n, 1)
end
at = at + n + 1
n = tonumber(ARGV[at])
if n > 0 then
  many('HSET', KEYS[8], nil, at + 1, n, 2)
end
at = at + 2 * n + 1
n = tonumber(ARGV[at])
if n > 0 then
  redis.call('XACK', KEYS[9], ARGV[at + 1], unpack(ARGV, at + 2, at + 1 + n))
end
return -1
