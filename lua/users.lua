-- users.lua: the Alloy users of this API key: list, create, get, delete.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local cli = require "alloy.cli"
local commands = require "alloy.commands"
local failure = require "alloy.failure"
local prompt = require "alloy.prompt"

local parser = cli.parser("users.lua",
  "The Alloy users of this API key. list (the default): a table on stdout; create USERNAME: the new"
  .. " user id on stdout; get ID: the user; delete ID: asks y/N on a terminal (--yes for scripts).",
  [[
ID is the user id (24 hex digits) or the username.

Examples:
  {cmd} list
  {cmd} create ada --full-name "Ada Lovelace"
  {cmd} get ada --json
  {cmd} delete ada --yes]], { user = false })
parser:argument("action", "list, create, get or delete."):args("?")
parser:argument("target", "USERNAME for create, ID for get and delete."):args("?")
parser:option("--full-name", "Full name of the user to create."):argname("<name>")
parser:flag("-y --yes", "Delete without asking (for scripts).")

local ACTIONS = { list = true, create = true, get = true, delete = true }

local function user_row(u)
  return { type(u.userId) == "string" and u.userId or "-", type(u.username) == "string" and u.username or "-",
           type(u.fullName) == "string" and u.fullName or "-" }
end

local function show(args, u)
  if args.json then return cli.out(cli.json(u) .. "\n") end
  cli.out(cli.table({ { "ID", "USERNAME", "FULL NAME" }, user_row(u) }))
end

-- A user id from the API reaches stdout (and a URL): it must have the documented shape.
local function checked_id(id)
  if cli.object_id(id) then return id end
  return nil, failure.new(("the API answered with a user id that is not 24 hex digits: %s")
    :format(cli.excerpt(id)), "check ALLOY_BASE_URL")
end

local function get(client, target)
  local u, msg, code, res = client:get_user(target)
  if u == nil then return nil, failure.api(msg, code, res, { user_id = target }) end
  if type(u) ~= "table" then return nil, failure.new("the API answered with no user") end
  return u
end

local RUN = {}

function RUN.list(client, args)
  local list, msg, code, res = client:list_users()
  if list == nil then return nil, failure.api(msg, code, res) end
  if args.json then
    cli.out(cli.json({ count = #list, users = cli.array(list) }) .. "\n")
  elseif #list > 0 then
    local rows = { { "ID", "USERNAME", "FULL NAME" } }
    for _, u in ipairs(list) do rows[#rows + 1] = user_row(u) end
    cli.out(cli.table(rows))
  end
  cli.say("%d user%s", #list, #list == 1 and "" or "s")
  return cli.OK
end

function RUN.create(client, args)
  local created, msg, code, res = client:create_user({ username = args.target, fullName = args.full_name })
  if created == nil then return nil, failure.api(msg, code, res) end
  local id, err = checked_id(type(created) == "table" and created.userId)
  if not id then return nil, err end
  cli.say("Created user %s (%s).", args.target, id)
  if args.json then
    cli.out(cli.json({ userId = id, username = args.target, fullName = args.full_name or cli.null })
      .. "\n")
  else
    cli.out(id .. "\n")
  end
  cli.say("Use it: ALLOY_USER_ID=%s (in .env), or --user %s", id, args.target)
  return cli.OK
end

function RUN.get(client, args)
  local u, err = get(client, args.target)
  if not u then return nil, err end
  show(args, u)
  return cli.OK
end

function RUN.delete(client, args)
  local u, err = get(client, args.target)
  if not u then return nil, err end
  local id, ierr = checked_id(u.userId)
  if not id then return nil, ierr end
  cli.say("User (deleting it deletes its connections too):")
  cli.say_table({ { "ID", "USERNAME", "FULL NAME" }, user_row(u) })
  local ok, aerr = prompt.approve(args.yes, "Delete this user?", "user " .. args.target)
  if not ok then return nil, aerr end
  local done, msg, code, res = client:delete_user(id)
  if done == nil then return nil, failure.api(msg, code, res, { user_id = args.target }) end
  cli.say("Deleted user %s.", args.target)
  if args.json then
    cli.out(cli.json({ deleted = true, user = u }) .. "\n")
  else
    cli.out(id .. "\n")
  end
  return cli.OK
end

local function main()
  local args = cli.exit_on(cli.parse(parser, arg))
  local action = args.action or "list"
  if not ACTIONS[action] then
    return nil, failure.usage(("unknown action %q"):format(action),
      "use one of: list, create USERNAME, get ID, delete ID (" .. commands.invocation("users") .. " --help)")
  end
  if action ~= "list" and not args.target then
    return nil, failure.usage(("%s needs a %s"):format(action, action == "create" and "USERNAME" or "user ID"),
      ("%s %s <%s>"):format(commands.invocation("users"), action, action == "create" and "username" or "id"))
  end
  if action == "create" and (args.target:match("^%s*$") or args.target:find("%c")) then
    return nil, failure.usage(("%q is not a username (empty, or with control characters)"):format(args.target),
      "pick a name that is text on one line")
  end
  if action == "list" and args.target then
    return nil, failure.usage("list takes no argument", commands.invocation("users") .. " list")
  end
  local cfg = cli.exit_on(cli.config(args))
  cli.exit_on(cli.require_config(cfg, false))
  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))
  local status, err = RUN[action](client, args)
  client:close()
  return status, err
end

cli.main(main)
