-- alloy.commands: the commands, named once. A command is a module, alloy.cmd.<module>
-- (lua/alloy/cmd/<module>.lua), and one row here:
--   name    its name under the `alloy` command (alloy token, alloy connect, ...)
--   module  its module under alloy.cmd (default: name)
--   script  the Node tool era's script name, when it has one: lua/<script>.lua in a checkout,
--           installed (make install, the rockspec) as alloy-<script, with dashes>
-- Adding a command: its module, and one row here. alloy.main runs it; help, completions,
-- `make install` and the docs' command list all come from this table.
local M = {}

M.LIST = {
  { name = "token", script = "get_jwt_token" },
  { name = "connect", script = "initiate_oauth" },
  { name = "test-oauth", module = "test_oauth", script = "test_oauth" },
  { name = "connections", script = "list_connections" },
  { name = "connectors", script = "list_connectors" },
  { name = "disconnect", script = "delete_connection" },
  { name = "users", script = "users" },
  { name = "actions", script = "list_actions" },
  { name = "action", script = "describe_action" },
  { name = "run", script = "run_action" },
  { name = "events" },
  { name = "trigger" },
  { name = "workflows" },
  { name = "workflow" },
  { name = "logs" },
  { name = "upload" },
  { name = "files" },
}

M.by_name, M.by_script = {}, {}
for _, c in ipairs(M.LIST) do
  c.module = "alloy.cmd." .. (c.module or c.name)
  if c.script then c.installed = "alloy-" .. c.script:gsub("_", "-") end
  M.by_name[c.name] = c
  if c.script then M.by_script[c.script] = c end
end

-- The `alloy` command itself: lua/alloy_main.lua in a checkout, installed as `alloy`.
M.MAIN = { script = "alloy_main", installed = "alloy" }
M.by_script[M.MAIN.script] = M.MAIN

return M
