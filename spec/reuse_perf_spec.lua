-- What a client reuses from one request to the next (a named operation's last URL, made from
-- the same path arguments) never carries over to a request with other arguments.
local Sandbox = require "sandbox"

describe("a named operation called again", function()
  local sb, uid, other

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "ada" }
    other = sb:create_user { username = "bob" }
  end)

  local function paths()
    local out = {}
    for i, r in ipairs(sb:requests()) do out[i] = r.path end
    return out
  end

  it("with other path arguments asks for each one's own URL", function()
    local c = sb:client { retries = 0 }
    sb:clear_requests()
    local ids = { uid, other, uid, uid, uid:sub(1, 23), other }
    for _, id in ipairs(ids) do
      local token, res_or_msg, _, res = c:user_token(id)
      res = token and res_or_msg or res
      assert.equals(sb.embedded_url .. "/users/" .. id .. "/token?userId=" .. id, res.url)
    end
    local want = {}
    for i, id in ipairs(ids) do want[i] = "/users/" .. id .. "/token" end
    assert.same(want, paths())
    c:close()
  end)

  it("keeps each argument apart: ('a', 'bc') and ('ab', 'c') are two URLs", function()
    local c = sb:client()
    local calls = { { "a", "bc" }, { "ab", "c" }, { "a", "bc" }, { "abc", "" }, { 12, "c" }, { "12", "c" } }
    for _, args in ipairs(calls) do
      local req, msg = c:prepare("delete_credential", args[1], args[2])
      if args[2] == "" then
        assert.is_nil(req)
        assert.matches("^INVALID_ARGUMENT: path parameter 'credentialId'", msg)
      else
        assert.equals(sb.url .. "/users/" .. args[1] .. "/credentials/" .. args[2], req.url)
      end
    end
    c:close()
  end)

  it("with an argument that was refused refuses it again, and sends nothing for it", function()
    local c = sb:client()
    assert.is_string((c:user_token(uid)))
    sb:clear_requests()
    for _ = 1, 2 do
      local token, msg, code = c:user_token(uid .. "/../x")
      assert.is_nil(token)
      assert.equals("INVALID_ARGUMENT", code, msg)
    end
    assert.same({}, paths())
    assert.is_string((c:user_token(uid)))
    assert.same({ "/users/" .. uid .. "/token" }, paths())
    c:close()
  end)

  it("in a batch, each request with its own path arguments", function()
    local c = sb:client()
    local reqs, want = {}, {}
    for i = 1, 12 do
      local id = (i % 3 == 0) and other or uid
      reqs[i] = { op = "user_token", args = { id } }
      want[i] = sb.embedded_url .. "/users/" .. id .. "/token?userId=" .. id
    end
    reqs[13] = { op = "user_token", args = { "x\n" } }
    local results, failures = c:batch(reqs, { concurrency = 4 })
    assert.equals(1, failures)
    for i = 1, 12 do
      assert.is_true(results[i].ok, results[i].error)
      assert.equals(want[i], results[i].url)
    end
    assert.equals("INVALID_ARGUMENT", results[13].code)
    c:close()
  end)
end)
