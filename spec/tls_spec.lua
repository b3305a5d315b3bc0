-- TLS against the sandbox's HTTPS listener (a throwaway CA made at start-up):
-- verification works with ca_file, fails clearly without it or for another host name,
-- and the explicit `insecure` switch warns on every use.
local Sandbox = require "sandbox"


local run_lua = require("run").lua_code

describe("TLS", function()
  local sb, port

  local function client(opts)
    local o = { retries = 0 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return sb:client(o)
  end

  setup(function()
    sb = Sandbox.start { tls = true }
    port = sb.url:match(":(%d+)$")
  end)
  teardown(function()
    if sb then sb:stop() end
  end)
  before_each(function() sb:reset() end)

  it("multiplexes a batch over one HTTP/2 connection when the server offers it", function()
    local h2 = Sandbox.start { tls = true, http2 = true }
    local ok, err = pcall(function()
      local uid = h2:create_user { username = "multi" }
      local reqs = {}
      for i = 1, 24 do reqs[i] = { op = "user_token", args = { uid } } end
      local results, failures = h2:client { ca_file = h2.ca_file }:batch(reqs, { concurrency = 8 })
      assert.equals(0, failures)
      assert.equals(24, #results)
      local conns = {}
      for _, r in ipairs(h2:requests()) do
        assert.equals("HTTP/2.0", r.protocol)
        conns[r.connection] = true
      end
      local n = 0
      for _ in pairs(conns) do n = n + 1 end
      assert.equals(1, n)
      -- and a plain HTTP/1.1 server still gets its requests in parallel, over several: the
      -- first request is held until another has been answered, which on HTTP/1.1 takes a
      -- second connection however fast the rest go (no timing involved)
      sb:clear_requests()
      local uid1 = sb:create_user { username = "parallel" }
      sb:fault { path = "^/users/" .. uid1 .. "/token$", hold = "first" }
      local answered, released = 0, false
      local again = {}
      for i = 1, 24 do again[i] = { op = "user_token", args = { uid1 } } end
      local _, failed = client({ ca_file = sb.ca_file }):batch(again, { concurrency = 8, on_result = function(_, r)
        assert.is_true(r.ok, r.error)
        answered = answered + 1
        if not released then released = true; sb:release("first") end
      end })
      assert.equals(0, failed)
      assert.equals(24, answered)
      local seen = {}
      for _, r in ipairs(sb:requests()) do
        assert.equals("HTTP/1.1", r.protocol)
        seen[r.connection] = true
      end
      n = 0
      for _ in pairs(seen) do n = n + 1 end
      assert.is_true(n > 1, n .. " connection(s)")
    end)
    h2:stop()
    assert(ok, err)
  end)

  it("serves HTTPS with a CA file of its own", function()
    assert.matches("^https://127%.0%.0%.1:%d+$", sb.url)
    assert.is_string(sb.ca_file)
    local f = assert(io.open(sb.ca_file, "rb"))
    assert.matches("BEGIN CERTIFICATE", f:read("*a"))
    f:close()
  end)

  it("verifies the server with ca_file", function()
    local c = client { ca_file = sb.ca_file }
    local uid = sb:create_user { username = "tls-user" }
    local token, res = c:user_token(uid)
    assert.is_string(token, res)
    assert.equals(200, res.status)
    assert.matches("^https://", res.url)
    -- the same handle again: the TLS session is reused, nothing to re-verify by hand
    assert.is_string((c:user_token(uid)))
    c:close()
  end)

  it("accepts the certificate's DNS name too (localhost)", function()
    local url = "https://localhost:" .. port
    local res, msg = client { ca_file = sb.ca_file, base_url = url }:request { path = "/users" }
    assert.is_table(res, msg)
    assert.equals(200, res.status)
  end)

  it("fails with SSL_CACERT and one clear line without the CA", function()
    local res, msg, code, r = client():request { path = "/users" }
    assert.is_nil(res)
    assert.equals("SSL_CACERT", code)
    assert.is_nil(r)
    assert.matches("^SSL_CACERT: .*certificate.* %(GET /users%)$", msg)
    assert.is_nil(msg:find("[\r\n]"))
    assert.is_nil(msg:find(sb.api_key, 1, true))
    assert.equals(0, #sb:requests()) -- nothing reached the handler
  end)

  it("is not retried: a bad certificate does not get better", function()
    local _, msg, code = client { retries = 3, backoff = 0.01 }:request { path = "/users" }
    assert.equals("SSL_CACERT", code)
    assert.is_nil(msg:find("attempts", 1, true))
  end)

  it("fails for a host name the certificate does not name", function()
    -- The certificate covers IP 127.0.0.1 and DNS localhost. The IPv4-mapped IPv6 form of the
    -- same address reaches the same listener under a name it does not cover; if this machine
    -- has no IPv6, any other /etc/hosts alias of 127.0.0.1 will do.
    local tried = {}
    for _, host in ipairs(require("run").other_loopback_names()) do
      local _, msg, code = client { ca_file = sb.ca_file, base_url = "https://" .. host .. ":" .. port }
        :request { path = "/users" }
      tried[#tried + 1] = host .. " -> " .. tostring(code)
      if code ~= "COULDNT_CONNECT" and code ~= "COULDNT_RESOLVE_HOST" then
        assert.equals("SSL_CACERT", code, msg)
        assert.matches("name", msg)
        assert.is_nil(msg:find("[\r\n]"))
        return
      end
    end
    error("no other name reaches 127.0.0.1 here: " .. table.concat(tried, ", "))
  end)

  it("reports a missing CA file as its own error", function()
    local _, msg, code = client { ca_file = "/nonexistent/ca.pem" }:request { path = "/users" }
    assert.equals("SSL_CACERT_BADFILE", code)
    assert.matches("^SSL_CACERT_BADFILE: ", msg)
  end)

  it("does not speak plain HTTP to the TLS port by accident", function()
    local url = "http://127.0.0.1:" .. port
    local res, _, code = client { base_url = url }:request { path = "/users" }
    assert.is_nil(res)
    assert.equals("HTTP_400", code)
  end)

  it("has no silent way to turn verification off", function()
    assert.has_error(function() client { insecure = 1 } end, "alloy.new: insecure must be a boolean")
    assert.has_error(function() client { ssl_verify = false } end, "alloy.new: unknown option 'ssl_verify'")
    assert.has_error(function() client { verify = false } end, "alloy.new: unknown option 'verify'")
    -- insecure = false is the default and verifies
    local _, _, code = client { insecure = false }:request { path = "/users" }
    assert.equals("SSL_CACERT", code)
  end)

  it("insecure = true connects, and warns on stderr on every request", function()
    local out, err, rc = run_lua(([[
      local alloy = require "alloy"
      local c = alloy.new{ api_key = %q, base_url = %q, embedded_url = %q, insecure = true,
                           retries = 0, timeout = 5 }
      for i = 1, 3 do
        local res, msg = c:request{ path = "/users" }
        io.stdout:write(res and res.status or msg, "\n")
      end
      local results = c:batch({ { path = "/users" }, { path = "/users" } })
      io.stdout:write(results[1].status, " ", results[2].status, "\n")
    ]]):format(sb.api_key, sb.url, sb.embedded_url))
    assert.equals(0, rc, err)
    assert.equals("200\n200\n200\n200 200\n", out)
    local warnings = select(2, err:gsub("[^\n]*WARNING[^\n]*verification is disabled[^\n]*\n", ""))
    assert.is_true(warnings >= 4, err) -- every request, and the batch
    assert.is_nil(err:find(sb.api_key, 1, true))
  end)

  it("warns nothing when verification is on", function()
    local _, err, rc = run_lua(([[
      local alloy = require "alloy"
      local c = alloy.new{ api_key = %q, base_url = %q, ca_file = %q, retries = 0 }
      assert(c:request{ path = "/users" })
    ]]):format(sb.api_key, sb.url, sb.ca_file))
    assert.equals(0, rc, err)
    assert.equals("", err)
  end)

  it("an upload's PUT to the storage host uses the client's TLS settings (ca_file)", function()
    local uid = sb:create_user { username = "files" }
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("hello world\n")
    f:close()
    local c = client { ca_file = sb.ca_file }
    local up = assert(c:upload_request({ filename = "hello.txt", mimeType = "text/plain",
      md5 = "6f5902ac237024bdd0c176cb93063dc4" }, { headers = { ["x-alloy-userid"] = uid } })).presignedUrl
    assert.matches("^https://127%.0%.0%.1:", up.presignedUrl)
    local res, msg, code = client():put_file(up.presignedUrl, path, { content_type = "text/plain" })
    assert.is_nil(res)
    assert.equals("SSL_CACERT", code, msg)
    assert.equals(200, assert(c:put_file(up.presignedUrl, path, { content_type = "text/plain" })).status)
    os.remove(path)
    assert.equals(12, sb:state().objects[1].size)
  end)
end)
