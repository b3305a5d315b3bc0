-- The README's commands for the connection lifecycle (the `alloy` command, connectors,
-- connecting any connector, deleting, users, --probe), run exactly as printed.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"

describe("README lifecycle commands #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid
  Sandbox.per_test_user("ada", function(s, u) sb, uid = s, u end)

  local function env(extra) return { env = run.env(sb, uid, extra) } end

  it("alloy --version and alloy connectors", function()
    local out, err, code = readme.run("lua5.4 lua/alloy_main.lua --version", env())
    assert.equal(0, code, err)
    assert.matches("^alloy_main%.lua %(lua%-alloy %d+%.%d+%.%d+, libcurl [%d%.]+, Lua[JIT]* [%w%.%-]+%)\n$", out)
    out, err, code = readme.run("lua5.4 lua/alloy_main.lua connectors", env())
    assert.equal(0, code, err)
    assert.matches("\nzendesk\tZendesk\toauth2 (subdomain)\n", out, 1, true) -- piped: tab-separated rows
    out, err, code = readme.run("lua5.4 lua/list_connectors.lua --search slack", env())
    assert.equal(0, code, err)
    assert.equal("slack\tSlack\toauth2\n", out)
    out, err, code = readme.run("lua5.4 lua/list_connectors.lua acuityScheduling", env())
    assert.equal(0, code, err)
    assert.equal("apiKey\tno\t-\tuserId, apiKey (secret)\n", out)
  end)

  it("connects an API-key connector from stdin and a connector with a data field", function()
    local secret = "acuity-README-secret-42"
    local out, err, code = readme.run(
[[printf '%s\n' "$ACUITY_API_KEY" | lua5.4 lua/initiate_oauth.lua --connector acuityScheduling --field userId=1234]],
      { env = run.env(sb, uid, { ACUITY_API_KEY = secret }), secrets = { secret } })
    assert.equal(0, code, err)
    assert.equal(sb:state().credentials[1].credentialId .. "\n", out)
    assert.is_nil((out .. err):find(secret, 1, true))
    out, err, code = readme.run(
      "lua5.4 lua/initiate_oauth.lua -c shopify --field shopSubdomain=my-shop --redirect-uri https://example.com/cb",
      env())
    assert.equal(0, code, err)
    assert.matches("shopSubdomain=my-shop", out, 1, true)
  end)

  it("deletes a connection; manages users", function()
    local cred = sb:create_credential { userId = uid, connector = "notion" }
    local out, err, code = readme.run([[lua5.4 lua/delete_connection.lua "$CONNECTION_ID" --yes]],
      env { CONNECTION_ID = cred.credentialId })
    assert.equal(0, code, err)
    assert.equal(cred.credentialId .. "\n", out)
    out, err, code = readme.run([[lua5.4 lua/users.lua create grace --full-name "Grace Hopper"]], env())
    assert.equal(0, code, err)
    local id = out:match("^(%x+)\n$")
    out, err, code = readme.run("lua5.4 lua/users.lua list --json", env())
    assert.equal(0, code, err)
    local names = {}
    for _, u in ipairs(cjson.decode(out).users) do names[u.userId] = u.fullName end
    assert.equal("Grace Hopper", names[id])
    -- PUT /users/{id}: the full name, the username stays
    out, err, code = readme.run([[lua5.4 lua/users.lua update grace --full-name "Grace Brewster Hopper"]], env())
    assert.equal(0, code, err)
    assert.equal(id .. "\n", out)
    local put
    for _, q in ipairs(sb:requests()) do
      if q.method == "PUT" then put = q end
    end
    assert.equal("/users/" .. id, put.path)
    assert.same({ fullName = "Grace Brewster Hopper" }, cjson.decode(put.body))
    out = readme.run("lua5.4 lua/users.lua list --json", env())
    for _, u in ipairs(cjson.decode(out).users) do
      if u.userId == id then assert.same({ "grace", "Grace Brewster Hopper" }, { u.username, u.fullName }) end
    end
    -- nothing to change: exit 2, nothing sent
    local r = run.script("users", { "update", "grace" }, { env = run.env(sb, uid) })
    assert.equal(2, r.code)
    assert.matches("^error: update needs %-%-full%-name", r.stderr)
  end)

  it("--probe stops at the documented form; --all tries them all", function()
    local _, err, code = readme.run("lua5.4 lua/get_jwt_token.lua --probe", env())
    assert.equal(0, code, err)
    assert.matches("\n%s+1  GET%s+production%s+header", err)
    assert.is_nil(err:find("\n%s+2  "))
    _, err, code = readme.run("lua5.4 lua/get_jwt_token.lua --probe --all", env())
    assert.equal(0, code, err)
    assert.matches("\n%s+16  POST", err)
  end)
end)
