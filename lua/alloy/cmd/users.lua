-- alloy users (users.lua): the Alloy users of this API key: list, create, get, delete.
local M = {
  summary = "list, create, show, rename and delete Alloy users",
  description = "The Alloy users of this API key. list (the default): a table on stdout; create USERNAME: the new"
    .. " user id on stdout; get ID: the user; update ID --full-name NAME: its full name (the username cannot"
    .. " change); delete ID: asks y/N on a terminal (--yes for scripts).",
  arguments = {
    { "action", "list, create, get, update or delete.", optional = true },
    { "target", "USERNAME for create, ID for get, update and delete.", optional = true },
  },
  options = {
    { "--full-name", "<name>", "Full name of the user to create or update." },
    { "-y --yes", "Delete without asking (for scripts)." },
  },
  examples = {
    { "list" },
    { "create ada --full-name \"Ada Lovelace\"" },
    { "get ada --json" },
    { "update ada --full-name \"Ada King\"" },
    { "delete ada --yes" },
  },
  notes = "ID is the user id (24 hex digits) or the username.",
}

local HEADER = { "ID", "USERNAME", "FULL NAME" }

local function user_row(u)
  local function s(v) return type(v) == "string" and v or "-" end
  return { s(u.userId), s(u.username), s(u.fullName) }
end

-- A user id from the API reaches stdout (and a URL): it must have the documented shape.
local function checked_id(id)
  local failure = require "alloy.failure"
  if require("alloy.ids").object_id(id) then return id end
  return nil, failure.new(("the API answered with a user id that is not 24 hex digits: %s")
    :format(require("alloy.output").excerpt(id)), "check ALLOY_BASE_URL")
end

local function get(ctx, target)
  local u = ctx:call("get_user", target)
  if type(u) ~= "table" then return nil, require("alloy.failure").new("the API answered with no user") end
  return u
end

local RUN = {}

function RUN.list(ctx, json)
  local list = ctx:call("list_users")
  if ctx.args.json then
    ctx.out:out(json.encode({ count = #list, users = json.array(list) }) .. "\n")
  elseif #list > 0 then
    local rows = { HEADER }
    for _, u in ipairs(list) do rows[#rows + 1] = user_row(u) end
    ctx:print_table(rows)
  end
  ctx.out:say("%d user%s", #list, #list == 1 and "" or "s")
  return 0
end

function RUN.create(ctx, json)
  local args = ctx.args
  local created = ctx:call("create_user", { username = args.target, fullName = args.full_name })
  local id = ctx:check(checked_id(type(created) == "table" and created.userId))
  ctx.out:say("Created user %s (%s).", args.target, id)
  if args.json then
    ctx.out:out(json.encode({ userId = id, username = args.target, fullName = args.full_name or json.null }) .. "\n")
  else
    ctx.out:out(id .. "\n")
  end
  ctx.out:say("Use it: ALLOY_USER_ID=%s in %s, or -u %s", id, ctx:config().env_path,
    require("alloy.ids").quote(args.target))
  return 0
end

function RUN.get(ctx, json)
  local u = ctx:check(get(ctx, ctx.args.target))
  if ctx.args.json then
    ctx.out:out(json.encode(u) .. "\n")
  else
    ctx:print_table({ HEADER, user_row(u) })
  end
  return 0
end

function RUN.update(ctx, json)
  local args, failure = ctx.args, require "alloy.failure"
  if not args.full_name or args.full_name:match("^%s*$") or args.full_name:find("%c") then
    return nil, failure.usage("update needs --full-name <name> (text on one line): the username cannot change")
  end
  local u = ctx:check(get(ctx, args.target))
  local id = ctx:check(checked_id(u.userId))
  ctx:call("update_user", id, { fullName = args.full_name })
  u.fullName = args.full_name
  ctx.out:say("Updated user %s: full name %q.", args.target, args.full_name)
  if args.json then
    ctx.out:out(json.encode(u) .. "\n")
  else
    ctx.out:out(id .. "\n")
  end
  return 0
end

function RUN.delete(ctx, json)
  local args = ctx.args
  local u = ctx:check(get(ctx, args.target))
  local id = ctx:check(checked_id(u.userId))
  ctx.out:say("User:")
  ctx:say_table({ HEADER, user_row(u) })
  ctx:check(ctx:prompt():approve(args.yes, "Delete this user?", "user " .. args.target))
  ctx:call("delete_user", id)
  ctx.out:say("Deleted user %s.", args.target)
  if args.json then
    ctx.out:out(json.encode({ deleted = true, user = u }) .. "\n")
  else
    ctx.out:out(id .. "\n")
  end
  return 0
end

function M.run(ctx)
  local failure = require "alloy.failure"
  local args = ctx.args
  local action = args.action or "list"
  if not RUN[action] then
    return nil, failure.suggest(failure.usage(("unknown action %q"):format(action),
      "use one of: list, create USERNAME, get ID, update ID, delete ID"), "all of it", "users", "--help")
  end
  if action ~= "list" and not args.target then
    return nil, failure.suggest(failure.usage(("%s needs a %s"):format(action, action == "create" and "USERNAME"
      or "user ID")), "for example", "users", action, action == "create" and "<username>" or "<id>")
  end
  if action == "create" and (args.target:match("^%s*$") or args.target:find("%c")) then
    return nil, failure.usage(("%q is not a username (empty, or with control characters)"):format(args.target),
      "pick a name that is text on one line")
  end
  if action == "list" and args.target then
    return nil, failure.suggest(failure.usage("list takes no argument"), "for example", "users", "list")
  end
  ctx:config()
  return RUN[action](ctx, require("alloy.json"))
end

return M
