-- alloy.cmdline: a command's declaration (alloy.cmd.<name>) as a command line, through
-- argparse. argparse is loaded only when there is something to parse: a bare command takes
-- its defaults from the declaration (start-up time of a plain `get_jwt_token.lua`).
--
-- A declaration:
--   summary      one line (alloy --help lists it)
--   description  what --help says first; "{cmd:NAME}" names another command as the user can
--                type it here
--   user         true: the command acts for a user (-u/--user, ALLOY_USER_ID)
--   arguments    { { "connector", "help", optional = true }, ... }
--   options      { { "-s --search", "help" } (a flag), { "--field", "<name=value>", "help",
--                many = true, default = "x" } (an option: the second string is its value's name);
--                same_as = "connector": the option gives the argument of that name another way
--                (both given: they must agree) }
--   examples     { { "--json", "what it does" }, ... } (each after the command's own name)
--   notes        more text for --help, before the examples
--
-- M.GLOBALS         the options every command has that may also come before the command name
--                   in `alloy [options] <command>`: name -> true when it takes a value
-- M.parse(cmd, argv, inv) -> args | nil, err (status 2). --help, --version and the hidden
--                   --completion SHELL print and exit, as usual.
-- M.parser(cmd, inv, row) -> the argparse parser (help, completions)
-- M.alloy_parser(inv, load) -> the `alloy` command's parser, every command under it
-- M.version_line(name), M.EXIT_CODES
local config = require "alloy.config"
local failure = require "alloy.failure"

local M = {}

M.EXIT_CODES = "Exit codes: 0 success, 1 API or network failure, 2 usage or configuration error, 130 Ctrl-C."

-- The options of every command, in --help order. `user` ones only where cmd.user.
local COMMON = {
  { "--env-file", "<path>", "Read variables from this file instead of ./.env." },
  { "-u --user", "<id>", "Alloy user id (24-hex ObjectId) or username; overrides ALLOY_USER_ID.", user = true },
  { "--region", "<region>", "us or eu; overrides ALLOY_REGION." },
  { "--json", "Print one JSON document on stdout instead of plain text." },
  { "-v --verbose", "Show the configuration and the HTTP exchange on stderr (key redacted)." },
  { "-q --quiet", "No narrative on stderr; errors are still printed." },
}

M.GLOBALS = {}
for _, o in ipairs(COMMON) do
  for name in o[1]:gmatch("%S+") do M.GLOBALS[name] = o[3] ~= nil end
end

-- "--auth-config --auth-config-id" -> "auth_config" (argparse's key: the first long name).
local function key_of(names)
  return (names:match("%-%-([%w%-_]+)") or names:match("%-([%w_])")):gsub("%-", "_")
end

local function each_option(cmd, fn)
  for _, o in ipairs(COMMON) do
    if not o.user or cmd.user then fn(o) end
  end
  for _, o in ipairs(cmd.options or {}) do fn(o) end
end

-- Whether cmd takes the option `name` ("--user").
function M.has_option(cmd, name)
  local found = false
  each_option(cmd, function(o)
    for n in o[1]:gmatch("%S+") do found = found or n == name end
  end)
  return found
end

-- What argparse would return for an empty command line.
local function defaults(cmd)
  local out = {}
  each_option(cmd, function(o)
    if o.many then out[key_of(o[1])] = {} elseif o.default ~= nil then out[key_of(o[1])] = o.default end
  end)
  return out
end

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

-- "{cmd:connect}" -> how to run that command here.
local function name_commands(text, inv)
  return text and (text:gsub("{cmd:([%w_%-]+)}", function(other) return inv:command(other) end))
end

-- "Examples:" and one line each: the command, its arguments, a comment aligned after them (or
-- on the next line, when that would be too wide).
local function examples_text(prefix, list)
  local lines, width, shown = { "Examples:" }, 0, {}
  for i, e in ipairs(list) do
    shown[i] = prefix .. (e[1] ~= "" and (" " .. e[1]) or "")
    if e[2] and #shown[i] > width then width = #shown[i] end
  end
  for i, e in ipairs(list) do
    if not e[2] then
      lines[#lines + 1] = "  " .. shown[i]
    elseif width + #e[2] <= 90 then
      lines[#lines + 1] = "  " .. shown[i] .. string.rep(" ", width - #shown[i]) .. "   " .. e[2]
    else
      lines[#lines + 1] = "  " .. shown[i]
      lines[#lines + 1] = "      " .. e[2]
    end
  end
  return table.concat(lines, "\n")
end

local function epilog(cmd, inv, row)
  local parts = {}
  if cmd.notes then parts[#parts + 1] = name_commands(cmd.notes, inv) end
  if cmd.examples then parts[#parts + 1] = examples_text(inv:command(row.name), cmd.examples) end
  parts[#parts + 1] = "Configuration: flags > environment > .env (current directory, or --env-file) > defaults.\n"
    .. config.variables_text(96) .. "\n" .. M.EXIT_CODES
  return table.concat(parts, "\n\n")
end

-- argparse 0.7 shows each alias of an option that takes a value on a line of its own,
-- right-aligned; one line keeps every label at the left margin: "-c <id>, --connector <id>".
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

local function layout(p)
  if p.help_max_width then p:help_max_width(100) end
  if p.help_description_margin then p:help_description_margin(30) end
  return p
end

-- Adds cmd's arguments and options to p (a parser or an `alloy` subcommand).
local function declare(p, cmd, version_name)
  for _, a in ipairs(cmd.arguments or {}) do
    local arg = p:argument(a[1], a[2])
    if a.optional then arg:args("?") end
  end
  each_option(cmd, function(o)
    local opt
    if o[3] then
      opt = p:option(o[1], o[3]):argname(o[2])
      if o.same_as then opt:target(o.same_as .. "_option") end
      if o.many then opt:count("*") end
      if o.default ~= nil then opt:default(o.default) end
    else
      opt = p:flag(o[1], o[2])
    end
    return opt
  end)
  -- prints and exits inside argparse, like --help: no configuration is read
  p:flag("--version", "Print the versions (this command, lua-alloy, libcurl, Lua) and exit."):action(function()
    io.stdout:write(M.version_line(version_name), "\n")
    io.stdout:flush()
    os.exit(failure.OK)
  end)
  return one_line_labels(p)
end

function M.parser(cmd, inv, row, name)
  local argparse = require "argparse"
  name = name or inv:usage_name(row)
  local p = layout(argparse(name, name_commands(cmd.description or cmd.summary, inv), epilog(cmd, inv, row)))
  return declare(p, cmd, name)
end

-- The `alloy` command's examples: a connection's life, from a user to an executed action.
local ALLOY_EXAMPLES = {
  { "token", "the JWT of ALLOY_USER_ID" },
  { "--env-file .env.sandbox connections", "options go before or after the command" },
  { "connectors --search notion" },
  { "connect notion --save", "connect it, save CONNECTION_ID to .env" },
  { "actions notion" },
  { "run notion search --body '{\"query\":\"roadmap\"}'" },
}

function M.alloy_parser(inv, load, name)
  local commands = require "alloy.commands"
  local p = layout(require("argparse")(name or inv:usage_name(nil), "Alloy from the shell: every lua-alloy command as a"
    .. " subcommand. Options such as --env-file, --user and --region work before or after the command's name."))
  p:epilog(examples_text(inv:prefix(), ALLOY_EXAMPLES) .. "\n\n"
    .. ("`%s help <command>` shows a command's options and examples.\n\n"):format(inv:prefix())
    .. "Configuration: flags > environment > .env (current directory, or --env-file) > defaults.\n"
    .. config.variables_text(96) .. "\n" .. M.EXIT_CODES)
  p:flag("--version", "Print the versions (lua-alloy, libcurl, Lua) and exit.")
  for _, row in ipairs(commands.LIST) do
    local cmd = load(row)
    local sub = layout(p:command(row.name, name_commands(cmd.description or cmd.summary, inv)))
    sub:summary(cmd.summary)
    sub:epilog(epilog(cmd, inv, row))
    declare(sub, cmd, inv:usage_name(row))
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
local function refuse_key_args(argv)
  for _, a in ipairs(argv) do
    local opt = a:match("^%-%-?([%w_%-]+)")
    local norm = opt and opt:lower():gsub("_", "-")
    if norm == "api-key" or norm == "apikey" or norm == "key" or norm == "alloy-api-key" then
      return nil, failure.usage("the API key is not accepted on the command line (it would be visible in ps)",
        "set ALLOY_API_KEY in the environment or in .env instead")
    end
  end
  return true
end

function M.parse(cmd, argv, inv, row)
  local ok, err = refuse_key_args(argv)
  if not ok then return nil, err end
  if #argv == 0 then return defaults(cmd) end
  if argv[1] == "--completion" and #argv <= 2 then -- for `make completions`: named as installed
    local text, cerr = M.completion_script(M.parser(cmd, inv, row, row.installed), argv[2])
    if not text then return nil, cerr end
    io.stdout:write(text)
    os.exit(failure.OK)
  end
  local parsed, res = M.parser(cmd, inv, row):pparse(argv)
  if parsed then return M.merge_same(cmd, res) end
  -- a global option (before the command's name, or after) that this command does not take
  local opt = tostring(res):match("^unknown option '(%-[^']*)'$")
  if opt and M.GLOBALS[opt] ~= nil then
    return nil, failure.usage(("%s does not take %s (it acts for no user)"):format(inv:usage_name(row), opt),
      "leave it out")
  end
  return nil, failure.usage(res, "run with --help for usage")
end

-- An option that gives an argument another way (same_as): one value in args[argument].
function M.merge_same(cmd, args)
  for _, o in ipairs(cmd.options or {}) do
    local key = o.same_as
    if key then
      local given = args[key .. "_option"]
      args[key .. "_option"] = nil
      if given and args[key] and given ~= args[key] then
        return nil, failure.usage(("two %ss given: %q and %q"):format(key, args[key], given), "give one")
      end
      args[key] = args[key] or given
    end
  end
  return args
end

return M
