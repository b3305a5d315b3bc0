-- tools/precompile.lua OUTDIR MODULE=PATH...: the bytecode cache alloy.paths loads modules
-- from (a one-shot command compiled ~3,000 lines of Lua source on every run, a third of its
-- time). Run by `make` with the interpreter of the ABI it builds for: bytecode is that
-- interpreter's own. Each OUTDIR/<module as a path>.luac holds a header line, a copy of the
-- source it was made from (the loader uses it only when the source is still exactly that), then
-- the bytecode. An item that is only a module name (argparse) is looked up on package.path.
local out = assert(arg[1], "usage: precompile.lua OUTDIR MODULE=PATH...")
local dump_load = loadstring or load -- luacheck: ignore 113 (5.1)

-- alloy.paths' lookup (and its module path: this checkout's lua/ first)
package.path = (arg[0]:match("^(.*)/tools/[^/]*$") or ".") .. "/lua/?.lua;" .. package.path
local searchpath = require("alloy.paths").searchpath

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local made = 0
for i = 2, #arg do
  local name, path = arg[i]:match("^([^=]+)=(.+)$")
  if not name then name, path = arg[i], searchpath(arg[i]) end
  if path then
    local source = read(path)
    local fn = assert(dump_load(source, "@" .. path))
    local target = out .. "/" .. name:gsub("%.", "/") .. ".luac"
    assert(os.execute(("mkdir -p '%s'"):format(target:match("^(.*)/"):gsub("'", "'\\''"))))
    local tmp = target .. ".tmp"
    local f = assert(io.open(tmp, "wb"))
    assert(f:write(("alloy-luac %d\n"):format(#source), source, string.dump(fn)))
    assert(f:close())
    assert(os.rename(tmp, target))
    made = made + 1
  end
end
local f = assert(io.open(out .. "/index", "wb")) -- alloy.paths looks for the cache here
assert(f:write(made, "\n"))
assert(f:close())
