-- wrk script for the benchmark harness.
--   wrk ... -s post.lua <url> -- <body-file> [content-type]
-- POSTs the file's bytes as the body of every request. done() prints one line
-- `BENCH_RESULT {...}` with throughput, latency percentiles and errors; where a
-- server answers with an `x-batch-size` header (redesmyn does), it also sums
-- those so the harness can report the mean batch size a request rode in.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  local f = assert(io.open(path, "rb"), "cannot open body file " .. tostring(path))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = args[2] or "application/json"
  batch_sum = 0
  batch_n = 0
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  local b = headers["x-batch-size"] or headers["X-Batch-Size"]
  if b then
    batch_sum = batch_sum + tonumber(b)
    batch_n = batch_n + 1
  end
end

function done(summary, latency, requests)
  local bsum, bn, bad = 0, 0, 0
  for _, t in ipairs(threads) do
    bsum = bsum + (t:get("batch_sum") or 0)
    bn = bn + (t:get("batch_n") or 0)
    bad = bad + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  local out = string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p99_9":%d},' ..
    '"batch":{"sum":%d,"responses":%d},"non2xx":%d}',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    bsum, bn, bad)
  io.write("BENCH_RESULT " .. out .. "\n")
end
