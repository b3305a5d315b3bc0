-- alloy disconnect (delete_connection.lua): delete one of a user's connections. On a
-- terminal it shows what will be deleted and asks; scripts pass --yes.
local M = {
  summary = "delete one of a user's connections (asks first; --yes for scripts)",
  description = "Delete one of a user's connections (an Alloy credential) by its id. On a terminal it shows the"
    .. " connection (name, type, created) and asks y/N; without a terminal it needs --yes.",
  user = true,
  arguments = { { "id", "The connection (credential) id: 24 hex digits, as the connections command shows.",
                  optional = true } },
  options = { { "-y --yes", "Delete without asking (for scripts)." } },
  examples = {
    { "66fb066c3793749b64c214bc" },
    { "66fb066c3793749b64c214bc --yes --json" },
  },
  notes = "An id the user does not have is an error (exit 1), never a silent success. Answering no deletes\n"
    .. "nothing and exits 1 with one line, \"Not deleted: ...\".",
}

function M.run(ctx)
  local credentials = require "alloy.credentials"
  local failure = require "alloy.failure"
  local ids = require "alloy.ids"
  local args, out = ctx.args, ctx.out
  local id = args.id
  if not id then
    return nil, failure.suggest(failure.usage("no connection id given", "pass the id"), "the user's connections",
      "connections")
  end
  local _, bad = ids.check_object_id("connection", id)
  if bad then return nil, failure.suggest(bad, "copy the ID column of", "connections") end
  local cfg = ctx:config{ user = true }
  local list = ctx:check(credentials.list(ctx:client(), cfg.user_id))
  local cred = credentials.find(list, id)
  if not cred then
    return nil, failure.suggest(failure.new(("user %s has no connection %s"):format(cfg.user_id, id)),
      "the user's connections", "connections")
  end
  out:say("Connection of user %s:", cfg.user_id)
  ctx:say_table(credentials.rows({ cred }))
  ctx:check(ctx:prompt():approve(args.yes, "Delete it?", "connection " .. id))
  ctx:call("delete_credential", cfg.user_id, id)
  out:say("Deleted connection %s (%s).", id, cred.name or cred.type or "?")
  if args.json then
    out:out(require("alloy.json").encode({ deleted = true, userId = cfg.user_id, credentialId = id,
                                           credential = cred }) .. "\n")
  else
    out:out(id .. "\n")
  end
  return 0
end

return M
