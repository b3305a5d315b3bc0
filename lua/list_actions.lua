-- list_actions.lua: `alloy actions` from a checkout.
-- Installed as alloy-list-actions; the command itself is lua/alloy/cmd/actions.lua.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path
require "alloy.paths" -- first: the modules after it load precompiled (build/<abi>/luac)
require("alloy.main").script("actions")
