-- alloy.commands: the commands, named once.
--
-- Each row: script (lua/<script>.lua in the checkout), installed (the command `make install`
-- and the rockspec install), sub (its name under the `alloy` command), summary (one line).
-- Help texts, hints and "next step" lines name a command through M.invocation, so they say
-- what the user can type where they are: the checkout path, the installed command, or the
-- `alloy` subcommand.
local M = {}

M.LIST = {
  { script = "get_jwt_token", installed = "alloy-get-jwt-token", sub = "token",
    summary = "a user's JWT for Alloy's frontend SDK" },
  { script = "initiate_oauth", installed = "alloy-initiate-oauth", sub = "connect",
    summary = "connect an app for a user (OAuth URL, then the new connection)" },
  { script = "test_oauth", installed = "alloy-test-oauth", sub = "test-oauth",
    summary = "the OAuth flow preset for Notion" },
  { script = "list_connections", installed = "alloy-list-connections", sub = "connections",
    summary = "a user's connections (credentials)" },
  { script = "list_connectors", installed = "alloy-list-connectors", sub = "connectors",
    summary = "the connectors this API key can connect (id, name, auth types)" },
  { script = "delete_connection", installed = "alloy-delete-connection", sub = "disconnect",
    summary = "delete one of a user's connections (asks first; --yes for scripts)" },
  { script = "users", installed = "alloy-users", sub = "users",
    summary = "list, create, show and delete Alloy users" },
  { script = "list_actions", installed = "alloy-list-actions", sub = "actions",
    summary = "a connector's actions (resource, id, method, name)" },
  { script = "describe_action", installed = "alloy-describe-action", sub = "action",
    summary = "what an action takes: its parameters, required or not, their types" },
  { script = "run_action", installed = "alloy-run-action", sub = "run",
    summary = "execute an action with a connection, once or --each line of JSON" },
  -- the `alloy` command itself: installed as plain `alloy` (main = true), no subcommand
  { script = "alloy_main", installed = "alloy", main = true,
    summary = "every command above as `alloy <subcommand>`" },
}

M.by_script, M.by_sub = {}, {}
for _, c in ipairs(M.LIST) do
  M.by_script[c.script] = c
  if c.sub then M.by_sub[c.sub] = c end
end

-- How the running process was started: "checkout" (lua5.4 lua/x.lua), "installed"
-- (alloy-x) or "alloy" (the alloy command, which sets M.mode itself).
local function detect()
  local a0 = type(arg) == "table" and arg[0] or nil
  if type(a0) == "string" and a0:match("%.lua$") then
    -- the interpreter is the lowest index: `lua5.4 -e '...' lua/x.lua` has the -e code at -1
    local i = -1
    while arg[i - 1] ~= nil do i = i - 1 end
    local interp = type(arg[i]) == "string" and arg[i]:match("[^/]+$") or "lua5.4"
    return "checkout", { dir = a0:match("^(.*)/[^/]*$") or ".", lua = interp }
  end
  return "installed"
end

M.mode, M.context = detect()

-- The command line that runs script (a row's script name) where the user is now.
function M.invocation(script)
  local c = assert(M.by_script[script], "alloy.commands: unknown script " .. tostring(script))
  if M.mode == "alloy" then return c.sub and ("alloy " .. c.sub) or "alloy" end
  if M.mode == "checkout" then
    return ("%s %s/%s.lua"):format(M.context.lua, M.context.dir, c.script)
  end
  return c.installed
end

return M
