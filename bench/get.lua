-- wrk script of bench.reads: the same GET again and again, with the headers a reader's browser sends.
-- Environment: BENCH_PATH, BENCH_ACCEPT_ENCODING, BENCH_IF_NONE_MATCH (empty: none).
-- No request() function: wrk builds the request once and sends it as it is, so the script costs
-- nothing per request. done() prints one line, BENCH_JSON {...}, that the bench reads
-- (latencies in microseconds).
wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH")
wrk.headers["Accept-Encoding"] = os.getenv("BENCH_ACCEPT_ENCODING")
local match = os.getenv("BENCH_IF_NONE_MATCH")
if match ~= nil and match ~= "" then
  wrk.headers["If-None-Match"] = match
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
