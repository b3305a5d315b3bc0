-- Soak: 10,000 requests through one client while the sandbox injects ~10% mixed faults.
--
--   lua5.4 bench/soak.lua            (after `make`; SOAK_N, SOAK_FAULTS, SOAK_SEED to vary)
--
-- Every request is accounted for: a fault of each kind has one right outcome (a retried
-- 503/drop succeeds on its second attempt, a delay just succeeds, a malformed body is
-- JSON_DECODE, a 500 is HTTP_500 after one attempt), and the sandbox must have seen exactly
-- as many requests as the client says it made. Afterwards RSS must be within 2 MB of RSS after
-- the first 1,000 requests, and no file descriptor may have leaked. Prints a summary; exits 1
-- if any invariant fails. Not a timed test: the rate is printed, never judged.
local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
package.path = root .. "/spec/support/?.lua;" .. root .. "/lua/?.lua;" .. package.path
package.cpath = root .. "/build/lua5.4/?.so;" .. package.cpath

local Sandbox = require "sandbox"
local alloy = require "alloy"
local socket = require "socket"

local N = tonumber(os.getenv("SOAK_N")) or 10000
local FAULT_RATE = tonumber(os.getenv("SOAK_FAULTS")) or 0.10
local SEED = tonumber(os.getenv("SOAK_SEED")) or 20240611
local WARM = math.min(1000, N)
local RSS_SLACK_KB = 2048

