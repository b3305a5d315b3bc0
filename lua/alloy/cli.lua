-- alloy.cli: what every script shares.
--
--   * argparse setup with the common options (--env-file, -u/--user, --json,
--     -v/--verbose, -q/--quiet, -h/--help);
--   * output: stdout carries only the result, narrative goes to stderr;
--   * exit codes: 0 success, 1 API or network failure, 2 usage or configuration error;
--   * fail(): one "error: ..." line and one "hint: ..." line on stderr, then exit;
--   * JSON output through lua-cjson (sorted keys, arrays marked with M.array).
-- lua-cjson is loaded on first use: loading a C module waits while alloy.so loads libcurl in
-- the background (the dynamic loader has one lock), and most runs print no JSON.
local function cjson() return require "cjson" end
local config = require "alloy.config"

local M = {}

M.OK, M.FAILURE, M.USAGE = 0, 1, 2

M.quiet = false
M.verbose = false

local COMMON_EPILOG = [[
Configuration: flags > environment > .env (current directory, or --env-file) > defaults.
Variables: ALLOY_API_KEY (never a flag), ALLOY_USER_ID, ALLOY_BASE_URL, ALLOY_EMBEDDED_URL,
ALLOY_API_VERSION, CONNECTION_ID, REDIRECT_URI; ALLOY_TIMEOUT (s, default 30),
ALLOY_RETRIES (default 2), ALLOY_BACKOFF (s, default 0.5), ALLOY_CA_FILE.
Exit codes: 0 success, 1 API or network failure, 2 usage or configuration error.]]

-- ---------------------------------------------------------------- output

function M.out(s)
  io.stdout:write(s)
  io.stdout:flush()
end

-- Narrative line on stderr (suppressed by --quiet).
function M.say(fmt, ...)
  if M.quiet then return end
  local s = select("#", ...) > 0 and fmt:format(...) or fmt
  io.stderr:write(s, "\n")
end

-- Always shown (warnings).
function M.warn(fmt, ...)
  local s = select("#", ...) > 0 and fmt:format(...) or fmt
  io.stderr:write("warning: ", s, "\n")
end

function M.exit(code)
  io.stdout:flush()
  io.stderr:flush()
  os.exit(code)
end

-- One error line, one hint line, exit (default code 1).
function M.fail(msg, hint, code)
  msg = tostring(msg):gsub("[\r\n]+", " ")
  io.stderr:write("error: ", msg, "\n")
  if hint and hint ~= "" then io.stderr:write("hint: ", hint, "\n") end
  M.exit(code or M.FAILURE)
end

-- Failure tuple from alloy.so -> message, hint, exit.
function M.api_fail(msg, code, ctx)
  local hints = require "alloy.hints" -- only failures need it
  M.fail(msg or code or "request failed", hints.for_failure(code, msg, ctx), hints.exit_code(code))
end

-- ---------------------------------------------------------------- JSON

local ARRAY_MT = { __name = "alloy.cli.array" }

-- Mark a table as a JSON array (so an empty one encodes as [] not {}).
function M.array(t)
  return setmetatable(t or {}, ARRAY_MT)
end

local function is_array(t)
  if getmetatable(t) == ARRAY_MT then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then return false end
    count = count + 1
  end
  return count == n
end

