-- spec/support/readme.lua: run the commands README.md shows, exactly as printed.
--
--   local readme = require "readme"
--   local out, err, code = readme.run("lua5.4 lua/get_jwt_token.lua --json", { env = run.env(sb, uid) })
--   readme.run({ "chmod 600 .env", "make" }, { files = { [".env"] = "..." } })  -- one shell, in order
--   local h = readme.spawn("lua5.4 lua/initiate_oauth.lua ...", opts)          -- run.spawn's handle
--   local s = readme.background("make sandbox", opts)                           -- run.background's
--   readme.command("...")                                                       -- checked, returned
--
-- The README's commands are the lines of its ```sh blocks and the `$ ` lines of its ```text
-- blocks, with a `#` comment after two spaces stripped. Every function above first checks
-- that each command is one of them (so a README edit the specs do not follow fails), and
-- spec/readme_spec.lua fails for every README command no spec passes to them as a string
-- literal: keep the first argument a literal (or a table of literals). A call may be
-- followed by a method call (readme.command(template):gsub(...) fills in a template such as
-- `curl -sL "<oauthUrl>"`), but the literal never by `..`.
--
-- Runs go through spec/support/run.lua (clean environment; opts.env through a 0600 file,
-- never argv). The working directory is opts.cwd, else a fresh directory that links every
-- top-level entry of the checkout but .env* and .git, so relative paths (lua/..., make)
-- work as in a checkout while a developer's .env is never read and nothing is written into
-- the checkout but build/. opts.files = { [name] = text or { text, mode } } are written
-- there first. The commands say `lua5.4`; when the suite runs on another interpreter
-- (ALLOY_TEST_LUA), `lua5.4` on PATH is that interpreter, so every ABI runs them; it is
-- started under the name lua5.4, so the commands a script names (alloy.commands) are the
-- README's on every ABI too.
local run = require "run"

local M = {}

M.path = run.root .. "/README.md"

