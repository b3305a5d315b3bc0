-- alloy.hints: advice chosen by failure code, HTTP status and operation (never by the
-- server's text), checked against every code alloy.so can produce.
local hints = require "alloy.hints"
local alloy = require "alloy"

-- The hint (and next command) for a failure of `op` with `code`.
local function hint(code, op, message, view, res)
  return hints.for_failure({ code = code, op = op, message = message or code, res = res }, view)
end

-- A view as a command line gives it: its settings, their values, commands to paste.
local function cli_view(values)
  return {
    setting = function(field)
      return ({ user_id = "ALLOY_USER_ID / --user", connection_id = "CONNECTION_ID / --credential" })[field]
        or require("alloy.config").VARS[1].var:gsub("API_KEY", field:upper())
    end,
    value = function(field) return values[field] end,
    connector = values.connector, action = values.action,
    command = function(...) return "alloy " .. table.concat({ ... }, " ") end,
  }
end

describe("alloy.hints", function()
  it("maps failure codes to advice that names what to check", function()
    assert.matches("ALLOY_API_KEY", hint("HTTP_401", "user_token"))
    assert.matches("ALLOY_USER_ID", hint("HTTP_404", "user_token"))
    assert.matches("connectivity", hint("COULDNT_CONNECT", "list_users"))
    assert.matches("proxy", hint("COULDNT_RESOLVE_HOST", "list_users"))
    assert.matches("ALLOY_TIMEOUT", hint("OPERATION_TIMEDOUT", "list_users"))
    assert.matches("CA bundle", hint("SSL_CACERT", "list_users"))
    assert.matches("try again later", hint("HTTP_500", "list_users"))
    assert.matches("known variants: alloy token %-%-probe$", hint("JSON_DECODE", "user_token", nil, cli_view{}))
    -- a host without commands gets the advice alone
    assert.matches("ALLOY_API_VERSION$", hint("JSON_DECODE", "user_token"))
  end)

  it("never reads the server's text: the same code and operation get the same hint", function()
    for _, code in ipairs({ "HTTP_400", "HTTP_403", "HTTP_404", "HTTP_409", "HTTP_422" }) do
      for _, op in ipairs({ "user_token", "execute_action", "create_user", "get_action", "delete_credential" }) do
        local a = { hint(code, op, code .. ": User not found") }
        local b = { hint(code, op, code .. ": connector unknown; credential must be a valid ID") }
        assert.same(a, b, code .. " " .. op)
      end
    end
  end)

  it("chooses by operation: what a 404, 409 or 400 means depends on what was asked", function()
    local view = cli_view{ user_id = "nobody", connection_id = "66fb066c3793749b64c214bc", connector = "slack",
                           action = "chat_postMessage" }
    -- an execute that the API refuses for its user or connection names both, and lists them
    local h = hint("HTTP_404", "execute_action", nil, view)
    assert.equal("the user or the connection was not found: check ALLOY_USER_ID / --user (nobody) and CONNECTION_ID"
      .. " / --credential (66fb066c3793749b64c214bc) (the user's slack connections: alloy connections slack)", h)
    -- the token of a user that does not exist: the user, and where to see the users
    h = hint("HTTP_404", "user_token", nil, view)
    assert.matches("^check ALLOY_USER_ID / %-%-user %(nobody%): the user must exist for this API key", h)
    assert.matches("; the users: alloy users list$", h)
    -- a taken username
    assert.matches("^a user with this username exists already", hint("HTTP_409", "create_user"))
    -- a username where only ids go
    assert.matches("24%-hex ObjectIds", hint("HTTP_400", "create_credential", nil, view))
    -- an execute the connector refused: what the action takes
    view = cli_view{ user_id = "68c3229752345278627ae373", connector = "slack", action = "chat_postMessage" }
    assert.matches("what the action takes: alloy action slack chat_postMessage", hint("HTTP_400", "execute_action",
      nil, view), 1, true)
  end)

  it("states the retry rule of alloy.operations for the operation that failed", function()
    -- a GET is sent again on 503: the attempts are counted
    assert.matches("it was sent 3 times; ALLOY_RETRIES sets the retries",
      hint("HTTP_503", "list_users", nil, nil, { attempts = 3 }), 1, true)
    -- an execute is not: it may have acted
    assert.matches("it is not sent again automatically: it may have acted", hint("HTTP_503", "execute_action"), 1, true)
    -- a POST is sent again on 503 only when the server says when
    assert.matches("only when the API answers with Retry-After", hint("HTTP_503", "create_user"), 1, true)
    assert.matches("it is not sent again automatically)", hint("HTTP_500", "list_users"), 1, true)
  end)

  it("explains every code alloy.so can produce, or lists it as deliberately generic (not both)", function()
    local n = 0
    for code in pairs(alloy.codes) do
      n = n + 1
      local specific, generic = hints.BY_CODE[code] ~= nil, hints.GENERIC[code] == true
      assert.is_true(specific ~= generic, code .. (specific and " is both specific and generic" or " has no hint"))
    end
    assert.is_true(n > 10)
  end)

  it("mentions only codes alloy.so can produce", function()
    local mentioned = {}
    for code in pairs(hints.BY_CODE) do mentioned[#mentioned + 1] = code end
    for code in pairs(hints.GENERIC) do mentioned[#mentioned + 1] = code end
    for _, code in ipairs(mentioned) do
      local family = code:match("^HTTP_%d+$") and "HTTP_<status>" or code:match("^CURL_%d+$") and "CURL_<n>"
      assert.is_string(alloy.codes[family or code], code .. " is not in alloy.codes")
    end
    assert.is_nil(hints.BY_CODE.PEER_FAILED_VERIFICATION)
  end)

  it("gives a family's code without an entry of its own the family's hint, else the generic one", function()
    assert.matches("try again later", hint("HTTP_503", "list_users"))
    assert.matches("unexpected HTTP status", hint("HTTP_418", "list_users"))
    assert.equal("run again with --verbose to see the HTTP exchange", hint("CURL_99", "list_users"))
    assert.equal("run again with --verbose to see the HTTP exchange", hints.for_failure({}))
    assert.matches("CA bundle", hint("SSL_CACERT_BADFILE", "list_users"))
    assert.matches("proxy", hint("PROXY", "list_users"))
  end)

  it("tells a host name mismatch from an untrusted CA (libcurl's own text), and names what to fix", function()
    local name_msgs = {
      "SSL_CACERT: SSL: no alternative certificate subject name matches target host name 'x.test' (GET /users)",
      "SSL_CACERT: SSL: certificate subject name 'a.test' does not match target host name 'x.test' (GET /users)",
    }
    local view = cli_view{ base_url = "https://x.test" }
    for _, msg in ipairs(name_msgs) do
      local h = hint("SSL_CACERT", "list_users", msg, view)
      assert.matches("not for this host name", h, 1, true)
      assert.matches("(https://x.test)", h, 1, true)
      assert.is_nil(h:find("point ALLOY_CA_FILE", 1, true))
    end
    local h = hint("SSL_CACERT", "list_users",
      "SSL_CACERT: SSL certificate problem: unable to get local issuer certificate")
    assert.matches("point ALLOY_CA_FILE", h, 1, true)
  end)

  it("says what an id may hold", function()
    assert.matches("without control characters, '/', '?' or '#'", hint("INVALID_ARGUMENT", "get_user"), 1, true)
  end)

  it("explains a redirect and a header over libcurl's cap", function()
    assert.matches("redirect, which is not followed", hint("HTTP_302", "list_users"), 1, true)
    assert.matches("redirect, which is not followed", hint("HTTP_308", "list_users"), 1, true)
    assert.matches("did not answer like the Alloy API", hint("HEADERS_TOO_LARGE", "list_users"), 1, true)
  end)

  describe("from a script, against a TLS sandbox", function()
    local Sandbox = require "sandbox"
    local run = require "run"
    local sb, uid
    setup(function()
      sb = Sandbox.start { tls = true }
      uid = sb:create_user { username = "tls-hint" }
    end)
    teardown(function() if sb then sb:stop() end end)

    it("a wrong host name gets the host name hint, an unknown CA the CA-file hint", function()
      local port = sb.url:match(":(%d+)$")
      local tried = {}
      for _, host in ipairs(run.other_loopback_names()) do
        local url = "https://" .. host .. ":" .. port
        local r = run.script("get_jwt_token", {}, { env = run.env(sb, uid, { ALLOY_EMBEDDED_URL = url }) })
        tried[#tried + 1] = host .. ": " .. r.stderr
        if r.stderr:find("SSL_", 1, true) then
          assert.equals(1, r.code)
          assert.matches("^error: SSL_CACERT: [^\n]*name[^\n]*\n"
            .. "hint: TLS failed: the server's certificate is not for this host name", r.stderr)
          assert.is_nil(r.stderr:find("ALLOY_CA_FILE", 1, true), r.stderr)
          local other = run.script("get_jwt_token", {}, { env = run.env(sb, uid, { ALLOY_CA_FILE = false }) })
          assert.equals(1, other.code)
          assert.matches("\nhint: TLS failed: point ALLOY_CA_FILE", other.stderr)
          return
        end
      end
      error("no other name reaches 127.0.0.1 here:\n" .. table.concat(tried, "\n"))
    end)
  end)
end)
