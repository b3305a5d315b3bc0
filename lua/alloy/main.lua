-- alloy.main: the one dispatcher. Every way in is a stub of a few lines that calls it:
--   lua/<script>.lua, installed as alloy-<script>:   require("alloy.main").script("token")
--   lua/alloy_main.lua, installed as alloy:           require("alloy.main").alloy()
-- It parses the command line (alloy.cmdline, from the command's declaration), builds the
-- context (alloy.context: arguments, configuration with where each value came from, the
-- client, output with redaction, how this command was invoked), runs the command's run(ctx),
-- and is the only place that prints a failure and ends the process:
--   error: <what failed>            (a declined confirmation: its one plain line instead)
--   hint: <what to do> [<command>]
-- then exit 0, 1 (API or network), 2 (usage or configuration) or 130 (Ctrl-C).
require "alloy.paths"

local commands = require "alloy.commands"
local failure = require "alloy.failure"
local output = require "alloy.output"

local M = {}

local unpack_ = table.unpack or unpack -- luacheck: ignore 113 (5.1)

-- Prints the failure (nil: none), then ends the process with `status`.
local function finish(status, err, out, ctx)
  out = out or output.new()
  if status == failure.INTERRUPTED then -- Ctrl-C: one line, whichever way the interruption arrived
    out:err("\ninterrupted\n")
  elseif err and err.plain then
    out:err(output.line(err.message), "\n")
  elseif err then
    out:err("error: ", output.line(err.message), "\n")
    local hint = ctx and ctx:hint(err) or err.hint
    if hint and hint ~= "" then out:err("hint: ", output.line(hint), "\n") end
  end
  io.stdout:flush()
  io.stderr:flush()
  os.exit(status)
end

-- Runs the command of `row` with argv (its arguments, globals included), started the way
-- `mode` says (alloy.invocation).
local function run(row, argv, mode)
  local cmd = require(row.module)
  local args, perr = require("alloy.cmdline").parse(cmd, argv, mode, row)
  if not args then finish(perr.status, perr) end
  local debug_env = os.getenv("ALLOY_DEBUG")
  if debug_env and debug_env ~= "" and debug_env ~= "0" then args.verbose = true end
  local out = output.new{ quiet = args.quiet }
  local ctx = require("alloy.context").new{ row = row, cmd = cmd, args = args, out = out, mode = mode }
  local ok, status, err = xpcall(function() return cmd.run(ctx) end, function(e)
    if failure.is(e) then return e end
    if args.verbose then return debug.traceback(tostring(e), 2) end
    return tostring(e)
  end)
  local closed, cerr = pcall(ctx.close, ctx)
  if ok and not closed then ok, status = false, cerr end
  if ok then
    if status == nil and err then finish(err.status or failure.FAILURE, err, out, ctx) end
    finish(status or failure.OK, nil, out, ctx)
  end
  if failure.is(status) then finish(status.status or failure.FAILURE, status, out, ctx) end
  -- LuaJIT: the interpreter's Ctrl-C stop (passed on when a call into alloy.so ends) fired
  -- inside the handler above, the only way that trivial handler fails.
  if tostring(status):find("interrupted", 1, true) or status == "error in error handling" then
    finish(failure.INTERRUPTED, nil, out)
  end
  if args.verbose then out:err(tostring(status), "\n") end
  finish(failure.FAILURE, failure.new("internal error: " .. tostring(status):match("^[^\n]*"),
    "this is a bug in lua-alloy; run with --verbose for a traceback"), out)
end

-- The command line after the script's name.
local function argv_of()
  local out = {}
  for i, a in ipairs(arg or {}) do out[i] = a end
  return out
end

-- A script: lua/<script>.lua from a checkout, or alloy-<script> installed.
function M.script(name)
  local row = assert(commands.by_name[name], "alloy.main: unknown command " .. tostring(name))
  run(row, argv_of(), arg and arg[0] and arg[0]:match("%.lua$") and "script" or "installed")
end

local function load_cmd(row) return require(row.module) end

-- Prints the `alloy` command's help (stdout) and exits 0.
local function alloy_help(inv)
  io.stdout:write(require("alloy.parser").alloy_parser(inv, load_cmd):get_help(), "\n")
  os.exit(failure.OK)
end

-- `-u nobody`, `--region=eu`, `-vq`: the global options before the command's name, and
-- where the name is.  -> globals (words), index of the name | nil, err
local function leading_globals(argv)
  local globals, i = {}, 1
  local takes = require("alloy.cmdline").GLOBALS
  while argv[i] do
    local a = argv[i]
    local name = a:match("^(%-%-[%w%-]+)=") or a
    local short = a:match("^%-(%a)")
    if a:sub(1, 1) ~= "-" or a == "-" then break end
    if takes[name] ~= nil then
      globals[#globals + 1] = a
      if takes[name] and name == a then
        if argv[i + 1] == nil then return nil, failure.usage(("option '%s' requires an argument"):format(a)) end
        globals[#globals + 1] = argv[i + 1]
        i = i + 1
      end
    elseif short and not a:match("^%-%-") and takes["-" .. short] ~= nil then
      -- a cluster of flags (-vq), the last or only one maybe taking a value: attached (-unobody,
      -- -qunobody) or the next word (-qu nobody)
      globals[#globals + 1] = a
      local j = 2
      while j <= #a and takes["-" .. a:sub(j, j)] == false do j = j + 1 end
      if j <= #a and takes["-" .. a:sub(j, j)] == nil then
        return nil, failure.usage(("unknown option '-%s' before the command's name"):format(a:sub(j, j)),
          "run alloy --help for the commands and their options")
      end
      if j == #a and takes["-" .. a:sub(j, j)] then
        if argv[i + 1] == nil then return nil, failure.usage(("option '%s' requires an argument"):format(a)) end
        globals[#globals + 1] = argv[i + 1]
        i = i + 1
      end
    else -- its name only: what follows "=" may be anything, a secret too
      return nil, failure.usage(("unknown option '%s' before the command's name"):format(name:match("^[^=]*")),
        "run alloy --help for the commands and their options")
    end
    i = i + 1
  end
  return globals, i
end

-- How the alloy command names itself: only its help and its errors need it.
local function inv() return require("alloy.invocation").new("alloy") end

-- The `alloy` command: alloy [global options] <command> [arguments and options].
function M.alloy()
  local argv = argv_of()
  local first = argv[1]
  if first == "-h" or first == "--help" or first == nil then alloy_help(inv()) end
  if first == "--version" then
    io.stdout:write(require("alloy.parser").version_line(inv().base), "\n")
    os.exit(failure.OK)
  end
  if first == "--completion" then -- for `make completions`: every command with its options
    local parser = require "alloy.parser"
    local text, err = parser.completion_script(parser.alloy_parser(inv(), load_cmd, commands.MAIN.installed), argv[2])
    if not text then finish(err.status, err) end
    io.stdout:write(text)
    os.exit(failure.OK)
  end
  local refused, rerr = require("alloy.cmdline").refuse_key_args(argv)
  if not refused then finish(rerr.status, rerr) end
  local globals, at = leading_globals(argv)
  if not globals then finish(failure.USAGE, at) end
  local name, rest = argv[at], { unpack_(argv, at + 1) }
  if name == nil then alloy_help(inv()) end
  if name == "help" then
    if rest[1] == nil then alloy_help(inv()) end
    name, rest = rest[1], { "--help" }
  end
  local row = commands.by_name[name]
  if not row then
    local names = {}
    for i, r in ipairs(commands.LIST) do names[i] = r.name end
    local ids = require "alloy.ids"
    local near, here = ids.closest(names, name), inv()
    local hint = "run " .. here:prefix() .. " --help for the commands"
    if #near > 0 then -- the command line as typed, with the name mended
      local words = { here:prefix() }
      for _, w in ipairs(globals) do words[#words + 1] = ids.quote(w) end
      words[#words + 1] = near[1]
      for _, w in ipairs(rest) do words[#words + 1] = ids.quote(w) end
      hint = "did you mean " .. table.concat(words, " ") .. "?"
    end
    finish(failure.USAGE, failure.usage(("unknown command %q"):format(name), hint))
  end
  for i, g in ipairs(globals) do table.insert(rest, i, g) end
  run(row, rest, "alloy")
end

return M
