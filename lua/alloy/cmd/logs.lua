-- alloy logs: the executions of a user's workflows (GET /logs), newest last; --follow prints
-- new ones as they arrive, each once, until Ctrl-C (as `kubectl logs -f` does).
local M = {
  summary = "a user's workflow executions; --follow prints new ones as they come",
  description = "List the executions of the user's workflows (GET /logs): time, message (executionSuccess,"
    .. " executionError), workflow, user and execution id, oldest first, one per line on stdout (aligned under a"
    .. " header on a terminal, tab-separated rows when piped). Pages are fetched as they are needed.",
  user = true,
  options = {
    { "--workflow", "<id>", "Only this workflow's executions (its id, as {cmd:workflows} lists it)." },
    { "--errors", "Only failed executions (message executionError)." },
    { "--since", "<time>", "Only executions since this time: ISO 8601 (2025-10-01T12:00:00Z, UTC unless it names"
      .. " an offset) or an age (30s, 15m, 2h, 7d)." },
    { "--limit", "<n>", "The newest n executions (default 20; with --follow, shown before the new ones, 0 for none)." },
    { "--page-size", "<n>", "Executions asked for per request (default 50)." },
    { "--all-users", "Every user's executions, not only the user's (ALLOY_USER_ID, -u)." },
    { "-f --follow", "Print new executions as they arrive, until Ctrl-C." },
    { "--interval", "<seconds>", "With --follow, the time between two polls (default 2)." },
  },
  examples = {
    { "-u ada" },
    { "--errors --since 1h" },
    { "--follow --workflow 66a200000000000000000001" },
    { "--all-users --limit 100 | cut -f2 | sort | uniq -c" },
  },
  notes = [[
With --follow, each execution is printed once (told apart by its _id, else its execution id),
oldest first; --json then prints one JSON object per line. Ctrl-C stops it: exit 130.]],
}

-- A whole number option from lo to hi.  -> n | nil, err
local function count(v, flag, default, lo, hi)
  if v == nil then return default end
  local n = tonumber(v)
  if not n or n ~= math.floor(n) or n < lo or n > hi then
    return nil, require("alloy.failure").usage(("%s must be a whole number from %d to %d"):format(flag, lo, hi))
  end
  return n
end

-- Rows printed as they come: a terminal gets them aligned to the widths of the first ones (and
-- the header), a program tab-separated rows.
local function printer(ctx)
  local tables, output = require "alloy.tables", require "alloy.output"
  local tty, widths = ctx.out:isatty(io.stdout), nil
  return function(rows)
    if not tty then
      local all = { {} } -- tables.tsv leaves out the first row, a header
      for _, row in ipairs(rows) do all[#all + 1] = row end
      return ctx.out:out(tables.tsv(all))
    end
    if not widths then
      widths = {}
      for _, row in ipairs(rows) do
        for i, c in ipairs(row) do widths[i] = math.max(widths[i] or 0, #output.cell(c)) end
      end
    end
    for _, row in ipairs(rows) do
      local cells = {}
      for i, c in ipairs(row) do
        c = output.cell(c)
        cells[i] = i < #row and (c .. string.rep(" ", (widths[i] or 0) - #c)) or c
      end
      ctx.out:out(table.concat(cells, "  ") .. "\n")
    end
  end
end

local function follow(ctx, query, limit, page_size, interval)
  local logs, json = require "alloy.logs", require "alloy.json"
  local sleep = require("socket").sleep
  local f = logs.follower(ctx:client(), query, { limit = limit, page_size = page_size })
  local print_rows, header = printer(ctx), true
  ctx.out:say("Following (every %gs; Ctrl-C to stop)...", interval)
  while true do
    local new = ctx:check(f:poll())
    if ctx.args.json then
      for _, e in ipairs(new) do ctx.out:out(json.encode(e) .. "\n") end
    elseif #new > 0 or header then
      local rows = {}
      if header and ctx.out:isatty(io.stdout) then rows[1] = logs.HEADER end
      for _, e in ipairs(new) do rows[#rows + 1] = logs.row(e) end
      if #rows > 0 then print_rows(rows) end
      header = false
    end
    -- in slices: Ctrl-C (lua.c's stop, raised at the next Lua instruction) ends the wait soon
    local left = interval
    while left > 0 do
      sleep(math.min(left, 0.1))
      left = left - 0.1
    end
  end
end

function M.run(ctx)
  local failure, logs, json = require "alloy.failure", require "alloy.logs", require "alloy.json"
  local args, out = ctx.args, ctx.out
  local limit = ctx:check(count(args.limit, "--limit", 20, args.follow and 0 or 1, 10000))
  local page_size = ctx:check(count(args.page_size, "--page-size", logs.PAGE, 1, 1000))
  local interval = 2
  if args.interval then
    if not args.follow then return nil, failure.usage("--interval goes with --follow", "--follow --interval 5") end
    interval = tonumber(args.interval)
    if not interval or interval < 0.1 or interval > 3600 then
      return nil, failure.usage("--interval must be a number of seconds from 0.1 to 3600")
    end
  end
  if args.all_users and args.user then
    return nil, failure.usage("--all-users and -u do not go together", "one user with -u, or every user")
  end
  local cfg = ctx:config()
  local user = not args.all_users and cfg.user_id or nil
  local query = ctx:check(logs.query{ workflow = args.workflow, user = user, errors = args.errors, since = args.since })
  if args.follow then return follow(ctx, query, limit, page_size, interval) end

  local list = ctx:check(logs.fetch(ctx:client(), query, limit, page_size))
  local oldest_first = {}
  for i = #list, 1, -1 do oldest_first[#oldest_first + 1] = list[i] end
  if args.json then
    out:out(json.encode({ userId = user or json.null, count = #list, logs = json.array(oldest_first) }) .. "\n")
  elseif #list > 0 then
    local rows = { logs.HEADER }
    for _, e in ipairs(oldest_first) do rows[#rows + 1] = logs.row(e) end
    ctx:print_table(rows)
  end
  out:say("%d execution%s%s%s", #list, #list == 1 and "" or "s", user and (" for user " .. user) or " of every user",
    #list == limit and (" (the newest %d: --limit for more)"):format(limit) or "")
  return 0
end

return M
