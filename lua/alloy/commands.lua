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
}

M.by_script, M.by_sub = {}, {}
for _, c in ipairs(M.LIST) do
  M.by_script[c.script], M.by_sub[c.sub] = c, c
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
  if M.mode == "alloy" then return "alloy " .. c.sub end
  if M.mode == "checkout" then
    return ("%s %s/%s.lua"):format(M.context.lua, M.context.dir, c.script)
  end
  return c.installed
end

return M
