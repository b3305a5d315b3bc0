-- connections_report.lua: every user of the account with their connections (count and types),
-- fetched concurrently with client:batch.
--   lua5.4 examples/connections_report.lua [--json] [--concurrency N] [--env-file PATH]
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/../lua/?.lua;" .. package.path
package.cpath = d .. "/../build/" .. (rawget(_G, "jit") and "luajit" or _VERSION:gsub("Lua ", "lua"))
  .. "/?.so;" .. package.cpath

-- A host script built on the library modules (not on the commands): configuration from
-- flags, environment and .env (alloy.config), output with the key redacted (alloy.output),
-- JSON and tables as the commands print them (alloy.json, alloy.tables).
local config = require "alloy.config"
local credentials = require "alloy.credentials"
local failure = require "alloy.failure"
local json = require "alloy.json"
local output = require "alloy.output"
local tables = require "alloy.tables"

local parser = require("argparse")("connections_report.lua",
  "Every user with their connections (count and types): a table on stdout, or --json.")
parser:option("--env-file", "Read variables from this file instead of ./.env."):argname("<path>")
parser:flag("--json", "Print one JSON document on stdout.")
parser:flag("-q --quiet", "No narrative on stderr.")
parser:option("--concurrency", "Requests in flight at once.", "32"):argname("<n>"):convert(function(s)
  local n = tonumber(s)
  if not n or n < 1 or n > 1024 or n % 1 ~= 0 then return nil, "concurrency must be 1-1024" end
  return n
end)

local args = parser:parse()
local out = output.new{ quiet = args.quiet }

-- One "error:" line and its hint, then the exit status: what a host does with a failure.
local function fail(err)
  out:err("error: ", output.line(err.message), "\n")
  local hint = err.hint or (err.code and require("alloy.hints").for_failure(err))
  if hint then out:err("hint: ", output.line(hint), "\n") end
  os.exit(err.status)
end

-- A progress line that rewrites itself, only when a person is watching stderr.
local function progress_printer(total)
  if args.quiet or not output.isatty(io.stderr) then return function() end end
  return function(done)
    io.stderr:write(("\r%d/%d users"):format(done, total), done == total and "\n" or "")
    io.stderr:flush()
  end
end

local function types_of(list)
  local seen, types = {}, {}
  for _, c in ipairs(list) do
    local t = c.type or "?"
    if not seen[t] then seen[t] = true; types[#types + 1] = t end
  end
  table.sort(types)
  return types
end

local cfg, cerr = config.load{ flags = args }
if not cfg then fail(cerr) end
out:secret(cfg.api_key)
local _, rerr = config.require(cfg)
if rerr then fail(rerr) end
local client, nerr = config.client(cfg)
if not client then fail(nerr) end

local users, msg, code, res = client:list_users()
if not users then fail(failure.api(msg, code, res, "list_users")) end
local show = progress_printer(#users)

-- Batches of `concurrency * 4` keep the progress line moving without starving the pool.
local step = args.concurrency * 4
local report, failures = {}, 0
for first = 1, #users, step do
  local reqs = {}
  for i = first, math.min(first + step - 1, #users) do
    reqs[#reqs + 1] = { op = "list_credentials", args = { users[i].userId } }
  end
  local results = client:batch(reqs, { concurrency = args.concurrency })
  for k, r in ipairs(results) do
    local user = users[first + k - 1]
    local entry = { userId = user.userId, username = user.username or json.null }
    if r.ok then
      local list = credentials.normalise(r.value)
      entry.count, entry.types = #list, json.array(types_of(list))
    else
      failures = failures + 1
      entry.error, entry.code = r.error, r.code
    end
    report[#report + 1] = entry
  end
  show(#report)
end
client:close()

if args.json then
  out:out(json.encode({ users = json.array(report), failures = failures }) .. "\n")
else
  local rows = { { "USER", "USERNAME", "CONNECTIONS", "TYPES" } }
  for _, e in ipairs(report) do
    rows[#rows + 1] = { e.userId, e.username ~= json.null and e.username or "-",
      e.count and tostring(e.count) or "error", e.count and table.concat(e.types, ",") or e.code }
  end
  out:out(tables.columns(rows))
end
out:say("%d users, %d failed", #report, failures)
os.exit(failures > 0 and 1 or 0)
