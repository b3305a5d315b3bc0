-- bench/run.lua: alloy.so against the limit (raw C on libcurl) and its peers (curl CLI,
-- Lua socket.http, Node fetch), side by side in one run, on the bench's own loopback nginx.
--
--   make bench                          (or: lua5.4 bench/run.lua from the project root)
--   BENCH_QUICK=1 make bench            smoke run, well under 30 s; writes bench/out/RESULTS-quick.md
--
-- Knobs (environment): BENCH_N (requests per throughput run, 5000), BENCH_CONCURRENCY (32),
-- BENCH_ROUNDS (throughput rounds, 5), BENCH_ONESHOT_RUNS (15), BENCH_EACH_N (lines of the
-- `run --each` file, 1000), BENCH_EACH_ROUNDS (3), BENCH_RESULTS (output file),
-- BENCH_ONLY (subset of "oneshot,seq,conc,each") and BENCH_TRANSPORTS (subset of "HTTP,TLS") to
-- iterate quickly while optimising (a filtered run writes bench/out/RESULTS-partial.md).
-- Each benchmark runs its clients in interleaved rounds (A B C, B C A, ...), never all-A then
-- all-B. Wall time and peak RSS come from bench/rusage.c (fork, exec, wait4). Throughput
-- clients time their own requests (first request to last response) and print
-- "ok=<n> seconds=<t>". Nothing here is a pass/fail timing test: the exit status is 0 unless
-- the harness itself cannot run.
--
-- The fake bench API key is never on any argv: it sits in a 0600 env file that rusage loads
-- into the child's environment (BENCH_API_KEY / ALLOY_API_KEY) and in a curl -K config file.
-- Children start from a clean environment (rusage -i) in the temp prefix (no stray .env).

local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function trim(s) return (s or ""):gsub("^%s+", ""):gsub("%s+$", "") end

local BENCH = trim(capture("cd " .. "'" .. dirname(arg[0]):gsub("'", "'\\''") .. "' && pwd"))
local ROOT = dirname(BENCH)
package.path = BENCH .. "/?.lua;" .. package.path

local server = require "nginx.server"
local q = server.quote

-- File and shell helpers shared with the sandbox (spec/support/nginx.lua, which server.lua
-- puts on package.path).
local Nginx = require "nginx"
local sh, read_file, write_file = Nginx.sh, Nginx.read, Nginx.write

local function exists(path) return sh("test -e " .. q(path)) end
local function have(cmd) return sh("command -v " .. q(cmd) .. " >/dev/null 2>&1") end

local function log(fmt, ...) io.stderr:write(fmt:format(...), "\n") end

local function envnum(name, default)
  local v = tonumber(os.getenv(name) or "")
  if v and v >= 1 then return math.floor(v) end
  return default
end

---------------------------------------------------------------------------------------------
-- settings

local QUICK = os.getenv("BENCH_QUICK") == "1"
local N = envnum("BENCH_N", QUICK and 200 or 5000)
local C = envnum("BENCH_CONCURRENCY", 32)
local ROUNDS = envnum("BENCH_ROUNDS", QUICK and 1 or 5)
local ONESHOT_RUNS = envnum("BENCH_ONESHOT_RUNS", QUICK and 3 or 15)
-- `alloy run --each`: lines in the file, and rounds (its curl loop runs a process a line).
local EACH_N = envnum("BENCH_EACH_N", QUICK and 100 or 1000)
local EACH_ROUNDS = envnum("BENCH_EACH_ROUNDS", QUICK and 1 or 3)
-- socket.http opens a connection per request, and LuaSec's https stalls ~40 ms on each
-- (delayed ACK): a full N would take minutes, so its TLS sequential run is shorter.
local SOCKET_TLS_N = math.min(N, QUICK and 20 or 200)
local function set_of(var, default)
  local v, set = os.getenv(var), {}
  for w in (v and v ~= "" and v or default):gmatch("[^,%s]+") do set[w:lower()] = true end
  return set, v ~= nil and v ~= ""
