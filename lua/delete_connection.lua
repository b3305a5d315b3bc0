-- delete_connection.lua: delete one of a user's connections (Alloy credentials). On a
-- terminal it shows what will be deleted and asks; scripts pass --yes.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local cli = require "alloy.cli"
local commands = require "alloy.commands"
local credentials = require "alloy.credentials"
local failure = require "alloy.failure"
local prompt = require "alloy.prompt"

local parser = cli.parser("delete_connection.lua",
  "Delete one of a user's connections (an Alloy credential) by its id. On a terminal it shows the"
  .. " connection (name, type, created) and asks y/N; without a terminal it needs --yes.",
  [[
An id the user does not have is an error (exit 1), never a silent success.

Examples:
  {cmd} 66fb066c3793749b64c214bc
  {cmd} 66fb066c3793749b64c214bc --yes --json]])
parser:argument("id", "The connection (credential) id: 24 hex digits, as list_connections shows.")
parser:flag("-y --yes", "Delete without asking (for scripts).")

local function main()
  local args = cli.exit_on(cli.parse(parser, arg))
  local id = args.id
  if not id then
    return nil, failure.usage("no connection id given", "pass the id: " .. commands.invocation("delete_connection")
      .. " <id> (" .. commands.invocation("list_connections") .. " shows them)")
  end
  if not cli.object_id(id) then
    return nil, failure.usage(("%q is not a connection id (24 hex digits)"):format(id),
      "copy the ID column of " .. commands.invocation("list_connections"))
  end
  local cfg = cli.exit_on(cli.config(args))
  cli.exit_on(cli.require_config(cfg, true))
  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))
  local list, err = credentials.list(client, cfg.user_id, { url = cfg.base_url })
  if not list then client:close(); return nil, err end
  local cred = credentials.find(list, id)
  if not cred then
    client:close()
    return nil, failure.new(("user %s has no connection %s"):format(cfg.user_id, id),
      "list the user's connections with " .. commands.invocation("list_connections"))
  end
  cli.say("Connection of user %s:", cfg.user_id)
  cli.say_table(credentials.rows({ cred }))
  local ok, aerr = prompt.approve(args.yes, "Delete it?", "connection " .. id)
  if not ok then client:close(); return nil, aerr end
  local done, msg, code, res = client:delete_credential(cfg.user_id, id)
  client:close()
  if done == nil then return nil, failure.api(msg, code, res, { user_id = cfg.user_id }) end
  cli.say("Deleted connection %s (%s).", id, cred.name or cred.type or "?")
  if args.json then
    cli.out(cli.json({ deleted = true, userId = cfg.user_id, credentialId = id, credential = cred }) .. "\n")
  else
    cli.out(id .. "\n")
  end
  return cli.OK
end

cli.main(main)
