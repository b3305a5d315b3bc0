-- examples/connections_report.lua: every user's connections through client:batch.
local Sandbox = require "sandbox"
local run = require "run"
local cjson = require "cjson"

local REPORT = run.root .. "/examples/connections_report.lua"

describe("examples/connections_report.lua #scripts", function()
  teardown(run.check_scripts_only)
  local sb
  local users = {}
  local N = 300

  setup(function()
    sb = Sandbox.start()
    for i = 1, N do
      users[i] = sb:create_user { username = ("user%03d"):format(i) }
      -- user i has i % 3 connections: none, notion, or notion + slack
      if i % 3 >= 1 then sb:create_credential { userId = users[i], connector = "notion" } end
      if i % 3 == 2 then sb:create_credential { userId = users[i], connector = "slack" } end
    end
  end)
  teardown(function()
    if sb then sb:stop() end
  end)

  it("reports every user with their connection count and types (--json)", function()
    local r = run.script(REPORT, { "--json", "--concurrency", "16" }, { env = run.env(sb, false) })
    assert.equals(0, r.code, r.stderr)
    local doc = cjson.decode(r.stdout)
    assert.equals(0, doc.failures)
    assert.equals(N, #doc.users)
    local by_id = {}
    for _, u in ipairs(doc.users) do by_id[u.userId] = u end
    for i, id in ipairs(users) do
      local u = assert(by_id[id], "missing user " .. i)
      assert.equals(i % 3, u.count)
      local want = ({ [0] = {}, [1] = { "notion" }, [2] = { "notion", "slack" } })[i % 3]
      assert.same(want, u.types)
    end
    assert.matches(N .. " users, 0 failed", r.stderr, 1, true)
    -- one list call, then one credentials call per user, nothing twice
    local calls = 0
    for _, req in ipairs(sb:requests()) do
      if req.path:match("^/credentials/users/") then calls = calls + 1 end
    end
    assert.equals(N, calls)
  end)

  it("prints an aligned table, and no progress line when stderr is not a terminal", function()
    local r = run.script(REPORT, {}, { env = run.env(sb, false) })
    assert.equals(0, r.code, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equals(N + 1, #lines)
    assert.matches("^USER%s+USERNAME%s+CONNECTIONS%s+TYPES$", lines[1])
    assert.matches("^" .. users[2] .. "%s+user002%s+2%s+notion,slack$", lines[3])
    assert.is_nil(r.stderr:find("\r", 1, true))
  end)

  it("shows a progress line on a terminal", function()
    local r = run.script(REPORT, {}, { env = run.env(sb, false), tty = true })
    assert.equals(0, r.code, r.stdout)
    assert.matches("\r" .. N .. "/" .. N .. " users\n", r.stdout)
  end)

  it("marks users whose lookup failed and exits 1", function()
    sb:fault { path = "^/credentials/users/" .. users[5] .. "$", status = 500, body = '{"message":"boom"}', times = 10 }
    local r = run.script(REPORT, { "--json" }, { env = run.env(sb, false) })
    assert.equals(1, r.code)
    local doc = cjson.decode(r.stdout)
    assert.equals(1, doc.failures)
    for _, u in ipairs(doc.users) do
      if u.userId == users[5] then
        assert.equals("HTTP_500", u.code)
        assert.matches("boom", u.error)
      end
    end
    sb:clear_faults()
  end)

  it("exits 2 without an API key", function()
    local r = run.script(REPORT, {}, { env = run.env(sb, false, { ALLOY_API_KEY = false }) })
    assert.equals(2, r.code)
    assert.matches("ALLOY_API_KEY is not set", r.stderr)
  end)
end)
