-- The `alloy` command (lua/alloy_main.lua, installed as `alloy`): subcommands run the
-- scripts' own flows, and their messages name `alloy <subcommand>`.
local Sandbox = require "sandbox"
local run = require "run"
local commands = require "alloy.commands"

-- how the alloy command names itself when the specs start it from the checkout
local ALLOY = run.invoked("alloy_main")

describe("alloy command", function()
  local sb, uid, dir

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "ada" }
    dir = run.tmpdir()
  end)
  after_each(function() run.rmdir(dir) end)

  local function alloy(args, o)
    o = o or {}
    o.env = o.env or run.env(sb, uid)
    o.cwd = dir
    return run.script("alloy_main", args, o)
  end

  it("every command's --help names the other commands as they are run here, no placeholder left", function()
    for _, c in ipairs(commands.LIST) do
      local r = alloy { c.name, "--help" }
      assert.equal(0, r.code, c.name .. ": " .. r.stderr)
      assert.is_nil(r.stdout:find("{cmd:", 1, true), c.name .. ": " .. r.stdout)
    end
  end)

  it("--version, --help, help CMD", function()
    local r = alloy { "--version" }
    assert.equal(0, r.code)
    local version = require("alloy").VERSION:gsub("%.", "%%.")
    assert.matches("^alloy_main%.lua %(lua%-alloy " .. version .. ", libcurl ", r.stdout)
    r = alloy { "--help" }
    assert.equal(0, r.code)
    for _, c in ipairs(commands.LIST) do
      local summary = require(c.module).summary
      assert.matches("\n +" .. c.name:gsub("%p", "%%%0") .. " +" .. summary:gsub("%p", "%%%0"), r.stdout)
    end
    local exit_codes = "Exit codes: 0 success, 1 API or network failure, 2 usage or configuration error, 130 Ctrl-C."
    assert.matches(exit_codes, r.stdout, 1, true)
    r = alloy { "help", "connections" }
    assert.equal(0, r.code)
    assert.matches("--connector", r.stdout, 1, true)
    assert.matches(exit_codes, r.stdout, 1, true)
    r = alloy { "disconnect", "--help" }
    assert.equal(0, r.code)
    assert.matches("--yes", r.stdout, 1, true)
  end)

  it("no command: its help, as --help (exit 0); an unknown one: exit 2 with the closest command", function()
    local r = alloy {}
    assert.equal(0, r.code)
    assert.equal("", r.stderr)
    assert.equal(alloy({ "--help" }).stdout, r.stdout)
    assert.matches("^Usage: alloy_main.lua ", r.stdout)
    r = alloy { "conections" }
    assert.equal(2, r.code)
    assert.equal("error: unknown command \"conections\"\nhint: did you mean " .. ALLOY .. " connections?\n", r.stderr)
    -- what was typed around the name is kept, so the line can be pasted as it is
    r = alloy { "--env-file", "my env", "-u", "ada", "conections", "notion", "--json" }
    assert.equal(2, r.code)
    assert.equal("error: unknown command \"conections\"\nhint: did you mean " .. ALLOY
      .. " --env-file 'my env' -u ada connections notion --json?\n", r.stderr)
  end)

  it("runs the whole life of one connection", function()
    local redirect = "http://localhost:" .. run.closed_port() .. "/oauth/callback"
    local r = alloy { "connectors", "--search", "notion" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("notion\tNotion\toauth2\n", r.stdout) -- piped: tab-separated
    assert.matches("Connect one with: " .. ALLOY .. " connect notion\n", r.stderr, 1, true)

    local function connect(extra)
      local args = { "connect", "--connector", "notion", "--redirect-uri", redirect, "--timeout", "10" }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      local h = run.spawn("alloy_main", args, { env = run.env(sb, uid), cwd = dir })
      local url = h:line()
      local b = url and run.browse(url) or {}
      local res = h:wait()
      assert.equal(0, res.code, res.stderr)
      assert.equal(200, b.status)
      assert.matches("List connections: " .. ALLOY .. " connections notion\n", res.stderr, 1, true)
      return run.lines(res.stdout)[2]
    end

    local first = connect()
    r = alloy { "connections" }
    assert.equal(0, r.code, r.stderr)
    assert.matches("^" .. first .. "\tnotion\t", r.stdout) -- piped: tab-separated rows

    local second = connect { "--replace" }
    assert.are_not.equal(first, second)
    r = alloy { "connections" }
    assert.is_nil(r.stdout:find(first, 1, true))
    assert.matches("^" .. second .. "\tnotion\t", r.stdout)

    r = alloy { "disconnect", second, "--yes" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(second .. "\n", r.stdout)

    r = alloy { "connections" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.matches("No connections for user " .. uid, r.stderr, 1, true)
  end)

  it("discover, connect, use, disconnect: connect --save, then run needs no credential flag", function()
    local redirect = "http://localhost:" .. run.closed_port() .. "/oauth/callback"
    local r = alloy { "connectors", "--search", "notion" }
    assert.equal("notion\tNotion\toauth2\n", r.stdout)
    r = alloy { "actions", "notion", "--search", "search" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("search\tsearch\tPOST\tSearch\n", r.stdout)
    assert.matches("What one takes: " .. ALLOY .. " action notion search\n", r.stderr, 1, true)
    local h = run.spawn("alloy_main", { "connect", "--connector", "notion", "--redirect-uri", redirect,
      "--timeout", "10", "--save" }, { env = run.env(sb, uid), cwd = dir })
    run.browse(h:line())
    local res = h:wait()
    assert.equal(0, res.code, res.stderr)
    local id = run.lines(res.stdout)[2]
    assert.matches("CONNECTION_ID=" .. id, run.read(dir .. "/.env"), 1, true)

    r = alloy { "run", "notion", "search", "--body", '{"query":"roadmap"}' }
    assert.equal(0, r.code, r.stderr)
    assert.equal("roadmap", require("cjson").decode(r.stdout).result.received.requestBody.query)
    assert.matches("Executed notion search with connection " .. id, r.stderr, 1, true)

    r = alloy { "disconnect", id, "--yes" }
    assert.equal(0, r.code, r.stderr)
    r = alloy { "run", "notion", "search", "--body", '{"query":"roadmap"}' }
    assert.equal(1, r.code)
    assert.matches("error: HTTP_404: Credential not found", r.stderr, 1, true)
    assert.matches("hint: the user or the connection was not found: check ALLOY_USER_ID / --user (" .. uid
      .. ") and CONNECTION_ID / --credential (" .. id .. ") (the user's notion connections: " .. ALLOY
      .. " connections notion)\n", r.stderr, 1, true)
  end)

  it("users and token run the scripts' flows", function()
    local r = alloy { "users", "create", "bob" }
    assert.equal(0, r.code, r.stderr)
    local bob = r.stdout:match("^(%x+)\n$")
    r = alloy { "token", "-u", "bob" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(bob, run.jwt_payload(r.stdout:sub(1, -2)).userId)
    r = alloy { "users", "delete", "bob" }
    assert.equal(2, r.code)
    assert.matches("hint: pass --yes", r.stderr, 1, true)
  end)

  it("installed: finds the installed commands beside itself", function()
    local bin = dir .. "/bin"
    os.execute("mkdir -p " .. run.quote(bin))
    os.execute(("ln -s %s %s"):format(run.quote(run.root .. "/lua/alloy_main.lua"), run.quote(bin .. "/alloy")))
    for _, c in ipairs(commands.LIST) do
      if c.script then
        os.execute(("ln -s %s %s"):format(run.quote(run.root .. "/lua/" .. c.script .. ".lua"),
          run.quote(bin .. "/" .. c.installed)))
      end
    end
    local abi = run.lua:match("(lua5%.%d)$") or run.lua:match("(luajit)$") or "lua5.4"
    local env = run.env(sb, uid, { LUA_PATH = run.root .. "/lua/?.lua;;",
                                   LUA_CPATH = run.root .. "/build/" .. abi .. "/?.so;;" })
    sb:create_credential { userId = uid, connector = "slack" }
    local r = run.script(bin .. "/alloy", { "connections", "--json" }, { env = env, cwd = dir })
    assert.equal(0, r.code, r.stderr)
    assert.matches("\"type\":\"slack\"", r.stdout, 1, true)
    r = run.script(bin .. "/alloy", { "connect", "-c", "slakc" }, { env = env, cwd = dir })
    assert.equal(2, r.code)
    assert.matches("hint: did you mean slack?", r.stderr, 1, true)
  end)
end)
