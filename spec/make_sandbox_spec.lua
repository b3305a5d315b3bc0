-- `make sandbox`, the documentation's command, in the background, used the way its printed
-- instructions (docs/commands.md's commands) say: every printed command is run as printed, in
-- the same directory, with the OAuth step done by the printed `curl -sL "<oauthUrl>"`; then
-- the documentation's other commands against it: docs/commands.md's walk-through and the
-- README's tour with the installed alloy command, each compared with the output they show.
-- Then Ctrl-C (SIGINT to the process group, as a terminal sends it) or SIGTERM, and nothing is
-- left behind.
--
-- The sandbox runs in readme.checkout()'s directory of links to this checkout, so .env.sandbox
-- is never written into the checkout. On another ABI, make is given LUA (the sandbox and the
-- commands it prints then run on it); an interpreter wrapper given by path (fuzz/lua-asan) is
-- reached through readme's lua5.4 on PATH instead, as make builds only named ABIs.
local run = require "run"
local readme = require "readme"
local alloy = require "alloy"

local LUA = run.lua

-- -> stdout, exit code (through the output: Lua 5.1's pipe:close() does not report it)
local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. "); echo \"<exit $?>\""))
  local out = p:read("*a")
  p:close()
  local text, code = out:match("^(.*)<exit (%d+)>\n$")
  return text, tonumber(code)
end

local function exists(path) return (select(2, sh("test -e " .. run.quote(path)))) == 0 end

local alive = run.alive

-- A clean environment (PATH and HOME only) in dir, like a new terminal there.
local function in_dir(dir, cmd)
  return "cd " .. run.quote(dir) .. " && env -i PATH=" .. run.quote(os.getenv("PATH")) .. " HOME="
    .. run.quote(dir) .. " sh -c " .. run.quote(cmd)
end

