-- alloy.paths: let a script run from a checkout with no LUA_PATH/LUA_CPATH.
--
-- Every script starts with
--   local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
--   package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"
-- which puts lua/ (the helpers) on package.path; this module then prepends
-- <script dir>/../build/<abi>/?.so to package.cpath so `require "alloy"` finds the
-- freshly built module before any installed copy.  Installed copies (LuaRocks) simply
-- fall through to the normal search paths.  It exports nothing.

-- The build directory name for the running interpreter's ABI.
local function abi()
  if type(rawget(_G, "jit")) == "table" then return "luajit" end
  local v = _VERSION:match("Lua (%d+%.%d+)")
  return v and ("lua" .. v) or "lua5.4"
end

-- Directory of the running script (arg[0]), "." when run from its own directory.
local function script_dir()
  local a0 = arg and arg[0]
  if type(a0) ~= "string" then return "." end
  return a0:match("^(.*)[/\\]") or "."
end

local cpath_entry = script_dir() .. "/../build/" .. abi() .. "/?.so"

if not package.cpath:find(cpath_entry, 1, true) then
  package.cpath = cpath_entry .. ";" .. package.cpath
end

-- alloy.so is loaded here, before the helpers: a missing module is reported later, with
-- hints, by alloy.config. (libcurl itself loads at the first alloy.new.)
pcall(require, "alloy")

return true
