-- list_actions.lua: a connector's resources and their actions, one action per line.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local actions = require "alloy.actions"
local cli = require "alloy.cli"
local commands = require "alloy.commands"

local parser = cli.parser("list_actions.lua",
  "List a connector's actions: resource, action id, HTTP method and name on stdout, one action per line"
  .. " (aligned under a header on a terminal, tab-separated rows when piped).",
  [[
Examples:
  {cmd} slack
  {cmd} slack --search message
  {cmd} notion --json | jq -r '.actions[].id']], { user = false })
actions.add_arguments(parser, false)
parser:option("-s --search", "Only actions whose id, name or resource contains this text (any case)."):argname("<text>")

local function matches(row, want)
  for _, v in ipairs({ row.id, row.name, row.resource }) do
    if v and v:lower():find(want, 1, true) then return true end
  end
  return false
end

local function main()
  local args = cli.exit_on(cli.parse(parser, arg))
  local connector = cli.exit_on(actions.checked_args(args, "list_actions", false))
  local cfg = cli.exit_on(cli.config(args))
  cli.exit_on(cli.require_config(cfg, false))
  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))
  local list, err = actions.list(client, connector)
  client:close()
  if not list then return nil, err end
  if args.search then
    local want, shown = args.search:lower(), {}
    for _, row in ipairs(list) do if matches(row, want) then shown[#shown + 1] = row end end
    list = shown
  end

  if args.json then
    local items = {}
    for i, r in ipairs(list) do
      items[i] = { resource = r.resource, id = r.id, method = r.method or cli.null, name = r.name or cli.null,
                   description = r.description or cli.null }
    end
    cli.out(cli.json({ connector = connector, search = args.search or cli.null, count = #list,
                           actions = cli.array(items) }) .. "\n")
  elseif #list > 0 then
    local rows = { { "RESOURCE", "ACTION", "METHOD", "NAME" } }
    for _, r in ipairs(list) do rows[#rows + 1] = { r.resource, r.id, r.method or "-", r.name or "-" } end
    cli.out(cli.table(rows))
  end
  if #list == 0 then
    cli.say(args.search and ("No action of %s matches %q."):format(connector, args.search)
      or ("Connector %s lists no actions."):format(connector))
    return cli.OK
  end
  cli.say("%d action%s of %s%s", #list, #list == 1 and "" or "s", connector,
    args.search and (" matching " .. ("%q"):format(args.search)) or "")
  cli.say("What one takes: %s %s %s", commands.invocation("describe_action"), connector, list[1].id)
  return cli.OK
end

cli.main(main)
