-- Take one write from a token's allowance, or say how long until one is free (GCRA: the
-- generic cell rate algorithm; docs/architecture.md, "Limits"). Shared by every API process on
-- the store, so the limit holds however many there are.
-- Built by services.store.scripts.rate; every slot by name:
-- KEYS (1): bucket (the token's theoretical arrival time, microseconds of the server's clock)
-- ARGV (2): interval (microseconds between writes at the sustained rate), burst (writes that
--           may come at once after a quiet spell)
-- Returns 0 when the write may go ahead, else the microseconds until one may.
if #KEYS ~= 1 or #ARGV ~= 2 then
  return redis.error_reply('ERR rate.lua: expected 1 key (bucket) and 2 arguments (interval,'
    .. ' burst), got ' .. #KEYS .. ' keys and ' .. #ARGV .. ' arguments')
end
-- A bucket is not worth an fsync, nor a replica's copy: after a restart or a failover every
-- token starts with its whole burst again. Nothing of it reaches the append-only file.
redis.set_repl(redis.REPL_NONE)
local bucket = KEYS[1]
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', bucket) or '0')
if tat < now then
  tat = now
end
local next_tat = tat + interval
local free_at = next_tat - interval * burst
if free_at > now then
  return free_at - now
end
redis.call('SET', bucket, string.format('%.0f', next_tat), 'PX',
  math.floor((next_tat - now) / 1000) + 1)
return 0
