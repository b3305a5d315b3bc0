-- alloy connections (list_connections.lua, `npm run list-connections`): a user's
-- connections (Alloy credentials) as a table, aligned on a terminal, tab-separated for
-- programs; --save ID puts one of them in .env as CONNECTION_ID.
local M = {
  summary = "a user's connections (credentials)",
  description = "List a user's connections (Alloy credentials): a table (id, type, name, created) on stdout,"
    .. " aligned under a header on a terminal, tab-separated rows without one when piped; the count and the"
    .. " .env line to use one on stderr.",
  user = true,
  arguments = { { "connector", "Only connections of this connector (type notion or notion-*).", optional = true } },
  options = {
    { "-c --connector", "<id>", "The connector, as the CONNECTOR argument.", same_as = "connector" },
    { "--save", "<id>", "Write CONNECTION_ID=<id> into the .env file (other lines are kept), once the user is"
      .. " seen to have that connection." },
  },
  examples = {
    { "" },
    { "notion", "only Notion's" },
    { "| cut -f1", "the ids, one per line (tab-separated when piped)" },
    { "--json | jq -r '.connections[0].credentialId'" },
    { "--save 66fb066c3793749b64c214bc", "the connection alloy run uses" },
  },
}

-- Oldest first; ties keep the API's order.
local function by_age(list)
  for i, c in ipairs(list) do c._pos = i end
  table.sort(list, function(a, b)
    if (a.createdAt or "") ~= (b.createdAt or "") then return (a.createdAt or "") < (b.createdAt or "") end
    return a._pos < b._pos
  end)
  for _, c in ipairs(list) do c._pos = nil end
  return list
end

local function save(ctx, list, cfg)
  local ids, failure = require "alloy.ids", require "alloy.failure"
  local id = ctx.args.save
  local _, bad = ids.check_object_id("connection", id, "copy the ID column")
  if bad then return nil, bad end
  if not require("alloy.credentials").find(list, id) then
    return nil, failure.suggest(failure.new(("user %s has no connection %s"):format(cfg.user_id, id)),
      "the user's connections", "connections")
  end
  ctx:check(require("alloy.oauth").save(cfg, id))
  ctx.out:say("Saved CONNECTION_ID=%s to %s", id, cfg.env_path)
  ctx.out:out(id .. "\n")
  return 0
end

function M.run(ctx)
  local credentials = require "alloy.credentials"
  local json = require "alloy.json"
  local ids = require "alloy.ids"
  local args, out = ctx.args, ctx.out
  if args.connector then ctx:check(ids.check_name("connector", args.connector)) end
  local cfg = ctx:config{ user = true }
  local list = ctx:check(credentials.list(ctx:client(), cfg.user_id))
  if args.save then return save(ctx, list, cfg) end
  local total = #list
  list = by_age(credentials.for_connector(list, args.connector))
  -- no connection of a connector: is it one the API knows? (before anything is printed; in
  -- any case, as the filter matches)
  if #list == 0 and args.connector then
    local unknown = require("alloy.connectors").check_known(ctx:client(), args.connector, true)
    if unknown then return nil, unknown end
  end

  if args.json then
    local items = {}
    for i, c in ipairs(list) do
      items[i] = { credentialId = c.credentialId or json.null, type = c.type or json.null, name = c.name or json.null,
                   createdAt = c.createdAt or json.null, updatedAt = c.updatedAt or json.null }
    end
    out:out(json.encode({ userId = cfg.user_id, connector = args.connector or json.null, count = #list,
                          connections = json.array(items) }) .. "\n")
  end

  local what = args.connector and (args.connector .. " connection") or "connection"
  if #list == 0 then
    if args.connector and total > 0 then
      out:say("No %ss for user %s (%d of other connectors; drop the connector to see them).", what, cfg.user_id, total)
    else
      out:say("No %ss for user %s.", what, cfg.user_id)
    end
    out:say("Create one with: %s", ctx:command("connect", args.connector or "notion"))
    return 0
  end
  if not args.json then ctx:print_table(credentials.rows(list)) end
  out:say("%d %s%s for user %s", #list, what, #list == 1 and "" or "s", cfg.user_id)
  -- a line to copy: only an id of the documented shape
  local last = list[#list].credentialId
  out:say("To use one: %s", ctx:command("connections", "--save", ids.object_id(last) and last or "<id>"))
  return 0
end

return M
