-- alloy.cli: what every script shares.
--
--   * argparse setup with the common options (--env-file, -u/--user, --json,
--     -v/--verbose, -q/--quiet, -h/--help, --version, and the hidden --completion SHELL);
--     help texts name commands through "{cmd}" (this script) and "{cmd:<script>}"
--     placeholders, replaced by alloy.commands.invocation: what the user can type here;
--   * output: stdout carries only the result, narrative goes to stderr;
--   * exit codes: 0 success, 1 API or network failure, 2 usage or configuration error, 130
--     Ctrl-C;
--   * every function returns its result or nil, err (an alloy.failure); only the scripts end
--     the process, through exit_on() and main(): one "error: ..." line and one "hint: ..."
--     line on stderr, then the failure's exit status;
--   * argparse itself, help texts, --version and completions are in alloy.args, loaded only
--     when a command line has arguments;
--   * JSON output through lua-cjson (sorted keys, arrays marked with M.array); tables through
--     M.table: aligned with a header on a terminal, tab-separated rows for programs.
-- lua-cjson is loaded on first use: loading a C module waits while alloy.so loads libcurl in
-- the background (the dynamic loader has one lock), and most runs print no JSON.
local function cjson() return require "cjson" end
local commands = require "alloy.commands"
local config = require "alloy.config"
local failure = require "alloy.failure"

local M = {}

local unpack_ = table.unpack or unpack

M.OK, M.FAILURE, M.USAGE = failure.OK, failure.FAILURE, failure.USAGE

M.quiet = false
M.verbose = false

-- ---------------------------------------------------------------- output

-- The API key, once a script has it: everything printed passes through the module's
-- redaction (any 8-character piece, any case, percent-encoded or JSON-escaped), so a server
-- that echoes the key inside an answer does not get it printed.
M.secret = nil

local function redacted(s)
  s = tostring(s)
  if M.secret then
    local alloy = config.alloy()
    if alloy then s = alloy.redact(s, M.secret) end
  end
  return s
end

function M.out(s)
  io.stdout:write(redacted(s))
  io.stdout:flush()
end

-- Text on stderr (narrative, prompts, errors), redacted like M.out.
function M.err(...)
  io.stderr:write(redacted(table.concat({ ... })))
end

-- Text for the terminal. A server's names and messages are data: the characters a terminal
-- acts on become "?" -- C0 controls but newline and tab (ESC sequences clear the screen or
-- retitle the window), DEL, C1 controls (U+0080-U+009F, as UTF-8) and the bidirectional and
-- line-separator format characters (U+061C, U+200E/F, U+2028-U+202E, U+2066-U+2069: they
-- reorder or break what is shown).
local MARKS = { "\194[\128-\159]", "\216\156", "\226\128[\142\143\168-\174]", "\226\129[\166-\169]" }

-- MARKS after `first`, a pattern for the one-byte controls meant.
local function controls(first) return { first, unpack_(MARKS) } end

local CONTROLS = controls("[%z\1-\8\11-\31\127]")

local function scrub(s, with)
  s = tostring(s)
  for _, pat in ipairs(CONTROLS) do s = s:gsub(pat, with) end
  return s
end

function M.printable(s)
  return scrub(s, "?")
end

-- One printable line: also newlines and tabs become blanks (a server's text must not start
-- a line of its own that looks like ours, e.g. "error: ..." or a table row).
function M.line(s)
  return M.printable((tostring(s):gsub("[\r\n\t]", " ")))
end

-- A prompt, or one of its choices: one line (titles and names in it may come from a server).
M.prompt_text = M.line

-- The arguments of a narrative format, each made one printable line (they carry server
-- text); the format itself is ours and may hold newlines.
local function narrative(fmt, ...)
  local n = select("#", ...)
  if n == 0 then return M.printable(fmt) end
  local args = { ... }
  for i = 1, n do
    if type(args[i]) == "string" then args[i] = M.line(args[i]) end
  end
  return M.printable(fmt:format(unpack_(args, 1, n)))
end

-- Narrative line on stderr (suppressed by --quiet).
function M.say(fmt, ...)
  if M.quiet then return end
  M.err(narrative(fmt, ...), "\n")
