-- list_connectors.lua: the connectors this API key can connect, with their authentication
-- types (from each connector's credential metadata, fetched concurrently).
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local cli = require "alloy.cli"
local commands = require "alloy.commands"
local connectors = require "alloy.connectors"

local parser = cli.parser("list_connectors.lua",
  "List the connectors available to this API key: id, name and authentication type(s) on stdout.",
  [[
Examples:
  {cmd}
  {cmd} --search slack
  {cmd} --json | jq -r '.connectors[].id']], { user = false })
parser:option("-s --search", "Only connectors whose id or name contains this text (any case)."):argname("<text>")

local function main()
  local args = cli.exit_on(cli.parse(parser, arg))
  local cfg = cli.exit_on(cli.config(args))
  cli.exit_on(cli.require_config(cfg, false))
  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))
  local list, err = connectors.list(client)
  if not list then client:close(); return nil, err end
  if args.search then
    local want, shown = args.search:lower(), {}
    for _, c in ipairs(list) do
      if c.id:lower():find(want, 1, true) or c.name:lower():find(want, 1, true) then shown[#shown + 1] = c end
    end
    list = shown
  end
  local ids = {}
  for i, c in ipairs(list) do ids[i] = c.id end
  local types = connectors.auth_types(client, ids)
  client:close()

  if args.json then
    local items = {}
    for i, c in ipairs(list) do
      items[i] = { id = c.id, name = c.name, authTypes = types[c.id] and cli.array(types[c.id]) or cli.null }
    end
    cli.out(cli.json({ count = #list, search = args.search or cli.null, connectors = cli.array(items) }) .. "\n")
  elseif #list > 0 then
    local rows = { { "ID", "NAME", "AUTH" } }
    for _, c in ipairs(list) do
      rows[#rows + 1] = { c.id, c.name, types[c.id] and table.concat(types[c.id], ",") or "?" }
    end
    cli.out(cli.table(rows))
  end
  if #list == 0 then
    cli.say(args.search and ("No connector matches %q."):format(args.search) or "No connectors.")
    return cli.OK
  end
  cli.say("%d connector%s%s", #list, #list == 1 and "" or "s",
    args.search and (" matching " .. ("%q"):format(args.search)) or "")
  for _, c in ipairs(list) do
    if types[c.id] == false then cli.warn("could not read the authentication types of %s", c.id) end
  end
  -- a command to copy: only an id that is a plain word (a server's id could be "$(...)")
  local example = "notion"
  for _, c in ipairs(list) do
    if c.id:match("^[%w_%.%-]+$") then example = c.id; break end
  end
  cli.say("Connect one with: %s --connector %s", commands.invocation("initiate_oauth"), example)
  return cli.OK
end

cli.main(main)
