-- get_jwt_token.lua: `npm run get-jwt-token` of the Node tool, from a checkout: `alloy token`.
-- Installed as alloy-get-jwt-token; the command itself is lua/alloy/cmd/token.lua.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path
require "alloy.paths" -- first: the modules after it load precompiled (build/<abi>/luac)
require("alloy.main").script("token")
