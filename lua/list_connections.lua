-- list_connections.lua: `npm run list-connections` of the Node tool, from a checkout: `alloy connections`.
-- Installed as alloy-list-connections; the command itself is lua/alloy/cmd/connections.lua.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path
require "alloy.paths" -- first: the modules after it load precompiled (build/<abi>/luac)
require("alloy.main").script("connections")