end
local ONLY, only_given = set_of("BENCH_ONLY", "oneshot,seq,conc,each")
local TRANSPORTS, transports_given = set_of("BENCH_TRANSPORTS", "HTTP,TLS")
local PARTIAL = only_given or transports_given
-- With 2+ CPUs nginx (one worker) runs on the last CPU and the throughput clients on CPU 0,
-- as a real API server is never on the client's CPU; this also cuts the scheduler noise
-- between rounds. BENCH_PIN=0 lets both float over all CPUs.
local NPROC = tonumber((function()
  local p = io.popen("nproc 2>/dev/null")
  local v = p and p:read("*l")
  if p then p:close() end
  return v
end)()) or 1
local PIN = os.getenv("BENCH_PIN") ~= "0" and NPROC >= 2
  and os.execute("command -v taskset >/dev/null 2>&1")
local RESULTS = os.getenv("BENCH_RESULTS")
  or (QUICK and (BENCH .. "/out/RESULTS-quick.md"))
  or (PARTIAL and (BENCH .. "/out/RESULTS-partial.md"))
  or (BENCH .. "/RESULTS.md")
local OUT = BENCH .. "/out"
local RAW = OUT .. "/raw_client"
local RUSAGE = OUT .. "/rusage"
local LUA = "lua5.4"
local ALLOY_SO = ROOT .. "/build/lua5.4/alloy.so"
local GET_JWT = ROOT .. "/lua/get_jwt_token.lua"
local ALLOY_MAIN = ROOT .. "/lua/alloy_main.lua"

---------------------------------------------------------------------------------------------
-- build the C helpers

local function build()
  assert(sh("mkdir -p " .. q(OUT)))
  local cc = os.getenv("CC") or "cc"
  local warn = "-std=c99 -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes"
  local cflags = trim(capture("pkg-config --cflags libcurl 2>/dev/null"))
  local libs = trim(capture("pkg-config --libs libcurl 2>/dev/null"))
  if libs == "" then libs = "-lcurl" end
  local cmds = {
    cc .. " " .. warn .. " " .. cflags .. " -o " .. q(RAW) .. " " .. q(BENCH .. "/raw_client.c") .. " " .. libs,
    cc .. " " .. warn .. " -o " .. q(RUSAGE) .. " " .. q(BENCH .. "/rusage.c"),
  }
  for _, cmd in ipairs(cmds) do
    if not sh(cmd) then error("bench: build failed: " .. cmd) end
  end
end

---------------------------------------------------------------------------------------------
-- one measured run

local LOADAVG      -- 1/5/15 min load when the run started (other work on the machine skews results)
local srv          -- the nginx
local ENV_FILE     -- BENCH_API_KEY / ALLOY_API_KEY, mode 0600
local CURL_CFG     -- curl -K file with the headers, mode 0600
local seq_no = 0
-- Throughput clients run on CPU 0 (nginx, busy then, has the last CPU). One-shot clients
-- may use every CPU, as on a developer's machine: nginx does almost nothing for them.
local PIN_CLIENT = false

