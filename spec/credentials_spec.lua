-- alloy.credentials: normalised credential lists, over real HTTP against the sandbox.
local Sandbox = require "sandbox"
local credentials = require "alloy.credentials"

describe("alloy.credentials", function()
  local item = { credentialId = "66fb066c3793749b64c214bc", type = "notion-oauth2", name = "N",
                 createdAt = "2024-09-30T20:13:32.491Z", updatedAt = "2024-09-30T20:13:32.522Z" }

  it("normalises the fields of each entry", function()
    assert.same({ item }, credentials.normalise({ item }))
    assert.same({}, credentials.normalise({}))
    assert.same({ { credentialId = "x", type = "slack" } },
      credentials.normalise({ { id = "x", type = "slack", extra = 1 } }))
  end)

  it("filters by connector and finds what was added", function()
    local a = { credentialId = "a", type = "notion-oauth2", createdAt = "2024-01-01" }
    local b = { credentialId = "b", type = "slack-oauth2", createdAt = "2024-02-01" }
    local c = { credentialId = "c", type = "notion", createdAt = "2024-03-01" }
    local n = { credentialId = "n", type = "notionx", createdAt = "2024-03-01" }
    assert.same({ a, c }, credentials.for_connector({ a, b, c, n }, "notion"))
    assert.same({ b, c }, credentials.added({ a }, { a, b, c }))
    assert.equal(c, credentials.newest({ a, b, c }))
    assert.equal(b, credentials.find({ a, b }, "b"))
  end)

  describe("list", function()
    local sb, uid, client
    setup(function() sb = Sandbox.start() end)
    teardown(function() if sb then sb:stop() end end)
    before_each(function()
      sb:reset()
      uid = sb:create_user{ username = "cora" }
      client = sb:client{ retries = 0 }
    end)
    after_each(function() client:close() end)

    local function ids(list)
      local out = {}
      for i, c in ipairs(list) do out[i] = c.credentialId end
      return out
    end

    it("reads the three documented list shapes (alloy.so unwraps them)", function()
      local a = sb:create_credential{ userId = uid, connector = "notion", name = "Wiki" }
      local b = sb:create_credential{ userId = uid, connector = "slack" }
      for _, shape in ipairs({ "data", "credentials", "array" }) do
        sb:set{ credentials_shape = shape }
        local list = assert(credentials.list(client, uid))
        assert.same({ a.credentialId, b.credentialId }, ids(list), shape)
        assert.equal("notion", list[1].type, shape)
        assert.equal("Wiki", list[1].name, shape)
      end
      sb:set{ credentials_shape = "data" }
      sb:reset()
      uid = sb:create_user{ username = "empty" }
      assert.same({}, assert(credentials.list(client, uid)))
    end)

    it("falls back to client:list_user_credentials on a 404", function()
      local a = sb:create_credential{ userId = uid, connector = "notion" }
      sb:fault{ path = "^/credentials/users/", status = 404 }
      local list = assert(credentials.list(client, uid))
      assert.same({ a.credentialId }, ids(list))
      local q = sb:requests()
      assert.equal(2, #q)
      assert.equal("/credentials/users/" .. uid, q[1].path)
      assert.equal("/users/" .. uid .. "/credentials", q[2].path)
    end)

    it("returns nil, err with the code, the hint and exit status 1 (never exits)", function()
      local exit = stub(os, "exit")
      local bad = sb:client{ retries = 0, api_key = "wrong-key-0123456789abcdefghijkl" }
      local list, err = credentials.list(bad, uid)
      bad:close()
      exit:revert()
      assert.is_nil(list)
      assert.equal("HTTP_401", err.code)
      assert.matches("^HTTP_401", err.message)
      assert.equal("list_credentials", err.op)
      -- chosen by code and operation (a command words it its own way)
      assert.matches("^check ALLOY_API_KEY", err.hint)
      assert.equal(require("alloy.hints").for_failure(err), err.hint)
      assert.equal(1, err.status)
      assert.equal(401, err.res.status)
      assert.stub(exit).was_not_called()
      sb:fault{ path = "^/credentials/users/", status = 404, body = { message = "User not found" } }
      sb:fault{ path = "^/users/", status = 404, body = { message = "User not found" } }
      list, err = credentials.list(client, uid)
      assert.is_nil(list)
      assert.equal("HTTP_404", err.code)
      local view = { value = function(field) return ({ user_id = uid, base_url = sb.url })[field] end }
      assert.equal("check ALLOY_USER_ID (" .. uid .. "): the user must exist for this API key, and ALLOY_BASE_URL ("
        .. sb.url .. ") must be the right host", require("alloy.hints").for_failure(err, view))
    end)
  end)
end)
