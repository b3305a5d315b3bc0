-- lua/list_connections.lua against the sandbox.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"

local lines = run.lines

describe("list_connections.lua #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, dir

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)

  before_each(function()
    sb:reset()
    uid = sb:create_user{ username = "lena" }
    dir = run.tmpdir()
  end)
  after_each(function() run.rmdir(dir) end)

  local function list(args, extra)
    return run.script("list_connections", args or {}, { env = run.env(sb, uid, extra), cwd = dir })
  end

  local function seed()
    local a = sb:create_credential{ userId = uid, connector = "notion", name = "Team wiki" }
    local b = sb:create_credential{ userId = uid, connector = "slack" }
    local c = sb:create_credential{ userId = uid, connector = "notion", name = "Personal" }
    return a, b, c
  end

  local function short_time(c)
    local date, hm = c.createdAt:match("^(%d+%-%d+%-%d+)T(%d+:%d+)")
    return date .. " " .. hm
  end

  -- The type a user's list shows: the bare connector id, as the Embedded reference documents it
  -- ("shopify"); the sandbox keeps "<connector>-<auth>" for the Connectivity list.
  local function listed(c) return (c.type:gsub("%-[^-]*$", "")) end

  -- What a program reading stdout gets: tab-separated rows, no header.
  local function expected_rows(creds)
    local out = {}
    for _, c in ipairs(creds) do
      out[#out + 1] = table.concat({ c.credentialId, listed(c), c.name, short_time(c) }, "\t") .. "\n"
    end
    return table.concat(out)
  end

  -- What a terminal shows: aligned columns under a header.
  local function expected_table(creds)
    local w = { #"ID", #"TYPE", #"NAME" }
    for _, c in ipairs(creds) do
      w[1] = math.max(w[1], #c.credentialId)
      w[2] = math.max(w[2], #listed(c))
      w[3] = math.max(w[3], #c.name)
    end
    local function row(a, b, c, d)
      return a .. string.rep(" ", w[1] - #a) .. "  " .. b .. string.rep(" ", w[2] - #b) .. "  "
        .. c .. string.rep(" ", w[3] - #c) .. "  " .. d .. "\n"
    end
    local out = { row("ID", "TYPE", "NAME", "CREATED") }
    for _, c in ipairs(creds) do
      out[#out + 1] = row(c.credentialId, listed(c), c.name, short_time(c))
    end
    return table.concat(out)
  end

  it("the empty case says how to create one, naming the command as run here", function()
    local out, err, code = readme.run("lua5.4 lua/list_connections.lua", { env = run.env(sb, uid) })
    assert.equal(0, code, err)
    assert.equal("", out)
    assert.equal("No connections for user " .. uid .. ".\nCreate one with: lua5.4 lua/initiate_oauth.lua notion\n", err)
  end)

  it("on a terminal: an aligned table under a header, the count and the .env line", function()
    local a, b, c = seed()
    -- a terminal shows stdout and stderr together
    local out, _, code = readme.run("lua5.4 lua/list_connections.lua", { env = run.env(sb, uid), tty = true })
    assert.equal(0, code, out)
    assert.equal(expected_table({ a, b, c }) .. "3 connections for user " .. uid
      .. "\nTo use one: lua5.4 lua/list_connections.lua --save " .. c.credentialId .. "\n", out)
  end)

  it("piped: tab-separated rows without the header; the count and the .env line on stderr", function()
    local a, b, c = seed()
    local r = list()
    assert.equal(0, r.code, r.stderr)
    assert.equal(expected_rows({ a, b, c }), r.stdout)
    assert.equal("3 connections for user " .. uid .. "\nTo use one: " .. run.invoked("list_connections") .. " --save "
      .. c.credentialId .. "\n", r.stderr)
    local out, err, code = readme.run("lua5.4 lua/list_connections.lua | cut -f1", { env = run.env(sb, uid) })
    assert.equal(0, code, err)
    assert.equal(a.credentialId .. "\n" .. b.credentialId .. "\n" .. c.credentialId .. "\n", out)
  end)

  it("a name with tabs, newlines or escape sequences stays one cell on one line, piped or not", function()
    local a = sb:create_credential{ userId = uid, connector = "notion",
                                    name = "Team\twiki\r\nsecond line\27[31mred\194\155" }
    local r = list()
    assert.equal(0, r.code, r.stderr)
    assert.equal(a.credentialId .. "\tnotion\tTeam wiki  second line [31mred \t" .. short_time(a) .. "\n",
      r.stdout)
    r = run.script("list_connections", {}, { env = run.env(sb, uid), cwd = dir, tty = true })
    assert.equal(0, r.code, r.stdout)
    local first = lines(r.stdout)
    assert.matches("^ID%s+TYPE%s+NAME%s+CREATED$", first[1])
    assert.equal(a.credentialId .. "  notion  Team wiki  second line [31mred   " .. short_time(a), first[2])
    assert.equal("1 connection for user " .. uid, first[3])
  end)

  it("reads the list in every documented shape", function()
    local a, b, c = seed()
    for _, shape in ipairs({ "data", "credentials", "array" }) do
      sb:set{ credentials_shape = shape }
      local r = list()
      assert.equal(0, r.code, r.stderr)
      assert.equal(expected_rows({ a, b, c }), r.stdout, shape)
    end
  end)

  it("asks GET /credentials/users/{id} with the version header", function()
    list()
    local q = sb:requests()[1]
    assert.equal("GET", q.method)
    assert.equal("/credentials/users/" .. uid, q.path)
    assert.equal("2025-09", q.headers["x-api-version"])
  end)

  it("falls back to the older /users/{id}/credentials route on a 404", function()
    local a = sb:create_credential{ userId = uid, connector = "notion", name = "Wiki" }
    sb:fault{ path = "^/credentials/users/", status = 404 }
    local r = list()
    assert.equal(0, r.code, r.stderr)
    assert.equal(expected_rows({ a }), r.stdout)
    assert.equal("/users/" .. uid .. "/credentials", sb:requests()[2].path)
  end)

  it("--connector filters by type", function()
    local a, _, c = seed()
    local r = list({ "--connector", "notion" })
    assert.equal(0, r.code, r.stderr)
    assert.equal(expected_rows({ a, c }), r.stdout)
    assert.matches("^2 notion connections for user ", r.stderr)
  end)

  it("--connector with no match mentions the others", function()
    seed()
    local r = list({ "--connector", "hubspot" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.matches("No hubspot connections for user " .. uid .. " (3 of other connectors", r.stderr, 1, true)
    assert.matches("initiate_oauth.lua hubspot\n", r.stderr, 1, true)
  end)

  it("--json prints one document", function()
    local a, b, c = seed()
    local r = list({ "--json" })
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, #lines(r.stdout))
    local doc = cjson.decode(r.stdout)
    assert.equal(uid, doc.userId)
    assert.equal(3, doc.count)
    for _, x in ipairs({ a, b, c }) do x.type = listed(x) end
    assert.same({ a, b, c }, doc.connections)
  end)

  it("--json with nothing gives an empty array", function()
    local r = list({ "--json" })
    assert.equal(0, r.code, r.stderr)
    assert.equal('{"connections":[],"connector":null,"count":0,"userId":"' .. uid .. '"}\n', r.stdout)
  end)

  it("401: wrong key", function()
    local r = list({}, { ALLOY_API_KEY = "nope-nope-nope-nope-nope-nope-no" })
    assert.equal(1, r.code)
    assert.equal("", r.stdout)
    assert.matches("^error: HTTP_401[^\n]*\nhint: check ALLOY_API_KEY", r.stderr)
  end)

  it("404: unknown user", function()
    local r = list({ "--user", "5f0000000000000000000000" })
    assert.equal(1, r.code)
    assert.matches("^error: HTTP_404: User not found[^\n]*\nhint: check ALLOY_USER_ID", r.stderr)
  end)

  it("500: server error", function()
    sb:fault{ path = "^/credentials/users/", status = 500 }
    local r = list()
    assert.equal(1, r.code)
    assert.matches("^error: HTTP_500[^\n]*\nhint: [^\n]*try again later", r.stderr)
  end)

  it("missing user: exit 2", function()
    local r = list({}, { ALLOY_USER_ID = false })
    assert.equal(2, r.code)
    assert.matches("^error: no user id", r.stderr)
  end)
end)
