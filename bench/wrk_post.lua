-- wrk script: POST GraphQL request bodies and report one JSON line (driven by bench/load.py).
--
--   [WRK_BEARER_TOKEN=...] wrk -t T -c C -d 10s -s bench/wrk_post.lua URL -- BODIES [CHECK]
--
-- BODIES  file with one JSON request body per line; each thread sends them in turn, over and
--         over (a mixed workload is a file where every 20th line is the mutation).
-- WRK_BEARER_TOKEN  token for the Authorization header, if set (an environment variable rather
--         than an argument, so that it does not show in process listings).
-- CHECK   "body" (default): a response is an error when its status is not 2xx or its body holds
--         "errors" (GraphQL reports failures with status 200). "status": skip the body check;
--         wrk then counts only statuses >= 400 (errors.status) and does not hand bodies to Lua.
--
-- done() prints {"requests", "duration_s", "requests_per_s", "bytes", "errors": {...},
-- "latency_ms": {"p50", "p90", "p99", "mean", "max"}, "cache_hits", "body_check"} as the last line
-- of output; cache_hits counts responses Partner Hub answered from its response cache (header
-- X-Partner-Hub-Cache: hit), so a mixed workload reports its hit rate.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  local token = os.getenv("WRK_BEARER_TOKEN")
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  requests = {}
  for line in io.lines(args[1]) do
    if line ~= "" then
      requests[#requests + 1] = wrk.format("POST", nil, headers, line)
    end
  end
  assert(#requests > 0, "no request bodies in " .. args[1])
  sent, non2xx, graphql_errors, cache_hits = 0, 0, 0, 0
  body_check = args[2] ~= "status"
  if not body_check then
    -- wrk asks thread 1 after init() whether response() exists; without it no body reaches Lua.
    response = nil
  end
end

function request()
  sent = sent + 1
  return requests[(sent - 1) % #requests + 1]
end

function response(status, headers, body)
  if headers["x-partner-hub-cache"] == "hit" then
    cache_hits = cache_hits + 1
  end
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end

local function total(name)
  local sum = 0
  for _, thread in ipairs(threads) do
    sum = sum + thread:get(name)
  end
  return sum
end

function done(summary, latency, _)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "requests_per_s": %.2f, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d, '
      .. '"non2xx": %d, "graphql": %d}, '
      .. '"latency_ms": {"p50": %.3f, "p90": %.3f, "p99": %.3f, "mean": %.3f, "max": %.3f}, '
      .. '"cache_hits": %d, "body_check": %s}\n',
    summary.requests, seconds, summary.requests / seconds, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status, total("non2xx"), total("graphql_errors"),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.mean / 1000, latency.max / 1000, total("cache_hits"),
    tostring(threads[1]:get("body_check"))
  ))
end
