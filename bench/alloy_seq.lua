-- alloy.so under load: the alloy rows of the throughput benchmarks.
--
--   lua5.4 bench/alloy_seq.lua seq   N   EMBEDDED_URL USER_ID [CAFILE]
--   lua5.4 bench/alloy_seq.lua batch N C EMBEDDED_URL USER_ID [CAFILE]
--   lua5.4 bench/alloy_seq.lua stream N C EMBEDDED_URL USER_ID [CAFILE]
--
-- seq: N x client:user_token(USER_ID) on one client (one reused easy handle).
-- batch: one client:batch() of N {op = "user_token", args = {USER_ID}} requests with
-- {concurrency = C} (each result: res with ok = true and value = token, or
-- {ok = false, error, code, res}); exits 3 with
-- "n/a: ..." on stderr when this alloy.so has no batch.
-- stream: the same batch with on_result, which checks each result and keeps none (as the
-- raw C client keeps none).
-- API key: environment variable BENCH_API_KEY. Prints "ok=<n> seconds=<elapsed>".
local here = arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "."
package.cpath = here .. "/../build/lua5.4/?.so;" .. package.cpath

local alloy = require "alloy"
local gettime = require("socket.core").gettime

local function usage()
  io.stderr:write("usage: alloy_seq.lua seq N EMBEDDED_URL USER_ID [CAFILE]\n",
    "       alloy_seq.lua batch|stream N C EMBEDDED_URL USER_ID [CAFILE]\n")
  os.exit(2)
end

local mode = arg[1]
local n, c, url, user_id, cafile
if mode == "seq" then
  n, url, user_id, cafile = tonumber(arg[2]), arg[3], arg[4], arg[5]
elseif mode == "batch" or mode == "stream" then
  n, c, url, user_id, cafile = tonumber(arg[2]), tonumber(arg[3]), arg[4], arg[5], arg[6]
  if not c then usage() end
else
  usage()
end
if not (n and url and user_id) then usage() end

local key = os.getenv("BENCH_API_KEY")
if not key or key == "" then
  io.stderr:write("alloy_seq: set BENCH_API_KEY in the environment\n")
  os.exit(2)
end

local client = alloy.new {
  api_key = key,
  embedded_url = url,
  ca_file = (cafile and cafile ~= "-") and cafile or nil,
}

local ok = 0
local t0, t1
if mode == "seq" then
  local reported = false
  t0 = gettime()
  for _ = 1, n do
    local token, msg = client:user_token(user_id)
    if token then
      ok = ok + 1
    elseif not reported then
      reported = true
      io.stderr:write("alloy_seq: ", tostring(msg), "\n")
    end
  end
  t1 = gettime()
else
  local has_batch, batch = pcall(function() return client.batch end)
  if not has_batch or type(batch) ~= "function" then
    io.stderr:write("n/a: client:batch is not available in this alloy.so\n")
    os.exit(3)
  end
  local requests = {}
  for i = 1, n do
    requests[i] = { op = "user_token", args = { user_id } }
  end
  local reported = false
  local function check(i, r)
    if type(r) == "table" and r.ok ~= false and type(r.value) == "string" and r.value ~= "" then
      ok = ok + 1
    elseif not reported then
      reported = true
      local why = type(r) == "table" and (r.error or r[2] or r.code or r.status) or tostring(r)
      io.stderr:write("alloy_seq: request ", i, ": ", tostring(why), "\n")
    end
  end
  if mode == "stream" then
    t0 = gettime()
    client:batch(requests, { concurrency = c, on_result = check })
    t1 = gettime()
  else
    t0 = gettime()
    local results = client:batch(requests, { concurrency = c })
    t1 = gettime()
    for i = 1, n do check(i, results[i]) end
  end
end
client:close()
io.write(string.format("ok=%d seconds=%.6f\n", ok, t1 - t0))
os.exit(ok == n and 0 or 1)
