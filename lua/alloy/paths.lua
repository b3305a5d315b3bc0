-- alloy.paths: let a script run from a checkout with no LUA_PATH/LUA_CPATH.
--
-- Every script starts with
--   local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
--   package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"
-- which puts lua/ (the helpers) on package.path; this module then prepends
-- <script dir>/../build/<abi>/?.so to package.cpath so `require "alloy"` finds the
-- freshly built module before any installed copy.  Installed copies (LuaRocks) simply
-- fall through to the normal search paths.  It also loads the modules `make` precompiled
-- (below; `make install` puts them beside it), and returns { searchpath = fn } (Lua 5.1 has
-- no package.searchpath).

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

local build = script_dir() .. "/../build/" .. abi()
local cpath_entry = build .. "/?.so"

if not package.cpath:find(cpath_entry, 1, true) then
  package.cpath = cpath_entry .. ";" .. package.cpath
end

-- The file package.path finds module `name` in, or nil (Lua 5.1 has no package.searchpath).
local function searchpath(name)
  if package.searchpath then return package.searchpath(name, package.path) end
  for template in package.path:gmatch("[^;]+") do
    local path = template:gsub("%?", (name:gsub("%.", "/")))
    local f = io.open(path, "rb")
    if f then
      f:close()
      return path
    end
  end
end

-- The bytecode `make` compiled (tools/precompile.lua): a module whose source is still exactly
-- what it was made from loads without compiling; any other, from its source as usual.
-- A checkout's build/<abi>/luac, else where `make install` put it: luac/ beside this file.
local cache = build .. "/luac/"
local index = io.open(cache .. "index", "rb")
if not index then
  local here = searchpath("alloy.paths")
  cache = (here and here:match("^(.*[/\\])") or "") .. "luac/"
  index = here and io.open(cache .. "index", "rb")
end
local searchers = package.searchers or package.loaders -- luacheck: ignore 143 (5.1)
if index and searchers[2] then
  index:close()
  local load_bytecode = loadstring or load -- luacheck: ignore 113 (5.1)

  local function read(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
  end

  table.insert(searchers, 2, function(name)
    local blob = read(cache .. name:gsub("%.", "/") .. ".luac")
    local length, from = (blob or ""):match("^alloy%-luac (%d+)\n()")
    if not length then return nil end
    local path = searchpath(name)
    local source = path and read(path)
    length = tonumber(length)
    if not source or #source ~= length or blob:sub(from, from + length - 1) ~= source then return nil end
    local chunk = blob:sub(from + length)
    if chunk:byte(1) ~= 27 then return nil end -- only bytecode (Lua 5.1's loadstring takes text too)
    local fn = load_bytecode(chunk, "@" .. path, "b")
    if not fn then return nil end
    return fn, path
  end)
end

-- alloy.so is loaded here, before the helpers: a missing module is reported later, with
-- hints, by alloy.config. (libcurl itself loads at the first alloy.new.)
pcall(require, "alloy")

return { searchpath = searchpath }