end

-- Rows of cells (rows[1] the header) as aligned lines of narrative on stderr (M.columns).
function M.say_table(rows)
  if M.quiet then return end
  M.err(M.columns(rows))
end

-- Always shown (warnings).
function M.warn(fmt, ...)
  M.err("warning: ", narrative(fmt, ...), "\n")
end

-- The one place that ends the process (scripts only): a failure's error and hint lines,
-- then its exit status.
local function exit_with(status, err)
  if status == 130 then -- Ctrl-C: one line, whichever way the interruption arrived
    M.err("\ninterrupted\n")
  elseif err then
    M.err("error: ", M.line(err), "\n")
    if err.hint and err.hint ~= "" then M.err("hint: ", M.line(err.hint), "\n") end
  end
  io.stdout:flush()
  io.stderr:flush()
  os.exit(status)
end

-- For scripts: passes v, ... through, or (v == nil) reports the failure `...` and exits.
--   local cfg = cli.exit_on(cli.config(args))
function M.exit_on(v, ...)
  if v ~= nil then return v, ... end
  local err = ... or failure.new("failed")
  exit_with(err.status or M.FAILURE, err)
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

-- The characters lua-cjson leaves raw that a terminal acts on (JSON read on a terminal is
-- still a server's data; they can only occur inside strings), and, for JSON as a server sent
-- it, the C0 controls lua-cjson accepts raw inside strings.
local JSON_ESCAPES = controls("\127")
local JSON_AS_SENT_ESCAPES = controls("[%z\1-\31\127]")

-- Each character of s that a pattern of `patterns` matches, as a \u escape.
local function json_escaped(s, patterns)
  for _, pat in ipairs(patterns) do
    s = s:gsub(pat, function(c)
      local b1, b2, b3 = c:byte(1, -1)
      local code = #c == 1 and b1 or #c == 2 and (b1 % 32) * 64 + b2 % 64 or ((b1 % 16) * 64 + b2 % 64) * 64 + b3 % 64
      return ("\\u%04x"):format(code)
    end)
  end
  return s
end

-- One JSON document; "/" is not escaped (lua-cjson escapes it, which is legal but noisy).
function M.json(v)
  return json_escaped((encode(v):gsub("\\/", "/")), JSON_ESCAPES)
end

-- A server's JSON document as it was sent, for printing: its numbers exactly as written
-- (decoding makes integers over 2^53 approximations, and 1e400 infinity), on one line and
-- safe for a terminal. Raw CR, LF and tab can only be whitespace between tokens in JSON;
-- other controls (lua-cjson accepts them raw inside strings) and what M.json escapes become
-- \u escapes. Only for text that decoded as JSON.
function M.json_as_sent(text)
  local s = json_escaped((text:gsub("[\r\n\t]", " ")), JSON_AS_SENT_ESCAPES)
  return (s:match("^%s*(.-)%s*$"))
end

-- M.null: cjson.null, JSON's null.
setmetatable(M, { __index = function(_, k) if k == "null" then return cjson().null end end })

-- Whether `file` (io.stdout, ...) is a terminal: lua-term when it is installed, else the
-- shell's `test -t` on the same descriptor (the child inherits it).
function M.isatty(file)
  local ok, term = pcall(require, "term")
  if ok and term.isatty then return term.isatty(file) and true or false end
  local fd = ({ [io.stdin] = 0, [io.stdout] = 1, [io.stderr] = 2 })[file]
  if not fd then return false end
  local r = os.execute("test -t " .. fd)
  return r == true or r == 0
end

-- A cell as one line of text: control characters (tabs and newlines would break the rows,
-- escape sequences would drive the terminal), C1 controls included, become spaces.
local function cell_text(v)
  return scrub((tostring(v):gsub("%c", " ")), " ")
end

-- Rows of cells as aligned text columns (two spaces apart), one line per row; each cell
-- scrubbed of control characters.
function M.columns(rows)
  local clean, width = {}, {}
  for r, row in ipairs(rows) do
    clean[r] = {}
    for i, cell in ipairs(row) do
      cell = cell_text(cell)
      clean[r][i] = cell
      if #cell > (width[i] or 0) then width[i] = #cell end
    end
  end
  local out = {}
  for _, row in ipairs(clean) do
    local cells = {}
    for i, cell in ipairs(row) do
      cells[i] = i < #row and (cell .. string.rep(" ", width[i] - #cell)) or cell
    end
    out[#out + 1] = table.concat(cells, "  ")
  end
  return table.concat(out, "\n") .. "\n"
end

-- A table a command prints on stdout; rows[1] is the header. On a terminal: M.columns.
-- Otherwise, for programs (as `gh` does): tab-separated rows, no header, cells scrubbed.
function M.table(rows)
  if M.isatty(io.stdout) then return M.columns(rows) end
  local out = {}
  for r = 2, #rows do
    local cells = {}
    for i, cell in ipairs(rows[r]) do cells[i] = cell_text(cell) end
    out[#out + 1] = table.concat(cells, "\t") .. "\n"
  end
  return table.concat(out)
end

-- A server's value quoted in a message: its first 40 bytes as one printable line, or what
-- it is instead of a string ("none" for a missing one, never "nil").
function M.excerpt(v)
  if v == nil or v == false or v == M.null then return "none" end
  if type(v) ~= "string" then return "a " .. type(v) end
  return M.line(v:sub(1, 40))
end

-- Whether v has the documented shape of a user or credential id: 24 hex digits (a
-- MongoDB ObjectId). Ids from a server are checked before they reach stdout, .env or a URL.
function M.object_id(v)
  return type(v) == "string" and #v == 24 and v:match("^%x+$") ~= nil
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

local function replay(rec, target, from)
  local calls = calls_of[rec]
  for i = from or 1, #calls do
    local c = calls[i]
    replay(c.child, target[c.method](target, unpack_(c.args, 1, c.n)))
  end
  return target
end

-- For alloy.args: the recordings and how to replay one on an argparse parser or command.
M._calls_of, M._replay = calls_of, replay

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
-- `name` is the script's file name (list_connections.lua): its row in alloy.commands.
function M.parser(name, description, epilog, opts)
  opts = opts or {}
  local script = name:gsub("%.lua$", "")
  -- installed commands are named alloy-get-jwt-token and so on: show what was typed
  name = (arg and type(arg[0]) == "string" and arg[0]:match("[^/\\]+$")) or name
  local row = commands.by_script[script]
  if commands.mode == "alloy" and row and row.sub then name = "alloy " .. row.sub end
  local p = recorder()
  p:_build(name, description, epilog, script)
  p:option("--env-file", "Read variables from this file instead of ./.env."):argname("<path>")
  if opts.user ~= false then
    p:option("-u --user", "Alloy user id (24-hex ObjectId) or username; overrides ALLOY_USER_ID.")
      :argname("<id>")
  end
  p:flag("--json", "Print one JSON document on stdout instead of plain text.")
  p:flag("-v --verbose", "Show the configuration and the HTTP exchange on stderr (key redacted).")
  p:flag("-q --quiet", "No narrative on stderr; errors are still printed.")
  -- prints and exits inside argparse, like --help: no configuration is read
  p:flag("--version", "Print the versions (this command, lua-alloy, libcurl, Lua) and exit.")
    :action(function()
      io.stdout:write(require("alloy.args").version_line(name), "\n")
      io.stdout:flush()
      os.exit(M.OK)
    end)
  if M.collecting then M.collecting[#M.collecting + 1] = p end
  return p
end

-- -> args | nil, err.  --help and --version print and exit inside argparse, as usual;
-- so does --completion SHELL (alone on the command line). With no arguments, the defaults
-- come from the recording: argparse and alloy.args are loaded only when there are some.
function M.parse(parser, args)
  args = args or {}
  local ok, res = true
  if #args == 0 then
    res = defaults(parser)
  else
    ok, res = require("alloy.args").parse(parser, args)
  end
  if not ok then return nil, res end
  -- ALLOY_DEBUG=1 in the environment is --verbose for scripts that cannot change their flags
  local debug_env = os.getenv("ALLOY_DEBUG")
  if debug_env and debug_env ~= "" and debug_env ~= "0" then res.verbose = true end
  M.quiet = res.quiet and true or false
  M.verbose = res.verbose and true or false
  return res
end

-- ---------------------------------------------------------------- config and client

-- Load the configuration, print warnings, describe it with --verbose.  -> cfg | nil, err
function M.config(args, flags)
  flags = flags or {}
  flags.env_file = args.env_file
  if flags.user == nil then flags.user = args.user end
  local cfg, err = config.load{ flags = flags }
  if not cfg then return nil, err end
  for _, w in ipairs(cfg.warnings) do M.warn("%s", w) end
  if M.verbose then
    M.err("configuration (", cfg.env_file and ("env file " .. cfg.env_file) or "no env file", "):\n")
    for _, line in ipairs(config.describe(cfg)) do M.err("  ", line, "\n") end
  end
  return cfg
end

-- cfg when it has the API key (and the user id when `need_user`).  -> cfg | nil, err
function M.require_config(cfg, need_user)
  M.secret = cfg.api_key
  if not cfg.api_key then
    return nil, failure.usage("ALLOY_API_KEY is not set",
      config.where_to_set(cfg, "ALLOY_API_KEY") .. " (it is never taken as a command-line argument)")
  end
  if need_user and not cfg.user_id then
    return nil, failure.usage("no user id: ALLOY_USER_ID is not set and --user was not given",
      config.where_to_set(cfg, "ALLOY_USER_ID", "--user <id>"))
  end
  return cfg
end

-- A client from the configuration.  -> client, alloy | nil, err (misuse errors of alloy.new: status 2)
function M.client(cfg, extra)
  M.secret = cfg.api_key
  local alloy, aerr = config.alloy()
  if not alloy then return nil, aerr end
  local ok, client = pcall(alloy.new, config.client_options(cfg, extra))
  if not ok then
    return nil, failure.usage("cannot create the Alloy client: " .. tostring(client):gsub("^[^:]*:%d+: ", ""),
      "check ALLOY_* settings (run with --verbose to see them)")
  end
  return client, alloy
end

-- ---------------------------------------------------------------- prompts

-- Ask for a value: prompt on stderr when stdin is a terminal, read a line from stdin
-- (piped answers work too), ask again on an empty answer.  -> line | nil, err at end of input
function M.ask(question, what)
  local tty = M.isatty(io.stdin)
  while true do
    local line = M.answer(question, tty)
    if line == nil then
      return nil, failure.usage("no " .. what .. " given (end of input)",
        "answer the prompt, or pass it as a flag (see --help)")
    end
    if line ~= "" then return line end
    if not tty then
      -- piped input: an empty line is not an answer either; keep reading
      M.err(M.prompt_text(question), "(empty answer, reading the next line)\n")
    end
  end
end

-- One answer: the question on stderr when `tty` (one printable line), then a line of stdin,
-- trimmed; nil at end of input.
function M.answer(question, tty)
  if tty then
    M.err(M.prompt_text(question))
    io.stderr:flush()
  end
  local line = io.stdin:read("*l")
  if line == nil then
    if tty then M.err("\n") end
    return nil
  end
  return (line:gsub("\r$", ""):match("^%s*(.-)%s*$"))
end

-- For scripts: run main(args) and exit with what it returns (an exit status, or nil, err),
-- with friendly handling of Ctrl-C and internal errors.
function M.main(fn, args)
  if M.collecting then return end -- loaded by alloy.args.command_parser for its options only
  local ok, res, err = xpcall(function() return fn(args or {}) end, function(e)
    if M.verbose then return debug.traceback(tostring(e), 2) end
    return tostring(e)
  end)
  if ok then
    if res == nil and err then exit_with(err.status or M.FAILURE, err) end
    exit_with(res or M.OK)
  end
  if tostring(res):find("interrupted", 1, true) then exit_with(130) end
  if M.verbose then M.err(tostring(res), "\n") end
  exit_with(M.FAILURE, failure.new("internal error: " .. tostring(res):match("^[^\n]*"),
    "this is a bug in the script; run with --verbose for a traceback"))
end

return M
