-- What a server sends is data: an oauthUrl that is not an http(s) URL is neither printed
-- nor opened, a connection id that is not 24 hex never reaches stdout or .env, and escape
-- sequences in names never reach the terminal.
local Sandbox = require "sandbox"
local run = require "run"

describe("a hostile server", function()
  local sb, dir

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    dir = run.tmpdir()
  end)
  after_each(function() run.rmdir(dir) end)

  local function oauth(uid, args)
    return run.spawn("initiate_oauth", args, { env = run.env(sb, uid), cwd = dir })
  end

  for _, bad in ipairs { "javascript:alert(1)", "http://127.0.0.1/ok\n$(touch pwned)", "file:///etc/passwd",
                         "http://\27]8;;evil\27\\" } do
    it(("an oauthUrl %q is refused: nothing on stdout, exit 1"):format(bad), function()
      local uid = sb:create_user {}
      sb:fault { method = "POST", path = "^/connectors/notion/credentials$", status = 200, body = { oauthUrl = bad } }
      local args = { "--connector", "notion", "--redirect-uri", "https://example.com/cb", "--no-listen" }
      local r = oauth(uid, args):wait()
      assert.equal(1, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.matches("error: the API answered with an oauthUrl that is not an http(s) URL", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("\27", 1, true))
      assert.is_nil(io.open(dir .. "/pwned"))
    end)
  end

  it("a connection id that is not 24 hex is not printed or saved", function()
    local uid = sb:create_user {}
    local port = run.closed_port()
    local list = "^/credentials/users/"
    -- the existing-connection check and the snapshot before the flow are answered normally
    sb:fault { method = "GET", path = list, delay = 0.001, times = 2 }
    sb:fault { method = "GET", path = list, status = 200, body = { data = { {
      credentialId = "x'$(touch pwned)'\nCONNECTION_ID=evil", type = "notion-oauth2", name = "n",
      createdAt = "2030-01-01T00:00:00.000Z" } } } }
    local h = oauth(uid, { "--connector", "notion", "--redirect-uri", "http://localhost:" .. port .. "/cb",
                           "--timeout", "10", "--save" })
    local url = h:line()
    run.browse(url)
    local r = h:wait()
    assert.equal(1, r.code, r.stderr)
    assert.equal(url .. "\n", r.stdout)
    assert.matches("is not a 24-hex id", r.stderr, 1, true)
    assert.is_nil(io.open(dir .. "/.env"))
    assert.is_nil(io.open(dir .. "/pwned"))
  end)

  it("escape sequences in a connection's name never reach the terminal", function()
    local uid = sb:create_user { username = "\27[2J\27]0;owned\7mallory" }
    local port = run.closed_port()
    local h = oauth(uid, { "--connector", "notion", "--redirect-uri", "http://localhost:" .. port .. "/cb",
                           "--timeout", "10" })
    local url = h:line()
    run.browse(url)
    local r = h:wait()
    assert.equal(0, r.code, r.stderr)
    assert.matches("Connected: notion%-oauth2 connection %x+ %(%?%[2J%?%]0;owned%?mallory's Notion Credential%)",
      r.stderr)
    assert.is_nil(r.stderr:find("\27", 1, true))
    assert.is_nil(r.stderr:find("\7", 1, true))
  end)
  it("escape sequences and newlines in a connector's metadata never reach the terminal's prompts", function()
    local uid = sb:create_user {}
    local function entry(t, props, required)
      return { authenticationType = t, inputSchema = { type = "object", properties = { data = {
        type = "object", required = required, properties = props } } } }
    end
    local token = { type = "string", writeOnly = true, title = "\27]0;owned\7Token" }
    local name = { type = "string", title = "\27[2JName\nerror: fake" }
    sb:fault { method = "GET", path = "^/connectors/airtable/credentials/metadata$", status = 200, body = {
      metadata = { entry("bearer", { token = token, name = name }, { "name", "token" }),
                   entry("\27[31mbasic\n", { token = token }, { "token" }) } } }
    local t = run.terminal("initiate_oauth", { "--connector", "airtable" }, { env = run.env(sb, uid), cwd = dir,
                                                                             secrets = { "tok-SECRET-1" } })
    assert.is_true(t:expect("Authentication type for airtable: "), t:screen())
    t:type("1\n")
    assert.is_true(t:expect("(name): "), t:screen())
    t:type("n1\n")
    assert.is_true(t:expect("(token, not shown): "), t:screen())
    t:type("tok-SECRET-1\n")
    local r = t:wait()
    assert.equal(0, r.code, r.stdout)
    assert.is_nil(r.stdout:find("\27", 1, true), r.stdout)
    assert.is_nil(r.stdout:find("\7", 1, true), r.stdout)
    assert.is_nil(r.stdout:find("\nerror: fake", 1, true), r.stdout)
  end)
  it("a user id that is not 24 hex is neither printed nor used: users create and users delete exit 1", function()
    local bad = "x'$(touch pwned)'\n\27[2J"
    sb:fault { method = "POST", path = "^/users$", status = 200, body = { userId = bad } }
    local env = run.env(sb, nil)
    for _, args in ipairs { { "create", "eve" }, { "create", "eve", "--json" } } do
      local r = run.script("users", args, { env = env, cwd = dir })
      assert.equal(1, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.matches("error: the API answered with a user id that is not 24 hex digits", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("\27", 1, true))
      sb:fault { method = "POST", path = "^/users$", status = 200, body = { userId = bad } }
    end
    sb:reset()
    local victim = sb:create_user { username = "victim" }
    sb:create_user { username = "eve" }
    -- the user asked for is answered with another (malformed) id: nothing is deleted
    sb:fault { method = "GET", path = "^/users/eve$", status = 200,
               body = { userId = victim .. "/../x", username = "eve" } }
    local r = run.script("users", { "delete", "eve", "--yes" }, { env = env, cwd = dir })
    assert.equal(1, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.equal(2, #sb:state().users)
    for _, q in ipairs(sb:requests()) do assert.not_equal("DELETE", q.method) end
    assert.is_nil(io.open(dir .. "/pwned"))
  end)
end)
