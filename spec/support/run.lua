-- spec/support/run.lua: run a script the way a user does, and capture what it printed.
--
--   local run = require "run"
--   local r = run.script("get_jwt_token", {"--json"}, { env = {...}, cwd = dir, stdin = "..." })
--   r.stdout, r.stderr, r.code
--
-- * The child starts from a clean environment (env -i with PATH and HOME only, plus
--   opts.env), so the developer's own ALLOY_* never leak in.
-- * Variables reach the child through a 0600 temp file that `sh` sources with `set -a`;
--   the API key is never on any command line (ps, /proc/*/cmdline).
-- * opts.tty = true runs the script under a pseudo-terminal (util-linux `script`); its
--   stdout and stderr are then merged into r.stdout (that is what a terminal shows).
-- * run.spawn(...) starts a script in the background with stdout on a pipe, for flows that
--   need to read output while the script runs (the OAuth listener): h:line(), h:wait().
-- * run.terminal(...) runs a script on a pseudo-terminal and lets the spec type into it
--   when it has printed a prompt: t:expect(text), t:type(line), t:wait().
-- * Every run is recorded in run.history ({name, args, stdout, stderr, code, secret}) so
--   spec/secrets_spec.lua can check no output ever contained the API key (run.leaks()), nor
--   any of opts.secrets (other secrets a run was given, e.g. a connector's API key on stdin).
local M = {}

M.history = {}

-- Directory holding the scripts (lua/ of this checkout).
local function root_dir()
  local src = debug.getinfo(1, "S").source:match("^@(.*)$") or ""
  local dir = src:match("^(.*)/spec/support/[^/]*$")
  if not dir or dir == "" then
    local p = io.popen("pwd")
    dir = p:read("*l")
    p:close()
  elseif dir:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    dir = p:read("*l") .. "/" .. dir
    p:close()
  end
  return dir
end

M.root = root_dir()
M.lua = os.getenv("ALLOY_TEST_LUA") or "lua5.4"

-- How a command started by M.script names itself and the others in its hints and help:
-- the interpreter as the command sees it (a wrapper such as fuzz/lua-asan runs lua5.4), then
-- the script's path. M.invoked("alloy_main") .. " connections"
function M.invoked(script)
  local interp = M.lua:match("[^/]+$")
  if interp:match("^lua%-") then interp = "lua5.4" end
  return interp .. " " .. M.root .. "/lua/" .. script .. ".lua"
end

function M.quote(s)
  s = tostring(s)
  if s:match("^[%w_%-%.%/=:,@%+]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a") -- nil when the file went away after the open (/proc of a process that just ended)
  f:close()
  return s or ""
end

-- os.tmpname() creates the file with mode 0600 (mkstemp) on Lua 5.2+.
local function tmpfile(text)
  local p = os.tmpname()
  if text then write_file(p, text) end
  return p
end

local function env_file(env)
  local lines = {}
  local names = {}
  for k in pairs(env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    assert(k:match("^[%a_][%w_]*$"), "bad env var name " .. k)
    lines[#lines + 1] = k .. "=" .. "'" .. tostring(env[k]):gsub("'", "'\\''") .. "'"
  end
  return tmpfile(table.concat(lines, "\n") .. "\n")
end

local function script_path(name)
  if name:find("/", 1, true) then return name end
  return M.root .. "/lua/" .. name .. (name:match("%.lua$") and "" or ".lua")
end

-- The command line (no secrets in it) and the temp files it uses. opts.shell: a shell
-- command line to run instead of a script (name is then only its label).
-- Where a child runs when a spec names no directory: an empty one, never the checkout, whose
-- .env (a developer's real key) must not be read by the scripts under test.
local empty_dir
local function default_cwd()
  if not empty_dir then
    empty_dir = M.tmpdir()
    M._empty_dir_owner = setmetatable({}, { __gc = function() os.execute("rm -rf " .. M.quote(empty_dir)) end })
  end
  return empty_dir
end

local function build(name, args, opts)
  opts = opts or {}
  local files = { env = env_file(opts.env) }
  local exec
  if opts.shell then
    exec = opts.shell
  else
    local argv = { M.quote(opts.lua or M.lua), M.quote(script_path(name)) }
    for _, a in ipairs(args or {}) do argv[#argv + 1] = M.quote(a) end
    exec = "exec " .. table.concat(argv, " ")
  end
  local inner = ("set -a; . %s; set +a; %s"):format(M.quote(files.env), exec)
  local base_env = ("env -i PATH=%s HOME=%s"):format(
    M.quote(os.getenv("PATH") or "/usr/bin:/bin"), M.quote(opts.home or os.getenv("HOME") or "/tmp"))
  local cmd
  if opts.tty then
    -- `script` gives the child a pseudo-terminal on stdin/stdout/stderr
    cmd = ("%s TERM=dumb script -qefc %s /dev/null"):format(base_env, M.quote("sh -c " .. M.quote(inner)))
  else
    cmd = ("%s sh -c %s"):format(base_env, M.quote(inner))
  end
  if opts.stdin then
    files.stdin = tmpfile(opts.stdin)
    cmd = cmd .. " < " .. M.quote(files.stdin)
  elseif not opts.typed then
    cmd = cmd .. " < /dev/null"
  end
  cmd = "cd " .. M.quote(opts.cwd or default_cwd()) .. " && exec " .. cmd -- exec: one pid throughout
  return cmd, files
end

local function exit_code(a, b, c)
  if type(a) == "number" then -- Lua 5.1: raw wait status
    if a > 255 then return math.floor(a / 256) end
    return a
  end
  if b == "signal" then return 128 + (c or 0) end
  return c or (a and 0 or 1)
end

local function cleanup(files)
  for _, p in pairs(files) do os.remove(p) end
end

local function record(name, args, opts, r)
  opts = opts or {}
  M.history[#M.history + 1] = { name = name, args = args, stdout = r.stdout, stderr = r.stderr, code = r.code,
                                secret = opts.env and opts.env.ALLOY_API_KEY or nil, secrets = opts.secrets }
  return r
end

-- Runs (of run.history) whose output contains the API key (or another secret) they were given.
function M.leaks(history)
  local bad = {}
  for _, h in ipairs(history or M.history) do
    local keys = { h.secret }
    for _, s in ipairs(h.secrets or {}) do keys[#keys + 1] = s end
    for _, k in ipairs(keys) do
      if #k >= 8 and ((h.stdout or ""):find(k, 1, true) or (h.stderr or ""):find(k, 1, true)) then
        bad[#bad + 1] = h
        break
      end
    end
  end
  return bad
end

-- The non-empty lines of s, in order.
function M.lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- Run to completion.  -> { stdout, stderr, code, cmd }
-- opts.shell = "line" runs that shell command line (in opts.cwd, with opts.env) instead.
function M.script(name, args, opts)
  opts = opts or {}
  local cmd, files = build(name, args, opts)
  files.out = tmpfile()
  files.err = tmpfile()
  local full = "( " .. cmd .. " ) > " .. M.quote(files.out) .. " 2> " .. M.quote(files.err)
  local code = exit_code(os.execute(full))
  local r = { stdout = read_file(files.out), stderr = read_file(files.err), code = code, cmd = cmd }
  if opts.tty then
    -- the terminal turns "\n" into "\r\n"; give specs plain newlines
    r.stdout = r.stdout:gsub("\r\n", "\n")
  end
  cleanup(files)
  return record(name, args, opts, r)
end

-- Start in the background, stdout on a pipe (stderr to a file).
-- h:line() -> next stdout line (nil at EOF); h:wait() -> { stdout (all of it), stderr, code }
function M.spawn(name, args, opts)
  opts = opts or {}
  local cmd, files = build(name, args, opts)
  files.err = tmpfile()
  files.code = tmpfile()
  -- the exit status goes through a file: Lua 5.1's pipe:close() does not report it
  local p = assert(io.popen("( " .. cmd .. " ) 2> " .. M.quote(files.err) .. "; echo $? > "
    .. M.quote(files.code), "r"))
  local h = { lines = {}, files = files, pipe = p }
  function h:line()
    local l = self.pipe:read("*l")
    if l then self.lines[#self.lines + 1] = l end
    return l
  end
  function h:stderr_so_far()
    return read_file(self.files.err)
  end
  function h:wait()
    if self.result then return self.result end
    local rest = self.pipe:read("*a") or ""
    self.pipe:close()
    local code = tonumber(read_file(self.files.code):match("%d+"))
    local out = table.concat(self.lines, "\n")
    if #self.lines > 0 then out = out .. "\n" end
    local r = { stdout = out .. rest, stderr = read_file(self.files.err), code = code, cmd = cmd }
    cleanup(self.files)
    self.result = record(name, args, opts, r)
    return r
  end
  return h
end

-- A process id is alive: running, not a zombie.
function M.alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= "" and stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- Start a long-running script (a server) in the background as its own process group, stdout
-- and stderr to files. h.pid is the script's own pid (the shell steps exec); h:stdout(),
-- h:stderr(); h:stop() sends SIGINT to the group, as Ctrl-C in a terminal does (KILL after
-- 10 s) and returns { stdout, stderr }. If this process dies first, the group still gets
-- SIGINT: a shell holding a pipe from us sends it when the pipe closes.
function M.background(name, args, opts)
  opts = opts or {}
  local cmd, files = build(name, args, opts)
  files.out, files.err, files.pid = tmpfile(), tmpfile(), tmpfile()
  local job = "exec setsid sh -c " .. M.quote(cmd .. " >" .. M.quote(files.out) .. " 2>" .. M.quote(files.err))
  local guard = assert(io.popen("exec >/dev/null 2>&1; (" .. job .. ") & echo $! >" .. M.quote(files.pid)
    .. "; read _; kill -INT -$(cat " .. M.quote(files.pid) .. ")", "w"))
  local h = { files = files }
  h.pid = M.wait_for(function() return tonumber(read_file(files.pid):match("^%d+")) end, 5)
  assert(h.pid, "run.background: no pid for " .. name)
  function h.stdout() return read_file(files.out) end
  function h.stderr() return read_file(files.err) end
  function h:stop()
    if self.result then return self.result end
    if M.alive(self.pid) then
      os.execute("kill -INT -" .. self.pid .. " 2>/dev/null")
      if not M.wait_for(function() return not M.alive(self.pid) end, 10) then
        os.execute("kill -KILL -" .. self.pid .. " 2>/dev/null")
      end
    end
    guard:close()
    self.result = record(name, args, opts, { stdout = self:stdout(), stderr = self:stderr(), cmd = cmd })
    cleanup(files)
    return self.result
  end
  return h
end

-- On a pseudo-terminal, typed into: what the terminal shows is t:screen() (stdout and
-- stderr merged, "\r\n" as "\n", and whatever the terminal echoed of the typing).
-- t:expect(text) waits until the screen shows text (false after `timeout` s); t:type(s)
-- sends s to the terminal; t:wait() -> { stdout = the screen, stderr = "", code }.
function M.terminal(name, args, opts)
  opts = opts or {}
  local o = { typed = true, tty = true }
  for k, v in pairs(opts) do o[k] = v end
  local cmd, files = build(name, args, o)
  files.out, files.code = tmpfile(), tmpfile()
  -- the exit status goes through a file: Lua 5.1's pipe:close() does not report it
  local p = assert(io.popen("( " .. cmd .. " ) > " .. M.quote(files.out) .. " 2>&1; echo $? > "
    .. M.quote(files.code), "w"))
  local t = {}
  function t.screen() return (read_file(files.out):gsub("\r\n", "\n")) end
  function t.expect(_, text, timeout)
    return M.wait_for(function() return t.screen():find(text, 1, true) ~= nil end, timeout or 10) ~= nil
  end
  function t.type(_, text)
    p:write(text)
    p:flush()
  end
  function t.wait()
    if t.result then return t.result end
    p:close()
    local r = { stdout = t.screen(), stderr = "", code = tonumber(read_file(files.code):match("%d+")), cmd = cmd }
    cleanup(files)
    t.result = record(name, args, opts, r)
    return r
  end
  return t
end

-- Runs Lua source in a fresh interpreter (the one scripts run on, so `make sanitize` and
-- `make valgrind` cover it; a crash cannot take busted down), with this checkout's build of
-- alloy.so for that interpreter first on package.cpath. The source goes through a 0600 temp
-- file, never a command line. -> stdout, stderr, exit code
function M.lua_code(code)
  local abi = M.lua:match("(lua5%.%d)$") or M.lua:match("(luajit)$") or "lua5.4"
  local src = tmpfile(("package.cpath = %q .. package.cpath\n"):format(M.root .. "/build/" .. abi .. "/?.so;")
    .. code)
  local r = M.script(src, {}, {})
  os.remove(src)
  return r.stdout, r.stderr, r.code
end

-- For a describe named "... #scripts", whose specs only run commands in child processes (so
-- `make valgrind`, which leaves those outside memcheck, skips it): its teardown, failing
-- if the block loaded alloy.so in busted's own process after all.
function M.check_scripts_only()
  assert(package.loaded.alloy == nil, "a #scripts block loaded alloy.so in busted's own process: drop"
    .. " the tag, or valgrind never sees that code")
end

-- A fresh temporary directory (for cwd / .env files); removed by M.rmdir.
function M.tmpdir()
  local p = io.popen("mktemp -d")
  local dir = p:read("*l")
  p:close()
  return dir
end

function M.rmdir(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf " .. M.quote(dir)) end
end

function M.write(path, text, mode)
  write_file(path, text)
  if mode then os.execute("chmod " .. mode .. " " .. M.quote(path)) end
end

M.read = read_file

-- The environment a script needs to talk to sandbox `sb` as `user`, with small
-- timeouts and no retries so failure cases stay fast; `extra` adds or overrides
-- (false removes a variable).
function M.env(sb, user, extra)
  local e = {
    ALLOY_API_KEY = sb.api_key, ALLOY_USER_ID = user,
    ALLOY_BASE_URL = sb.url, ALLOY_EMBEDDED_URL = sb.embedded_url,
    ALLOY_TIMEOUT = "5", ALLOY_RETRIES = "0", ALLOY_BACKOFF = "0",
    ALLOY_CA_FILE = sb.ca_file,
  }
  for k, v in pairs(extra or {}) do
    if v == false then e[k] = nil else e[k] = v end
  end
  return e
end

-- `alloy <args>` (lua/alloy_main.lua) as a user runs it, as `uid` of sandbox sb in dir, with
-- run.env's environment plus o.extra; o.stdin, o.secrets as run.script takes them.
function M.alloy(sb, uid, dir, args, o)
  o = o or {}
  return M.script("alloy_main", args, { env = M.env(sb, uid, o.extra), cwd = dir, stdin = o.stdin,
                                        secrets = o.secrets })
end

-- A loopback port nothing listens on (bound and released; good enough for a test).
function M.closed_port()
  local socket = require "socket"
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- Host names that reach 127.0.0.1 but are neither "127.0.0.1" nor "localhost" (what the
-- sandbox's TLS certificate names): the IPv4-mapped IPv6 form, then /etc/hosts aliases.
function M.other_loopback_names()
  local names = { "[::ffff:127.0.0.1]" }
  for line in io.lines("/etc/hosts") do
    local aliases = line:match("^%s*127%.0%.0%.1%s+([^#]+)")
    for name in (aliases or ""):gmatch("%S+") do
      if name ~= "localhost" then names[#names + 1] = name end
    end
  end
  return names
end

-- One HTTP GET the way a browser's first hop goes: no redirect following.
-- -> status (number or nil), headers (lower-case), body, err
function M.get(url, headers)
  local http = require "socket.http"
  local ltn12 = require "ltn12"
  local socket = require "socket"
  local out = {}
  local ok, status, hdrs = http.request{
    url = url, method = "GET", redirect = false, headers = headers,
    sink = ltn12.sink.table(out),
    create = function()
      local s = socket.tcp()
      s:settimeout(10)
      return s
    end,
  }
  if not ok then return nil, nil, nil, status end
  return status, hdrs or {}, table.concat(out)
end

-- The spec plays the browser: open the OAuth URL, follow its 302 to the redirect URI.
-- -> { authorize_status, location, status, body } (status/body from the redirect target)
function M.browse(oauth_url)
  local r = {}
  local st, h = M.get(oauth_url)
  r.authorize_status, r.location = st, h and h.location
  if st == 302 and r.location then
    r.status, r.headers, r.body, r.err = M.get(r.location)
  end
  return r
end

-- Poll fn() every 20 ms until it returns a value or `timeout` seconds pass.
function M.wait_for(fn, timeout)
  local socket = require "socket"
  local deadline = socket.gettime() + (timeout or 5)
  repeat
    local v = fn()
    if v then return v end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return nil
end

-- Decode a JWT payload without alloy.so (base64url), for cross-checking.
function M.jwt_payload(token)
  local cjson = require "cjson"
  local p = token:match("^[^.]+%.([^.]+)%.[^.]*$")
  if not p then return nil end
  p = p:gsub("-", "+"):gsub("_", "/")
  p = p .. string.rep("=", (4 - #p % 4) % 4)
  local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local bits = p:gsub("=", ""):gsub(".", function(c)
    local i = b64:find(c, 1, true) - 1
    local s = ""
    for k = 5, 0, -1 do s = s .. (math.floor(i / 2 ^ k) % 2 == 1 and "1" or "0") end
    return s
  end)
  local out = bits:gsub("%d%d%d%d%d%d%d%d", function(byte)
    local n = 0
    for k = 1, 8 do n = n * 2 + (byte:sub(k, k) == "1" and 1 or 0) end
    return string.char(n)
  end)
  out = out:sub(1, math.floor(#bits / 8))
  return cjson.decode(out)
end

return M
