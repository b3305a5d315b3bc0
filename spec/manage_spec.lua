-- list_connectors.lua, delete_connection.lua and users.lua against the sandbox, run as a user
-- runs them (a terminal through run.terminal).
local Sandbox = require "sandbox"
local run = require "run"
local cjson = require "cjson"

describe("managing #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, dir

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "ada", fullName = "Ada Lovelace" }
    dir = run.tmpdir()
  end)
  after_each(function() run.rmdir(dir) end)

  local function script(name, args, o)
    o = o or {}
    o.env = o.env or run.env(sb, uid, o.extra)
    o.extra = nil
    o.cwd = dir
    return run.script(name, args, o)
  end
  local function terminal(name, args)
    return run.terminal(name, args, { env = run.env(sb, uid), cwd = dir })
  end

  local function metadata_reads()
    local out = {}
    for _, q in ipairs(sb:requests()) do
      local id = q.path:match("^/connectors/([^/]+)/credentials/metadata$")
      if id then out[#out + 1] = id end
    end
    table.sort(out)
    return out
  end

  local function all_metadata_reads()
    local n = 0
    for _, q in ipairs(sb:requests()) do
      if q.path == "/metadata/credentials" then n = n + 1 end
    end
    return n
  end

  describe("list_connectors.lua", function()
    it("lists id, name and how each connects, from every connector's metadata at once", function()
      local r = script("list_connectors", {})
      assert.equal(0, r.code, r.stderr)
      local lines = run.lines(r.stdout) -- piped: tab-separated rows, no header
      assert.equal(10, #lines)
      assert.equal("acuityScheduling\tAcuity Scheduling\tfields: userId, apiKey", lines[7])
      assert.equal("shopify\tShopify\toauth2 (shopSubdomain)", lines[4])
      assert.equal("zendesk\tZendesk\toauth2 (subdomain)", lines[10])
      assert.same({}, metadata_reads()) -- not one request per connector
      assert.equal(1, all_metadata_reads())
      assert.matches("10 connectors", r.stderr, 1, true)
      r = script("list_connectors", {}, { tty = true })
      lines = run.lines(r.stdout) -- a terminal: aligned, with a header
      assert.matches("^ID%s+NAME%s+AUTH$", lines[1])
      assert.matches("^zendesk%s+Zendesk%s+oauth2 %(subdomain%)$", lines[11])
    end)

    it("reads each connector's metadata when the all-at-once call is not there: the same table", function()
      local want = script("list_connectors", {}).stdout
      sb:fault { path = "^/metadata/credentials$", status = 404, body = { message = "Route not found" } }
      local r = script("list_connectors", {})
      assert.equal(0, r.code, r.stderr)
      assert.equal(want, r.stdout)
      assert.equal(10, #metadata_reads())
      assert.matches("read one by one, 10 requests", r.stderr, 1, true)
    end)

    it("2,000 connectors cost two requests; a 429 storm on them is a clear failure, not exit 0", function()
      local list, meta = {}, {}
      for i = 1, 2000 do
        local id = ("app%04d"):format(i)
        list[i] = { id = id, name = "App " .. i }
        meta[i] = { connector = id, isOauth = i % 2 == 0, properties = { { name = "apiKey", displayName = "Key" } } }
      end
      sb:fault { path = "^/connectors$", status = 200, body = { data = list } }
      sb:fault { path = "^/metadata/credentials$", status = 200, body = { data = meta } }
      local r = script("list_connectors", {}, { extra = { ALLOY_RETRIES = "2", ALLOY_BACKOFF = "0" } })
      assert.equal(0, r.code, r.stderr)
      assert.equal(2000, #run.lines(r.stdout))
      assert.equal(2, #sb:requests())
      assert.equal("app0002\tApp 2\toauth2 (apiKey)", run.lines(r.stdout)[2])
      -- the API keeps answering 429: the retries the client allows, then one clear failure
      for _, headers in ipairs({ { ["Retry-After"] = "0" }, {} }) do
        sb:clear_requests()
        sb:fault { path = "^/connectors$", status = 200, body = { data = list } }
        sb:fault { path = "^/metadata/credentials$", status = 429, headers = headers, times = 10 }
        r = script("list_connectors", {}, { extra = { ALLOY_RETRIES = "2", ALLOY_BACKOFF = "0" } })
        assert.equal(1, r.code)
        assert.equal("", r.stdout)
        assert.matches("^error: HTTP_429: ", r.stderr)
        assert.matches("\nhint: rate limited by the API; wait a little and try again (it was sent 3 times;", r.stderr,
          1, true)
        assert.equal(4, #sb:requests()) -- the list, then the metadata three times: nothing one by one
        sb:clear_faults()
      end
    end)

    it("a connector whose metadata cannot be read: ? in the table, and exit 1 (never 0 with work not done)", function()
      sb:fault { path = "^/metadata/credentials$", status = 404 }
      sb:fault { path = "^/connectors/slack/credentials/metadata$", status = 500, times = 3 }
      local r = script("list_connectors", {})
      assert.equal(1, r.code)
      assert.matches("\nslack\tSlack\t?\n", "\n" .. r.stdout, 1, true)
      assert.matches("error: could not read how 1 of 10 connectors are connected\n", r.stderr, 1, true)
    end)

    it("--search matches id and name in any case, and reads metadata only for those shown", function()
      local r = script("list_connectors", { "--search", "SCHED", "--json" })
      assert.equal(0, r.code, r.stderr)
      local doc = cjson.decode(r.stdout)
      assert.same({ count = 1, search = "SCHED", connectors = {
        { id = "acuityScheduling", name = "Acuity Scheduling", oauth = false, fields = { "userId", "apiKey" } } } },
        doc)
      assert.same({}, metadata_reads())
      r = script("list_connectors", { "--search", "nothing-like-it" })
      assert.equal(0, r.code)
      assert.equal("", r.stdout)
      assert.matches("No connector matches \"nothing-like-it\".", r.stderr, 1, true)
    end)

    it("one connector: its details and each authentication type, from two requests", function()
      sb:clear_requests()
      local r = script("list_connectors", { "acuityScheduling" })
      assert.equal(0, r.code, r.stderr)
      assert.equal("apiKey\tno\t-\tuserId, apiKey (secret)\n", r.stdout)
      assert.matches("acuityScheduling (Acuity Scheduling): 1 authentication type\n", r.stderr, 1, true)
      assert.matches("Connect it with: [^\n]*initiate_oauth%.lua acuityScheduling\n", r.stderr)
      local paths = {}
      for i, q in ipairs(sb:requests()) do paths[i] = q.method .. " " .. q.path end
      assert.same({ "GET /connectors/acuityScheduling", "GET /connectors/acuityScheduling/credentials/metadata" },
        paths)
      r = script("list_connectors", { "shopify", "--json" })
      assert.equal(0, r.code, r.stderr)
      local doc = cjson.decode(r.stdout)
      assert.equal("Shopify", doc.connector.name) -- the object as the API sent it
      assert.same({ { type = "oauth2", oauth = true, authConfigRequired = false,
                      fields = { { name = "shopSubdomain", required = true, secret = false } } } }, doc.auth)
    end)

    it("one connector that is not there: did you mean, exit 2; with --search: exit 2, nothing sent", function()
      local r = script("list_connectors", { "slak" })
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.matches("error: unknown connector \"slak\"\nhint: did you mean slack?", r.stderr, 1, true)
      sb:clear_requests()
      r = script("list_connectors", { "slack", "--search", "x" })
      assert.equal(2, r.code)
      assert.matches("give a connector or --search, not both", r.stderr, 1, true)
      assert.same({}, sb:requests())
    end)

    it("needs no user, but the key: exit 2 without it, exit 1 on a wrong one", function()
      assert.equal(0, script("list_connectors", {}, { extra = { ALLOY_USER_ID = false } }).code)
      assert.equal(2, script("list_connectors", {}, { extra = { ALLOY_API_KEY = false } }).code)
      local r = script("list_connectors", {}, { extra = { ALLOY_API_KEY = "wrong-key-0123456789abcdefghijkl" } })
      assert.equal(1, r.code)
      assert.matches("^error: HTTP_401", r.stderr)
    end)
  end)

  describe("delete_connection.lua", function()
    local cred
    before_each(function() cred = sb:create_credential { userId = uid, connector = "notion" } end)

    local function ids()
      local out = {}
      for _, c in ipairs(sb:state().credentials) do out[#out + 1] = c.credentialId end
      return out
    end

    it("refuses an id of the wrong shape before sending anything (exit 2)", function()
      for _, bad in ipairs { "123", "zz" .. cred.credentialId:sub(3), cred.credentialId .. "0" } do
        sb:clear_requests()
        local r = script("delete_connection", { "--yes", bad })
        assert.equal(2, r.code)
        assert.matches("is not a connection id (24 hex digits)", r.stderr, 1, true)
        assert.same({}, sb:requests())
      end
      assert.equal(2, script("delete_connection", { "--yes" }).code)
    end)

    it("an id the user does not have is exit 1, never a silent success", function()
      local other = sb:create_user { username = "bob" }
      local his = sb:create_credential { userId = other, connector = "slack" }
      for _, id in ipairs { "0123456789abcdef01234567", his.credentialId } do
        local r = script("delete_connection", { "--yes", id })
        assert.equal(1, r.code)
        assert.equal("", r.stdout)
        assert.matches("^error: user " .. uid .. " has no connection " .. id, r.stderr)
      end
      assert.equal(2, #ids())
    end)

    it("without a terminal needs --yes (exit 2, nothing deleted); --yes deletes", function()
      local r = script("delete_connection", { cred.credentialId })
      assert.equal(2, r.code)
      assert.matches(cred.name, r.stderr, 1, true)
      assert.matches("error: not deleting connection " .. cred.credentialId .. ": stdin is not a terminal", r.stderr,
        1, true)
      assert.matches("hint: pass --yes", r.stderr, 1, true)
      assert.equal(1, #ids())
      r = script("delete_connection", { cred.credentialId, "--yes", "--json" })
      assert.equal(0, r.code, r.stderr)
      local doc = cjson.decode(r.stdout)
      assert.is_true(doc.deleted)
      assert.equal(cred.credentialId, doc.credentialId)
      assert.equal("notion", doc.credential.type)
      assert.same({}, ids())
    end)

    it("on a terminal shows name, type and created, then asks y/N", function()
      local t = terminal("delete_connection", { cred.credentialId })
      assert.is_true(t:expect("Delete it? [y/N] "), t:screen())
      t:type("n\n")
      local r = t:wait()
      assert.equal(1, r.code)
      assert.matches(cred.name, r.stdout, 1, true)
      assert.matches("notion", r.stdout, 1, true)
      assert.matches(cred.createdAt:sub(1, 10), r.stdout, 1, true)
      assert.equal(1, #ids())
      t = terminal("delete_connection", { cred.credentialId })
      assert.is_true(t:expect("Delete it? [y/N] "), t:screen())
      t:type("y\n")
      r = t:wait()
      assert.equal(0, r.code, r.stdout)
      assert.same({}, ids())
    end)
  end)

  describe("users.lua", function()
    local function usernames()
      local out = {}
      for _, u in ipairs(sb:state().users) do out[#out + 1] = u.username end
      table.sort(out)
      return out
    end

    it("list (the default), create, get", function()
      local r = script("users", {})
      assert.equal(0, r.code, r.stderr)
      assert.equal(uid .. "\tada\tAda Lovelace\n", r.stdout) -- piped: tab-separated, no header
      r = script("users", { "create", "bob", "--full-name", "Bob Babbage" })
      assert.equal(0, r.code, r.stderr)
      local bob = r.stdout:match("^(%x+)\n$")
      assert.is_string(bob)
      r = script("users", { "get", "bob", "--json" })
      assert.same({ userId = bob, username = "bob", fullName = "Bob Babbage" }, cjson.decode(r.stdout))
      r = script("users", { "list", "--json" })
      assert.equal(2, cjson.decode(r.stdout).count)
      r = script("users", { "create", "bob" })
      assert.equal(1, r.code)
      assert.matches("HTTP_409", r.stderr, 1, true)
    end)

    it("usage errors are exit 2", function()
      assert.equal(2, script("users", { "rename", "x" }).code)
      assert.equal(2, script("users", { "create" }).code)
      assert.equal(2, script("users", { "list", "x" }).code)
      for _, odd in ipairs { "", "  ", "eve\nALLOY_USER_ID=x", "\27[2Jeve" } do
        local r = script("users", { "create", odd })
        assert.equal(2, r.code, r.stderr)
        assert.equal("", r.stdout)
        assert.matches("^error: .* is not a username %(empty, or with control characters%)\nhint: ", r.stderr)
        assert.is_nil(r.stderr:find("\27", 1, true))
      end
      assert.same({ "ada" }, usernames())
      assert.equal(2, script("users", {}, { extra = { ALLOY_API_KEY = false } }).code)
    end)

    it("delete asks like delete_connection: --yes, a terminal, exit 2 without either", function()
      sb:create_user { username = "bob" }
      sb:create_user { username = "carol" }
      local r = script("users", { "delete", "bob" })
      assert.equal(2, r.code)
      assert.matches("hint: pass --yes", r.stderr, 1, true)
      r = script("users", { "delete", "bob", "--yes" })
      assert.equal(0, r.code, r.stderr)
      assert.same({ "ada", "carol" }, usernames())
      local t = terminal("users", { "delete", "carol" })
      assert.is_true(t:expect("Delete this user? [y/N] "), t:screen())
      t:type("y\n")
      assert.equal(0, t:wait().code)
      assert.same({ "ada" }, usernames())
      r = script("users", { "get", "carol" })
      assert.equal(1, r.code)
      assert.matches("HTTP_404", r.stderr, 1, true)
    end)
  end)
end)
