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
-- M.COMMON          the options every command has (those with user = true: where cmd.user)
-- M.GLOBALS         those that may also come before the command name in `alloy [options]
--                   <command>`: name -> true when it takes a value
-- M.parse(cmd, argv, mode, row) -> args | nil, err (status 2). --help, --version and the
--                   hidden --completion SHELL print and exit, as usual (alloy.parser builds the
--                   argparse parser, only when argv is not empty; mode: how the command was
--                   run, for its name in help, as alloy.invocation takes it).
-- M.each_option(cmd, fn), M.has_option(cmd, "--user"), M.EXIT_CODES
local failure = require "alloy.failure"

local M = {}

M.EXIT_CODES = "Exit codes: 0 success, 1 API or network failure, 2 usage or configuration error, 130 Ctrl-C."

-- The options of every command, in --help order. `user` ones only where cmd.user.
M.COMMON = {
  { "--env-file", "<path>", "Read variables from this file instead of ./.env." },
  { "-u --user", "<id>", "Alloy user id (24-hex ObjectId) or username; overrides ALLOY_USER_ID.", user = true },
  { "--region", "<region>", "us or eu; overrides ALLOY_REGION." },
  { "--json", "Print one JSON document on stdout instead of plain text." },
  { "-v --verbose", "Show the configuration and the HTTP exchange on stderr (key redacted)." },
  { "-q --quiet", "No narrative on stderr; errors are still printed." },
}

local COMMON = M.COMMON

M.GLOBALS = {}
for _, o in ipairs(COMMON) do
  for name in o[1]:gmatch("%S+") do M.GLOBALS[name] = o[3] ~= nil end
end

-- "--auth-config --auth-config-id" -> "auth_config" (argparse's key: the first long name).
local function key_of(names)
  return (names:match("%-%-([%w%-_]+)") or names:match("%-([%w_])")):gsub("%-", "_")
end

function M.each_option(cmd, fn)
  for _, o in ipairs(COMMON) do
    if not o.user or cmd.user then fn(o) end
  end
  for _, o in ipairs(cmd.options or {}) do fn(o) end
end

-- Whether cmd takes the option `name` ("--user").
function M.has_option(cmd, name)
  local found = false
  M.each_option(cmd, function(o)
    for n in o[1]:gmatch("%S+") do found = found or n == name end
  end)
  return found
end

-- What argparse would return for an empty command line.
local function defaults(cmd)
  local out = {}
  M.each_option(cmd, function(o)
    if o.many then out[key_of(o[1])] = {} elseif o.default ~= nil then out[key_of(o[1])] = o.default end
  end)
  return out
end

-- The key is never a command-line argument: refuse anything that looks like one (and never
-- repeat what was given).  -> true | nil, err
function M.refuse_key_args(argv)
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

function M.parse(cmd, argv, mode, row)
  local ok, err = M.refuse_key_args(argv)
  if not ok then return nil, err end
  if #argv == 0 then return defaults(cmd) end
  local parser = require "alloy.parser"
  local inv = require("alloy.invocation").new(mode, row)
  if argv[1] == "--completion" and #argv <= 2 then -- for `make completions`: named as installed
    local text, cerr = parser.completion_script(parser.new(cmd, inv, row, row.installed), argv[2])
    if not text then return nil, cerr end
    io.stdout:write(text)
    os.exit(failure.OK)
  end
  local parsed, res = parser.new(cmd, inv, row):pparse(argv)
  if parsed then return M.merge_same(cmd, res) end
  -- a global option (before the command's name, or after) that this command does not take
  local opt = tostring(res):match("^unknown option '(%-[^']*)'")
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
