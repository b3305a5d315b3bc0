-- Every usual success shape of a call is a success, and an answer that says it did not do it
-- is a failure: a delete that answers 204 or an empty 200, and a 200 {"success": false} on the
-- calls whose documented answer carries "success" (deletes, execute, creating a connection).
-- Through the Lua API and the commands as a user runs them, against the sandbox.
local Sandbox = require "sandbox"
local run = require "run"
local cjson = require "cjson"

local SECRET = "acuity-SECRET-0a1b2c3d4e5f"

describe("outcomes", function()
  local sb, uid, dir, cred
  Sandbox.per_test_connection("ada", "slack", function(s, u, c, d) sb, uid, cred, dir = s, u, c, d end)

  local function alloy(args, o)
    o = o or {}
    o.extra = { CONNECTION_ID = cred }
    return run.alloy(sb, uid, dir, args, o)
  end

  local function credential_ids()
    local out = {}
    for _, c in ipairs(sb:state().credentials) do out[#out + 1] = c.credentialId end
    return out
  end

  local CRED_PATH = function() return "^/users/" .. uid .. "/credentials/" .. cred .. "$" end

  describe("a delete that answers 204 or an empty 200", function()
    it("is done: the Lua API returns true and the response", function()
      local c = sb:client()
      for _, f in ipairs { { status = 204 }, { status = 200, body = "" }, { status = 200, body = " \r\n" } } do
        f.path, f.method = CRED_PATH(), "DELETE"
        sb:fault(f)
        local v, res = c:delete_credential(uid, cred)
        assert.is_true(v, tostring(res))
        assert.equals(f.status, res.status)
      end
      -- a documented answer is the decoded body, as before
      local other = sb:create_credential { userId = uid, connector = "notion" }.credentialId
      assert.same({ success = true }, (c:delete_credential(uid, other)))
    end)

    it("alloy disconnect and alloy users delete report it done (exit 0, the id on stdout)", function()
      sb:fault { path = CRED_PATH(), method = "DELETE", status = 204 }
      local r = alloy { "disconnect", cred, "--yes" }
      assert.equals(0, r.code, r.stderr)
      assert.equals(cred .. "\n", r.stdout)
      assert.matches("Deleted connection " .. cred, r.stderr, 1, true)

      local bob = sb:create_user { username = "bob" }
      sb:fault { path = "^/users/" .. bob .. "$", method = "DELETE", status = 200, body = "" }
      r = alloy { "users", "delete", bob, "--yes" }
      assert.equals(0, r.code, r.stderr)
      assert.equals(bob .. "\n", r.stdout)
    end)

    it("alloy connect --replace keeps the new connection's id on stdout", function()
      local old = sb:create_credential { userId = uid, connector = "airtable", authenticationType = "bearer" }
      sb:fault { path = "^/users/" .. uid .. "/credentials/" .. old.credentialId .. "$", method = "DELETE",
                 status = 204 }
      local r = alloy({ "connect", "airtable", "--replace" }, { stdin = SECRET .. "\n", secrets = { SECRET } })
      assert.equals(0, r.code, r.stderr)
      local new
      for _, id in ipairs(credential_ids()) do
        if id ~= cred and id ~= old.credentialId then new = id end
      end
      assert.equals(new .. "\n", r.stdout)
      assert.matches("Replaced: deleted the old connection " .. old.credentialId, r.stderr, 1, true)
    end)
  end)

  describe('a 200 {"success": false}', function()
    it("is UNSUCCESSFUL through the Lua API, with the server's message and the response", function()
      local c = sb:client()
      sb:fault { success = false, message = "Credential is in use", path = "/credentials/" }
      local v, msg, code, res = c:delete_credential(uid, cred)
      assert.is_nil(v)
      assert.equals("UNSUCCESSFUL", code)
      assert.equals("UNSUCCESSFUL: Credential is in use (DELETE /users/" .. uid .. "/credentials/" .. cred .. ")", msg)
      assert.equals(200, res.status)
      assert.is_false(res.json.success)
      assert.is_string(require("alloy").codes.UNSUCCESSFUL)
      -- without a message, it says what it saw
      local bob = sb:create_user { username = "bob" }
      sb:fault { path = "^/users/" .. bob .. "$", method = "DELETE", status = 200, body = { success = false } }
      v, msg, code = c:delete_user(bob)
      assert.is_nil(v)
      assert.equals("UNSUCCESSFUL", code)
      assert.matches("^UNSUCCESSFUL: the API answered success: false %(DELETE /users/", msg)
      sb:clear_faults()
      -- a raw request is the response as served
      sb:fault { success = false, path = "/credentials/" }
      res = assert(c:request { method = "DELETE", path = "/users/" .. uid .. "/credentials/" .. cred })
      assert.is_false(res.json.success)
    end)

    it("alloy disconnect: exit 1, nothing on stdout, the connection still there", function()
      sb:fault { success = false, message = "Credential is in use", path = "/credentials/" }
      local r = alloy { "disconnect", cred, "--yes" }
      assert.equals(1, r.code)
      assert.equals("", r.stdout)
      assert.matches("\nerror: UNSUCCESSFUL: Credential is in use (DELETE /users/" .. uid .. "/credentials/"
        .. cred .. ")\nhint: the API answered that it did not do it", r.stderr, 1, true)
      assert.not_matches("Deleted", r.stderr)
      assert.same({ cred }, credential_ids())
    end)

    it("alloy run: exit 1; with --each, that line fails and the others run", function()
      sb:fault { success = false, message = "channel_not_found", match = "C404" }
      local r = alloy { "run", "slack", "chat_postMessage", "--body", '{"channel":"C404","text":"hi"}' }
      assert.equals(1, r.code)
      assert.equals("", r.stdout)
      assert.matches("error: UNSUCCESSFUL: channel_not_found (POST /connectors/slack/actions/chat_postMessage/execute)",
        r.stderr, 1, true)
      assert.matches("hint: the action did not run as asked", r.stderr, 1, true)

      sb:fault { success = false, message = "channel_not_found", match = "C404" }
      r = alloy({ "run", "slack", "chat_postMessage", "--each", "-" },
        { stdin = '{"channel":"C1","text":"a"}\n{"channel":"C404","text":"b"}\n{"channel":"C3","text":"c"}\n' })
      assert.equals(1, r.code)
      local lines = {}
      for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = cjson.decode(l) end
      assert.equals(3, #lines)
      assert.is_true(lines[1].ok)
      assert.is_false(lines[2].ok)
      assert.equals("UNSUCCESSFUL", lines[2].error.code)
      assert.is_true(lines[3].ok)
    end)

    it("alloy connect (an API-key connector): exit 1, no id printed", function()
      sb:fault { path = "^/connectors/airtable/credentials$", method = "POST", status = 200,
                 body = { success = false, message = "Invalid token" } }
      local r = alloy({ "connect", "airtable" }, { stdin = SECRET .. "\n", secrets = { SECRET } })
      assert.equals(1, r.code)
      assert.equals("", r.stdout)
      assert.matches("error: UNSUCCESSFUL: Invalid token (POST /connectors/airtable/credentials)", r.stderr, 1, true)
      assert.same({ cred }, credential_ids())
    end)
  end)
end)
