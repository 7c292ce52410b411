-- wrk script of benches/load/soak.sh: paces each connection and counts responses per
-- (second, status), so that the soak can tell errors inside its fault windows from the others.
--
-- Environment: SOAK_DELAY_MS  pause before each request of a connection (default 20)
--              SOAK_WRK_OUT   file written at the end: `EPOCH_SECOND STATUS COUNT` lines, then
--                             `# errors ...` and `# latency ...` summary lines
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  pause = tonumber(os.getenv("SOAK_DELAY_MS") or "20") or 20
end

function delay()
  return pause
end

function response(status, headers, body)
  local k = os.time() .. " " .. status
  counts[k] = (counts[k] or 0) + 1
end

function done(summary, latency, requests)
  local out = assert(io.open(assert(os.getenv("SOAK_WRK_OUT"), "SOAK_WRK_OUT unset"), "w"))
  for _, t in ipairs(threads) do
    local c = t:get("counts") or {}
    for k, n in pairs(c) do
      out:write(k, " ", n, "\n")
    end
  end
  local e = summary.errors
  out:write(string.format("# errors requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
  out:write(string.format("# latency p50_us=%d p99_us=%d max_us=%d\n",
    latency:percentile(50), latency:percentile(99), latency.max))
  out:close()
end
