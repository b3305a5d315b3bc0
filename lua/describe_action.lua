-- describe_action.lua: what an action takes: its parameters and body fields, which are
-- required, their types; --json prints the schema as the API serves it.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local actions = require "alloy.actions"
local cli = require "alloy.cli"
local commands = require "alloy.commands"

local parser = cli.parser("describe_action.lua",
  "Show what a connector's action takes: one line per parameter (name, where it goes: query, path,"
  .. " header or body, type, required) on stdout, aligned under a header on a terminal, tab-separated"
  .. " when piped; the action's name, method and description on stderr.",
  [[
Examples:
  {cmd} slack chat_postMessage
  {cmd} slack chat_postMessage --json]], { user = false })
actions.add_arguments(parser, true)

-- An example command line with every required parameter as a placeholder; a name that is not
-- a plain word (the server's text) is left out, and "…" says so.
local function example(connector, id, params)
  local parts, body, left_out = { commands.invocation("run_action"), connector, id }, {}, false
  for _, p in ipairs(params) do
    local name = actions.plain(p.name)
    if p.required and (p.where == "query" or p.where == "path" or p.where == "body") and not name then
      left_out = true
    elseif p.required and (p.where == "query" or p.where == "path") then
      parts[#parts + 1] = ("--%s %s=<%s>"):format(p.where, name, name)
    elseif p.required and p.where == "body" then
      body[#body + 1] = ('"%s":…'):format(name)
    end
  end
  if #body > 0 then parts[#parts + 1] = "--body '{" .. table.concat(body, ",") .. "}'" end
  if left_out then parts[#parts + 1] = "…" end
  return table.concat(parts, " ")
end

local function main()
  local args = cli.exit_on(cli.parse(parser, arg))
  local connector, id = cli.exit_on(actions.checked_args(args, "describe_action", true))
  local cfg = cli.exit_on(cli.config(args))
  cli.exit_on(cli.require_config(cfg, false))
  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))
  local action, res = actions.schema(client, connector, id)
  client:close()
  if not action then return nil, res end
  if args.json then
    cli.out(cli.json_as_sent(res.body) .. "\n")
    return cli.OK
  end
  local params = actions.params(action)
  local method = type(action.httpMethod) == "string" and action.httpMethod:upper() or "?"
  cli.say("%s (%s): %s %s", id, tostring(action.displayName or action.name or "-"), method,
    tostring(action.path or ""))
  if type(action.description) == "string" then cli.say("%s", action.description) end
  if #params == 0 then
    cli.say("It takes no parameters.")
  else
    local rows = { { "NAME", "IN", "TYPE", "REQUIRED", "DESCRIPTION" } }
    for _, p in ipairs(params) do
      rows[#rows + 1] = { p.name, p.where, p.type, p.required and "yes" or "no", p.description or "" }
    end
    cli.out(cli.table(rows))
  end
  for _, p in ipairs(params) do
    if p.required and p.where == "header" then
      cli.say("Header parameters (%s) are filled from the connection, or given with --header name=value.", p.name)
      break
    end
  end
  cli.say("Run it: %s", example(connector, id, params))
  return cli.OK
end

cli.main(main)
