-- The token call's body as documented: {"token": ...} and the bare JSON string the
-- reference page renders. Both must give the token to client:user_token and get_jwt_token.lua.
local Sandbox = require "sandbox"
local run = require "run"
local cjson = require "cjson"

describe("the token body", function()
  local sb, uid
  Sandbox.per_test_user("ada", function(s, u) sb, uid = s, u end)

  for _, shape in ipairs { "object", "string" } do
    describe("as " .. shape, function()
      before_each(function() sb:set { token_shape = shape } end)

      it("the sandbox answers that shape", function()
        local res = assert(sb:client():request { path = "/users/" .. uid .. "/token" })
        if shape == "string" then
          assert.is_string(res.json)
        else
          assert.is_string(res.json.token)
        end
      end)

      it("client:user_token returns the token", function()
        local token = assert(sb:client():user_token(uid))
        assert.equal(uid, run.jwt_payload(token).userId)
      end)

      it("get_jwt_token.lua prints it, and --json has it", function()
        local r = run.script("get_jwt_token", {}, { env = run.env(sb, uid) })
        assert.equal(0, r.code, r.stderr)
        assert.equal(uid, run.jwt_payload(r.stdout:sub(1, -2)).userId)
        r = run.script("get_jwt_token", { "--json", "-u", "ada" }, { env = run.env(sb, uid) })
        assert.equal(0, r.code, r.stderr)
        local doc = cjson.decode(r.stdout)
        assert.equal(uid, run.jwt_payload(doc.token).userId)
        assert.equal(uid, doc.userId)
        assert.equal("ada", doc.user)
      end)
    end)
  end

  it("BAD_RESPONSE, not the value, for a body that holds no usable token", function()
    local bodies = { '""', '"a\\u0000b"', '"eyJ.x\\r\\nX-Evil: 1"', '"two words"', "12", "null",
      '{"token":""}', '{"token":12}', '{"token":"a\\nb"}', '{"token":"\\u001b[2J"}', '"eyJ0.eyJ1.c2ln"' }
    for _, body in ipairs(bodies) do
      sb:fault { path = "/token$", status = 200, body = body }
      local token, msg, code, res = sb:client():user_token(uid)
      assert.is_nil(token, body)
      assert.equals("BAD_RESPONSE", code, body)
      assert.matches("no 'token' field", msg, 1, true)
      assert.equals(200, res.status)
    end
    sb:fault { path = "/token$", status = 200, body = '"eyJhIjoxfQ.eyJiIjoyfQ.c2ln"' }
    assert.equals("eyJhIjoxfQ.eyJiIjoyfQ.c2ln", sb:client():user_token(uid))
  end)

  -- Not a JWT (three non-empty base64url parts, JSON header and payload): each reached
  -- stdout, a file or a terminal as given, with exit 0.
  local NOT_JWT = { '{"token":12345}', '{"token":1e400}', '{"token":-0}', '{"token":""}', '{"token":true}',
    '{"token":null}', '{"token":["eyJhIjoxfQ.eyJiIjoyfQ.c2ln"]}', '{"token":{"a":1}}',
    '{"token":"eyJhIjoxfQ.eyJiIjoyfQ.c2ln\\n"}', '{"token":"eyJhIjoxfQ.eyJi\\nIjoyfQ.c2ln"}',
    '{"token":"eyJhIjoxfQ.eyJiIjoyfQ.\\u001b[2J"}', '{"token":"eyJhIjoxfQ.eyJiIjoyfQ.c2\255\254"}',
    '{"token":"eyJhIjoxfQ.eyJiIjoyfQ.c2\\u00e9"}', '{"token":"eyJhIjoxfQ.eyJiIjoyfQ."}',
    '{"token":"eyJhIjoxfQ..c2ln"}', '{"token":"eyJhIjoxfQ.eyJiIjoyfQ.c2ln.eHh4"}', '{"token":"abc"}',
    '{"token":"a.b.c"}', '{"token":"W10.W10.c2ln"}', '{"token":"eyJhIjoxfQ eyJiIjoyfQ c2ln"}',
    '"abc"', '"a.b.c"', '""', '"eyJhIjoxfQ.eyJiIjoyfQ.c2ln\\r\\nX-Evil: 1"', "12", "true" }

  it("client:user_token: BAD_RESPONSE for every value that is not a JWT, the body kept in res", function()
    local c = sb:client { retries = 0 }
    for _, body in ipairs(NOT_JWT) do
      sb:fault { path = "/token$", status = 200, body = body }
      local token, msg, code, res = c:user_token(uid)
      assert.is_nil(token, body)
      assert.equals("BAD_RESPONSE", code, body)
      assert.matches("^BAD_RESPONSE: unexpected response shape: no 'token' field with a JWT", msg)
      assert.equals(body, res.body)
    end
    sb:fault { path = "/token$", status = 200, body = '{"token":"eyJhIjoxfQ.eyJiIjoyfQ.c2ln"}' }
    assert.equals("eyJhIjoxfQ.eyJiIjoyfQ.c2ln", (c:user_token(uid)))
  end)

  it("get_jwt_token.lua: exit 1, BAD_RESPONSE on stderr and nothing on stdout, with or without --json", function()
    for i, body in ipairs(NOT_JWT) do
      local args = i % 2 == 0 and { "--json" } or {}
      sb:fault { path = "/token$", status = 200, body = body }
      local r = run.script("get_jwt_token", args, { env = run.env(sb, uid) })
      assert.equals(1, r.code, body .. "\n" .. r.stdout .. r.stderr)
      assert.equals("", r.stdout, body)
      assert.matches("^error: BAD_RESPONSE: ", r.stderr)
      assert.is_nil(r.stderr:gsub("\n", ""):find("%c"), body .. ": a control character in " .. r.stderr)
    end
  end)

  it("refuses an unknown token_shape", function()
    assert.has_error(function() sb:set { token_shape = "array" } end)
  end)
end)
