-- test_oauth.lua: `npm run test-oauth` of the Node tool, from a checkout: `alloy test-oauth`.
-- Installed as alloy-test-oauth; the command itself is lua/alloy/cmd/test_oauth.lua.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path
require "alloy.paths" -- first: the modules after it load precompiled (build/<abi>/luac)
require("alloy.main").script("test-oauth")
