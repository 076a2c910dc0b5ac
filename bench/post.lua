-- wrk script of bench.http_append: POST one entry.published to 100 stories in turn, with a token.
-- Environment: BENCH_TOKEN, BENCH_PREFIX (stories are <prefix>-000 .. -099), BENCH_STORIES, BENCH_BODY;
-- BENCH_TOKENS (comma-separated), when set, is used instead of BENCH_TOKEN, one token per request in turn.
-- done() prints one line, BENCH_JSON {...}, that the bench reads (latencies in microseconds).
local token = os.getenv("BENCH_TOKEN")
local prefix = os.getenv("BENCH_PREFIX")
local stories = tonumber(os.getenv("BENCH_STORIES"))
local body = os.getenv("BENCH_BODY")
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or token, "[^,]+") do
  tokens[#tokens + 1] = {
    ["Authorization"] = "Bearer " .. t,
    ["Content-Type"] = "application/json",
  }
end
local paths = {}
for i = 0, stories - 1 do
  paths[i] = string.format("/stories/%s-%03d/events", prefix, i)
end
local n = 0

request = function()
  n = n + 1
  return wrk.format("POST", paths[n % stories], tokens[n % #tokens + 1], body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
