-- The C module's Lua surface, against the sandbox over real HTTP on loopback.
local Sandbox = require "sandbox"
local alloy = require "alloy"
local run = require "run"

local function closed_port()
  local socket = require "socket"
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

describe("alloy module", function()
  local sb, uid
  local messages = {} -- every failure message seen here, checked for the key at the end

  local function client(opts) return sb:client(opts) end

  -- Calls fn and records its failure message; returns the results unchanged.
  local function record(...)
    local msg = select(2, ...)
    if type(msg) == "string" then messages[#messages + 1] = msg end
    return ...
  end

  setup(function()
    sb = Sandbox.start()
  end)
  teardown(function()
    if sb then sb:stop() end
  end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "ada", fullName = "Ada Lovelace" }
  end)

  describe("module table", function()
    it("exposes its version, libcurl's version and the operations table", function()
      assert.matches("^%d+%.%d+%.%d+$", alloy.VERSION)
      assert.matches("^%d+%.%d+", alloy.curl_version)
      local idempotent = { COULDNT_CONNECT = "always", GOT_NOTHING = "always", SEND_ERROR = "always",
                           RECV_ERROR = "always", HTTP_429 = "always", HTTP_502 = "always", HTTP_503 = "always",
                           HTTP_504 = "always" }
      assert.same({ method = "GET", path = "/users/{userId}/token?userId={userId}", service = "embedded",
                    retried = idempotent }, alloy.operations.user_token)
    end)

    it("states each operation's retry rule as the wire follows it (what hints say)", function()
      -- a POST is sent again only when the server surely did nothing with it
      assert.same({ COULDNT_CONNECT = "always", HTTP_429 = "always", HTTP_503 = "with Retry-After" },
        alloy.operations.create_user.retried)
      -- an execute acts on a third party: not even a 503 with Retry-After, nor a 429 without it
      assert.same({ COULDNT_CONNECT = "always", HTTP_429 = "with Retry-After" },
        alloy.operations.execute_action.retried)
      for name, op in pairs(alloy.operations) do
        assert.is_nil(op.retried.HTTP_500, name)
        assert.is_nil(op.retried.OPERATION_TIMEDOUT, name) -- a timeout may have reached the server
      end
    end)

    it("loads libcurl when first needed, safely for exit and state close", function()
      for _ = 1, 8 do
        local _, err, code = run.lua_code('require "alloy"; os.exit(7)')
        assert.equals(7, code, err)
        _, err, code = run.lua_code('require "alloy"')
        assert.equals(0, code, err)
      end
      local out, err, code = run.lua_code('local a = require "alloy"; io.write(a.curl_version)')
      assert.equals(0, code, err)
      assert.equals(alloy.curl_version, out)
    end)

    it("creates no globals when loaded", function()
      local before = {}
      for k in pairs(_G) do before[k] = true end
      package.loaded.alloy = nil
      local again = require "alloy"
      assert.is_table(again)
      for k in pairs(_G) do assert.is_true(before[k], "new global " .. tostring(k)) end
    end)
  end)

  describe("alloy.new", function()
    it("requires api_key", function()
      assert.has_error(function() alloy.new {} end,
        "alloy.new: api_key must be at least 8 characters, without spaces, CR, LF or NUL")
    end)

    it("rejects unknown options and wrong types", function()
      assert.has_error(function() alloy.new { api_key = "key-0123456789", timeot = 3 } end,
        "alloy.new: unknown option 'timeot'")
      assert.has_error(function() alloy.new { api_key = "key-0123456789", timeout = "3" } end,
        "alloy.new: timeout must be a number of seconds from 0.001 to 86400")
      assert.has_error(function() alloy.new { api_key = "key-0123456789", debug = 1 } end,
        "alloy.new: debug must be a boolean")
      assert.has_error(function() alloy.new { api_key = "key-0123456789", base_url = "ftp://x" } end,
        "alloy.new: base_url must be an http:// or https:// URL: a host, an optional port (1-65535) and path;"
        .. " no user:password@, query (?), fragment (#), spaces or control characters")
    end)

    it("refuses keys too short to be redacted from messages", function()
      assert.has_error(function() alloy.new { api_key = "short" } end,
        "alloy.new: api_key must be at least 8 characters, without spaces, CR, LF or NUL")
    end)

    it("requires finite, positive timeouts", function()
      assert.has_error(function() alloy.new { api_key = "key-0123456789", timeout = 0 } end)
      assert.has_error(function() alloy.new { api_key = "key-0123456789", connect_timeout = -1 } end)
    end)

    it("never echoes a malformed key in its error", function()
      local bad = "secret-with\r\nnewline"
      local ok, err = pcall(alloy.new, { api_key = bad })
      assert.is_false(ok)
      assert.is_nil(err:find("secret", 1, true))
    end)

    it("prints without the key", function()
      local c = client()
      assert.equals("alloy.client (" .. sb.url .. ")", tostring(c))
      c:close()
      assert.equals("alloy.client (closed)", tostring(c))
    end)
  end)

  describe("user_token", function()
    it("returns a three-part JWT for the user and the response", function()
      local c = client()
      local token, res = c:user_token(uid)
      assert.is_string(token)
      assert.matches("^[%w_-]+%.[%w_-]+%.[%w_-]+$", token)
      assert.equals(200, res.status)
      assert.matches("json", res.headers["content-type"])
      assert.equals(token, res.json.token)
      assert.equals(1, res.attempts)
      local claims = assert(alloy.jwt_claims(token))
      assert.equals(uid, claims.userId)
      assert.equals(3600, claims.exp - claims.iat)
    end)

    it("sends the key as a Bearer token, the API version and Accept", function()
      local c = client()
      assert(c:user_token(uid))
      local req = sb:requests()[1]
      assert.equals("GET", req.method)
      assert.equals("/users/" .. uid .. "/token", req.path)
      assert.equals("Bearer " .. sb.api_key, req.headers.authorization)
      assert.equals("2025-09", req.headers["x-api-version"])
      assert.equals("application/json", req.headers.accept)
      assert.matches("^lua%-alloy/", req.headers["user-agent"])
    end)

    it("sends the user_agent option, none for false, and one a request sets instead", function()
      assert(client({ user_agent = "my-app/2.1" }):user_token(uid))
      assert(client({ user_agent = false }):user_token(uid))
      assert(client():request { service = "embedded", path = "/users/{id}/token", params = { id = uid },
        headers = { ["User-Agent"] = "per-request/1" } })
      local log = sb:requests()
      assert.equals("my-app/2.1", log[1].headers["user-agent"])
      assert.is_nil(log[2].headers["user-agent"])
      assert.equals("per-request/1", log[3].headers["user-agent"]) -- one value, not two
      assert.has_error(function() alloy.new { api_key = sb.api_key, user_agent = true } end,
        "alloy.new: user_agent must be a string without CR, LF or NUL, or false for none")
    end)

    it("keeps the raw header block and builds res.headers from it when first read", function()
      local _, res = client():user_token(uid)
      assert.matches("^HTTP/1%.1 200[^\r\n]*\r\n", res.raw_headers)
      assert.matches("\r\nContent%-Type: application/json", res.raw_headers)
      assert.is_nil(rawget(res, "headers"))
      local headers = res.headers
      assert.matches("^application/json", headers["content-type"])
      assert.equals(tostring(#res.body), headers["content-length"])
      assert.equals(headers, rawget(res, "headers"))
      assert.is_nil(res.no_such_field)
    end)

    it("can put the version in the path instead of a header", function()
      local c = client { api_version = "2024-03" }
      assert(c:user_token(uid, { version_in_path = true }))
      local req = sb:requests()[1]
      assert.equals("/2024-03/users/" .. uid .. "/token", req.path)
      assert.is_nil(req.headers["x-api-version"])
    end)

    it("percent-encodes the user id into one path segment", function()
      local c = client()
      local _, _, code = c:user_token("a b%c&d=e;f")
      assert.equals("HTTP_404", code)
      assert.equals("/users/a%20b%25c%26d%3De%3Bf/token", sb:requests()[1].path)
      c:user_token("..x")
      assert.equals("/users/..x/token", sb:requests()[2].path)
    end)

    it("rejects ids with CR, LF or NUL, '/', '?' or '#', and dot segments, before sending", function()
      local c = client()
      for _, id in ipairs { "a\r\nb", "a\0b", "", ".", "..", "a/b", "../x", "a?b", "a#b", "%2F\27" } do
        local token, msg, code = record(c:user_token(id))
        assert.is_nil(token)
        assert.equals("INVALID_ARGUMENT", code)
        assert.matches("^INVALID_ARGUMENT: path parameter 'userId'", msg)
      end
      assert.equals(0, #sb:requests())
    end)

    it("accepts a username where the API does", function()
      local token = client():user_token("ada")
      assert.equals(uid, alloy.jwt_claims(token).userId)
    end)
  end)

  describe("failures", function()
    it("HTTP_401 with the server's message for a wrong key", function()
      local c = client { api_key = "wrong-key-0123456789abcdef" }
      local token, msg, code, res = record(c:user_token(uid))
      assert.is_nil(token)
      assert.equals("HTTP_401", code)
      assert.equals(401, res.status)
      assert.matches("^HTTP_401: .+ %(GET /users/" .. uid .. "/token%)$", msg)
    end)

    it("HTTP_404 for an unknown user", function()
      local _, msg, code, res = record(client():user_token("5f0000000000000000000000"))
      assert.equals("HTTP_404", code)
      assert.equals(404, res.status)
      assert.matches("^HTTP_404: User not found", msg)
    end)

    it("HTTP_400 carries error.message from the body", function()
      local _, msg, code = record(client():create_credential("notion",
        { userId = "not-an-id", authenticationType = "oauth2", redirectUri = "http://localhost:3000/cb" }))
      assert.equals("HTTP_400", code)
      assert.matches("userId must be a valid ID", msg, 1, true)
    end)

    it("HTTP_500 from an injected fault", function()
      sb:fault { path = "/token$", status = 500, body = '{"error":"boom"}' }
      local _, msg, code = record(client { retries = 0 }:user_token(uid))
      assert.equals("HTTP_500", code)
      assert.matches("^HTTP_500: boom %(GET ", msg)
    end)

    it("COULDNT_CONNECT for a closed port", function()
      local url = "http://127.0.0.1:" .. closed_port()
      local c = client { base_url = url, embedded_url = url, retries = 1 }
      local token, msg, code, res = record(c:user_token(uid))
      assert.is_nil(token)
      assert.equals("COULDNT_CONNECT", code)
      assert.is_nil(res)
      assert.matches("after 2 attempts$", msg)
    end)

    it("OPERATION_TIMEDOUT when the server is too slow", function()
      sb:fault { path = "/token$", delay = 2 }
      local _, msg, code = record(client { timeout = 0.3, retries = 0 }:user_token(uid))
      assert.equals("OPERATION_TIMEDOUT", code)
      assert.matches("^OPERATION_TIMEDOUT: ", msg)
    end)

    it("OPERATION_TIMEDOUT when the body stalls after the headers", function()
      sb:fault { path = "/token$", stall = 2 }
      local _, _, code = record(client { timeout = 0.5, retries = 0 }:user_token(uid))
      assert.equals("OPERATION_TIMEDOUT", code)
    end)

    it("JSON_DECODE with an excerpt for a malformed body", function()
      sb:fault { path = "/token$", status = 200, body = "<html>not json</html>" }
      local _, msg, code, res = record(client():user_token(uid))
      assert.equals("JSON_DECODE", code)
      assert.matches("body starts: <html>not json", msg, 1, true)
      assert.equals("<html>not json</html>", res.body)
    end)

    it("BAD_RESPONSE when the token field is missing", function()
      sb:fault { path = "/token$", status = 200, body = '{"jwt":"x"}' }
      local _, msg, code = record(client():user_token(uid))
      assert.equals("BAD_RESPONSE", code)
      assert.matches("no 'token' field", msg, 1, true)
    end)

    it("GOT_NOTHING when the connection drops, after retrying", function()
      sb:fault { path = "/token$", drop = true, times = 5 }
      local _, msg, code = record(client { retries = 2 }:user_token(uid))
      assert.equals("GOT_NOTHING", code)
      assert.matches("after 3 attempts$", msg)
    end)

    it("BODY_TOO_LARGE past max_body", function()
      sb:fault { path = "/token$", status = 200, huge = 200000 }
      local _, msg, code = record(client { max_body = 65536 }:user_token(uid))
      assert.equals("BODY_TOO_LARGE", code)
      assert.matches("^BODY_TOO_LARGE: ", msg)
    end)

    it("INVALID_ARGUMENT for header values with CR or LF", function()
      local res, msg, code = record(client():request { path = "/users", headers = { ["x-note"] = "a\nb" } })
      assert.is_nil(res)
      assert.equals("INVALID_ARGUMENT", code)
      assert.matches("header 'x-note'", msg, 1, true)
      assert.equals(0, #sb:requests())
    end)

    it("never includes the API key in any failure message", function()
      assert.is_true(#messages > 10)
      for _, m in ipairs(messages) do
        assert.is_nil(m:find(sb.api_key, 1, true), m)
        assert.is_nil(m:find("\n", 1, true), "one line: " .. m)
      end
    end)
  end)

  describe("retries", function()
    it("retries a 503 honouring Retry-After, then succeeds", function()
      sb:fault { path = "/token$", status = 503, headers = { ["Retry-After"] = "0" } }
      local token, res = client():user_token(uid)
      assert.is_string(token)
      assert.equals(2, res.attempts)
      assert.equals(2, #sb:requests())
    end)

    it("does not retry a POST after a 502", function()
      sb:fault { path = "^/users$", method = "POST", status = 502 }
      local _, _, code, res = client():create_user { username = "grace" }
      assert.equals("HTTP_502", code)
      assert.equals(1, res.attempts)
    end)

    it("retries a POST on 429", function()
      sb:fault { path = "^/users$", method = "POST", status = 429, headers = { ["Retry-After"] = "0" } }
      local body, res = client():create_user { username = "grace" }
      assert.matches("^%x+$", body.userId)
      assert.equals(2, res.attempts)
    end)

    it("makes one attempt with retries = 0", function()
      sb:fault { path = "/token$", status = 503, times = 3 }
      local _, msg, _, res = client { retries = 0 }:user_token(uid)
      assert.equals(1, res.attempts)
      assert.is_nil(msg:find("attempts", 1, true))
    end)
  end)

  describe("request", function()
    it("sends JSON bodies, queries and extra headers", function()
      local c = client()
      local res = assert(c:request { method = "POST", path = "/users", json = { username = "lin" },
        query = { b = "2", a = "x y" }, headers = { ["x-trace"] = "t1" } })
      assert.equals(200, res.status)
      local req = sb:requests()[1]
      assert.equals("POST", req.method)
      assert.equals("a=x%20y&b=2", req.query)
      assert.equals("application/json", req.headers["content-type"])
      assert.equals("t1", req.headers["x-trace"])
    end)

    it("raises on misuse", function()
      local c = client()
      assert.has_error(function() c:request { path = "/x", bogus = 1 } end,
        "client:request: unknown request field 'bogus'")
      assert.has_error(function() c:request { path = "x" } end)
      assert.has_error(function() c:request { path = "/x", headers = { Authorization = "Bearer y" } } end,
        "alloy: the Authorization header is set by the client")
      assert.has_error(function() c:request { path = "/x", json = { f = print } } end)
      assert.has_error(function() c:user_token() end, "client:user_token: missing argument 'userId'")
    end)

    it("reuses one connection across requests", function()
      local c = client()
      for _ = 1, 5 do assert(c:user_token(uid)) end
      local conns = {}
      for _, r in ipairs(sb:requests()) do conns[r.connection] = true end
      local n = 0
      for _ in pairs(conns) do n = n + 1 end
      assert.equals(1, n)
    end)
  end)

  describe("named operations", function()
    it("create, get, list and delete users", function()
      local c = client()
      local created = assert(c:create_user { username = "grace", fullName = "Grace Hopper" })
      local user = assert(c:get_user(created.userId))
      assert.equals("grace", user.username)
      local list = assert(c:list_users())
      assert.equals(2, #list)
      assert.same({ success = true }, (assert(c:delete_user(created.userId))))
      local _, _, code = c:get_user(created.userId)
      assert.equals("HTTP_404", code)
    end)

    it("lists credentials as an array", function()
      local list = assert(client():list_credentials(uid))
      assert.same({}, list)
    end)
  end)

  describe("batch", function()
    it("returns results in input order, failures in place", function()
      local other = sb:create_user { username = "bob" }
      local c = client()
      local reqs = {
        { op = "user_token", args = { uid } },
        { op = "user_token", args = { "5f0000000000000000000000" } },
        { op = "user_token", args = { "a\nb" } },
        { path = "/users" },
        { op = "user_token", args = { other } },
      }
      local results, failures = c:batch(reqs, { concurrency = 3 })
      assert.equals(5, #results)
      assert.equals(2, failures)
      assert.is_true(results[1].ok)
      assert.equals(uid, alloy.jwt_claims(results[1].value).userId)
      assert.is_false(results[2].ok)
      assert.equals("HTTP_404", results[2].code)
      assert.equals(404, results[2].res.status)
      assert.equals("INVALID_ARGUMENT", results[3].code)
      assert.equals(200, results[4].status)
      assert.equals(other, alloy.jwt_claims(results[5].value).userId)
    end)

    it("handles many requests with retries inside the batch", function()
      sb:fault { path = "/token$", status = 503, headers = { ["Retry-After"] = "0" }, times = 3 }
      local reqs = {}
      for i = 1, 60 do reqs[i] = { op = "user_token", args = { uid } } end
      local results, failures = client():batch(reqs, { concurrency = 8 })
      assert.equals(0, failures)
      local retried = 0
      for _, r in ipairs(results) do
        assert.is_string(r.value)
        if r.attempts > 1 then retried = retried + 1 end
      end
      assert.equals(3, retried)
    end)

    it("rejects bad options", function()
      assert.has_error(function() client():batch({}, { concurrency = 0 }) end)
      assert.has_error(function() client():batch({}, { concurency = 4 }) end,
        "client:batch: unknown option 'concurency'")
      assert.has_error(function() client():batch({}, { on_result = "print" }) end,
        "client:batch: on_result must be a function")
      assert.same({}, (client():batch({})))
    end)

    it("hands each result to on_result as it arrives and keeps none", function()
      local reqs = {}
      for i = 1, 40 do reqs[i] = { op = "user_token", args = { uid } } end
      reqs[7] = { op = "user_token", args = { "5f0000000000000000000000" } }
      reqs[9] = { op = "user_token", args = { "a\nb" } }
      local seen, count = {}, 0
      local ret, failures = client():batch(reqs, { concurrency = 8, on_result = function(i, r)
        assert.is_nil(seen[i])
        seen[i] = r
        count = count + 1
      end })
      assert.is_true(ret)
      assert.equals(2, failures)
      assert.equals(40, count)
      assert.equals("HTTP_404", seen[7].code)
      assert.equals("INVALID_ARGUMENT", seen[9].code)
      assert.is_true(seen[40].ok)
      assert.equals(uid, alloy.jwt_claims(seen[40].value).userId)
    end)

    it("builds each request when it is sent: a change made meanwhile counts", function()
      local reqs = {}
      for i = 1, 30 do reqs[i] = { op = "user_token", args = { uid } } end
      local c = client()
      local results, failures = c:batch(reqs, { concurrency = 2, on_result = function(i)
        if i == 1 then reqs[29].args[1] = "a\nb" end
      end })
      assert.is_true(results)
      assert.equals(1, failures)
      local ok, err = pcall(c.batch, c, reqs, { concurrency = 2, on_result = function(i)
        if i == 1 then reqs[25] = { op = "nope" } end
      end })
      assert.is_false(ok)
      assert.matches("client:batch: request 25: unknown op", err)
      reqs[25], reqs[29] = reqs[1], reqs[1]
      local again, none = c:batch(reqs, { concurrency = 4 })
      assert.equals(0, none)
      assert.equals(30, #again)
    end)

    it("stops when on_result raises, and the client still works", function()
      local reqs = {}
      for i = 1, 30 do reqs[i] = { op = "user_token", args = { uid } } end
      local c = client()
      local calls = 0
      local ok, err = pcall(c.batch, c, reqs, { concurrency = 4, on_result = function()
        calls = calls + 1
        if calls == 3 then error("stop here", 0) end
      end })
      assert.is_false(ok)
      assert.equals("stop here", err)
      assert.equals(3, calls)
      local results, failures = c:batch(reqs, { concurrency = 4 })
      assert.equals(0, failures)
      assert.equals(30, #results)
      assert.is_string((c:user_token(uid)))
    end)
  end)

  describe("custom transports", function()
    it("sends through a transport function instead of libcurl", function()
      local seen
      local c = client { transport = function(req)
        seen = req
        return { status = 200, headers = { ["Content-Type"] = "application/json", ["X-Many"] = { "a", "b" } },
                 body = '{"token":"eyJhIjoxfQ.eyJiIjoyfQ.c2ln"}' }
      end }
      local token, res = c:user_token("u 1")
      assert.equals("eyJhIjoxfQ.eyJiIjoyfQ.c2ln", token)
      assert.equals("a, b", res.headers["x-many"])
      assert.equals("GET", seen.method)
      assert.equals(sb.embedded_url .. "/users/u%201/token?userId=u%201", seen.url)
      local names = {}
      for _, h in ipairs(seen.headers) do names[h[1]:lower()] = h[2] end
      assert.equals("Bearer " .. sb.api_key, names.authorization)
      assert.equals("2025-09", names["x-api-version"])
      assert.equals(0, #sb:requests())
    end)

    it("reports a failing transport as TRANSPORT_ERROR", function()
      local c = client { transport = function() return nil, "upstream unreachable" end }
      local _, msg, code = c:user_token(uid)
      assert.equals("TRANSPORT_ERROR", code)
      assert.equals("TRANSPORT_ERROR: upstream unreachable (GET /users/" .. uid .. "/token)", msg)
      local c2 = client { transport = function() error("boom") end }
      assert.equals("TRANSPORT_ERROR", select(3, c2:user_token(uid)))
    end)

    it("splits a call into prepare and finish for hosts that send it themselves", function()
      local c = client()
      local req = assert(c:prepare("user_token", uid))
      assert.equals("user_token", req.op)
      assert.equals("/users/" .. uid .. "/token", req.path)
      -- send it with another HTTP client, as a yielding host would
      local http, ltn12 = require "socket.http", require "ltn12"
      local headers, out = {}, {}
      for _, h in ipairs(req.headers) do headers[h[1]] = h[2] end
      local _, status, resp_headers = http.request { url = req.url, method = req.method, headers = headers,
        sink = ltn12.sink.table(out) }
      local token, res = c:finish(req, { status = status, headers = resp_headers, body = table.concat(out) })
      assert.equals(uid, alloy.jwt_claims(token).userId)
      assert.equals(200, res.status)
      local _, msg, code = c:finish(req, nil, "closed")
      assert.equals("TRANSPORT_ERROR", code)
      assert.matches("^TRANSPORT_ERROR: closed", msg)
      local bad, _, bad_code = c:prepare("user_token", "a\nb")
      assert.is_nil(bad)
      assert.equals("INVALID_ARGUMENT", bad_code)
      assert.has_error(function() c:prepare("no_such_op") end, "client:prepare: unknown operation 'no_such_op'")
    end)
  end)

  describe("lifecycle", function()
    it("closes idempotently and raises on use after close", function()
      local c = client()
      c:close()
      c:close()
      assert.has_error(function() c:user_token(uid) end, "alloy: client is closed")
      assert.has_error(function() c:batch({}) end, "alloy: client is closed")
    end)

    it("is collected without close, between calls", function()
      for _ = 1, 20 do
        local c = client()
        assert(c:user_token(uid))
        collectgarbage("step", 0)
      end
      collectgarbage()
      collectgarbage()
    end)

    if _VERSION == "Lua 5.4" then
      it("closes a to-be-closed variable", function()
        local f = assert(load([[
          local alloy, opts = ...
          local c <close> = alloy.new(opts)
          return c
        ]]))
        local c = f(alloy, { api_key = sb.api_key, base_url = sb.url })
        assert.equals("alloy.client (closed)", tostring(c))
      end)
    end
  end)

  describe("jwt_claims", function()
    it("reports malformed tokens", function()
      for _, bad in ipairs { "abc", "a.b", "a.b.c.d", "a.!!!.c", "a." .. "bm90IGpzb24" .. ".c" } do
        local claims, msg, code = alloy.jwt_claims(bad)
        assert.is_nil(claims)
        assert.equals("JWT_DECODE", code)
        assert.matches("^JWT_DECODE: ", msg)
      end
    end)
  end)
end)
