-- wrk script for bench/service_bench.py: optional POST body and bearer tokens, JSON summary.
--
--   wrk ... -s bench/wrk_report.lua URL -- METHOD [BODY_FILE [TOKENS_FILE]]
--
-- With a token file, every request carries the next token (one use each: the service refuses
-- a replayed jti). When the pool runs out the thread stops instead of replaying a token, so
-- the run ends early (fewer requests than the pool) rather than counting refusals.

local method, body, tokens = "GET", nil, nil
local used = 0

function init(args)
  method = args[1] or "GET"
  if args[2] and args[2] ~= "" then
    local f = assert(io.open(args[2], "rb"))
    body = f:read("*a")
    f:close()
  end
  if args[3] then
    tokens = {}
    for line in io.lines(args[3]) do
      tokens[#tokens + 1] = line
    end
  end
end

function request()
  local headers = {}
  if body then
    headers["Content-Type"] = "application/json"
  end
  if tokens then
    used = used + 1
    if used > #tokens then
      wrk.thread:stop()
      used = #tokens
    end
    headers["Authorization"] = "Bearer " .. tokens[used]
  end
  return wrk.format(method, nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
