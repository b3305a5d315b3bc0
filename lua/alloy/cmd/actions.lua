-- alloy actions (list_actions.lua): a connector's resources and their actions, one action
-- per line.
local M = {
  summary = "a connector's actions (resource, id, method, name)",
  description = "List a connector's actions: resource, action id, HTTP method and name on stdout, one action per"
    .. " line (aligned under a header on a terminal, tab-separated rows when piped).",
  arguments = { { "connector", "The connector id, as {cmd:connectors} lists it (slack, notion, ...).",
                  optional = true } },
  options = {
    { "-c --connector", "<id>", "The connector, as the CONNECTOR argument.", same_as = "connector" },
    { "-s --search", "<text>", "Only actions whose id, name or resource contains this text (any case)." },
  },
  examples = {
    { "slack" },
    { "slack --search message" },
    { "notion --json | jq -r '.actions[].id'" },
  },
}

local function matches(row, want)
  for _, v in ipairs({ row.id, row.name, row.resource }) do
    if v and v:lower():find(want, 1, true) then return true end
  end
  return false
end

-- The CONNECTOR (and ACTION) arguments given and valid.  -> connector, action
function M.checked(ctx, with_action)
  local failure, ids = require "alloy.failure", require "alloy.ids"
  local args = ctx.args
  if not args.connector or (with_action and not args.action) then
    local f = failure.usage(with_action and "give a connector and an action" or "no connector given")
    if with_action and args.connector and ids.name(args.connector) then
      return nil, failure.suggest(f, "the connector's actions", "actions", args.connector)
    end
    if with_action then return nil, failure.suggest(f, "a connector's actions", "actions", "<connector>") end
    return nil, failure.suggest(f, "the connectors", "connectors")
  end
  local connector = ctx:check(ids.check_name("connector", args.connector))
  if not with_action then return connector end
  return connector, ctx:check(ids.check_name("action", args.action))
end

function M.run(ctx)
  local actions = require "alloy.actions"
  local ids = require "alloy.ids"
  local json = require "alloy.json"
  local args, out = ctx.args, ctx.out
  local connector = ctx:check(M.checked(ctx, false))
  ctx:config()
  local list = ctx:check(actions.list(ctx:client(), connector))
  if args.search then
    local want, shown = args.search:lower(), {}
    for _, row in ipairs(list) do if matches(row, want) then shown[#shown + 1] = row end end
    list = shown
  end

  if args.json then
    local items = {}
    for i, r in ipairs(list) do
      items[i] = { resource = r.resource, id = r.id, method = r.method or json.null, name = r.name or json.null,
                   description = r.description or json.null }
    end
    out:out(json.encode({ connector = connector, search = args.search or json.null, count = #list,
                          actions = json.array(items) }) .. "\n")
  elseif #list > 0 then
    local rows = { { "RESOURCE", "ACTION", "METHOD", "NAME" } }
    for _, r in ipairs(list) do rows[#rows + 1] = { r.resource, r.id, r.method or "-", r.name or "-" } end
    ctx:print_table(rows)
  end
  if #list == 0 then
    out:say(args.search and ("No action of %s matches %q."):format(connector, args.search)
      or ("Connector %s lists no actions."):format(connector))
    return 0
  end
  out:say("%d action%s of %s%s", #list, #list == 1 and "" or "s", connector,
    args.search and (" matching " .. ("%q"):format(args.search)) or "")
  -- an action id is the server's: pasted only when it is a plain word
  for _, r in ipairs(list) do
    if ids.word(r.id) then
      out:say("What one takes: %s", ctx:command("action", connector, r.id))
      break
    end
  end
  return 0
end

return M
