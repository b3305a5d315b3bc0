-- list_connections.lua: a user's connections (Alloy credentials) as a table
-- (`npm run list-connections`): aligned on a terminal, tab-separated for programs.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local cli = require "alloy.cli"
local commands = require "alloy.commands"
local credentials = require "alloy.credentials"

local parser = cli.parser("list_connections.lua",
  "List a user's connections (Alloy credentials): a table (id, type, name, created) on stdout, aligned"
  .. " under a header on a terminal, tab-separated rows without one when piped; the count and the .env"
  .. " line to use one on stderr.",
  [[
Examples:
  {cmd}
  {cmd} --connector notion
  {cmd} | cut -f1    the ids, one per line (tab-separated when piped)
  {cmd} --json | jq -r '.connections[0].credentialId']])
parser:option("-c --connector", "Only connections of this connector (type notion or notion-*)."):argname("<id>")

local function main()
  local args = cli.exit_on(cli.parse(parser, arg))
  local cfg = cli.exit_on(cli.config(args))
  cli.exit_on(cli.require_config(cfg, true))
  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))
  local list, err = credentials.list(client, cfg.user_id, { url = cfg.base_url })
  client:close()
  if not list then return nil, err end
  local total = #list
  list = credentials.for_connector(list, args.connector)
  -- oldest first; ties keep the API's order
  for i, c in ipairs(list) do c._pos = i end
  table.sort(list, function(a, b)
    if (a.createdAt or "") ~= (b.createdAt or "") then return (a.createdAt or "") < (b.createdAt or "") end
    return a._pos < b._pos
  end)

  if args.json then
    local items = {}
    for i, c in ipairs(list) do
      items[i] = { credentialId = c.credentialId or cli.null, type = c.type or cli.null, name = c.name or cli.null,
                   createdAt = c.createdAt or cli.null, updatedAt = c.updatedAt or cli.null }
    end
    cli.out(cli.json({ userId = cfg.user_id, connector = args.connector or cli.null, count = #list,
                       connections = cli.array(items) }) .. "\n")
  end

  local what = args.connector and (args.connector .. " connection") or "connection"
  if #list == 0 then
    if args.connector and total > 0 then
      cli.say("No %ss for user %s (%d of other connectors; drop --connector to see them).", what, cfg.user_id, total)
    else
      cli.say("No %ss for user %s.", what, cfg.user_id)
    end
    cli.say("Create one with: %s --connector %s --redirect-uri http://localhost:3000/oauth/callback",
      commands.invocation("initiate_oauth"), args.connector or "notion")
    return cli.OK
  end
  if not args.json then cli.out(cli.table(credentials.rows(list))) end
  cli.say("%d %s%s for user %s", #list, what, #list == 1 and "" or "s", cfg.user_id)
  -- a line to copy into .env: only an id of the documented shape
  local last = list[#list].credentialId
  cli.say("To use one, put it in .env: CONNECTION_ID=%s", cli.object_id(last) and last or "<id>")
  return cli.OK
end

cli.main(main)
