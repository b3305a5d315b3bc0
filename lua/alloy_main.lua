-- alloy_main.lua: the `alloy` command (installed as `alloy`): every script as a subcommand,
-- as gh has them (alloy token, alloy connect, alloy connections, ...).
--
-- One implementation per flow: the subcommand's own script is loaded from beside this file
-- (lua/<script>.lua in a checkout, the installed command alloy-<name> when installed) and
-- run with arg rewritten, after setting alloy.commands.mode = "alloy" so its help, hints and
-- "next step" lines name `alloy <subcommand>`. (Not lua/alloy.lua: that would hide alloy.so
-- from require "alloy".)
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local commands = require "alloy.commands"

local function fail(msg, hint)
  io.stderr:write("error: ", msg, "\n")
  if hint then io.stderr:write("hint: ", hint, "\n") end
  os.exit(2)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The file of a subcommand's script beside this one.
local function script_file(c)
  for _, path in ipairs({ d .. "/" .. c.script .. ".lua", d .. "/" .. c.installed }) do
    if exists(path) then return path end
  end
  return nil
end

local function args() return require "alloy.args" end

-- Help for `alloy`: argparse's, from the same parser the completions come from.
local function usage()
  local p = args().command_parser("Alloy from the shell: every lua-alloy command as a subcommand.", script_file)
  p:epilog("`alloy help <command>` (or `alloy <command> --help`) shows a command's options.\n"
    .. args().EXIT_CODES)
  return p:get_help() .. "\n"
end

local unpack_ = table.unpack or unpack -- luacheck: ignore 113 (5.1)

local first = arg[1]
if first == "-h" or first == "--help" then
  io.stdout:write(usage())
  os.exit(0)
end
if first == nil then
  io.stderr:write(usage())
  os.exit(2)
end
if first == "--version" then
  io.stdout:write(args().version_line(arg[0]:match("[^/\\]+$")), "\n")
  os.exit(0)
end
-- for `make completions`: every subcommand with its script's options
if first == "--completion" then
  local text, err = args().completion_script(args().command_parser("Alloy from the shell.", script_file), arg[2])
  if not text then fail(err.message) end
  io.stdout:write(text)
  os.exit(0)
end

local rest = { unpack_(arg, 2) }
if first == "help" then
  if not rest[1] then io.stdout:write(usage()); os.exit(0) end
  first, rest = rest[1], { "--help" }
end

local c = commands.by_sub[first]
if not c then
  local subs = {}
  for _, row in ipairs(commands.LIST) do subs[#subs + 1] = row.sub end
  local near = require("alloy.connectors").closest(subs, first)
  fail(("unknown command %q"):format(first),
    #near > 0 and ("did you mean alloy " .. near[1] .. "?") or "run alloy --help for the commands")
end

local path = script_file(c)
if not path then fail(("the %s command is not installed beside %s"):format(c.installed, arg[0])) end

commands.mode = "alloy"
local argv = { [-1] = arg[-1], [0] = path }
for i, a in ipairs(rest) do argv[i] = a end
arg = argv -- luacheck: ignore 121 (the script reads the global arg, as when run itself)
local chunk, err = loadfile(path)
if not chunk then fail(("cannot load %s: %s"):format(path, err)) end
chunk(unpack_(argv))
