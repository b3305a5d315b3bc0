-- Self-test of the local Alloy sandbox (spec/sandbox/, spec/support/sandbox.lua),
-- spoken to with plain luasocket/luasec, not the alloy module.
local Sandbox = require "sandbox"
local run = require "run"
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

-- One HTTP exchange; opts: headers (merged over the defaults), body, auth=false,
-- version=false, timeout, https params (cafile). Returns status, headers, body, json
-- or nil, err.
local function call(sb, method, path, opts)
  opts = opts or {}
  local headers = {}
  if opts.auth ~= false then headers.authorization = "Bearer " .. sb.api_key end
  if opts.version ~= false then headers["x-api-version"] = "2025-09" end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  if opts.body then
    headers["content-type"] = "application/json"
    headers["content-length"] = tostring(#opts.body)
  end
  local out = {}
  local req = {
    url = (opts.base or sb.url) .. path, method = method, headers = headers, redirect = false,
    source = opts.body and ltn12.source.string(opts.body), sink = ltn12.sink.table(out),
  }
  local ok, status, rh
  if req.url:match("^https:") then
    local https = require "ssl.https"
    req.cafile, req.verify, req.protocol = opts.cafile, opts.cafile and "peer" or "none", "any"
    ok, status, rh = https.request(req)
  else
    local saved = http.TIMEOUT -- socket.http applies this after create()
    http.TIMEOUT = opts.timeout or 5
    ok, status, rh = http.request(req)
    http.TIMEOUT = saved
  end
  if not ok then return nil, status end
  local body = table.concat(out)
  local jok, json = pcall(cjson.decode, body)
  return status, rh, body, jok and json or nil
end

local function post(sb, path, tbl, opts)
  opts = opts or {}
  opts.body = cjson.encode(tbl)
  return call(sb, "POST", path, opts)
end

local function b64url_decode(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  local bits = s:gsub(".", function(c)
    local v = alphabet:find(c, 1, true) - 1
    local r = ""
    for i = 5, 0, -1 do r = r .. (math.floor(v / 2 ^ i) % 2) end
    return r
  end)
  return (bits:gsub("%d%d%d%d%d%d%d%d", function(b) return string.char(tonumber(b, 2)) end)
    :gsub("[01]+$", ""))
end

local function hmac_b64url(secret, data)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(data)
  f:close()
  local p = io.popen("openssl dgst -sha256 -mac HMAC -macopt key:" .. secret
    .. " -binary < " .. tmp .. " | base64 -w0")
  local out = p:read("*a")
  p:close()
  os.remove(tmp)
  return (out:gsub("%s", ""):gsub("=", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
end

describe("sandbox #scripts", function()
  teardown(run.check_scripts_only)
  local sb

  setup(function() sb = Sandbox.start() end)
  teardown(function() sb:stop() end)
  before_each(function() sb:reset() end)

  it("has a loopback url and a 32-char api key", function()
    assert.matches("^http://127%.0%.0%.1:%d+$", sb.url)
    assert.matches("^[%w_%-]+$", sb.api_key)
    assert.equal(32, #sb.api_key)
  end)

  describe("auth and versions", function()
    it("rejects missing or wrong keys with 401", function()
      local status, _, _, json = call(sb, "GET", "/users", { auth = false })
      assert.equal(401, status)
      assert.same({ message = "Invalid or missing authentication" }, json)
      status = call(sb, "GET", "/users", { headers = { authorization = "Bearer nope" } })
      assert.equal(401, status)
      status = call(sb, "GET", "/users", { headers = { authorization = sb.api_key } })
      assert.equal(401, status)
    end)

    it("matches the Bearer scheme case-insensitively", function()
      assert.equal(200, call(sb, "GET", "/users", { headers = { authorization = "bearer " .. sb.api_key } }))
      assert.equal(200, call(sb, "GET", "/users", { headers = { authorization = "BEARER " .. sb.api_key } }))
    end)

    it("takes the version from the header or a path prefix, each on its documented host", function()
      assert.equal(200, call(sb, "GET", "/users"))
      assert.equal(200, call(sb, "GET", "/2025-09/users", { version = false })) -- the files guide's form
      local embedded = { version = false, base = sb.embedded_url }
      assert.equal(200, call(sb, "GET", "/2023-12/users", embedded))
      assert.equal(200, call(sb, "GET", "/2024-03/users", embedded))
      -- the older path versions are the embedded host's (the SDKs'), not the API host's
      assert.equal(404, call(sb, "GET", "/2024-03/users", { version = false }))
      assert.equal(404, call(sb, "GET", "/2025-09/users", embedded))
      local status, _, _, json = call(sb, "GET", "/users", { version = false })
      assert.equal(400, status)
      assert.matches("x%-api%-version", json.message)
      status, _, _, json = call(sb, "GET", "/users", { headers = { ["x-api-version"] = "2099-01" } })
      assert.equal(400, status)
      assert.matches("2099%-01", json.message)
      -- a path version the API host does not document is no route of it
      assert.equal(404, call(sb, "GET", "/2099-01/users", { version = false }))
    end)

    it("answers unknown routes with 404 JSON", function()
      local status, _, _, json = call(sb, "GET", "/nope/nothing")
      assert.equal(404, status)
      assert.same({ message = "Route not found" }, json)
    end)
  end)

  describe("users", function()
    it("creates, lists, gets (by id or username) and deletes", function()
      local status, _, _, json = post(sb, "/users", { username = "alice", fullName = "Alice A" })
      assert.equal(200, status)
      local id = json.userId
      assert.matches("^%x+$", id)
      assert.equal(24, #id)

      status, _, _, json = post(sb, "/users", { username = "alice" })
      assert.equal(409, status)
      assert.is_string(json.message)
      assert.equal(400, (post(sb, "/users", { fullName = "no name" })))

      _, _, _, json = call(sb, "GET", "/users")
      assert.same({ data = { { userId = id, username = "alice", fullName = "Alice A" } } }, json)
      _, _, _, json = call(sb, "GET", "/users/" .. id)
      assert.same({ userId = id, username = "alice", fullName = "Alice A" }, json)
      _, _, _, json = call(sb, "GET", "/users/alice")
      assert.equal(id, json.userId)

      _, _, _, json = call(sb, "DELETE", "/users/" .. id)
      assert.same({ success = true }, json)
      status, _, _, json = call(sb, "GET", "/users/" .. id)
      assert.equal(404, status)
      assert.same({ message = "User not found" }, json)
      local body
      status, _, body = call(sb, "GET", "/users")
      assert.equal(200, status)
      assert.equal('{"data":[]}', body)
    end)

    it("creates users through the control plane too", function()
      local id = sb:create_user { username = "bob" }
      assert.equal(24, #id)
      local _, _, _, json = call(sb, "GET", "/users/bob")
      assert.equal(id, json.userId)
      assert.has_error(function() sb:create_user { username = "bob" } end)
    end)
  end)

  describe("token", function()
    it("returns a real HS256 JWT with userId, iat and exp = iat + 3600", function()
      local id = sb:create_user { username = "carol" }
      local status, headers, _, json = call(sb, "GET", "/users/" .. id .. "/token?userId=" .. id)
      assert.equal(200, status)
      assert.matches("^application/json", headers["content-type"])
      local h, p, sig = json.token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
      assert.truthy(h)
      assert.same({ alg = "HS256", typ = "JWT" }, cjson.decode(b64url_decode(h)))
      local claims = cjson.decode(b64url_decode(p))
      assert.equal(id, claims.userId)
      assert.near(os.time(), claims.iat, 5)
      assert.equal(claims.iat + 3600, claims.exp)
      assert.equal(hmac_b64url(sb.jwt_secret, h .. "." .. p), sig)
    end)

    it("accepts the username, honours token_ttl and 404s unknown users", function()
      sb:create_user { username = "dave" }
      sb:set { token_ttl = 2 }
      local _, _, _, json = call(sb, "GET", "/2024-03/users/dave/token", { version = false, base = sb.embedded_url })
      local claims = cjson.decode(b64url_decode(json.token:match("%.([^.]+)%.")))
      assert.equal(claims.iat + 2, claims.exp)
      local status
      status, _, _, json = call(sb, "GET", "/users/000000000000000000000000/token")
      assert.equal(404, status)
      assert.same({ message = "User not found" }, json)
    end)

    it("does not serve POST on the token path", function()
      local id = sb:create_user()
      local status, headers = call(sb, "POST", "/users/" .. id .. "/token", { body = "{}" })
      assert.equal(405, status)
      assert.equal("GET", headers.allow)
    end)
  end)

  describe("credentials", function()
    local function start_oauth(user_id, redirect)
      return post(sb, "/connectors/notion/credentials",
        { userId = user_id, authenticationType = "oauth2", redirectUri = redirect })
    end

    it("validates userId like the real API", function()
      local status, _, _, json = start_oauth("alice", "http://localhost:3000/cb")
      assert.equal(400, status)
      assert.same({ message = "userId must be a valid ID", error = { message = "userId must be a valid ID",
        details = { { properties = "userId", message = "must be a valid ID" } } } }, json)
      assert.equal(404, (start_oauth("0123456789abcdef01234567", "http://localhost:3000/cb")))
      local id = sb:create_user()
      assert.equal(400, (start_oauth(id, nil)))
      assert.equal(400, (post(sb, "/connectors/notion/credentials", { userId = id, redirectUri = "http://x/" })))
      assert.equal(404, (post(sb, "/connectors/nope/credentials",
        { userId = id, authenticationType = "oauth2", redirectUri = "http://x/" })))
    end)

    it("runs the OAuth flow: oauthUrl, authorize 302, then list in every shape", function()
      local id = sb:create_user { username = "erin" }
      local status, _, _, json = start_oauth(id, "http://localhost:3000/callback")
      assert.equal(200, status)
      local url = json.oauthUrl
      assert.equal(sb.url .. "/api/strategy/connector/notion/authorize?userId=" .. id
        .. "&redirectUri=http%3A%2F%2Flocalhost%3A3000%2Fcallback&token=", url:match("^(.-token=)"))

      local headers
      status, headers = call(sb, "GET", url:sub(#sb.url + 1), { auth = false, version = false })
      assert.equal(302, status)
      assert.equal("http://localhost:3000/callback", headers.location)
      -- the link is single-use
      assert.equal(400, (call(sb, "GET", url:sub(#sb.url + 1), { auth = false, version = false })))

      _, _, _, json = call(sb, "GET", "/credentials/users/" .. id)
      assert.equal(1, #json.data)
      local cred = json.data[1]
      assert.equal(24, #cred.credentialId)
      assert.equal("notion", cred.type) -- as the Embedded reference shows a user's list
      assert.is_string(cred.name)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", cred.createdAt)
      assert.matches("Z$", cred.updatedAt)

      _, _, _, json = call(sb, "GET", "/users/" .. id .. "/credentials")
      assert.same({ cred }, json.data)
      _, _, _, json = call(sb, "GET", "/connectors/notion/credentials", { headers = { ["x-alloy-userid"] = id } })
      cred.type = "notion-oauth2" -- the Connectivity list's documented shape
      assert.same({ credentials = { cred } }, json)
      cred.type = "notion"
      local body
      _, _, body = call(sb, "GET", "/connectors/slack/credentials", { headers = { ["x-alloy-userid"] = id } })
      assert.equal('{"credentials":[]}', body)

      sb:set { credentials_shape = "array" }
      _, _, _, json = call(sb, "GET", "/credentials/users/" .. id)
      assert.same({ cred }, json)
      sb:set { credentials_shape = "credentials" }
      _, _, _, json = call(sb, "GET", "/users/" .. id .. "/credentials")
      assert.same({ credentials = { cred } }, json)

      _, _, _, json = call(sb, "DELETE", "/users/" .. id .. "/credentials/" .. cred.credentialId)
      assert.same({ success = true }, json)
      assert.equal(404, (call(sb, "DELETE", "/users/" .. id .. "/credentials/" .. cred.credentialId)))
    end)

    it("appends success or error params to the redirect when told to", function()
      local id = sb:create_user()
      sb:set { oauth_redirect = "success" }
      local _, _, _, json = start_oauth(id, "http://localhost:3000/cb?x=1")
      local _, headers = call(sb, "GET", json.oauthUrl:sub(#sb.url + 1), { auth = false })
      local cred_id = headers.location:match("^http://localhost:3000/cb%?x=1&credentialId=(%x+)&success=true$")
      assert.equal(24, #cred_id)

      sb:set { oauth_redirect = "error" }
      _, _, _, json = start_oauth(id, "http://localhost:3000/cb")
      _, headers = call(sb, "GET", json.oauthUrl:sub(#sb.url + 1), { auth = false })
      assert.equal("http://localhost:3000/cb?success=false&error=access_denied", headers.location)
      assert.equal(1, #sb:state().credentials)
    end)

    it("rejects unknown authorize tokens with an HTML 400", function()
      local status, headers = call(sb, "GET", "/api/strategy/connector/notion/authorize?token=bogus",
        { auth = false })
      assert.equal(400, status)
      assert.matches("^text/html", headers["content-type"])
    end)

    it("serves connectors and metadata", function()
      local _, _, _, json = call(sb, "GET", "/connectors")
      local ids = {}
      for _, c in ipairs(json.data) do ids[c.id] = c.name end
      assert.equal("Notion", ids.notion)
      assert.truthy(ids.hubspot and ids.slack and ids.shopify and ids.gmail)
      _, _, _, json = call(sb, "GET", "/connectors/notion/credentials/metadata")
      local m = json.metadata[1]
      assert.equal("oauth2", m.authenticationType)
      assert.same({ "userId", "authenticationType", "redirectUri" }, m.inputSchema.required)
      _, _, _, json = call(sb, "GET", "/metadata/credentials")
      assert.equal("notion", json.data[1].connector)
      assert.equal(true, json.data[1].isOauth)
      assert.equal(404, (call(sb, "GET", "/connectors/nope/credentials/metadata")))
    end)

    it("seeds credentials through the control plane", function()
      local id = sb:create_user()
      local cred = sb:create_credential { userId = id, connector = "hubspot" }
      assert.equal("hubspot-oauth2", cred.type)
      local _, _, _, json = call(sb, "GET", "/credentials/users/" .. id)
      assert.equal(cred.credentialId, json.data[1].credentialId)
    end)
  end)

  describe("faults", function()
    it("injects a status with headers, consumed in order and counted by times", function()
      sb:fault { path = "^/users$", status = 503, headers = { ["Retry-After"] = "1" }, times = 2 }
      sb:fault { path = "^/users$", method = "GET", status = 429 }
      local status, headers, _, json = call(sb, "GET", "/users")
      assert.equal(503, status)
      assert.equal("1", headers["retry-after"])
      assert.is_string(json.message)
      assert.equal(503, (call(sb, "GET", "/users")))
      assert.equal(429, (call(sb, "GET", "/users")))
      assert.equal(200, (call(sb, "GET", "/users")))
      assert.same({}, sb:faults())
    end)

    it("matches method and path pattern", function()
      sb:fault { path = "/token$", method = "post", status = 500 }
      assert.equal(200, (call(sb, "GET", "/users")))
      assert.equal(1, #sb:faults())
      assert.has_error(function() sb:fault { path = "^/users", sttaus = 500 } end)
    end)

    it("delays, then answers normally", function()
      sb:fault { path = "^/users$", delay = 0.3 }
      local t = socket.gettime()
      assert.equal(200, (call(sb, "GET", "/users")))
      assert.is_true(socket.gettime() - t >= 0.29)
    end)

    it("drops the connection without a response", function()
      sb:fault { path = "^/users$", drop = true }
      local status, err = call(sb, "GET", "/users")
      assert.is_nil(status)
      assert.equal("closed", err)
    end)

    it("serves malformed and huge bodies", function()
      sb:fault { path = "^/users$", body = "{not json" }
      local status, headers, body = call(sb, "GET", "/users")
      assert.equal(200, status)
      assert.equal("{not json", body)
      assert.matches("^application/json", headers["content-type"])
      sb:fault { path = "^/users$", huge = 9 * 1024 * 1024 }
      status, headers, body = call(sb, "GET", "/users")
      assert.equal(200, status)
      assert.equal(9 * 1024 * 1024, #body)
      assert.equal(tostring(9 * 1024 * 1024), headers["content-length"])
      assert.is_table(cjson.decode(body))
    end)

    it("stalls after the headers, then truncates (or finishes)", function()
      sb:fault { path = "^/users$", stall = 1, body = '{"data":[]}' }
      local status, err = call(sb, "GET", "/users", { timeout = 0.3 })
      assert.is_nil(status)
      assert.equal("timeout", err)
      sb:fault { path = "^/users$", stall = 0.1, body = '{"data":[]}' }
      status, err = call(sb, "GET", "/users")
      assert.is_nil(status) -- fewer bytes than Content-Length
      assert.is_string(err)
      sb:fault { path = "^/users$", stall = 0.1, finish = true, body = '{"data":[]}' }
      local _, _, body = call(sb, "GET", "/users")
      assert.equal('{"data":[]}', body)
    end)
  end)

  describe("request log", function()
    it("records method, raw path, query, lower-cased headers and body", function()
      call(sb, "GET", "/users/a%2Fb%20c/token?userId=x&y=%2F", { headers = { ["X-Custom"] = "v" } })
      post(sb, "/users", { username = "z" })
      local log = sb:requests()
      assert.equal(2, #log)
      assert.equal("GET", log[1].method)
      assert.equal("/users/a%2Fb%20c/token", log[1].path)
      assert.equal("userId=x&y=%2F", log[1].query)
      assert.equal("v", log[1].headers["x-custom"])
      assert.equal("2025-09", log[1].headers["x-api-version"])
      assert.equal("POST", log[2].method)
      assert.same({ username = "z" }, cjson.decode(log[2].body))
      sb:clear_requests()
      assert.same({}, sb:requests())
    end)

    it("treats an encoded slash as part of the id", function()
      sb:create_user { username = "a" }
      assert.equal(404, (call(sb, "GET", "/users/a%2Ftoken")))
    end)
  end)
end)

describe("sandbox over TLS #scripts", function()
  teardown(run.check_scripts_only)
  local sb

  setup(function() sb = Sandbox.start { tls = true } end)
  teardown(function() sb:stop() end)

  it("serves HTTPS verified with its throwaway CA", function()
    assert.matches("^https://127%.0%.0%.1:%d+$", sb.url)
    local id = sb:create_user { username = "tls" }
    local status, _, _, json = call(sb, "GET", "/users/" .. id .. "/token", { cafile = sb.ca_file })
    assert.equal(200, status)
    assert.is_string(json.token)
    status = call(sb, "GET", "/users", { base = "https://localhost:" .. sb.port, cafile = sb.ca_file })
    assert.equal(200, status)
  end)

  it("fails verification without the CA", function()
    local status, err = call(sb, "GET", "/users", { cafile = "/etc/ssl/certs/ca-certificates.crt" })
    assert.is_nil(status)
    assert.matches("certificate", err)
  end)

  it("keeps its control plane on a plain loopback listener", function()
    assert.matches("^http://127%.0%.0%.1:%d+$", sb.control_url)
    assert.not_equal(sb.url:match(":(%d+)$"), sb.control_url:match(":(%d+)$"))
    assert.equal(404, (call(sb, "GET", "/users", { base = sb.control_url })))
  end)
end)

describe("sandbox lifecycle #scripts", function()
  teardown(run.check_scripts_only)
  it("stops idempotently and leaves no process or temp dir", function()
    local sb = Sandbox.start()
    local pid, dir = sb.pid, sb.dir
    assert.is_number(pid)
    sb:stop()
    sb:stop()
    local stat = io.open("/proc/" .. pid .. "/stat")
    if stat then
      local state = stat:read("*a"):match("^%d+ %b() (%a)")
      stat:close()
      assert.equal("Z", state)
    end
    assert.is_nil(io.open(dir .. "/nginx.conf"))
    assert.is_nil(call(sb, "GET", "/users"))
  end)

  it("picks another port when nginx cannot bind the first", function()
    local busy = assert(socket.bind("127.0.0.1", 0))
    local _, busy_port = busy:getsockname()
    local real_bind, offered = socket.bind, false
    -- Offer the occupied port once, as if someone grabbed it after we probed.
    socket.bind = function(host, port)
      local s = real_bind(host, port)
      if offered then return s end
      offered = true
      return { getsockname = function() return "127.0.0.1", busy_port end,
               close = function() s:close() end }
    end
    local ok, sb = pcall(Sandbox.start)
    socket.bind = real_bind
    busy:close()
    assert(ok, sb)
    assert.is_true(offered)
    assert.not_equal(tonumber(busy_port), sb.port)
    assert.equal(200, (call(sb, "GET", "/users")))
    sb:stop()
  end)

  it("runs two sandboxes side by side on distinct ports", function()
    local a, b = Sandbox.start(), Sandbox.start()
    assert.not_equal(a.port, b.port)
    a:stop()
    b:stop()
  end)
end)
