-- alloy_main.lua: the `alloy` command (installed as `alloy`); every command as a subcommand.
-- (Not lua/alloy.lua: that would hide alloy.so from require "alloy".)
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path
require "alloy.paths" -- first: the modules after it load precompiled (build/<abi>/luac)
require("alloy.main").alloy()
