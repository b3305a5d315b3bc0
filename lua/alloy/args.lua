-- alloy.args: the scripts' command lines through argparse, loaded only when there are
-- arguments (cli.parser records a script's parser; a bare run needs only its defaults).
--
-- M.parse(recording, args)          -> true, args | false, err  (prints and exits for --help,
--                                      --version and the hidden --completion SHELL)
-- M.version_line(name)              -> "name (lua-alloy 0.1.0, libcurl 7.88.1, Lua 5.4)"
-- M.command_parser(description, script_file) -> the `alloy` command's argparse parser
-- M.completion_script(parser, shell) -> bash/zsh/fish completion text | nil, err
local cli = require "alloy.cli"
local commands = require "alloy.commands"
local failure = require "alloy.failure"

local M = {}

local unpack_ = table.unpack or unpack

-- What every command's exit status means (its help and `alloy --help` say it).
M.EXIT_CODES = "Exit codes: 0 success, 1 API or network failure, 2 usage or configuration error, 130 Ctrl-C."
local calls_of, replay = cli._calls_of, cli._replay

-- The defaults are alloy.so's own (alloy.defaults); "?" only when it is not built.
local function common_epilog()
  local ok, alloy = pcall(require, "alloy")
  local d = ok and type(alloy) == "table" and alloy.defaults or {}
  local function show(k) return d[k] and ("%g"):format(d[k]) or "?" end
  return ([[
Configuration: flags > environment > .env (current directory, or --env-file) > defaults.
Variables: ALLOY_API_KEY (never a flag), ALLOY_USER_ID, ALLOY_BASE_URL, ALLOY_EMBEDDED_URL,
ALLOY_API_VERSION, ALLOY_REGION (eu), CONNECTION_ID, REDIRECT_URI; ALLOY_TIMEOUT (s, default %s),
ALLOY_RETRIES (default %s), ALLOY_BACKOFF (s, default %s), ALLOY_CA_FILE; ALLOY_FIELD_<NAME>
(a connector's secret field, for initiate_oauth).
]] .. M.EXIT_CODES):format(show("timeout"), show("retries"), show("backoff"))
end

-- "name (lua-alloy 0.1.0, libcurl 7.88.1, Lua 5.4)": what --version prints.
function M.version_line(name)
  local ok, alloy = pcall(require, "alloy")
  local lib = "lua-alloy, alloy.so not found"
  if ok and type(alloy) == "table" and alloy.VERSION then
    local cok, curl = pcall(function() return alloy.curl_version end)
    lib = ("lua-alloy %s, libcurl %s"):format(alloy.VERSION, cok and curl or "not loaded")
  end
  local jit = rawget(_G, "jit")
  return ("%s (%s, %s)"):format(name, lib, type(jit) == "table" and jit.version or _VERSION)
end

-- "{cmd}" -> how to run `script` here; "{cmd:list_connections}" -> how to run that one.
local function name_commands(text, script)
  return text and (text:gsub("{cmd:?([%w_]*)}", function(other)
    return commands.invocation(other ~= "" and other or script)
  end))
end

-- argparse 0.7 shows each alias of an option that takes a value on a line of its own,
-- right-aligned ("     -c <id>," over "--connector <id>"); one line keeps every label at
-- the left margin: "-c <id>, --connector <id>".
local function one_line_labels(p)
  for _, o in ipairs(p._options or {}) do
    local labels = o._get_label_lines
    if labels then
      o._get_label_lines = function(self)
        local lines = labels(self)
        for i, l in ipairs(lines) do lines[i] = l:match("^%s*(.-)$") end
        return { table.concat(lines, " ") }
      end
    end
  end
  return p
end

-- The real argparse parser for a recorder (named `as`, when given).
local function materialise(rec, as)
  local argparse = require "argparse"
  local name, description, epilog, script = unpack_(calls_of[rec][1].args, 1, 4) -- _build's arguments
  local p = argparse(as or name, name_commands(description, script),
    (epilog and (name_commands(epilog, script) .. "\n\n") or "") .. common_epilog())
  if p.help_max_width then p:help_max_width(100) end
  if p.help_description_margin then p:help_description_margin(30) end
  return one_line_labels(replay(rec, p, 2))
end

-- `--completion bash|zsh|fish`: the completion script for the command as installed
-- (alloy-list-connections, ...), for `make completions`. Hidden: not a user's option.
local function completion(parser, shell)
  local script = calls_of[parser][1].args[4]
  local row = commands.by_script[script]
  return M.completion_script(materialise(parser, row and row.installed or script), shell)
end

-- The `alloy` command's parser: one subcommand per row of alloy.commands, with its
-- script's own options. Each script file (script_file(row) -> path) is loaded, not run:
-- while collecting, cli.parser records the script's parser and M.main returns at once.
function M.command_parser(description, script_file)
  local p = require("argparse")("alloy", description)
  if p.help_max_width then p:help_max_width(100) end
  if p.help_description_margin then p:help_description_margin(30) end
  p:flag("--version", "Print the versions (lua-alloy, libcurl, Lua) and exit.")
  local saved_arg = arg
  for _, row in ipairs(commands.LIST) do
    local path = row.sub and script_file(row)
    local chunk = path and loadfile(path)
    if chunk then
      cli.collecting = {}
      arg = { [0] = path } -- luacheck: ignore 121 (each script reads the global arg)
      local ok = pcall(chunk)
      local rec = ok and cli.collecting[1]
      cli.collecting, arg = nil, saved_arg -- luacheck: ignore 121
      if rec then replay(rec, p:command(row.sub, row.summary), 2) end
    end
  end
  return p
end

-- `--completion bash|zsh|fish` for a parser; nil, err for another shell.
function M.completion_script(p, shell)
  if shell ~= "bash" and shell ~= "zsh" and shell ~= "fish" then
    return nil, failure.usage(("--completion takes bash, zsh or fish, not %q"):format(tostring(shell)))
  end
  return p["get_" .. shell .. "_complete"](p)
end

-- The key is never a command-line argument: refuse anything that looks like one.
local function refuse_key_args(args)
  for _, a in ipairs(args) do
    local opt = a:match("^%-%-?([%w_%-]+)")
    if opt then
      local norm = opt:lower():gsub("_", "-")
      if norm == "api-key" or norm == "apikey" or norm == "key" or norm == "alloy-api-key" then
        return nil, failure.usage("the API key is not accepted on the command line (it would be visible in ps)",
          "set ALLOY_API_KEY in the environment or in .env instead")
      end
    end
  end
  return true
end


-- -> true, args | false, err
function M.parse(parser, args)
  if args[1] == "--completion" and #args <= 2 then
    local text, cerr = completion(parser, args[2])
    if not text then return false, cerr end
    cli.out(text)
    os.exit(cli.OK)
  end
  local refused, rerr = refuse_key_args(args)
  if not refused then return false, rerr end
  local ok, res = materialise(parser):pparse(args)
  if not ok then return false, failure.usage(res, "run with --help for usage") end
  return true, res
end

return M
