-- lua/test_oauth.lua: the Notion preset of the OAuth flow, against the sandbox.
local Sandbox = require "sandbox"
local run = require "run"

local lines = run.lines

describe("test_oauth.lua #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, dir

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)

  before_each(function()
    sb:reset()
    uid = sb:create_user{ username = "theo" }
    dir = run.tmpdir()
  end)
  after_each(function() run.rmdir(dir) end)

  it("shows its configuration (never the key) and defaults to localhost:3000", function()
    local r = run.script("test_oauth", { "--no-listen" }, { env = run.env(sb, uid), cwd = dir })
    assert.equal(0, r.code, r.stderr)
    assert.matches("/api/strategy/connector/notion/authorize%?userId=" .. uid
      .. "&redirectUri=http%%3A%%2F%%2Flocalhost%%3A3000%%2Foauth%%2Fcallback&", r.stdout)
    assert.matches("connector:    notion\n", r.stderr, 1, true)
    assert.matches("redirect URI: http://localhost:3000/oauth/callback  [default]", r.stderr, 1, true)
    assert.matches("user:         " .. uid .. "  [environment]", r.stderr, 1, true)
    assert.matches("API key:      set  [environment]", r.stderr, 1, true)
    assert.is_nil(r.stderr:find(sb.api_key, 1, true))
  end)

  it("runs the whole flow with REDIRECT_URI from .env and prints the next steps", function()
    local port = run.closed_port()
    local redirect = "http://127.0.0.1:" .. port .. "/done"
    run.write(dir .. "/.env", "REDIRECT_URI=" .. redirect .. "\n", "600")
    local h = run.spawn("test_oauth", { "--timeout", "10" }, { env = run.env(sb, uid), cwd = dir })
    local url = h:line()
    local b = run.browse(url)
    local r = h:wait()
    assert.equal(0, r.code, r.stderr)
    assert.equal(redirect, b.location)
    assert.equal(200, b.status)
    local id = sb:state().credentials[1].credentialId
    assert.equal(url .. "\n" .. id .. "\n", r.stdout)
    assert.matches("redirect URI: " .. redirect .. "  [.env]", r.stderr, 1, true)
    -- each next step once: how to use the id, how to list it, what Notion's id is for
    local function plain(s) return (s:gsub("%p", "%%%0")) end
    local function count(pattern) return select(2, r.stderr:gsub(pattern, "")) end
    assert.equal(1, count(plain("CONNECTION_ID=" .. id)))
    -- saving the id later is the connections command's --save (not a new OAuth flow)
    assert.equal(1, count(plain("Next: use it with CONNECTION_ID=" .. id .. " in .env; to save it there: "
      .. run.invoked("list_connections") .. " notion --save " .. id .. "\n")))
    assert.equal(2, count("list_connections"))
    assert.equal(1, count("\nList connections: %S+ " .. plain(run.root .. "/lua/list_connections.lua notion\n")))
    assert.equal(1, count(plain("\nThen use it: ") .. "%S+ "
      .. plain(run.root .. "/lua/run_action.lua notion <action> --credential " .. id .. " (") .. "%S+ "
      .. plain(run.root .. "/lua/list_actions.lua notion lists the actions)\n")))
  end)

  it("--save with the preset", function()
    local port = run.closed_port()
    run.write(dir .. "/.env", "# keep\nREDIRECT_URI=http://localhost:" .. port .. "/oauth/callback\n", "600")
    sb:set{ oauth_redirect = "success" }
    local h = run.spawn("test_oauth", { "--timeout", "10", "--save" }, { env = run.env(sb, uid), cwd = dir })
    run.browse(h:line())
    local r = h:wait()
    assert.equal(0, r.code, r.stderr)
    local id = lines(r.stdout)[2]
    assert.equal("# keep\nREDIRECT_URI=http://localhost:" .. port .. "/oauth/callback\nCONNECTION_ID=" .. id .. "\n",
      run.read(dir .. "/.env"))
  end)

  it("times out when nobody comes back", function()
    local port = run.closed_port()
    local r = run.script("test_oauth", { "--timeout", "0.2", "--redirect-uri", "http://localhost:" .. port .. "/cb" },
      { env = run.env(sb, uid), cwd = dir })
    assert.equal(1, r.code)
    assert.matches("error: no redirect arrived on http://localhost:" .. port .. "/cb within 0.2 s", r.stderr, 1, true)
  end)

  it("401: wrong key", function()
    local r = run.script("test_oauth", { "--no-listen" },
      { env = run.env(sb, uid, { ALLOY_API_KEY = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" }), cwd = dir })
    assert.equal(1, r.code)
    assert.equal("", r.stdout)
    assert.matches("\nerror: HTTP_401[^\n]*\nhint: check ALLOY_API_KEY", r.stderr)
  end)

  it("missing key: exit 2 before anything is shown", function()
    local r = run.script("test_oauth", {}, { env = run.env(sb, uid, { ALLOY_API_KEY = false }), cwd = dir })
    assert.equal(2, r.code)
    assert.matches("^error: ALLOY_API_KEY is not set", r.stderr)
  end)
end)