local function rss_kb()
  local f = assert(io.open("/proc/self/status", "rb"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function fd_list()
  local f = assert(io.open("/proc/self/stat", "rb"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null"))
  local out = {}
  for line in p:lines() do
    local fd, target = line:match(" (%d+) %-> (.*)$")
    if fd then out[#out + 1] = fd .. " -> " .. target end
  end
  p:close()
  return out -- includes the pipe of this very popen, the same each time
end

-- The faults, each with the outcome it must produce. `wire` is what the sandbox must see: a
-- request dropped on a reused keep-alive connection is re-sent once by libcurl itself, before
-- alloy sees a failure; it then succeeds with attempts = 1 though two reached the wire
-- (`silent` counts those).
local KINDS = {
  { name = "503 + Retry-After: 0", fault = { status = 503, headers = { ["Retry-After"] = "0" } },
    ok = true, attempts = 2, wire = 2 },
  { name = "dropped connection", fault = { drop = true }, ok = true, attempts = 2, wire = 2,
    silent_ok = true },
  { name = "delay 20 ms", fault = { delay = 0.02 }, ok = true, attempts = 1, wire = 1 },
  { name = "malformed body", fault = { status = 200, body = "<html>upstream error</html>" },
    code = "JSON_DECODE", attempts = 1, wire = 1 },
  { name = "500", fault = { status = 500, body = { message = "injected 500" } }, code = "HTTP_500",
    attempts = 1, wire = 1 },
}

local failures = {}
local function fail(fmt, ...)
  failures[#failures + 1] = fmt:format(...)
  if #failures <= 20 then io.stderr:write("soak: ", failures[#failures], "\n") end
end

local sb = Sandbox.start()
local ok, err = pcall(function()
  local uid = sb:create_user { username = "soak" }
  local client = alloy.new { api_key = sb.api_key, base_url = sb.url, embedded_url = sb.url,
                             timeout = 5, retries = 2, backoff = 0.001 }
  math.randomseed(SEED)

  local counts = { ok = 0 }
  for _, k in ipairs(KINDS) do counts[k.name] = 0 end
  local by_code = {}
  local attempts_total, wire_block, silent = 0, 0, 0
  local rss_warm, fds_warm, rss0
  local t0 = socket.gettime()

  -- One warm-up request so the client's connection is open before anything is counted.
  assert(client:user_token(uid))
  sb:clear_requests()
  rss0 = rss_kb()
  local fds0 = fd_list()

  for i = 1, N do
    local kind
    if math.random() < FAULT_RATE then
      kind = KINDS[math.random(#KINDS)]
      local f = { path = "/token$", times = 1 }
      for k, v in pairs(kind.fault) do f[k] = v end
      sb:fault(f)
      counts[kind.name] = counts[kind.name] + 1
    end
    local token, res_or_msg, code, res = client:user_token(uid)
    local attempts
    if token then
      counts.ok = counts.ok + 1
      attempts = res_or_msg.attempts
      if kind and not kind.ok then
        fail("request %d: %s should fail with %s, but succeeded", i, kind.name, kind.code)
      end
      if i % 97 == 0 then -- spot-check the payload
        local claims = alloy.jwt_claims(token)
        if not claims or claims.userId ~= uid then fail("request %d: token for the wrong user", i) end
      end
    else
      by_code[code] = (by_code[code] or 0) + 1
      attempts = res and res.attempts or 0
      if not kind or kind.ok then
        fail("request %d (%s): unexpected %s", i, kind and kind.name or "no fault", res_or_msg)
      elseif code ~= kind.code then
        fail("request %d (%s): %s, expected %s", i, kind.name, tostring(code), kind.code)
      end
      if res_or_msg:find(sb.api_key, 1, true) then fail("request %d: the key is in the message", i) end
    end
    local want = kind and kind.attempts or 1
    if kind and kind.silent_ok and token and attempts == 1 then
      silent = silent + 1
    elseif attempts ~= want then
      fail("request %d (%s): %s attempts, expected %d", i, kind and kind.name or "no fault",
           tostring(attempts), want)
    end
    attempts_total = attempts_total + (attempts or 0)
    wire_block = wire_block + (kind and kind.wire or 1)

    if i % 1000 == 0 or i == N then
      -- the server saw exactly the requests the faults imply
      local seen = sb:state().requests -- a count: the log itself would be a 1 MB document
      if seen ~= wire_block then
        fail("requests up to %d: the sandbox saw %d requests, expected %d", i, seen, wire_block)
      end
      sb:clear_requests()
      wire_block = 0
      if i == WARM then
        collectgarbage("collect")
        collectgarbage("collect")
        rss_warm, fds_warm = rss_kb(), fd_list()
      end
    end
  end
  local elapsed = socket.gettime() - t0
  collectgarbage("collect")
  collectgarbage("collect")
  local rss_end, fds_end = rss_kb(), fd_list()

  local faulted = 0
  for _, k in ipairs(KINDS) do faulted = faulted + counts[k.name] end
  local failed = 0
  for _, n in pairs(by_code) do failed = failed + n end
  if counts.ok + failed ~= N then fail("%d successes + %d failures ~= %d requests", counts.ok, failed, N) end
  local growth = rss_end - rss_warm
  if growth > RSS_SLACK_KB then
    fail("RSS grew by %d KiB after the first %d requests (limit %d KiB)", growth, WARM, RSS_SLACK_KB)
  end
  if #fds_end ~= #fds_warm or #fds_end ~= #fds0 then
    fail("file descriptors: %d at start, %d after %d requests, %d at the end\n  %s", #fds0, #fds_warm,
         WARM, #fds_end, table.concat(fds_end, "\n  "))
  end
  client:close()

  print(("soak: %d requests through one client in %.1f s (%.0f req/s); %d attempts by alloy,"
    .. " %d more re-sent by libcurl on a dead keep-alive connection")
    :format(N, elapsed, N / elapsed, attempts_total, silent))
  print(("soak: %d faults injected (%.1f%%):"):format(faulted, 100 * faulted / N))
  for _, k in ipairs(KINDS) do
    print(("soak:   %-22s %5d -> %s"):format(k.name, counts[k.name],
      k.ok and ("success after " .. k.attempts .. " attempt(s)") or k.code))
  end
  local codes = {}
  for c, n in pairs(by_code) do codes[#codes + 1] = c .. " " .. n end
  table.sort(codes)
  print(("soak: outcomes: %d ok, %d failed (%s)"):format(counts.ok, failed, table.concat(codes, ", ")))
  print(("soak: RSS %d KiB at start, %d KiB after %d, %d KiB at the end (%+d KiB; limit +%d)")
    :format(rss0, rss_warm, WARM, rss_end, growth, RSS_SLACK_KB))
  print(("soak: file descriptors %d at start, %d after %d, %d at the end"):format(#fds0, #fds_warm, WARM,
    #fds_end))
end)
sb:stop()
if not ok then
  io.stderr:write("soak: error: ", tostring(err), "\n")
  os.exit(2)
end
if #failures > 0 then
  print(("soak: FAILED: %d invariant violation(s)"):format(#failures))
  os.exit(1)
end
print("soak: OK: every request accounted for, RSS and file descriptors steady")
