-- alloy connectors (list_connectors.lua): the connectors this API key can connect, with
-- their authentication types (from each connector's credential metadata).
local M = {
  summary = "the connectors this API key can connect (id, name, auth types)",
  description = "List the connectors available to this API key: id, name and authentication type(s) on stdout.",
  options = {
    { "-s --search", "<text>", "Only connectors whose id or name contains this text (any case)." },
  },
  examples = {
    { "" },
    { "--search slack" },
    { "--json | jq -r '.connectors[].id'" },
  },
}

function M.run(ctx)
  local connectors = require "alloy.connectors"
  local ids = require "alloy.ids"
  local json = require "alloy.json"
  local args, out = ctx.args, ctx.out
  ctx:config()
  local list = ctx:check(connectors.list(ctx:client()))
  if args.search then
    local want, shown = args.search:lower(), {}
    for _, c in ipairs(list) do
      if c.id:lower():find(want, 1, true) or c.name:lower():find(want, 1, true) then shown[#shown + 1] = c end
    end
    list = shown
  end
  local names = {}
  for i, c in ipairs(list) do names[i] = c.id end
  local types = connectors.auth_types(ctx:client(), names)

  if args.json then
    local items = {}
    for i, c in ipairs(list) do
      items[i] = { id = c.id, name = c.name, authTypes = types[c.id] and json.array(types[c.id]) or json.null }
    end
    out:out(json.encode({ count = #list, search = args.search or json.null, connectors = json.array(items) }) .. "\n")
  elseif #list > 0 then
    local rows = { { "ID", "NAME", "AUTH" } }
    for _, c in ipairs(list) do
      rows[#rows + 1] = { c.id, c.name, types[c.id] and table.concat(types[c.id], ",") or "?" }
    end
    ctx:print_table(rows)
  end
  if #list == 0 then
    out:say(args.search and ("No connector matches %q."):format(args.search) or "No connectors.")
    return 0
  end
  out:say("%d connector%s%s", #list, #list == 1 and "" or "s",
    args.search and (" matching " .. ("%q"):format(args.search)) or "")
  for _, c in ipairs(list) do
    if types[c.id] == false then out:warn("could not read the authentication types of %s", c.id) end
  end
  -- a command to copy: only an id that is a plain word (a server's id could be "$(...)")
  local example = "notion"
  for _, c in ipairs(list) do
    if ids.word(c.id) then example = c.id; break end
  end
  out:say("Connect one with: %s", ctx:command("connect", example))
  return 0
end

return M