-- Starts the sandbox the way the target does, in a directory of links to the checkout; waits
-- for its instructions. -> handle (h.proc: run.background's)
-- prepare(dir), when given, runs before the sandbox starts.
local function start(prepare)
  local dir = readme.checkout()
  if prepare then prepare(dir) end
  -- a user's own .env with a real key: the sandbox must not touch it
  run.write(dir .. "/.env", "ALLOY_API_KEY=users-real-key-0123456789\n", "600")
  local env = {}
  if LUA ~= "lua5.4" and not LUA:find("/", 1, true) then env.LUA = LUA end
  local proc = readme.background("make sandbox", { cwd = dir, home = dir, env = env })
  local h = { dir = dir, proc = proc }
  function h.stderr() return proc:stderr() end
  h.ready = run.wait_for(function()
    return h.stderr():find(") stops the sandbox", 1, true) or not alive(proc.pid)
  end, 20)
  local err = h.stderr()
  h.nginx = tonumber(err:match("nginx pid (%d+)"))
  h.pid = tonumber(err:match("this process: pid (%d+)")) -- the Lua process (proc.pid may be a wrapper's)
  h.prefix = err:match("prefix (/[^)]+)%)")
  h.user = err:match("user sandbox%-user %((%x+)%)")
  h.connection = err:match("one slack connection %((%x+)%)")
  -- (read only a regular file: opening a FIFO would block)
  h.key = select(2, sh("test -f " .. run.quote(dir .. "/.env.sandbox"))) == 0
    and run.read(dir .. "/.env.sandbox"):match("ALLOY_API_KEY=(%S+)") or nil
  return h
end

local function stop(h)
  h.proc:stop()
  run.rmdir(h.dir)
end

-- A documented command as the sandbox prints it: with the interpreter that runs it.
local function as_printed(cmd, lua)
  return (cmd:gsub("^lua5%.4 ", function() return lua .. " " end))
end

-- The printed commands ("  <lua> lua/<script> ..."), by script name, and the interpreter they
-- name (the one that ran the sandbox; a wrapper such as fuzz/lua-asan names the real one).
local function printed_commands(stderr)
  local cmds, interpreter = {}, nil
  for line in stderr:gmatch("[^\n]+") do
    local lua, script = line:match("^  (%S+) lua/(%S+)%.lua")
    if lua then cmds[script], interpreter = line:sub(3), lua end
  end
  return cmds, interpreter
end

local function lua_version(interpreter)
  return (sh(run.quote(interpreter)
    .. " -e 'io.write(_VERSION, \" \", tostring(rawget(_G, \"jit\") and jit.version))'"))
end

describe("make sandbox", function()
  local h
  after_each(function() if h then stop(h) end end)

  it("serves every printed command until Ctrl-C, then leaves nothing behind", function()
    h = start()
    local err = h.stderr()
    assert.truthy(h.ready and h.pid and alive(h.pid), err)
    assert.truthy(h.user and h.connection and h.nginx and h.prefix, err)
    assert.are.equal("600", (sh("stat -c %a " .. run.quote(h.dir .. "/.env.sandbox")):gsub("%s+$", "")))
    assert.are.equal("ALLOY_API_KEY=users-real-key-0123456789\n", run.read(h.dir .. "/.env"))
    assert.matches("connectors: notion, ", err, 1, true)

    local cmds, lua = printed_commands(err)
    assert.truthy(lua, err)
    assert.are.equal(lua_version(LUA), lua_version(lua))
    assert.are.equal(as_printed(readme.command("lua5.4 lua/get_jwt_token.lua --env-file .env.sandbox"), lua),
      cmds.get_jwt_token, err)
    assert.are.equal(as_printed(readme.command("lua5.4 lua/list_connections.lua --env-file .env.sandbox"), lua),
      cmds.list_connections, err)
    -- luacheck: push no max line length (the README's command, one literal)
    assert.are.equal(as_printed(readme.command(
      "lua5.4 lua/initiate_oauth.lua --env-file .env.sandbox --connector notion --redirect-uri http://localhost:3000/oauth/callback"
    ), lua), cmds.initiate_oauth, err)
    -- luacheck: pop
    assert.are.equal(as_printed(readme.command("lua5.4 lua/test_oauth.lua --env-file .env.sandbox --replace"), lua),
      cmds.test_oauth, err)
    local curl = readme.command('curl -sL "<oauthUrl>"')
    assert.truthy(err:find("\n  " .. curl .. "\n", 1, true), err)
    local outputs = { err }

    local function script(cmd) -- -> stdout, stderr, exit code
      local out, code = sh(in_dir(h.dir, cmd .. " 2>script-stderr.txt"))
      local serr = run.read(h.dir .. "/script-stderr.txt")
      outputs[#outputs + 1] = out .. serr
      return out, serr, code
    end

    -- the README's tour and docs/commands.md's walk-through, on a terminal as they show them:
    -- what each command printed there, but what changes from run to run
    local session = {}
    local function sessions(doc, heading)
      for cmd, shown in readme.section(doc, heading):match("\n```text\n(.-)```"):gmatch("%$ ([^\n]+)\n([^$]*)") do
        session[cmd] = shown
      end
    end
    sessions("docs/commands.md", "### From zero to a first executed action")
    sessions("README.md", "## A tour")
    -- what changes from run to run: ids, the sandbox's ports, times
    local function stable(text)
      return (text:gsub("%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x", "<id>")
        :gsub("127%.0%.0%.1:%d+", "<host>"):gsub("%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ", "<time>")
        :gsub("%d%d%d%d%-%d%d%-%d%d %d%d:%d%d", "<time>"):gsub("%(in [^)\n]*%)", "(in …)"))
    end
    local run_shown = readme.run -- (an alias: each command below is a checked literal of readme.command)
    local function walk(cmd, opts)
      opts = opts or {}
      opts.cwd, opts.tty = h.dir, true
      local tout, terr, tcode = run_shown(cmd, opts)
      outputs[#outputs + 1] = tout .. terr
      assert.are.equal(0, tcode, tout .. terr)
      assert.are.equal(stable(assert(session[cmd], cmd)), stable(tout))
      return tout
    end

    local out, serr, code = script(cmds.get_jwt_token)
    assert.are.equal(0, code, serr)
    assert.are.equal(h.user, alloy.jwt_claims((out:gsub("%s+$", ""))).userId)

    out, serr, code = script(cmds.list_connections)
    assert.are.equal(0, code, serr)
    assert.matches(h.connection, out, 1, true)

    -- the README's tour (before anything else changes the seeded state): the commands installed
    -- for the user, then the alloy command on a terminal as the README shows it, from the token
    -- to an executed action
    local make_env = {}
    if LUA ~= "lua5.4" and not LUA:find("/", 1, true) then make_env.LUA = LUA end
    local iout, ierr, icode = readme.run("make install PREFIX=$HOME/.local",
      { cwd = h.dir, home = h.dir, env = make_env })
    assert.are.equal(0, icode, iout .. ierr)
    local installed = { home = h.dir, env = { PATH = h.dir .. "/.local/bin:" .. os.getenv("PATH") } }
    walk(readme.command("TOKEN=$(alloy --env-file .env.sandbox token)"), installed)
    out = walk(readme.command("alloy connections --env-file .env.sandbox"), installed)
    assert.matches("\nTo use one: alloy connections --save " .. h.connection .. " --env-file .env.sandbox\n", out,
      1, true)
    walk(readme.command("alloy actions slack --search message --env-file .env.sandbox"), installed)
    -- luacheck: push no max line length (the README's command, one literal)
    out = walk(readme.command(
      [[alloy run slack chat_postMessage --body '{"channel":"C0123","text":"Hello"}' --env-file .env.sandbox]]
    ), installed)
    -- luacheck: pop
    assert.matches("Executed slack chat_postMessage with connection " .. h.connection .. ".\n", out, 1, true)

    -- each OAuth command waits on localhost:3000; the spec is the second terminal running curl
    for _, name in ipairs({ "initiate_oauth", "test_oauth" }) do
      local p = assert(io.popen(in_dir(h.dir, cmds[name] .. " 2>oauth-stderr.txt; echo \"exit $?\"")))
      local url = p:read("*l")
      assert.truthy((url or ""):match("^http://127%.0%.0%.1:%d+/"),
        name .. ": " .. run.read(h.dir .. "/oauth-stderr.txt"))
      local page, ccode = sh(in_dir(h.dir, (curl:gsub("<oauthUrl>", (url:gsub("%%", "%%%%"))))))
      local rest = p:read("*a")
      p:close()
      serr = run.read(h.dir .. "/oauth-stderr.txt")
      outputs[#outputs + 1] = url .. rest .. serr .. page
      assert.are.equal(0, ccode, page)
      assert.matches("notion is connected", page, 1, true)
      assert.truthy(rest:match("exit 0\n$"), rest .. serr)
      local new_id = rest:match("^(%x+)\n")
      assert.truthy(new_id, rest .. serr)
      out = script(cmds.list_connections)
      assert.matches(new_id, out, 1, true)
    end

    -- the documentation's other commands, against the same sandbox from the same directory
    out, serr, code = readme.run("lua5.4 lua/list_connectors.lua --env-file .env.sandbox", { cwd = h.dir })
    outputs[#outputs + 1] = out .. serr
    assert.are.equal(0, code, serr)
    assert.matches("\nslack%s+Slack%s+oauth2\n", out)
    out, serr, code = readme.run("lua5.4 lua/alloy_main.lua connections --env-file .env.sandbox", { cwd = h.dir })
    outputs[#outputs + 1] = out .. serr
    assert.are.equal(0, code, serr)
    assert.matches(h.connection, out, 1, true)

    walk(readme.command("lua5.4 lua/alloy_main.lua actions slack --env-file .env.sandbox"))
    walk(readme.command("lua5.4 lua/alloy_main.lua action slack chat_postMessage --env-file .env.sandbox"))
    -- luacheck: push no max line length (the README's command, one literal)
    out = walk(readme.command(
      [[lua5.4 lua/alloy_main.lua run slack chat_postMessage --env-file .env.sandbox --body '{"channel":"C0123","text":"Hello from lua-alloy"}']]
    ))
    -- luacheck: pop
    assert.matches("Executed slack chat_postMessage with connection " .. h.connection .. ".\n", out, 1, true)
    assert.matches('"requestBody":{"channel":"C0123","text":"Hello from lua-alloy"}', out, 1, true)


    -- Ctrl-C: the terminal signals the whole foreground process group
    assert(os.execute("kill -INT -" .. h.proc.pid))
    assert.truthy(run.wait_for(function() return not alive(h.pid) end, 15), "still running after SIGINT")
    err = h.stderr()
    assert.matches("sandbox: stopped (nginx gone, temp prefix removed, .env.sandbox removed)", err, 1, true)
    assert.is_false(alive(h.nginx))
    assert.is_false(exists(h.prefix))
    assert.is_false(exists(h.dir .. "/.env.sandbox"))
    assert.are.equal("ALLOY_API_KEY=users-real-key-0123456789\n", run.read(h.dir .. "/.env"))
    for _, o in ipairs(outputs) do assert.is_nil(o:find(h.key, 1, true), "the API key was printed") end
  end)

  for _, how in ipairs({ { "the process", "" }, { "its process group", "-" } }) do
    it("on SIGTERM to " .. how[1] .. ": nginx gone, temp prefix and .env.sandbox removed", function()
      h = start()
      assert.truthy(h.ready and h.pid and alive(h.pid) and h.nginx and h.prefix, h.stderr())
      assert.is_true(exists(h.dir .. "/.env.sandbox"))
      assert(os.execute("kill -TERM " .. how[2] .. (how[2] == "" and h.pid or h.proc.pid)))
      assert.truthy(run.wait_for(function()
        return not alive(h.pid) and not alive(h.nginx) and not exists(h.prefix)
          and not exists(h.dir .. "/.env.sandbox")
      end, 15), "left behind after SIGTERM: " .. h.stderr())
      assert.are.equal("ALLOY_API_KEY=users-real-key-0123456789\n", run.read(h.dir .. "/.env"))
    end)
  end
  it("a FIFO already at .env.sandbox: replaced by the 0600 file, no hang", function()
    h = start(function(dir) assert(os.execute("mkfifo " .. run.quote(dir .. "/.env.sandbox"))) end)
    assert.truthy(h.ready and h.pid and alive(h.pid) and h.key, h.stderr())
    assert.matches("sandbox: replaced .env.sandbox (mode 0600)", h.stderr(), 1, true)
    assert.are.equal("-rw-------", (sh("stat -c %A " .. run.quote(h.dir .. "/.env.sandbox")):gsub("%s+$", "")))
  end)

  it("a directory at .env.sandbox: exit 1 with one line, no temp file with the key left", function()
    h = start(function(dir) assert(os.execute("mkdir " .. run.quote(dir .. "/.env.sandbox"))) end)
    assert.truthy(run.wait_for(function() return not alive(h.proc.pid) end, 15), h.stderr())
    local err = h.stderr()
    assert.matches("^sandbox: failed: cannot write %.env%.sandbox: ", err)
    assert.is_nil(err:find("traceback", 1, true), err)
    assert.are.equal("", (sh("cd " .. run.quote(h.dir) .. " && ls -A | grep '^.env.sandbox.' || true")))
    assert.is_true(exists(h.dir .. "/.env.sandbox"))
  end)
end)