-- argv: list of strings; env: non-secret NAME=VALUE pairs (visible on rusage's argv).
local function measure(argv, env)
  seq_no = seq_no + 1
  local out = ("%s/run-%d.out"):format(srv.prefix, seq_no)
  local err = ("%s/run-%d.err"):format(srv.prefix, seq_no)
  local parts = { q(RUSAGE), "-i", "-E", q(ENV_FILE) }
  local names = {}
  for k in pairs(env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do parts[#parts + 1] = "-e " .. q(k .. "=" .. env[k]) end
  parts[#parts + 1] = "-o " .. q(out) .. " -d " .. q(srv.prefix) .. " --"
  if PIN and PIN_CLIENT then parts[#parts + 1] = "taskset -c 0" end
  for _, a in ipairs(argv) do parts[#parts + 1] = q(a) end
  local line = capture(table.concat(parts, " ") .. " 2>" .. q(err))
  local wall, rss, code = line:match("^(%S+) (%d+) (%d+)")
  local m = {
    wall = tonumber(wall), rss = tonumber(rss), code = tonumber(code) or -1,
    out = read_file(out) or "", err = read_file(err) or "",
  }
  os.remove(out)
  os.remove(err)
  return m
end

local function first_line(s)
  return (trim(s):match("^[^\n]*") or ""):sub(1, 160)
end

-- Returns sample or nil, reason ("n/a: ..." for a client that cannot do this benchmark).
local function check(m, kind, n)
  if m.code == 3 and m.err:match("^n/a") then return nil, first_line(m.err) end
  if m.code ~= 0 then
    return nil, ("exit %d: %s"):format(m.code, first_line(m.err ~= "" and m.err or m.out))
  end
  if kind == "oneshot" then
    if not m.out:find(srv.token, 1, true) then
      return nil, "no token on stdout: " .. first_line(m.out)
    end
    return { value = m.wall, rss = m.rss }
  end
  if kind == "each" then -- one answer a line, each the server's success
    local _, count = m.out:gsub('"success":true', "")
    if count ~= n then
      return nil, ("%d of %d lines succeeded: %s"):format(count, n, first_line(m.err ~= "" and m.err or m.out))
    end
    return { value = m.wall, rss = m.rss }
  end
  local ok, secs = m.out:match("ok=(%d+) seconds=([%d.]+)")
  ok, secs = tonumber(ok), tonumber(secs)
  if not ok or ok ~= n or not secs or secs <= 0 then
    return nil, "bad report: " .. first_line(m.out .. " " .. m.err)
  end
  return { value = n / secs, rss = m.rss }
end

---------------------------------------------------------------------------------------------
-- the clients

local TOKEN_PATH -- /users/<id>/token
local CURL_LOOP   -- the shell loop of curl (below the clients)
-- The --each input of n lines, one JSON body each, written once per n in the temp prefix.
local each_files = {}
local function EACH_FILE(n)
  if not each_files[n] then
    local lines = {}
    for i = 1, n do lines[i] = ('{"text":"message %d of the bench"}'):format(i) end
    each_files[n] = ("%s/each-%d.jsonl"):format(srv.prefix, n)
    write_file(each_files[n], table.concat(lines, "\n") .. "\n")
  end
  return each_files[n]
end

local function alloy_reason()
  if not exists(ALLOY_SO) then return "n/a: build/lua5.4/alloy.so not built (run make)" end
end

local function node_reason()
  if not have("node") then return "n/a: node not installed" end
end

-- t = { name = "HTTP"|"TLS", base = "http://127.0.0.1:P", url = base .. TOKEN_PATH, ca = path|nil }
local CLIENTS = {
  oneshot = {
    { id = "alloy", label = "alloy: `get_jwt_token.lua`",
      reason = function()
        if not exists(GET_JWT) then return "n/a: lua/get_jwt_token.lua missing" end
        return alloy_reason()
      end,
      run = function(t)
        return measure({ LUA, GET_JWT }, {
          ALLOY_USER_ID = srv.user_id, ALLOY_EMBEDDED_URL = t.base, ALLOY_CA_FILE = t.ca,
        })
      end },
    { id = "alloy_cmd", label = "alloy: `alloy token`",
      reason = function()
        if not exists(ALLOY_MAIN) then return "n/a: lua/alloy_main.lua missing" end
        return alloy_reason()
      end,
      run = function(t)
        return measure({ LUA, ALLOY_MAIN, "token" }, {
          ALLOY_USER_ID = srv.user_id, ALLOY_EMBEDDED_URL = t.base, ALLOY_CA_FILE = t.ca,
        })
      end },
    { id = "raw", label = "raw C libcurl",
      run = function(t) return measure({ RAW, "oneshot", t.url, t.ca }) end },
    { id = "curl", label = "curl CLI",
      reason = function() if not have("curl") then return "n/a: curl not installed" end end,
      run = function(t)
        local argv = { "curl", "-q", "-K", CURL_CFG }
        if t.ca then argv[#argv + 1] = "--cacert"; argv[#argv + 1] = t.ca end
        argv[#argv + 1] = t.url
        return measure(argv)
      end },
    { id = "socket", label = "Lua 5.4 socket.http",
      run = function(t) return measure({ LUA, BENCH .. "/peers/socket_http.lua", "oneshot", t.url, t.ca }) end },
    { id = "node", label = "Node fetch", reason = node_reason,
      run = function(t)
        return measure({ "node", BENCH .. "/peers/node_fetch.mjs", "oneshot", t.url }, { NODE_EXTRA_CA_CERTS = t.ca })
      end },
  },
  seq = {
    { id = "alloy", label = "alloy: `client:user_token` loop", reason = alloy_reason,
      run = function(t, n)
        return measure({ LUA, BENCH .. "/alloy_seq.lua", "seq", tostring(n), t.base, srv.user_id, t.ca })
      end },
    { id = "raw", label = "raw C libcurl (one easy handle)",
      run = function(t, n) return measure({ RAW, "seq", tostring(n), t.url, t.ca }) end },
    { id = "socket", label = "Lua 5.4 socket.http",
      n = function(t, n) if t.ca then return math.min(n, SOCKET_TLS_N) end return n end,
      run = function(t, n)
        return measure({ LUA, BENCH .. "/peers/socket_http.lua", "seq", tostring(n), t.url, t.ca })
      end },
    { id = "node", label = "Node fetch", reason = node_reason,
      run = function(t, n)
        return measure({ "node", BENCH .. "/peers/node_fetch.mjs", "seq", tostring(n), t.url },
          { NODE_EXTRA_CA_CERTS = t.ca })
      end },
  },
  conc = {
    { id = "alloy", label = "alloy: `client:batch` (results kept)", reason = alloy_reason,
      run = function(t, n)
        return measure({ LUA, BENCH .. "/alloy_seq.lua", "batch", tostring(n), tostring(C), t.base, srv.user_id, t.ca })
      end },
    { id = "alloy_stream", label = "alloy: `client:batch` + `on_result` (none kept)", reason = alloy_reason,
      run = function(t, n)
        return measure({ LUA, BENCH .. "/alloy_seq.lua", "stream", tostring(n), tostring(C), t.base,
          srv.user_id, t.ca })
      end },
    { id = "raw", label = "raw C libcurl (curl_multi)",
      run = function(t, n) return measure({ RAW, "multi", tostring(n), tostring(C), t.url, t.ca }) end },
    { id = "node", label = "Node fetch pool", reason = node_reason,
      run = function(t, n)
        return measure({ "node", BENCH .. "/peers/node_fetch.mjs", "pool", tostring(n), tostring(C), t.url },
          { NODE_EXTRA_CA_CERTS = t.ca })
      end },
  },
  -- `alloy run CONNECTOR ACTION --each FILE`: the action's schema, then an execute a line.
  each = {
    { id = "alloy", label = "alloy: `alloy run --each`",
      reason = function()
        if not exists(ALLOY_MAIN) then return "n/a: lua/alloy_main.lua missing" end
        return alloy_reason()
      end,
      run = function(t, n)
        return measure({ LUA, ALLOY_MAIN, "run", srv.connector, srv.action, "--each", EACH_FILE(n),
          "--concurrency", tostring(C), "--credential", srv.credential },
          { ALLOY_BASE_URL = t.base, ALLOY_CA_FILE = t.ca })
      end },
    { id = "raw", label = "raw C libcurl (curl_multi, connections kept)",
      run = function(t, n)
        return measure({ RAW, "each", tostring(C), t.base, srv.connector, srv.action, srv.credential,
          EACH_FILE(n), t.ca })
      end },
    { id = "raw_fresh", label = "raw C libcurl (curl_multi, a new connection a POST, as alloy)",
      run = function(t, n)
        return measure({ RAW, "each", tostring(C), t.base, srv.connector, srv.action, srv.credential,
          EACH_FILE(n), t.ca }, { RAW_FRESH_CONNECT = "1" })
      end },
    { id = "curl", label = "curl CLI in a shell loop (a process a line)",
      reason = function() if not have("curl") then return "n/a: curl not installed" end end,
      run = function(t, n)
        return measure({ "sh", "-c", CURL_LOOP, "curl-loop", EACH_FILE(n), srv.credential,
          t.base .. "/connectors/" .. srv.connector .. "/actions/" .. srv.action, CURL_CFG, t.ca or "" })
      end },
  },
}

-- The curl row of `run --each`: what a shell script does without alloy. $1 file, $2 credential,
-- $3 the action's URL, $4 curl's -K config (the key), $5 the CA or "".
CURL_LOOP = [==[
f=$1 cred=$2 url=$3 cfg=$4 ca=$5
set -- -q -K "$cfg"
if [ -n "$ca" ]; then set -- "$@" --cacert "$ca"; fi
curl "$@" -o /dev/null "$url" || exit 1
while IFS= read -r line; do
  case $line in *[![:space:]]*) ;; *) continue ;; esac
  printf '{"credentialId":"%s","requestBody":%s}' "$cred" "$line" |
    curl "$@" -H 'Content-Type: application/json' --data-binary @- -w '\n' "$url/execute" || exit 1
done < "$f"
]==]

---------------------------------------------------------------------------------------------
-- one benchmark group: every client of a kind over one transport, interleaved rounds

local function median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local k = #s
  if k == 0 then return nil end
  if k % 2 == 1 then return s[(k + 1) // 2] end
  return (s[k // 2] + s[k // 2 + 1]) / 2
end

local function run_group(kind, t, runs)
  PIN_CLIENT = kind ~= "oneshot" and kind ~= "each"
  local results, active = {}, {}
  local skipped = not (ONLY[kind] and TRANSPORTS[t.name:lower()])
  for _, c in ipairs(CLIENTS[kind]) do
    local n = kind == "each" and EACH_N or (c.n and c.n(t, N) or N)
    local r = { n = n, samples = {} }
    results[c.id] = r
    local why = c.reason and c.reason()
    if skipped then
      r.reason = "skipped"
    elseif why then
      r.reason = why
    else
      -- warm-up and correctness check, not recorded
      local wn = kind == "oneshot" and nil or math.min(n, 50)
      local _, err = check(c.run(t, wn), kind, wn)
      if err then r.reason = err else active[#active + 1] = c end
    end
  end
  if skipped then return results end
  for round = 1, runs do
    local order = {}
    for i = 1, #active do order[i] = active[(round - 1 + i - 1) % #active + 1] end
    for _, c in ipairs(order) do
      local r = results[c.id]
      if not r.reason then
        local sample, err = check(c.run(t, r.n), kind, r.n)
        if sample then r.samples[#r.samples + 1] = sample else r.reason = err end
      end
    end
    if kind ~= "oneshot" then log("  %s %s: round %d/%d done", kind, t.name, round, runs) end
  end
  for _, r in pairs(results) do
    if not r.reason and #r.samples > 0 then
      local values, peak = {}, 0
      for i, s in ipairs(r.samples) do
        values[i] = s.value
        if s.rss > peak then peak = s.rss end
      end
      r.value, r.rss = median(values), peak
      r.min, r.max = math.min(table.unpack(values)), math.max(table.unpack(values))
    end
  end
  return results
end

---------------------------------------------------------------------------------------------
-- report

local function fmt_int(x)
  local s = tostring(math.floor(x + 0.5))
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

local function fmt_value(kind, v)
  if kind == "oneshot" then return ("%.1f ms"):format(v * 1000) end
  if kind == "each" then return ("%.0f ms"):format(v * 1000) end
  return fmt_int(v) .. " req/s"
end

local function fmt_ratio(r)
  if r >= 10 then return ("%.1f×"):format(r) end
  if r >= 0.1 then return ("%.2f×"):format(r) end
  return ("%.3f×"):format(r)
end

local function fmt_rss(kb, base_kb)
  local s = ("%.1f MB"):format(kb / 1024)
  if base_kb and base_kb > 0 then s = s .. " (" .. fmt_ratio(kb / base_kb) .. ")" end
  return s
end

local TITLES = {
  oneshot = function() return ("one-shot, median of %d (wall)"):format(ONESHOT_RUNS) end,
  seq = function() return ("sequential, %s requests (req/s)"):format(fmt_int(N)) end,
  conc = function() return ("concurrent, %s requests, %d in flight (req/s)"):format(fmt_int(N), C) end,
  each = function() return ("`run --each`, %s lines, %d in flight, median of %d (wall)"):format(fmt_int(EACH_N), C,
    EACH_ROUNDS) end,
}
local KINDS = { "oneshot", "seq", "conc", "each" }

-- r's value over base's: the median of the per-round ratios (each round runs every client
-- back to back, so a slow spell of the machine hits both sides of a ratio), or the ratio of
-- the medians when the rounds do not pair up.
local function ratio_of(r, base)
  if not (r and base and r.value and base.value) then return nil end
  if #r.samples ~= #base.samples then return r.value / base.value end
  local ratios = {}
  for i, s in ipairs(r.samples) do ratios[i] = s.value / base.samples[i].value end
  return median(ratios)
end

local function cells(kind, r, base)
  if r.reason == "skipped" then return { "–", "", "" } end
  if not r.value then
    local why = r.reason or "no samples"
    return { why:match("^n/a") and "n/a" or "error", "", "" }, why
  end
  local v = fmt_value(kind, r.value)
  if r.n ~= N and kind ~= "oneshot" and kind ~= "each" then v = v .. (" (n=%d)"):format(r.n) end
  local ratio = ""
  local x = ratio_of(r, base)
  if x then ratio = fmt_ratio(x) end
  return { v, ratio, fmt_rss(r.rss, base and base.rss) }
end

local function table_markdown(all, transports)
  local lines = {
    "| Benchmark | Client | HTTP | × raw C | peak RSS (× raw C) | TLS | × raw C | peak RSS (× raw C) |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  }
  local notes, seen = {}, {}
  for _, kind in ipairs(KINDS) do
    for i, c in ipairs(CLIENTS[kind]) do
      local row = { i == 1 and TITLES[kind]() or "", c.label }
      for _, t in ipairs(transports) do
        local res = all[kind][t.name]
        local cs, why = cells(kind, res[c.id], res.raw)
        for _, x in ipairs(cs) do row[#row + 1] = x end
        if why then
          local note = ("%s / %s / %s: %s"):format(TITLES[kind]():match("^[^,]+"), c.label, t.name, why)
          if not seen[note] then seen[note] = true; notes[#notes + 1] = note end
        end
      end
      lines[#lines + 1] = "| " .. table.concat(row, " | ") .. " |"
    end
  end
  return table.concat(lines, "\n"), notes
end

-- min–max of the samples behind each median, to judge the noise of a ratio.
local function spread_markdown(all, transports)
  local lines = {
    "| Benchmark | Client | " .. transports[1].name .. " min – max | " .. transports[2].name .. " min – max |",
    "| --- | --- | ---: | ---: |",
  }
  for _, kind in ipairs(KINDS) do
    for i, c in ipairs(CLIENTS[kind]) do
      local row = { i == 1 and TITLES[kind]():match("^[^,]+") or "", c.label }
      for _, t in ipairs(transports) do
        local r = all[kind][t.name][c.id]
        row[#row + 1] = r.min and (fmt_value(kind, r.min) .. " – " .. fmt_value(kind, r.max)
          .. (" (%d)"):format(#r.samples)) or ""
      end
      lines[#lines + 1] = "| " .. table.concat(row, " | ") .. " |"
    end
  end
  return table.concat(lines, "\n")
end

-- Issue 20's goals, evaluated on this run (informational; never a failure): each alloy row
-- against raw C, time (one-shot: at most) or throughput (at least), and peak RSS (at most).
local GOALS = {
  { "oneshot", "alloy", "one-shot `get_jwt_token.lua`", 1.15, 1.10 },
  { "oneshot", "alloy_cmd", "one-shot `alloy token`", 1.15, 1.10 },
  { "seq", "alloy", "sequential `client:user_token`", 0.95, 1.10 },
  { "conc", "alloy_stream", "32 in flight, `on_result`", 0.95, 1.25 },
  { "conc", "alloy", "32 in flight, results kept", 0.90, 1.50 },
}

local function targets(all, transports)
  local out = {}
  local function add(ok, text)
    if ok == nil then
      out[#out + 1] = "- n/a  " .. text
    else
      out[#out + 1] = (ok and "- met  " or "- MISS ") .. text
    end
  end
  local function x(v) return v and ("%.2f×"):format(v) or "n/a" end
  for _, t in ipairs(transports) do
    for _, g in ipairs(GOALS) do
      local kind, id, what, goal, rss_goal = g[1], g[2], g[3], g[4], g[5]
      local group = all[kind][t.name]
      local r = ratio_of(group[id], group.raw)
      local at_most = kind == "oneshot"
      add(r and (at_most and r <= goal or not at_most and r >= goal),
        ("%s %s %s %.2f× raw C: %s"):format(t.name, what, at_most and "≤" or "≥", goal, x(r)))
      local rss = group[id] and group.raw and group[id].rss and group.raw.rss and group[id].rss / group.raw.rss
      add(rss and rss <= rss_goal, ("%s %s peak RSS ≤ %.2f× raw C: %s"):format(t.name, what, rss_goal, x(rss)))
    end
    local node_rows = { { "sequential", all.seq[t.name], "alloy" }, { "concurrent", all.conc[t.name], "alloy_stream" } }
    for _, g in ipairs(node_rows) do
      local r = ratio_of(g[2][g[3]], g[2].node)
      add(r and r >= 10, ("%s %s alloy ≥ 10× Node fetch: %s"):format(t.name, g[1], r and ("%.1f×"):format(r) or "n/a"))
    end
  end
  return table.concat(out, "\n")
end

local function machine()
  local cpu = (read_file("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "unknown"
  local mem = (read_file("/proc/meminfo") or ""):match("MemTotal:%s*(%d+)")
  local function first(cmd) return first_line(capture(cmd .. " 2>&1")) end
  local alloy_v = "n/a (not built)"
  if exists(ALLOY_SO) then
    alloy_v = first(LUA .. " -e " .. q("package.cpath=" .. ("%q"):format(ROOT .. "/build/lua5.4/?.so;")
      .. "..package.cpath local a=require'alloy' print(tostring(a.VERSION)..' ('..tostring(a.curl_version)..')')"))
  end
  local rows = {
    { "date", os.date("!%Y-%m-%d %H:%M UTC") },
    { "load average at start", LOADAVG or "unknown" },
    { "CPU", ("%s, nproc %s"):format(cpu, trim(capture("nproc"))) },
    { "memory", mem and ("%.1f GB"):format(tonumber(mem) / 1048576) or "unknown" },
    { "kernel", first("uname -srm") },
    { "libcurl", (trim(capture("curl --version 2>&1")):match("^[^\n]*"):gsub("^curl %S+ %(%S+%) ", "")) },
    { "alloy.so", alloy_v },
    { "Lua", (first(LUA .. " -v"):gsub("%s+Copyright.*", "")) },
    { "Node", have("node") and first("node --version") or "not installed" },
    { "nginx", (first(q(server.nginx_bin()) .. " -v"):gsub("^nginx version: ", ""))
      .. (PIN and (" (one worker on CPU %d; throughput clients on CPU 0)"):format(NPROC - 1)
        or " (2 workers on the same CPUs as the clients)") },
    { "OpenSSL", first("openssl version") },
  }
  local out = {}
  for _, r in ipairs(rows) do out[#out + 1] = ("- %s: %s"):format(r[1], r[2]) end
  return table.concat(out, "\n")
end

---------------------------------------------------------------------------------------------
-- main

local function main()
  local t_start = os.time()
  LOADAVG = (read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)")
  log("bench: building raw_client and rusage")
  build()
  srv = server.start { cpu = PIN and NPROC - 1 or nil }
  log("bench: nginx on %s and %s (prefix %s)", srv.url, srv.tls_url, srv.prefix)
  ENV_FILE = srv:env_file("bench.env", { BENCH_API_KEY = srv.api_key, ALLOY_API_KEY = srv.api_key })
  CURL_CFG = srv.prefix .. "/curl.cfg"
  write_file(CURL_CFG, table.concat({
    'header = "Authorization: Bearer ' .. srv.api_key .. '"',
    'header = "x-api-version: 2025-09"',
    'header = "Accept: application/json"',
    "silent", "show-error", "fail", "",
  }, "\n"), "0600")
  TOKEN_PATH = "/users/" .. srv.user_id .. "/token"
  local transports = {
    { name = "HTTP", base = srv.url, url = srv.url .. TOKEN_PATH },
    { name = "TLS", base = srv.tls_url, url = srv.tls_url .. TOKEN_PATH, ca = srv.ca_file },
  }

  local all = { oneshot = {}, seq = {}, conc = {}, each = {} }
  local runs = { oneshot = ONESHOT_RUNS, seq = ROUNDS, conc = ROUNDS, each = EACH_ROUNDS }
  for _, kind in ipairs(KINDS) do
    for _, t in ipairs(transports) do
      if ONLY[kind] and TRANSPORTS[t.name:lower()] then log("bench: %s over %s", kind, t.name) end
      all[kind][t.name] = run_group(kind, t, runs[kind])
    end
  end
  local elapsed = os.time() - t_start

  local tbl, notes = table_markdown(all, transports)
  io.write(tbl, "\n")
  for _, n in ipairs(notes) do io.write("- ", n, "\n") end
  io.stdout:flush()

  local doc = {
    "# lua-alloy benchmark results", "",
    ("Rerun with `make bench` (%s; about %d s). Written by `bench/run.lua`%s."):format(
      QUICK and "this was a BENCH_QUICK=1 smoke run" or "full run",
      elapsed, QUICK and "" or "; `BENCH_QUICK=1 make bench` is a smoke run"),
    "",
    "## Machine", "", machine(), "",
    "## Results", "", tbl, "",
    "- One-shot: wall time of the whole process (exec to exit), median; peak RSS is the highest",
    "  of the runs. Throughput: requests / seconds as timed by each client around its requests",
    "  (median of " .. ROUNDS .. " rounds); peak RSS of the whole process, highest of the rounds.",
    "- × raw C: the median of the per-round ratios (every round runs each client once, back to",
    "  back, so a slow spell of the machine affects both sides of a ratio): time for one-shot",
    "  (lower is better), throughput otherwise (higher is better). RSS ratio in brackets.",
    "- Every client sends the same headers (Authorization: Bearer, x-api-version, Accept, and a",
    "  User-Agent of its own) and checks for a 200 with a token. The nginx (keep-alive 100000,",
    "  access_log off, HTTP/1.1 only) " .. (PIN and ("runs on CPU %d; throughput clients run on CPU 0,"
      .. " one-shot clients on any CPU."):format(NPROC - 1) or "shares the machine's CPUs with the client."),
    ("- alloy's concurrent rows: `batch` returning all %d results"):format(N) .. " (each a response table with",
    "  its decoded JSON), and `batch` with `on_result`, which checks each result as it arrives",
    "  and keeps none, as the raw C client keeps none.",
    "- socket.http sends `Connection: close` (a new connection, and over TLS a new handshake, per",
    "  request); over TLS its requests often stall up to 40 ms (Nagle/delayed ACK), so its TLS",
    ("  sequential run does %d requests."):format(SOCKET_TLS_N),
    "- Node: global `fetch` (undici, keep-alive); TLS trust via NODE_EXTRA_CA_CERTS.",
    ("- Rounds are interleaved: client order rotates every round. Settings: N=%d, concurrency=%d,"):format(N, C),
    ("  %d throughput rounds, %d one-shot runs."):format(ROUNDS, ONESHOT_RUNS),
  }
  if #notes > 0 then
    doc[#doc + 1] = ""
    doc[#doc + 1] = "Not measured / failed:"
    doc[#doc + 1] = ""
    for _, n in ipairs(notes) do doc[#doc + 1] = "- " .. n end
  end
  doc[#doc + 1] = ""
  doc[#doc + 1] = "## Spread (min – max of the runs behind each median; number of runs)"
  doc[#doc + 1] = ""
  doc[#doc + 1] = spread_markdown(all, transports)
  doc[#doc + 1] = ""
  doc[#doc + 1] = "## Goals (issue 20; informational, from this run)"
  doc[#doc + 1] = ""
  doc[#doc + 1] = targets(all, transports)
  doc[#doc + 1] = ""
  assert(sh("mkdir -p " .. q(dirname(RESULTS))))
  write_file(RESULTS, table.concat(doc, "\n"))
  log("bench: wrote %s (%d s)", RESULTS, elapsed)
end

local ok, err = xpcall(main, debug.traceback)
if srv then srv:stop() end
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
