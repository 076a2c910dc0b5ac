-- Create a token: its name and its record together or not at all (both keys share the {tokens}
-- slot). Built by services.store.scripts.create_token; every slot by name:
-- KEYS (2): names (hash: token name -> digest), tokens (hash: digest -> record)
-- ARGV (3): name, digest (SHA-256 of the token), record (JSON: name, role)
-- Returns 1 when created, 0 when the name is taken.
if #KEYS ~= 2 or #ARGV ~= 3 then
  return redis.error_reply('ERR create_token.lua: expected 2 keys (names, tokens) and 3'
    .. ' arguments (name, digest, record), got ' .. #KEYS .. ' keys and ' .. #ARGV .. ' arguments')
end
local names, tokens = KEYS[1], KEYS[2]
local name, digest, record = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HSETNX', names, name, digest) == 0 then
  return 0
end
redis.call('HSET', tokens, digest, record)
return 1