local function encode(v)
  if type(v) == "table" and v ~= cjson().null then
    local n = #v
    if is_array(v) then
      local parts = {}
      for i = 1, n do parts[i] = encode(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    local byname = {}
    for k, val in pairs(v) do
      local name = tostring(k)
      keys[#keys + 1] = name
      byname[name] = val
    end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      parts[#parts + 1] = cjson().encode(k) .. ":" .. encode(byname[k])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return cjson().encode(v)
end

-- One JSON document; "/" is not escaped (lua-cjson escapes it, which is legal but noisy).
function M.json(v)
  return (encode(v):gsub("\\/", "/"))
end

-- M.null: cjson.null, JSON's null.
setmetatable(M, { __index = function(_, k) if k == "null" then return cjson().null end end })

-- Rows of cells as aligned text columns (two spaces apart), one line per row.
function M.columns(rows)
  local width = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do
      if #cell > (width[i] or 0) then width[i] = #cell end
    end
  end
  local out = {}
  for _, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      cells[i] = i < #row and (cell .. string.rep(" ", width[i] - #cell)) or cell
    end
    out[#out + 1] = table.concat(cells, "  ")
  end
  return table.concat(out, "\n") .. "\n"
end

-- ---------------------------------------------------------------- time

-- "2025-10-01T12:00:00Z"
function M.iso_time(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

-- "in 59m", "in 1h 5m", "in 42s", "5m ago"
function M.relative(seconds)
  local s = math.floor(math.abs(seconds) + 0.5)
  local text
  if s < 60 then
    text = s .. "s"
  elseif s < 3600 then
    text = math.floor(s / 60) .. "m"
  elseif s < 86400 then
    local h = math.floor(s / 3600)
    local m = math.floor((s - h * 3600) / 60)
    text = h .. "h" .. (m > 0 and (" " .. m .. "m") or "")
  else
    text = math.floor(s / 86400) .. "d"
  end
  if seconds < 0 then return text .. " ago" end
  return "in " .. text
end

-- ---------------------------------------------------------------- arguments

-- A parser with the options every script has.  `opts.user = false` drops --user.
-- Loading argparse and building a parser is a seventh of a one-shot run, and a bare
-- invocation needs only the defaults. So M.parser returns a recorder: every method call on
-- it (and on what those calls return) is remembered, and replayed on a real argparse
-- parser only when there are arguments to parse or help to show.
local calls_of = setmetatable({}, { __mode = "k" })

local function recorder()
  local calls = {}
  local rec = setmetatable({}, { __index = function(_, method)
    return function(_, ...)
      local child = recorder()
      calls[#calls + 1] = { method = method, n = select("#", ...), args = { ... }, child = child }
      return child
    end
  end })
  calls_of[rec] = calls
  return rec
end

local unpack_ = table.unpack or unpack

local function replay(rec, target, from)
  local calls = calls_of[rec]
  for i = from or 1, #calls do
    local c = calls[i]
    replay(c.child, target[c.method](target, unpack_(c.args, 1, c.n)))
  end
  return target
end

-- What argparse returns for an empty command line: options' defaults, converted.
local function defaults(parser)
  local out = {}
  for _, c in ipairs(calls_of[parser]) do
    local default = c.args[3]
    if c.method == "option" and default ~= nil then
      local names = c.args[1]
      local key = (names:match("%-%-([%w%-_]+)") or names:match("%-([%w_])")):gsub("%-", "_")
      -- option(...):argname(...):convert(fn) chains: follow the chain for convert
      local rec = c.child
      while rec do
        local cc = calls_of[rec][1]
        if cc and cc.method == "convert" then default = cc.args[1](default) end
        rec = cc and cc.child
      end
      out[key] = default
    end
  end
  return out
end

-- A parser with the options every script has.  `opts.user = false` drops --user.
function M.parser(name, description, epilog, opts)
  opts = opts or {}
  -- installed commands are named alloy-get-jwt-token and so on: show what was typed
  name = (arg and type(arg[0]) == "string" and arg[0]:match("[^/\\]+$")) or name
  local p = recorder()
  p:_build(name, description, (epilog and (epilog .. "\n\n") or "") .. COMMON_EPILOG)
  p:option("--env-file", "Read variables from this file instead of ./.env."):argname("<path>")
  if opts.user ~= false then
    p:option("-u --user", "Alloy user id (24-hex ObjectId) or username; overrides ALLOY_USER_ID.")
      :argname("<id>")
  end
  p:flag("--json", "Print one JSON document on stdout instead of plain text.")
  p:flag("-v --verbose", "Show the configuration and the HTTP exchange on stderr (key redacted).")
  p:flag("-q --quiet", "No narrative on stderr; errors are still printed.")
  return p
end

-- The real argparse parser for a recorder.
local function materialise(rec)
  local argparse = require "argparse"
  local first = calls_of[rec][1] -- _build: the constructor's arguments
  local p = argparse(unpack_(first.args, 1, first.n))
  if p.help_max_width then p:help_max_width(100) end
  if p.help_description_margin then p:help_description_margin(30) end
  return replay(rec, p, 2)
end

-- The key is never a command-line argument: refuse anything that looks like one.
local function refuse_key_args(args)
  for _, a in ipairs(args) do
    local opt = a:match("^%-%-?([%w_%-]+)")
    if opt then
      local norm = opt:lower():gsub("_", "-")
      if norm == "api-key" or norm == "apikey" or norm == "key" or norm == "alloy-api-key" then
        M.fail("the API key is not accepted on the command line (it would be visible in ps)",
          "set ALLOY_API_KEY in the environment or in .env instead", M.USAGE)
      end
    end
  end
end

function M.parse(parser, args)
  args = args or {}
  refuse_key_args(args)
  local ok, res = true
  if #args == 0 then
    res = defaults(parser)
  else
    ok, res = materialise(parser):pparse(args)
  end
  if not ok then
    M.fail(res, "run with --help for usage", M.USAGE)
  end
  -- ALLOY_DEBUG=1 in the environment is --verbose for scripts that cannot change their flags
  local debug_env = os.getenv("ALLOY_DEBUG")
  if debug_env and debug_env ~= "" and debug_env ~= "0" then res.verbose = true end
  M.quiet = res.quiet and true or false
  M.verbose = res.verbose and true or false
  return res
end

-- ---------------------------------------------------------------- config and client

-- Load the configuration (exit 2 on error), print warnings, describe it with --verbose.
function M.config(args, flags)
  flags = flags or {}
  flags.env_file = args.env_file
  if flags.user == nil then flags.user = args.user end
  local cfg, err, hint = config.load{ flags = flags }
  if not cfg then M.fail(err, hint, M.USAGE) end
  for _, w in ipairs(cfg.warnings) do M.warn("%s", w) end
  if M.verbose then
    io.stderr:write("configuration (", cfg.env_file and ("env file " .. cfg.env_file) or "no env file", "):\n")
    for _, line in ipairs(config.describe(cfg)) do io.stderr:write("  ", line, "\n") end
  end
  return cfg
end

-- Exit 2 unless cfg has the API key (and the user id when `need_user`).
function M.require_config(cfg, need_user)
  if not cfg.api_key then
    M.fail("ALLOY_API_KEY is not set",
      config.where_to_set(cfg, "ALLOY_API_KEY") .. " (it is never taken as a command-line argument)",
      M.USAGE)
  end
  if need_user and not cfg.user_id then
    M.fail("no user id: ALLOY_USER_ID is not set and --user was not given",
      config.where_to_set(cfg, "ALLOY_USER_ID", "--user <id>"), M.USAGE)
  end
end

-- require "alloy" with a helpful failure when the module has not been built.
function M.alloy()
  local ok, mod = pcall(require, "alloy")
  if not ok or type(mod) ~= "table" or not mod.new then
    local detail = tostring(mod):match("^[^\n]*")
    M.fail("cannot load alloy.so: " .. detail,
      "run `make` in the lua-alloy checkout (it builds build/<lua>/alloy.so), or install it with luarocks",
      M.USAGE)
  end
  return mod
end

-- A client from the configuration; misuse errors from alloy.new exit 2.
function M.client(cfg, extra)
  local alloy = M.alloy()
  local ok, client = pcall(alloy.new, config.client_options(cfg, extra))
  if not ok then
    M.fail("cannot create the Alloy client: " .. tostring(client):gsub("^[^:]*:%d+: ", ""),
      "check ALLOY_* settings (run with --verbose to see them)", M.USAGE)
  end
  return client, alloy
end

-- ---------------------------------------------------------------- prompts

-- Ask for a value: prompt on stderr when stdin is a terminal, read a line from stdin
-- (piped answers work too), ask again on an empty answer, exit 2 on end of input.
function M.ask(question, what)
  local tty = M.stdin_is_tty()
  while true do
    if tty then
      io.stderr:write(question)
      io.stderr:flush()
    end
    local line = io.stdin:read("*l")
    if line == nil then
      if tty then io.stderr:write("\n") end
      M.fail("no " .. what .. " given (end of input)",
        "answer the prompt, or pass it as a flag (see --help)", M.USAGE)
    end
    line = line:gsub("\r$", ""):match("^%s*(.-)%s*$")
    if line ~= "" then return line end
    if not tty then
      -- piped input: an empty line is not an answer either; keep reading
      io.stderr:write(question, "(empty answer, reading the next line)\n")
    end
  end
end

function M.stdin_is_tty()
  local ok, term = pcall(require, "term")
  if ok and term.isatty then
    local r = term.isatty(io.stdin)
    return r and true or false
  end
  return false
end

-- Run main(args) with friendly handling of Ctrl-C and internal errors.
function M.main(fn, args)
  local ok, err = xpcall(function() return fn(args or {}) end, function(e)
    if M.verbose then return debug.traceback(tostring(e), 2) end
    return tostring(e)
  end)
  if ok then M.exit(err or M.OK) end
  if tostring(err):find("interrupted", 1, true) then
    io.stderr:write("\ninterrupted\n")
    M.exit(130)
  end
  if M.verbose then io.stderr:write(tostring(err), "\n") end
  M.fail("internal error: " .. tostring(err):match("^[^\n]*"),
    "this is a bug in the script; run with --verbose for a traceback", M.FAILURE)
end

return M