-- The commands in markdown `text`, in order, each once: { {cmd =, line =}, ... }.
function M.commands(text)
  local out, seen = {}, {}
  local fence, n = nil, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local lang = line:match("^%s*```%s*([%w_-]*)")
    if lang then
      if fence then fence = nil else fence = lang end
    elseif fence == "sh" or (fence == "text" and line:match("^%$ ")) then
      local cmd = fence == "text" and line:sub(3) or line
      cmd = cmd:gsub("  +#.*$", ""):gsub("%s+$", ""):gsub("^%s+", "")
      if cmd ~= "" and not cmd:match("^#") and not seen[cmd] then
        seen[cmd] = true
        out[#out + 1] = { cmd = cmd, line = n }
      end
    end
  end
  return out
end

local shown
local function shown_set()
  if not shown then
    shown = {}
    for _, c in ipairs(M.commands(assert(run.read(M.path)))) do shown[c.cmd] = c.line end
  end
  return shown
end

-- cmd, checked: an error (at the caller) when README.md does not show it.
function M.command(cmd)
  if not shown_set()[cmd] then
    error("README.md shows no command `" .. tostring(cmd) .. "` (```sh line or `$ ` line of a ```text block)", 2)
  end
  return cmd
end

local function check_all(cmds)
  if type(cmds) == "string" then cmds = { cmds } end
  for _, c in ipairs(cmds) do
    if not shown_set()[c] then
      error("README.md shows no command `" .. tostring(c) .. "` (```sh line or `$ ` line of a ```text block)", 3)
    end
  end
  return cmds
end

-- A directory linking the checkout's top-level entries (not .env*, not .git).
function M.checkout()
  os.execute("mkdir -p " .. run.quote(run.root .. "/build")) -- so what make builds stays
  local dir = run.tmpdir()
  local p = io.popen(("cd %s && ls -A"):format(run.quote(run.root)))
  for name in p:lines() do
    if not name:match("^%.env") and name ~= ".git" then
      os.execute(("ln -s %s %s"):format(run.quote(run.root .. "/" .. name), run.quote(dir .. "/" .. name)))
    end
  end
  p:close()
  return dir
end

-- The options run.lua gets, and a function that removes what was made for them.
local function prepare(cmds, opts)
  opts = opts or {}
  local o, made = {}, {}
  for k, v in pairs(opts) do o[k] = v end
  if not o.cwd then
    o.cwd = M.checkout()
    made[#made + 1] = o.cwd
  end
  for name, f in pairs(opts.files or {}) do
    if type(f) == "string" then f = { f } end
    run.write(o.cwd .. "/" .. name, f[1], f[2])
  end
  local env = {}
  for k, v in pairs(opts.env or {}) do env[k] = v end
  -- opts.system_lua: commands that must meet the system's own lua5.4 (LuaRocks finds the Lua
  -- headers from the interpreter's location)
  if run.lua ~= "lua5.4" and not opts.system_lua then
    local bin = run.tmpdir()
    made[#made + 1] = bin
    -- it takes itself off PATH: fuzz/lua-asan and fuzz/lua-valgrind run the real lua5.4 by name
    local path = env.PATH or os.getenv("PATH") or "/usr/bin:/bin"
    run.write(bin .. "/lua5.4", "#!/bin/bash\nexport PATH=" .. run.quote(path) .. "\nexec -a lua5.4 "
      .. run.quote(run.lua) .. ' "$@"\n', "755")
    env.PATH = bin .. ":" .. path
  end
  o.env = env
  o.files, o.system_lua = nil, nil
  o.shell = "set -e\n" .. table.concat(cmds, "\n")
  return o, function()
    for _, d in ipairs(made) do run.rmdir(d) end
  end
end

-- Runs the command(s) in one `sh`, stopping at the first that fails.
-- -> stdout, stderr, exit code
function M.run(cmds, opts)
  cmds = check_all(cmds)
  local o, done = prepare(cmds, opts)
  local r = run.script(table.concat(cmds, "; "), nil, o)
  done()
  return r.stdout, r.stderr, r.code
end

-- run.spawn or run.background on the (checked) command(s); what prepare made is removed when the
-- handle's `finish` method (wait or stop) returns.
local function started(start, finish, cmds, opts)
  local o, done = prepare(cmds, opts)
  local h = start(table.concat(cmds, "; "), nil, o)
  local original = h[finish]
  h[finish] = function(self)
    local r = original(self)
    done()
    return r
  end
  return h
end

-- Starts them with stdout on a pipe: run.spawn's handle (h:line(), h:wait()).
function M.spawn(cmds, opts)
  return started(run.spawn, "wait", check_all(cmds), opts)
end

-- Starts a server command as its own process group: run.background's handle (h.pid,
-- h:stderr(), h:stop() sends SIGINT to the group, as Ctrl-C does).
function M.background(cmds, opts)
  return started(run.background, "stop", check_all(cmds), opts)
end

-- A Lua string literal at s[i] -> its value and the index after it, or nil.
local function literal(s, i)
  local q = s:sub(i, i)
  local j
  if q == '"' or q == "'" then
    j = i + 1
    while j <= #s do
      local c = s:sub(j, j)
      if c == "\\" then j = j + 1 elseif c == q then break end
      j = j + 1
    end
  else
    local eq = s:match("^%[(=*)%[", i)
    if not eq then return nil end
    local _, e = s:find("]" .. eq .. "]", i, true)
    j = e
  end
  if not j or j > #s then return nil end
  local chunk = (loadstring or load)("return " .. s:sub(i, j)) -- luacheck: ignore 113 (5.1)
  return chunk and chunk(), j + 1
end

-- The commands a spec source passes as literals to readme.run/spawn/background/command, and the
-- lines of calls whose first argument is not a literal (the check cannot see those).
-- -> { [cmd] = true }, { line numbers }
function M.referenced(src)
  local found, opaque = {}, {}
  local pos = 1
  while true do
    local s, e = src:find("readme%.%a+%s*%(", pos)
    if not s then break end
    pos = e + 1
    local fn = src:sub(s, e):match("readme%.(%a+)")
    if fn == "run" or fn == "spawn" or fn == "background" or fn == "command" then
      local line = select(2, src:sub(1, s):gsub("\n", "")) + 1
      local i = src:find("%S", e + 1)
      local ok = false
      if src:sub(i, i) == "{" then
        i = i + 1
        while true do
          i = src:find("%S", i)
          local c = src:sub(i, i)
          if c == "}" then ok = true break end
          local v, nxt = literal(src, i)
          if not v or src:find("^%s*%.%.", nxt) then break end
          found[v] = true
          i = src:find("[,;}]", nxt)
          if src:sub(i, i) ~= "}" then i = i + 1 end
        end
      else
        local v, nxt = literal(src, i)
        -- a literal followed by `..` is not the whole command
        if v and not src:find("^%s*%.%.", nxt) then found[v], ok = true, true end
      end
      if not ok then opaque[#opaque + 1] = line end
    end
  end
  return found, opaque
end

return M
