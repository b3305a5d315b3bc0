-- connections_report.lua: every user of the account with their connections (count and types),
-- fetched concurrently with client:batch.
--   lua5.4 examples/connections_report.lua [--json] [--concurrency N]
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/../lua/?.lua;" .. package.path
package.cpath = d .. "/../build/" .. (rawget(_G, "jit") and "luajit" or _VERSION:gsub("Lua ", "lua"))
  .. "/?.so;" .. package.cpath

local cli = require "alloy.cli"
local credentials = require "alloy.credentials"

local parser = cli.parser("connections_report.lua",
  "Every user with their connections (count and types): a table on stdout, or --json.",
  [[
Examples:
  lua5.4 examples/connections_report.lua
  lua5.4 examples/connections_report.lua --json --concurrency 64]], { user = false })
parser:option("--concurrency", "Requests in flight at once.", "32"):argname("<n>"):convert(function(s)
  local n = tonumber(s)
  if not n or n < 1 or n > 1024 or n % 1 ~= 0 then return nil, "concurrency must be 1-1024" end
  return n
end)

-- A progress line that rewrites itself, only when a person is watching stderr.
local function progress_printer(total)
  local ok, term = pcall(require, "term")
  if cli.quiet or not (ok and term.isatty(io.stderr)) then return function() end end
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

local function main()
  local args = cli.exit_on(cli.parse(parser, arg))
  local cfg = cli.exit_on(cli.config(args))
  cli.exit_on(cli.require_config(cfg, false))
  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))

  local users, msg, code, res = client:list_users()
  if not users then return nil, require("alloy.failure").api(msg, code, res, { url = cfg.base_url }) end
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
      local entry = { userId = user.userId, username = user.username or cli.null }
      if r.ok then
        local list = credentials.normalise(r.value)
        entry.count, entry.types = #list, cli.array(types_of(list))
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
    cli.out(cli.json({ users = cli.array(report), failures = failures }) .. "\n")
  else
    local rows = { { "USER", "USERNAME", "CONNECTIONS", "TYPES" } }
    for _, e in ipairs(report) do
      rows[#rows + 1] = { e.userId, e.username ~= cli.null and e.username or "-",
        e.count and tostring(e.count) or "error", e.count and table.concat(e.types, ",") or e.code }
    end
    cli.out(cli.columns(rows))
  end
  cli.say("%d users, %d failed", #report, failures)
  return failures > 0 and cli.FAILURE or cli.OK
end

cli.main(main)
