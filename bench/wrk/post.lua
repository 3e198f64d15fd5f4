-- wrk script for the benchmark harness.
--   wrk ... -s post.lua <url> -- <body-file> [content-type] [repeat-share]
-- POSTs the file's bytes as the body of every request. With a repeat share
-- (e.g. 0.8), the file is a pool instead: its first line a body template
-- whose `%NOVEL%` becomes a random number no request used before, every other line
-- a body; each request sends a pool line with that probability (a record
-- seen before), else a novel body from the template. done() prints one line
-- `BENCH_RESULT {...}` with throughput, latency percentiles and errors; where a
-- server answers with an `x-batch-size` header (redesmyn does), it also sums
-- those so the harness can report the mean batch size a request rode in.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

-- A request from the pool: installed by init() only when there is a pool
-- (wrk asks whether `request` exists after init), so a single body stays
-- wrk's prebuilt request.
local function pooled_request()
  if math.random() < repeat_share then
    return wrk.format(nil, nil, nil, pool[math.random(#pool)])
  end
  -- A random float well away from the pool's values: 52 random bits, so no
  -- two requests of this run, nor of the warm-up run before it, share one.
  local value = string.format("%.17g", 1000000 + math.random() * 1000000)
  return wrk.format(nil, nil, nil, (template:gsub("%%NOVEL%%", value)))
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
  repeat_share = tonumber(args[3] or "")
  if repeat_share then
    pool = {}
    for line in wrk.body:gmatch("[^\n]+") do
      if template == nil then template = line else table.insert(pool, line) end
    end
    assert(template and template:find("%NOVEL%", 1, true) and #pool > 0, "a pool needs a %NOVEL% template line and bodies")
    -- Seeded from the system's entropy: runs started in the same second
    -- (the warm-up and the measured run) must not repeat each other.
    local urandom = assert(io.open("/dev/urandom", "rb"))
    local bytes = urandom:read(4)
    urandom:close()
    math.randomseed(bytes:byte(1) * 16777216 + bytes:byte(2) * 65536 + bytes:byte(3) * 256 + bytes:byte(4) + thread_id)
    request = pooled_request
  end
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
