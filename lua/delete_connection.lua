-- delete_connection.lua: `alloy disconnect` from a checkout.
-- Installed as alloy-delete-connection; the command itself is lua/alloy/cmd/disconnect.lua.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path
require "alloy.paths" -- first: the modules after it load precompiled (build/<abi>/luac)
require("alloy.main").script("disconnect")
