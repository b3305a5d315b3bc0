-- Retries, limits and hostile input, against the sandbox (extends alloy_spec.lua, which has
-- the basic failure codes). Timings are never asserted tightly: an upper bound only guards
-- against a hang.
local Sandbox = require "sandbox"
local socket = require "socket"


local run_lua = require("run").lua_code

local function closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

local function http_date(t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end

-- Decodes %XX escapes (what the server does to a path segment).
local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

describe("reliability", function()
  local sb, uid

  local function client(opts) return sb:client(opts) end

  local function timed(fn)
    local t0 = socket.gettime()
    local r = table.pack(fn())
    return socket.gettime() - t0, table.unpack(r, 1, r.n)
  end

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "rel" }
  end)

  describe("Retry-After", function()
    it("honours an HTTP date", function()
      sb:fault { path = "/token$", status = 503, headers = { ["Retry-After"] = http_date(os.time() + 1) } }
      local dt, token, res = timed(function() return client():user_token(uid) end)
      assert.is_string(token)
      assert.equals(2, res.attempts)
      assert.is_true(dt < 5, "took " .. dt)
    end)

    it("retries at once for an HTTP date in the past", function()
      sb:fault { path = "/token$", status = 503, headers = { ["Retry-After"] = http_date(os.time() - 3600) } }
      local dt, token, res = timed(function() return client():user_token(uid) end)
      assert.is_string(token)
      assert.equals(2, res.attempts)
      assert.is_true(dt < 1, "took " .. dt)
    end)

    it("caps delta-seconds above retry_max_wait", function()
      sb:fault { path = "/token$", status = 503, headers = { ["Retry-After"] = "3600" }, times = 2 }
      local dt, token, res = timed(function() return client { retry_max_wait = 0.2 }:user_token(uid) end)
      assert.is_string(token)
      assert.equals(3, res.attempts)
      assert.is_true(dt < 5, "took " .. dt)
    end)

    it("caps an HTTP date far ahead", function()
      sb:fault { path = "/token$", status = 429, headers = { ["Retry-After"] = http_date(os.time() + 86400) } }
      local dt, token, res = timed(function() return client { retry_max_wait = 0.2 }:user_token(uid) end)
      assert.is_string(token)
      assert.equals(2, res.attempts)
      assert.is_true(dt < 5, "took " .. dt)
    end)

    it("falls back to the backoff for a value it cannot read", function()
      for _, bad in ipairs { "soon", "-1", "1.5e9", "" } do
        sb:reset()
        uid = sb:create_user { username = "rel" }
        sb:fault { path = "/token$", status = 503, headers = { ["Retry-After"] = bad } }
        local dt, token, res = timed(function() return client { retry_max_wait = 1 }:user_token(uid) end)
        assert.is_string(token, bad)
        assert.equals(2, res.attempts)
        assert.is_true(dt < 5, bad .. " took " .. dt)
      end
    end)

    it("waits retry_max_wait for delta-seconds too large to read, not zero", function()
      sb:fault { path = "/token$", status = 503, headers = { ["Retry-After"] = string.rep("9", 30) } }
      -- a lower bound only: the wait is at least what was decided
      local dt, token, res = timed(function() return client { retry_max_wait = 0.6, backoff = 0 }:user_token(uid) end)
      assert.is_string(token)
      assert.equals(2, res.attempts)
      assert.is_true(dt >= 0.6, "took " .. dt)
    end)

    it("a number with a tail is junk: no licence to retry a POST", function()
      for _, bad in ipairs { "5s", "1.5", "0x10", "2 seconds" } do
        sb:fault { path = "^/users$", method = "POST", status = 503, headers = { ["Retry-After"] = bad } }
        local _, _, code, res = client { retry_max_wait = 0 }:create_user { username = "p503" }
        assert.equals("HTTP_503", code, bad)
        assert.equals(1, res.attempts, bad)
        sb:clear_faults()
      end
      sb:fault { path = "^/users$", method = "POST", status = 503, headers = { ["Retry-After"] = "  1 " } }
      local body, res = client { retry_max_wait = 0 }:create_user { username = "p503" }
      assert.matches("^%x+$", body.userId)
      assert.equals(2, res.attempts)
    end)

    it("retry_max_wait = 0 retries without waiting", function()
      sb:fault { path = "/token$", status = 503, headers = { ["Retry-After"] = "30" }, times = 2 }
      local dt, token, res = timed(function() return client { retry_max_wait = 0 }:user_token(uid) end)
      assert.is_string(token)
      assert.equals(3, res.attempts)
      assert.is_true(dt < 2, "took " .. dt)
    end)
  end)

  describe("which failures are retried", function()
    it("504 for GET", function()
      sb:fault { path = "/token$", status = 504 }
      local token, res = client():user_token(uid)
      assert.is_string(token)
      assert.equals(2, res.attempts)
    end)

    it("but not 504 for POST", function()
      sb:fault { path = "^/users$", method = "POST", status = 504 }
      local _, msg, code, res = client():create_user { username = "p504" }
      assert.equals("HTTP_504", code)
      assert.equals(1, res.attempts)
      assert.is_nil(msg:find("attempts", 1, true))
    end)

    it("503 for POST only with Retry-After (the server said it did nothing)", function()
      sb:fault { path = "^/users$", method = "POST", status = 503 }
      local _, _, code, res = client():create_user { username = "p503" }
      assert.equals("HTTP_503", code)
      assert.equals(1, res.attempts)
      sb:fault { path = "^/users$", method = "POST", status = 503, headers = { ["Retry-After"] = "0" } }
      local body, res2 = client():create_user { username = "p503b" }
      assert.matches("^%x+$", body.userId)
      assert.equals(2, res2.attempts)
    end)

    it("not 500, 400 or 404", function()
      for _, status in ipairs { 500, 400, 404, 408 } do
        sb:fault { path = "/token$", status = status }
        local _, _, code, res = client():user_token(uid)
        assert.equals("HTTP_" .. status, code)
        assert.equals(1, res.attempts)
      end
    end)

    it("a dropped connection for GET, not for POST (the server may have acted)", function()
      sb:fault { path = "/token$", drop = true }
      local token, res = client():user_token(uid)
      assert.is_string(token)
      assert.equals(2, res.attempts)

      sb:clear_requests()
      sb:fault { path = "^/users$", method = "POST", drop = true }
      local body, msg, code = client():create_user { username = "dropped" }
      assert.is_nil(body)
      assert.equals("GOT_NOTHING", code)
      assert.is_nil(msg:find("attempts", 1, true))
      assert.equals(1, #sb:requests())
    end)

    it("a POST whose reused connection drops is not sent again behind its back", function()
      -- libcurl re-sends a request once, by itself, when a kept-alive connection turns out
      -- dead before any answer: for a POST the server may already have acted on
      local c = client()
      assert(c:list_users()) -- the connection the POST would reuse
      sb:clear_requests()
      sb:fault { path = "^/users$", method = "POST", drop = true }
      local body, msg, code = c:create_user { username = "once" }
      local posts = 0
      for _, r in ipairs(sb:requests()) do
        if r.method == "POST" then posts = posts + 1 end
      end
      assert.equals(1, posts, "the server saw the POST " .. posts .. " times")
      assert.is_nil(body)
      assert.equals("GOT_NOTHING", code, msg)
    end)

    it("connection refused for POST too (nothing was sent)", function()
      local url = "http://127.0.0.1:" .. closed_port()
      local _, msg, code = client { base_url = url, retries = 2 }:create_user { username = "x" }
      assert.equals("COULDNT_CONNECT", code)
      assert.matches("after 3 attempts$", msg)
    end)

    it("says how many attempts were made when it gives up", function()
      sb:fault { path = "/token$", status = 503, times = 10 }
      local _, msg, code, res = client { retries = 3 }:user_token(uid)
      assert.equals("HTTP_503", code)
      assert.equals(4, res.attempts)
      assert.matches("^HTTP_503: .* after 4 attempts$", msg)
      assert.equals(4, #sb:requests())
    end)

    it("a timeout ends the call as OPERATION_TIMEDOUT, bounded even with retries", function()
      sb:fault { path = "/token$", delay = 1, times = 3 }
      local dt, _, msg, code = timed(function()
        return client { timeout = 0.2, retries = 2 }:user_token(uid)
      end)
      assert.equals("OPERATION_TIMEDOUT", code)
      assert.matches("^OPERATION_TIMEDOUT: ", msg)
      assert.is_true(dt < 5, "took " .. dt)
    end)
  end)

  describe("debug output", function()
    it("shows retries with their growing backoff, Authorization redacted, no key", function()
      sb:fault { path = "/token$", status = 503, times = 3 }
      local out, err, rc = run_lua(([[
        local alloy = require "alloy"
        local c = alloy.new{ api_key = %q, base_url = %q, embedded_url = %q, debug = true,
                             retries = 3, backoff = 0.05, retry_max_wait = 10 }
        local token, res = c:user_token(%q)
        io.stdout:write(tostring(token ~= nil), " ", res.attempts, "\n")
      ]]):format(sb.api_key, sb.url, sb.embedded_url, uid))
      assert.equals(0, rc, err)
      assert.equals("true 4\n", out)
      assert.is_nil(err:find(sb.api_key, 1, true), "the key is in the debug output")
      assert.matches("Authorization: %[REDACTED%]", err)
      local n = 0
      for attempt, delay in err:gmatch("attempt (%d+) got HTTP 503; retrying in ([%d.]+)s") do
        n = n + 1
        attempt, delay = tonumber(attempt), tonumber(delay)
        assert.equals(n, attempt)
        -- full jitter: a uniform wait below a ceiling that doubles each attempt
        assert.is_true(delay >= 0 and delay <= 0.05 * 2 ^ (attempt - 1) + 0.005, err)
      end
      assert.equals(3, n, err)
      -- request and response headers are both shown
      assert.matches("\n> GET /users/" .. uid .. "/token", err)
      assert.matches("\n< HTTP/1%.1 503", err)
    end)

    it("redacts a key that the server echoes in a header", function()
      sb:fault { path = "/token$", status = 401, headers = { ["X-Echo"] = "Bearer " .. sb.api_key },
                 body = { message = "bad key" } }
      local _, err, rc = run_lua(([[
        local alloy = require "alloy"
        local c = alloy.new{ api_key = %q, base_url = %q, embedded_url = %q, debug = true }
        c:user_token(%q)
      ]]):format(sb.api_key, sb.url, sb.embedded_url, uid))
      assert.equals(0, rc, err)
      assert.matches("X%-Echo", err)
      assert.is_nil(err:find(sb.api_key, 1, true), "the key is in the debug output")
    end)

    it("is silent without debug", function()
      sb:fault { path = "/token$", status = 503 }
      local _, err, rc = run_lua(([[
        local alloy = require "alloy"
        assert(alloy.new{ api_key = %q, base_url = %q, embedded_url = %q, backoff = 0.01 }:user_token(%q))
      ]]):format(sb.api_key, sb.url, sb.embedded_url, uid))
      assert.equals(0, rc, err)
      assert.equals("", err)
    end)
  end)

  describe("batch", function()
    it("retries per request and keeps every result in place", function()
      local other = sb:create_user { username = "rel2" }
      sb:fault { path = "^/users/" .. uid .. "/token$", status = 503, headers = { ["Retry-After"] = "0" } }
      sb:fault { path = "^/users/" .. other .. "/token$", drop = true }
      sb:fault { path = "^/users$", method = "POST", status = 502 }
      sb:fault { path = "^/users/nobody/token$", status = 504, times = 10 }
      local results, failures = client { retries = 2 }:batch({
        { op = "user_token", args = { uid } },
        { op = "user_token", args = { other } },
        { op = "create_user", args = { { username = "batched" } } },
        { op = "user_token", args = { "nobody" } },
        { path = "/users" },
      }, { concurrency = 2 })
      assert.equals(5, #results)
      assert.equals(2, failures)
      assert.is_true(results[1].ok)
      assert.equals(2, results[1].attempts)
      assert.is_true(results[2].ok)
      assert.equals(2, results[2].attempts)
      assert.is_false(results[3].ok) -- a POST is not retried after 502
      assert.equals("HTTP_502", results[3].code)
      assert.equals(1, results[3].res.attempts)
      assert.is_false(results[4].ok)
      assert.equals("HTTP_504", results[4].code)
      assert.matches("after 3 attempts$", results[4].error)
      assert.is_true(results[5].ok)
      assert.equals(1, results[5].attempts)
    end)

    -- a 429 pauses the whole host instead (spec/batch_spec.lua)
    it("honours a 503's Retry-After inside a batch without holding up the others", function()
      sb:fault { path = "^/users/" .. uid .. "/token$", status = 503, headers = { ["Retry-After"] = "1" } }
      local reqs = { { op = "user_token", args = { uid } } }
      for i = 2, 9 do reqs[i] = { path = "/users" } end
      local dt, results, failures = timed(function() return client():batch(reqs, { concurrency = 4 }) end)
      assert.equals(0, failures)
      assert.equals(2, results[1].attempts)
      assert.is_true(dt < 5, "took " .. dt)
      -- the other eight finished while request 1 waited out its second
      local log = sb:requests()
      assert.equals(10, #log)
      assert.equals("/users/" .. uid .. "/token", log[#log].path, require("cjson").encode(log))
    end)
  end)

  describe("limits", function()
    it("a large body under the cap succeeds", function()
      local size = 5 * 1024 * 1024
      sb:fault { path = "^/users$", status = 200, huge = size }
      local res, msg = client():request { path = "/users" }
      assert.is_table(res, msg)
      assert.equals(size, #res.body)
      assert.equals(size - 14, #res.json.padding)
    end)

    it("a body exactly at max_body is fine, one byte more is BODY_TOO_LARGE", function()
      sb:fault { path = "^/users$", status = 200, huge = 4096 }
      local res, msg = client { max_body = 4096 }:request { path = "/users" }
      assert.is_table(res, msg)
      assert.equals(4096, #res.body)
      sb:fault { path = "^/users$", status = 200, huge = 4097 }
      local none, msg2, code, r = client { max_body = 4096 }:request { path = "/users" }
      assert.is_nil(none)
      assert.equals("BODY_TOO_LARGE", code)
      assert.matches("^BODY_TOO_LARGE: ", msg2)
      assert.is_nil(r)
    end)

    it("BODY_TOO_LARGE without Content-Length (chunked), and it is not retried", function()
      sb:fault { path = "^/users$", status = 200, huge = 300000, chunked = true, times = 3 }
      local _, msg, code = client { max_body = 65536, retries = 2 }:request { path = "/users" }
      assert.equals("BODY_TOO_LARGE", code)
      assert.is_nil(msg:find("attempts", 1, true))
      assert.equals(1, #sb:requests())
    end)

    it("the client stays usable after a too-large body", function()
      local c = client { max_body = 1024 }
      sb:fault { path = "^/users$", status = 200, huge = 100000 }
      assert.equals("BODY_TOO_LARGE", select(3, c:request { path = "/users" }))
      local res = assert(c:request { path = "/users" })
      assert.equals(200, res.status)
    end)
  end)

  describe("hostile input", function()
    it("rejects CR, LF and NUL in header values before sending", function()
      local c = client()
      for _, v in ipairs { "a\r\nX-Injected: 1", "a\rb", "a\nb", "a\0b", "\r\n\r\nGET / HTTP/1.1" } do
        local res, msg, code = c:request { path = "/users", headers = { ["x-note"] = v } }
        assert.is_nil(res)
        assert.equals("INVALID_ARGUMENT", code)
        assert.matches("^INVALID_ARGUMENT: header 'x%-note'", msg)
        assert.is_nil(msg:find("[\r\n]"))
      end
      assert.equals(0, #sb:requests())
      -- the same in a batch: that item fails, the others go out
      local results, failures = c:batch { { path = "/users", headers = { ["x-note"] = "a\r\nb" } },
                                          { path = "/users" } }
      assert.equals(1, failures)
      assert.equals("INVALID_ARGUMENT", results[1].code)
      assert.is_true(results[2].ok)
      assert.equals(1, #sb:requests())
      assert.is_nil(sb:requests()[1].headers["x-note"])
    end)

    it("raises for header names that are not tokens, and for Authorization in any case", function()
      local c = client()
      for _, name in ipairs { "x-a\r\nx-b", "x a", "x:a", "", "x\0a", "é" } do
        assert.has_error(function() c:request { path = "/users", headers = { [name] = "v" } } end)
      end
      for _, name in ipairs { "Authorization", "AUTHORIZATION", "authorization" } do
        assert.has_error(function() c:request { path = "/users", headers = { [name] = "Bearer x" } } end,
          "alloy: the Authorization header is set by the client")
      end
      assert.equals(0, #sb:requests())
    end)

    it("rejects CR, LF and NUL in options that become headers or URLs", function()
      local function new(o) return function() client(o) end end
      assert.has_error(new { user_agent = "ua\r\nX-Injected: 1" })
      assert.has_error(new { api_version = "2025-09\r\nX-Injected: 1" })
      assert.has_error(new { api_version = "../2025-09" })
      assert.has_error(new { base_url = "http://127.0.0.1/\r\nx" })
      assert.has_error(new { proxy = "http://p\r\n" })
      assert.has_error(new { api_key = "key\r\nX-Injected: 1" })
      assert.has_error(function() client():request { url = sb.url .. "/users\r\nX-Injected: 1" } end)
    end)

    it("percent-encodes query values, so they cannot add parameters or headers", function()
      local c = client()
      assert(c:request { path = "/users", query = { q = "a&b=c\r\nX: y", ["k&x"] = "#frag" } })
      local req = sb:requests()[1]
      assert.equals("/users", req.path)
      assert.equals("k%26x=%23frag&q=a%26b%3Dc%0D%0AX%3A%20y", req.query)
      assert.is_nil(req.headers.x)
    end)

    it("sends every id as exactly one encoded path segment", function()
      local ids = { "../x", "a/b?c", "%2e%2e", "%2F", "..%2f..%2fadmin", "a#b", "a b", "a+b", "a;b=c",
                    "\u{e9}t\u{e9}", "~user.name_-", "?", "#", "/", "//", "./", "...", "a%00b", "\\..\\x",
                    "a\tb", "@host", "100%", string.rep("z", 300) }
      local reqs = {}
      for i, id in ipairs(ids) do reqs[i] = { op = "user_token", args = { id } } end
      local results = client():batch(reqs, { concurrency = 4 })
      local seen = {}
      for _, r in ipairs(sb:requests()) do seen[r.path] = true end
      for i, id in ipairs(ids) do
        -- a control character, '/', '?' or '#': refused before sending (no Alloy id holds one,
        -- and a server that decodes %2F before routing would see another path)
        if id:find("[%c/?#]") then
          assert.equals("INVALID_ARGUMENT", results[i].code, id)
        else
          assert.equals("HTTP_404", results[i].code, id)
          local path, query = results[i].res.url:match("^https?://[^/]+(/[^?#]*)%?userId=([^?#&]*)$")
          -- the query repeats the path's id, encoded the same way
          assert.equals(path and path:match("^/users/([^/]+)/token$"), query)
          assert.is_string(path, results[i].res.url)
          local seg = path:match("^/users/([^/]+)/token$")
          assert.is_string(seg, id .. " -> " .. path)
          assert.equals(id, unescape(seg))
          assert.matches("^[%w%-%._~%%]+$", seg)
          assert.is_true(seen[path], "the sandbox saw " .. path)
        end
      end
    end)

    it("sends random ids as one segment each (200 of them)", function()
      math.randomseed(4)
      local reqs, ids = {}, {}
      for i = 1, 200 do
        local t = {}
        for k = 1, math.random(1, 24) do t[k] = string.char(math.random(0x20, 0xFF)) end
        ids[i] = table.concat(t)
        ids[i] = ids[i]:gsub("\127", "~"):gsub("[/?#]", "%%") -- refused, by the test above
        if ids[i] == "." or ids[i] == ".." then ids[i] = "x" .. ids[i] end
        reqs[i] = { path = "/users/{userId}/token", service = "embedded", params = { userId = ids[i] } }
      end
      local results = client():batch(reqs, { concurrency = 8 })
      local seen = {}
      for _, r in ipairs(sb:requests()) do seen[r.path] = (seen[r.path] or 0) + 1 end
      for i, id in ipairs(ids) do
        local res = results[i].res or results[i]
        local seg = res.url:match("^https?://[^/]+/users/([^/?#]+)/token$")
        assert.is_string(seg, res.url)
        assert.equals(id, unescape(seg))
        assert.is_truthy(seen["/users/" .. seg .. "/token"], seg)
      end
    end)

    it("never puts the key in a message, even when the server echoes it in a long one", function()
      local key = sb.api_key
      local c = client { retries = 0 }
      for _, pad in ipairs { 0, 100, 330, 355, 370, 385, 395, 1000 } do
        sb:fault { path = "/token$", status = 401,
                   body = { message = string.rep("x", pad) .. " key " .. key .. " rejected" } }
        local _, msg = c:user_token(uid)
        assert.is_true(#msg <= 400, pad .. ": " .. #msg .. " bytes")
        for i = 1, #key - 7 do
          assert.is_nil(msg:find(key:sub(i, i + 7), 1, true), pad .. ": a piece of the key in: " .. msg)
        end
        assert.matches("%(GET /users/" .. uid .. "/token%)$", msg)
      end
    end)

    it("keeps long and multi-line server messages to one bounded line", function()
      local c = client { retries = 0 }
      sb:fault { path = "/token$", status = 500,
                 body = { message = ("line one\r\nline two\t" .. string.rep("\195\169", 400)) } }
      local _, msg = c:user_token(uid)
      assert.is_nil(msg:find("[%c]"))
      assert.is_true(#msg <= 400, #msg .. " bytes")
      assert.matches("^HTTP_500: line one line two ", msg)
      -- every non-ASCII byte left belongs to a whole "é": the cut split no character
      assert.is_nil(msg:gsub("\195\169", ""):find("[\128-\255]"), "the cut split a UTF-8 character: " .. msg)
    end)
  end)
end)
