-- wrk script of benches/load/run.sh's portcullis-bearer-pool target: every request carries one
-- token of a pool, `Authorization: Bearer TOKEN`, instead of the same one each time.
--
-- Usage: wrk ... -s bearer_pool.wrk.lua URL -- TOKEN_FILE THREADS
--   TOKEN_FILE  one token a line (benches/load/mint.mjs POOL_SIZE)
--   THREADS     wrk's -t: thread i (0-based) of THREADS sends tokens i+1, i+1+THREADS, ... of
--               the file in turn, round-robin, so that the threads together send every token of
--               the pool once per pass over it and no token twice in a pass.
-- Each thread formats its requests once (init), so request() only hands out a prebuilt string:
-- the pool costs wrk a Lua call per request and nothing else. Other headers (-H, Host) are kept.
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  local file, threads = args[1], tonumber(args[2])
  assert(file and threads and threads > 0, "usage: wrk ... -s bearer_pool.wrk.lua URL -- TOKEN_FILE THREADS")
  local tokens = {}
  for line in io.lines(file) do
    if line ~= "" then
      tokens[#tokens + 1] = line
    end
  end
  requests = {}
  for i = id + 1, #tokens, threads do
    local headers = {}
    for name, value in pairs(wrk.headers) do
      headers[name] = value
    end
    headers["Authorization"] = "Bearer " .. tokens[i]
    requests[#requests + 1] = wrk.format(nil, nil, headers)
  end
  assert(#requests > 0, "thread " .. id .. ": no token for it in " .. file .. " (" .. #tokens .. " tokens)")
  n = 0
end

function request()
  n = n % #requests + 1
  return requests[n]
end
