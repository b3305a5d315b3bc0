-- initiate_oauth.lua: `npm run initiate-oauth` of the Node tool, from a checkout: `alloy connect`.
-- Installed as alloy-initiate-oauth; the command itself is lua/alloy/cmd/connect.lua.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path
require "alloy.paths" -- first: the modules after it load precompiled (build/<abi>/luac)
require("alloy.main").script("connect")
