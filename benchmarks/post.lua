-- wrk script: POST the JSON body stored in the file named by the first script
-- argument, count every response that is not 2xx (so a server answering with
-- errors cannot look fast), and print one machine-readable summary line.
-- Usage: wrk -t1 -c16 -d5s -s post.lua URL -- BODY_FILE [JSON_HEADER_LENGTH] ["Name: value" ...]
-- With JSON_HEADER_LENGTH (a number) the body is a V2 binary-extension request:
-- its JSON header is that long, and the tensor bytes follow. "Name: value"
-- arguments are request headers (a credential, say).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
  for i = 2, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    if name then
      wrk.headers[name] = value
    else
      wrk.headers["Content-Type"] = "application/octet-stream"
      wrk.headers["Inference-Header-Content-Length"] = args[i]
    end
  end
  not_2xx = 0  -- wrk formats the request from these settings after init returns
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    not_2xx = not_2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("not_2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"not_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, e.connect + e.read + e.write + e.timeout))
end
