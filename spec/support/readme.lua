-- spec/support/readme.lua: run the commands the documentation shows, exactly as printed.
-- The documentation is README.md and docs/*.md (readme.documents()).
--
--   local readme = require "readme"
--   local out, err, code = readme.run("lua5.4 lua/get_jwt_token.lua --json", { env = run.env(sb, uid) })
--   readme.run({ "chmod 600 .env", "make" }, { files = { [".env"] = "..." } })  -- one shell, in order
--   local h = readme.spawn("lua5.4 lua/initiate_oauth.lua ...", opts)          -- run.spawn's handle
--   local s = readme.background("make sandbox", opts)                           -- run.background's
--   readme.command("...")                                                       -- checked, returned
--   readme.section("docs/commands.md", "### From zero to a first executed action") -- its text
--
-- A document's commands are the lines of its ```sh blocks and the `$ ` lines of its ```text
-- blocks, with a `#` comment after two spaces stripped. Every function above first checks
-- that each command is shown by one of the documents (so a documentation edit the specs do
-- not follow fails), and spec/readme_spec.lua fails for every command shown that no spec
-- passes to them as a string literal: keep the first argument a literal (or a table of
-- literals). A call may be followed by a method call (readme.command(template):gsub(...) fills
-- in a template such as `curl -sL "<oauthUrl>"`), but the literal never by `..`.
--
-- Runs go through spec/support/run.lua (clean environment; opts.env through a 0600 file,
-- never argv). The working directory is opts.cwd, else a fresh directory that links every
-- top-level entry of the checkout but .env* and .git, so relative paths (lua/..., make)
-- work as in a checkout while a developer's .env is never read and nothing is written into
-- the checkout but build/. opts.files = { [name] = text or { text, mode } } are written
-- there first. The commands say `lua5.4`; when the suite runs on another interpreter
-- (ALLOY_TEST_LUA), `lua5.4` on PATH is that interpreter, so every ABI runs them; it is
-- started under the name lua5.4, so the commands a script names (alloy.commands) are the
-- documentation's on every ABI too.
local run = require "run"

local M = {}

M.path = run.root .. "/README.md"

-- The documents, as paths in the checkout: README.md, then docs/*.md.
function M.documents()
  local out = { "README.md" }
  local p = io.popen("cd " .. run.quote(run.root) .. " && ls docs/*.md 2>/dev/null")
  for f in p:lines() do out[#out + 1] = f end
  p:close()
  return out
end

-- The text of document `doc` ("README.md", "docs/commands.md").
function M.read(doc)
  local f = assert(io.open(run.root .. "/" .. doc, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

-- The lines of markdown `text`, each with the code block it is in ("sh", "text", "plain" for
-- a block without a language; nil outside, and on a fence's own line).
-- -> { {text =, fence =}, ... }
local function lines_of(text)
  local out, fence = {}, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local lang = line:match("^%s*```%s*([%w_-]*)")
    if lang then
      fence = not fence and (lang ~= "" and lang or "plain") or nil
      out[#out + 1] = { text = line }
    else
      out[#out + 1] = { text = line, fence = fence }
    end
  end
  return out
end

-- The commands in markdown `text`, in order, each once: { {cmd =, line =}, ... }.
function M.commands(text)
  local out, seen = {}, {}
  for n, l in ipairs(lines_of(text)) do
    if l.fence == "sh" or (l.fence == "text" and l.text:match("^%$ ")) then
      local cmd = l.fence == "text" and l.text:sub(3) or l.text
      cmd = cmd:gsub("  +#.*$", ""):gsub("%s+$", ""):gsub("^%s+", "")
      if cmd ~= "" and not cmd:match("^#") and not seen[cmd] then
        seen[cmd] = true
        out[#out + 1] = { cmd = cmd, line = n }
      end
    end
  end
  return out
end

-- The text under heading `title` ("### Options") of doc, up to the next heading of its level
-- or a higher one (outside code blocks).
function M.section(doc, title)
  local level, out, inside = #title:match("^(#+) "), nil, false
  for _, l in ipairs(lines_of(M.read(doc))) do
    local h = not l.fence and l.text:match("^(#+) ")
    if inside and h and #h <= level then break end
    if inside then out[#out + 1] = l.text end
    if l.text == title and not l.fence then inside, out = true, {} end
  end
  assert(out, doc .. " has no heading `" .. title .. "`")
  return table.concat(out, "\n")
end

local shown
-- Every command the documents show -> { [cmd] = "doc:line" } (its first place).
function M.shown()
  if not shown then
    shown = {}
    for _, doc in ipairs(M.documents()) do
      for _, c in ipairs(M.commands(M.read(doc))) do
        shown[c.cmd] = shown[c.cmd] or (doc .. ":" .. c.line)
      end
    end
  end
  return shown
end

local NOT_SHOWN = "README.md and docs/*.md show no command `%s` (```sh line or `$ ` line of a ```text block)"

-- cmd, checked: an error (at the caller) when no document shows it.
function M.command(cmd)
  if not M.shown()[cmd] then error(NOT_SHOWN:format(tostring(cmd)), 2) end
  return cmd
end

local function check_all(cmds)
  if type(cmds) == "string" then cmds = { cmds } end
  for _, c in ipairs(cmds) do
    if not M.shown()[c] then error(NOT_SHOWN:format(tostring(c)), 3) end
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
