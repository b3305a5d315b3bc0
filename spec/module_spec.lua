-- What alloy.so gives the Lua side besides clients: alloy.defaults, alloy.check_option,
-- alloy.codes, alloy.file_info / alloy.replace_file, integral JWT claims, and the
-- list_user_credentials operation; against the sandbox where a request is involved.
local Sandbox = require "sandbox"
local alloy = require "alloy"

local KEY = "key-0123456789"

local function closed_port()
  local socket = require "socket"
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- Every code is an exact key of alloy.codes or belongs to one of its two families.
local function known_code(code)
  if alloy.codes[code] then return true end
  if code:match("^HTTP_%d%d%d$") then return alloy.codes["HTTP_<status>"] ~= nil end
  if code:match("^CURL_%d+$") then return alloy.codes["CURL_<n>"] ~= nil end
  return false
end

local function b64url(s)
  local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local k = (b == nil) and 2 or (c == nil) and 3 or 4
    for j = 1, k do
      local v = math.floor(n / 2 ^ (6 * (4 - j))) % 64
      out[#out + 1] = chars:sub(v + 1, v + 1)
    end
  end
  return table.concat(out)
end

describe("alloy.defaults", function()
  it("holds every default, and a fresh copy on each load", function()
    assert.same({
      base_url = "https://production.runalloy.com", embedded_url = "https://embedded.runalloy.com",
      api_version = "2025-09", timeout = 30, connect_timeout = 10, retries = 2, backoff = 0.5,
      retry_max_wait = 30, max_body = 8388608, concurrency = 16, region = "us",
    }, alloy.defaults)
    if math.type then assert.equals("integer", math.type(alloy.defaults.max_body)) end
    local saved = package.loaded.alloy
    package.loaded.alloy.defaults.timeout = 1
    package.loaded.alloy = nil
    local again = require "alloy"
    package.loaded.alloy = saved
    assert.equals(30, again.defaults.timeout)
    saved.defaults.timeout = 30
  end)

  it("is what a client built without those options uses", function()
    local c = alloy.new { api_key = KEY }
    local d = alloy.defaults
    local req = assert(c:prepare("user_token", "u1"))
    assert.equals(d.embedded_url .. "/users/u1/token?userId=u1", req.url)
    assert.equals(d.timeout, req.timeout)
    local names = {}
    for _, h in ipairs(req.headers) do names[h[1]:lower()] = h[2] end
    assert.equals(d.api_version, names["x-api-version"])
    assert.equals(d.base_url .. "/users", assert(c:prepare("list_users")).url)
    c:close()
  end)

  describe("against the sandbox", function()
    local sb
    setup(function() sb = Sandbox.start() end)
    teardown(function() if sb then sb:stop() end end)
    before_each(function() sb:reset() end)

    it("sends x-api-version 2025-09 and retries twice when not told otherwise", function()
      local uid = sb:create_user { username = "ada" }
      local c = alloy.new { api_key = sb.api_key, base_url = sb.url, embedded_url = sb.embedded_url }
      assert(c:user_token(uid))
      assert.equals("2025-09", sb:requests()[1].headers["x-api-version"])
      sb:fault { path = "/token$", status = 503, times = 10 }
      local _, _, code, res = c:user_token(uid)
      assert.equals("HTTP_503", code)
      assert.equals(alloy.defaults.retries + 1, res.attempts)
    end)
  end)
end)

describe("alloy.check_option", function()
  -- name, a bad value, the exact message
  local URL_RULE = "must be an http:// or https:// URL: a host, an optional port (1-65535) and path; no user:password@,"
    .. " query (?), fragment (#), spaces or control characters"
  local bad = {
    { "api_key", "short", "api_key must be at least 8 characters, without spaces, CR, LF or NUL" },
    { "api_key", "key 0123456789", "api_key must be at least 8 characters, without spaces, CR, LF or NUL" },
    { "api_version", "2025-9", "api_version must be a version date YYYY-MM (e.g. 2025-09)" },
    { "api_version", "2025-13", "api_version must be a version date YYYY-MM (e.g. 2025-09)" },
    { "api_version", "../2025-09", "api_version must be a version date YYYY-MM (e.g. 2025-09)" },
    { "base_url", "ftp://x", "base_url " .. URL_RULE },
    { "base_url", "http://a b", "base_url " .. URL_RULE },
    { "embedded_url", "https://x\n", "embedded_url " .. URL_RULE },
    { "base_url", "http://h.test?x=1", "base_url " .. URL_RULE },
    { "base_url", "http://h.test/v?", "base_url " .. URL_RULE },
    { "base_url", "http://h.test#f", "base_url " .. URL_RULE },
    { "base_url", "http://user:pa55word@h.test", "base_url " .. URL_RULE },
    { "base_url", "https://token@h.test/", "base_url " .. URL_RULE },
    { "base_url", "http://h.test:0", "base_url " .. URL_RULE },
    { "base_url", "http://h.test:65536", "base_url " .. URL_RULE },
    { "base_url", "http://h.test:99999999999", "base_url " .. URL_RULE },
    { "base_url", "http://h.test:junk", "base_url " .. URL_RULE },
    { "base_url", "http://h.test:", "base_url " .. URL_RULE },
    { "base_url", "http://:8080", "base_url " .. URL_RULE },
    { "base_url", "http://[::1", "base_url " .. URL_RULE },
    { "base_url", "file:///etc/passwd", "base_url " .. URL_RULE },
    { "base_url", "javascript:alert(1)", "base_url " .. URL_RULE },
    { "base_url", "HTTP://h.test", "base_url " .. URL_RULE },
    { "embedded_url", "http://h.test\27[2J", "embedded_url " .. URL_RULE },
    { "embedded_url", "http://h.test\\@evil.test", "embedded_url " .. URL_RULE },
    { "embedded_url", "https://h.test:443?evil=1#/users", "embedded_url " .. URL_RULE },
    { "api_version", "2025-09?evil=1", "api_version must be a version date YYYY-MM (e.g. 2025-09)" },
    { "api_version", "2025-09#", "api_version must be a version date YYYY-MM (e.g. 2025-09)" },
    { "api_version", "2025/09", "api_version must be a version date YYYY-MM (e.g. 2025-09)" },
    { "api_version", "x?evil=1#", "api_version must be a version date YYYY-MM (e.g. 2025-09)" },
    { "api_version", 202509, "api_version must be a version date YYYY-MM (e.g. 2025-09)" },
    { "retries", 50, "retries must be a whole number from 0 to 10" },
    { "retries", 0 / 0, "retries must be a whole number from 0 to 10" },
    { "timeout", 1 / 0, "timeout must be a number of seconds from 0.001 to 86400" },
    { "timeout", 0, "timeout must be a number of seconds from 0.001 to 86400" },
    { "timeout", "30", "timeout must be a number of seconds from 0.001 to 86400" },
    { "connect_timeout", 86401, "connect_timeout must be a number of seconds from 0.001 to 86400" },
    { "retries", 1.5, "retries must be a whole number from 0 to 10" },
    { "retries", 11, "retries must be a whole number from 0 to 10" },
    { "backoff", -1, "backoff must be a number of seconds from 0 to 60" },
    { "retry_max_wait", 3601, "retry_max_wait must be a number of seconds from 0 to 3600" },
    { "max_body", 0, "max_body must be a whole number of bytes from 1 to 1073741824" },
    { "ca_file", "a\nb", "ca_file must be a string without CR, LF or NUL" },
    { "proxy", 1, "proxy must be a string without CR, LF or NUL" },
    { "user_agent", true, "user_agent must be a string without CR, LF or NUL, or false for none" },
    { "insecure", 1, "insecure must be a boolean" },
    { "debug", "yes", "debug must be a boolean" },
    { "transport", {}, "transport must be a function" },
    { "concurrency", 0, "concurrency must be a whole number from 1 to 1024" },
  }

  it("returns nil and what the rule checks, the same message alloy.new raises", function()
    for _, case in ipairs(bad) do
      local name, value, want = case[1], case[2], case[3]
      local v, msg = alloy.check_option(name, value)
      assert.is_nil(v, name)
      assert.equals(want, msg)
      if name == "concurrency" then
        local c = alloy.new { api_key = KEY }
        assert.has_error(function() c:batch({}, { concurrency = value }) end, "client:batch: " .. want)
        c:close()
      else
        local opts = { api_key = KEY }
        opts[name] = value
        assert.has_error(function() alloy.new(opts) end, "alloy.new: " .. want)
      end
    end
  end)

  it("never shows the api_key value", function()
    local _, msg = alloy.check_option("api_key", "sk-secret value")
    assert.is_nil(msg:find("secret", 1, true))
  end)

  it("never shows a URL's password", function()
    local urls = { "http://u:s3cretPass@h.test", "https://s3cretPass@h.test:8443/x", "http://u:s3cretPass@h.test?q" }
    for _, url in ipairs(urls) do
      local _, msg = alloy.check_option("base_url", url)
      assert.is_nil(msg:find("s3cretPass", 1, true))
      local ok, err = pcall(alloy.new, { api_key = KEY, embedded_url = url })
      assert.is_false(ok)
      assert.is_nil(tostring(err):find("s3cretPass", 1, true))
    end
  end)

  it("takes the URLs a base can be: a name, an address, [IPv6], a port, a path", function()
    for _, url in ipairs { "http://h.test", "https://h.test:1/a/b", "http://127.0.0.1:65535", "http://[::1]:8080/x",
                           "https://production.runalloy.com", "http://h.test/a%20b" } do
      assert.equals(url, alloy.check_option("base_url", url))
    end
  end)

  it("returns the normalised value, and the default for nil", function()
    assert.equals("https://x.test/v", alloy.check_option("base_url", "https://x.test/v//"))
    assert.equals(2.5, alloy.check_option("timeout", 2.5))
    assert.equals(3, alloy.check_option("retries", 3))
    assert.equals("2024-03", alloy.check_option("api_version", "2024-03"))
    assert.equals(KEY, alloy.check_option("api_key", KEY))
    assert.is_false(alloy.check_option("user_agent", false))
    assert.equals(alloy.defaults.timeout, alloy.check_option("timeout", nil))
    assert.equals(alloy.defaults.base_url, alloy.check_option("base_url", nil))
    assert.is_false(alloy.check_option("debug", nil))
    local _, msg = alloy.check_option("api_key", nil)
    assert.equals("api_key must be at least 8 characters, without spaces, CR, LF or NUL", msg)
  end)

  it("raises for an unknown option name", function()
    assert.has_error(function() alloy.check_option("timeot", 3) end,
      "alloy.check_option: unknown option 'timeot'")
  end)
end)

describe("alloy.codes", function()
  local sb, uid
  Sandbox.per_test_user("ada", function(s, u) sb, uid = s, u end)

  it("describes each code in one line", function()
    local n = 0
    for code, what in pairs(alloy.codes) do
      n = n + 1
      assert.matches("^[A-Z0-9_<>a-z]+$", code)
      assert.is_string(what)
      assert.is_nil(what:find("\n"), code)
    end
    assert.is_true(n > 10)
  end)

  it("names every code the module returns", function()
    local seen = {}
    local function note(...)
      local code = select(3, ...)
      if code then seen[#seen + 1] = code end
    end
    local c = sb:client { retries = 0 }
    note(c:user_token("no-such-user"))
    note(c:user_token("bad\nid"))
    note(c:request { url = "ftp://127.0.0.1/" })
    note(sb:client({ base_url = "http://127.0.0.1:" .. closed_port(), retries = 0 }):list_users())
    sb:fault { path = "/token$", body = "not json" }
    note(c:user_token(uid))
    sb:fault { path = "/token$", body = { nope = 1 } }
    note(c:user_token(uid))
    note(sb:client({ max_body = 10 }):user_token(uid))
    note(sb:client({ transport = function() return nil, "down" end }):list_users())
    note(alloy.jwt_claims("a.b"))
    sb:fault { path = "/token$", drop = true }
    note(sb:client({ retries = 0 }):user_token(uid))
    sb:fault { path = "/token$", stall = 3 }
    note(sb:client({ timeout = 0.3, retries = 0 }):user_token(uid))
    local results = c:batch { { op = "get_user", args = { "bad\nid" } } }
    seen[#seen + 1] = results[1].code
    assert.same({ "HTTP_404", "INVALID_ARGUMENT", "UNSUPPORTED_PROTOCOL", "COULDNT_CONNECT",
      "JSON_DECODE", "BAD_RESPONSE", "BODY_TOO_LARGE", "TRANSPORT_ERROR", "JWT_DECODE",
      "GOT_NOTHING", "OPERATION_TIMEDOUT", "INVALID_ARGUMENT" }, seen)
    for _, code in ipairs(seen) do assert.is_true(known_code(code), code) end
  end)
end)

describe("client:list_user_credentials", function()
  local sb
  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  it("lists a user's credentials from GET /users/{userId}/credentials, whatever the wrapper", function()
    local uid = sb:create_user { username = "ada" }
    sb:create_credential { userId = uid, connector = "notion" }
    local c = sb:client()
    for _, shape in ipairs { "data", "credentials", "array" } do
      sb:set { credentials_shape = shape }
      sb:clear_requests()
      local list = assert(c:list_user_credentials(uid))
      assert.equals(1, #list, shape)
      assert.equals("notion", list[1].type, shape)
      local req = sb:requests()[1]
      assert.equals("GET", req.method)
      assert.equals("/users/" .. uid .. "/credentials", req.path)
    end
    local op = alloy.operations.list_user_credentials
    assert.same({ "GET", "/users/{userId}/credentials", "base" }, { op.method, op.path, op.service })
  end)
end)

describe("alloy.jwt_claims", function()
  it("gives integral claims as integers (exp, iat), others unchanged", function()
    local payload = b64url('{"exp":1795926973,"iat":1795923373,"frac":1.5,"sub":"u1"}')
    local claims = assert(alloy.jwt_claims("e30." .. payload .. ".sig"))
    assert.equals(1795926973, claims.exp)
    assert.equals(1.5, claims.frac)
    assert.equals("u1", claims.sub)
    if math.type then
      assert.equals("integer", math.type(claims.exp))
      assert.equals("integer", math.type(claims.iat))
      assert.equals("float", math.type(claims.frac))
      assert.equals("1795926973", tostring(claims.exp))
    end
  end)

  it("refuses a payload that is JSON but not an object", function()
    for _, json in ipairs { "[1,2]", " [{\"exp\":1}]", "[]", "\"sub\"", "12" } do
      local claims, msg, code = alloy.jwt_claims("e30." .. b64url(json) .. ".sig")
      assert.is_nil(claims, json)
      assert.equals("JWT_DECODE: payload is not a JSON object", msg)
      assert.equals("JWT_DECODE", code)
    end
    assert.same({ sub = "u1" }, alloy.jwt_claims("e30." .. b64url(' \n{"sub":"u1"}') .. ".sig"))
  end)

  it("keeps huge, negative and exponent claims as numbers, integral ones exact", function()
    local claims = assert(alloy.jwt_claims("e30." .. b64url(
      '{"big":1e300,"neg":-5,"nz":-0,"e":1.5e3,"edge":9223372036854775808,"nest":{"exp":10}}') .. ".sig"))
    assert.equals(1e300, claims.big)
    assert.equals(-5, claims.neg)
    assert.equals(0, claims.nz)
    assert.equals(1500, claims.e)
    assert.equals(2 ^ 63, claims.edge)
    assert.equals(10, claims.nest.exp)
    if math.type then
      assert.equals("float", math.type(claims.big))
      assert.equals("integer", math.type(claims.neg))
      assert.equals("integer", math.type(claims.e))
      assert.equals("float", math.type(claims.edge)) -- not wrapped to math.mininteger
    end
  end)

  it("does so for a token the sandbox issued", function()
    local sb = Sandbox.start()
    finally(function() sb:stop() end)
    local uid = sb:create_user { username = "ada" }
    local token = assert(sb:client():user_token(uid))
    local claims = assert(alloy.jwt_claims(token))
    if math.type then assert.equals("integer", math.type(claims.exp)) end
    assert.equals(claims.exp, math.floor(claims.exp))
  end)
end)

describe("alloy.file_info and alloy.replace_file", function()
  local dir

  local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
  end

  -- Names in dir, sorted: nothing but what a spec made may be there.
  local function listing()
    local p = assert(io.popen("ls -A " .. dir))
    local names = {}
    for line in p:lines() do names[#names + 1] = line end
    p:close()
    table.sort(names)
    return names
  end

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
  end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("writes a new file with mode 600 by default, and says what it is", function()
    local path = dir .. "/creds.json"
    assert.is_true(alloy.replace_file(path, "{\"a\":1}\n"))
    assert.equals("{\"a\":1}\n", read(path))
    assert.same({ type = "file", mode = "600", size = 8 }, alloy.file_info(path))
    assert.same({ "creds.json" }, listing())
    assert.equals("directory", alloy.file_info(dir).type)
  end)

  it("sets the mode given, whatever the umask, as an octal string or a number", function()
    local path = dir .. "/f"
    assert.is_true(alloy.replace_file(path, "x", "644"))
    assert.equals("644", alloy.file_info(path).mode)
    assert.is_true(alloy.replace_file(path, "y", tonumber("640", 8)))
    assert.equals("640", alloy.file_info(path).mode)
    assert.is_true(alloy.replace_file(path, "z"))
    assert.equals("600", alloy.file_info(path).mode)
    assert.has_error(function() alloy.replace_file(path, "z", "999") end)
    assert.has_error(function() alloy.replace_file(path, "z", 8 ^ 5) end)
    assert.equals("z", read(path))
  end)

  it("replaces atomically: a reader of the old file keeps all of it", function()
    local path = dir .. "/f"
    local old = string.rep("old ", 50000)
    assert(alloy.replace_file(path, old))
    local reader = assert(io.open(path, "rb"))
    assert.is_true(alloy.replace_file(path, "new"))
    assert.equals(old, reader:read("*a"))
    reader:close()
    assert.equals("new", read(path))
    assert.same({ "f" }, listing())
  end)

  it("refuses a symlink, a directory or a FIFO, and leaves no temp file", function()
    local target = dir .. "/target"
    assert(alloy.replace_file(target, "keep"))
    assert(os.execute("ln -s target " .. dir .. "/link && mkdir " .. dir .. "/sub && mkfifo " .. dir .. "/fifo"))
    assert.equals("link", alloy.file_info(dir .. "/link").type)
    assert.equals("fifo", alloy.file_info(dir .. "/fifo").type)
    for name, kind in pairs { link = "link", sub = "directory", fifo = "fifo" } do
      local ok, msg = alloy.replace_file(dir .. "/" .. name, "x")
      assert.is_nil(ok)
      assert.matches("not a regular file", msg, 1, true)
      assert.matches(kind, msg, 1, true)
    end
    assert.equals("keep", read(target))
    assert.same({ "fifo", "link", "sub", "target" }, listing())
  end)

  it("refuses a path with a NUL instead of cutting it there", function()
    assert.has_error(function() alloy.replace_file(dir .. "/creds\0.bak", "x") end,
      "alloy.replace_file: path must not contain NUL")
    assert.has_error(function() alloy.file_info(dir .. "/creds\0.bak") end,
      "alloy.file_info: path must not contain NUL")
    assert.same({}, listing())
  end)

  it("replaces a file whose name is as long as a name may be", function()
    local name = string.rep("n", 255)
    assert.is_true(alloy.replace_file(dir .. "/" .. name, "old"))
    assert.is_true(alloy.replace_file(dir .. "/" .. name, "new"))
    assert.equals("new", read(dir .. "/" .. name))
    assert.same({ name }, listing())
  end)

  it("fails with the errno name and leaves nothing behind", function()
    local info, msg, errno = alloy.file_info(dir .. "/missing")
    assert.is_nil(info)
    assert.matches("missing", msg, 1, true)
    assert.equals("ENOENT", errno)
    local ok, msg2, errno2 = alloy.replace_file(dir .. "/no/such/dir/f", "x")
    assert.is_nil(ok)
    assert.is_string(msg2)
    assert.equals("ENOENT", errno2)
    assert.same({}, listing())
  end)
end)

describe("path parameters of the named operations", function()
  local sb, c
  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    c = sb:client { retries = 0 }
  end)

  local RULE = "must be a non-empty id (a string without control characters, '/', '?' or '#', or a whole number)"

  it("refuses numbers not whole, and ids with '/', '?', '#' or control characters, naming the argument", function()
    local bad = { 0 / 0, 1 / 0, -1 / 0, 1.5, -0.25, 2 ^ 60, "a/b", "../users", "a?b", "a#b", "?", "#", "/",
                  "a\27[2Jb", "a\tb", "a\127b" }
    for _, v in ipairs(bad) do
      local value, msg, code, res = c:user_token(v)
      assert.is_nil(value, tostring(v))
      assert.equals("INVALID_ARGUMENT", code, tostring(v))
      assert.equals("INVALID_ARGUMENT: path parameter 'userId' " .. RULE, msg)
      assert.is_nil(res)
      _, msg, code = c:delete_credential("5f0000000000000000000000", v)
      assert.equals("INVALID_ARGUMENT", code)
      assert.equals("INVALID_ARGUMENT: path parameter 'credentialId' " .. RULE, msg)
      _, msg, code = c:request { path = "/users/{userId}", params = { userId = v } }
      assert.equals("INVALID_ARGUMENT", code)
      assert.equals("INVALID_ARGUMENT: path parameter 'userId' " .. RULE, msg)
      _, msg, code = c:user_token(v, { version_in_path = true })
      assert.equals("INVALID_ARGUMENT", code)
      assert.equals("INVALID_ARGUMENT: path parameter 'userId' " .. RULE, msg)
      local results = c:batch { { op = "get_user", args = { v } } }
      assert.equals("INVALID_ARGUMENT", results[1].code)
    end
    assert.same({}, sb:requests())
  end)

  it("sends a whole number as an integer", function()
    for _, case in ipairs { { 12345, "12345" }, { 2 ^ 53, "9007199254740992" }, { -7, "-7" }, { 3.0, "3" } } do
      sb:clear_requests()
      local _, _, code = c:user_token(case[1])
      assert.equals("HTTP_404", code)
      assert.equals("/users/" .. case[2] .. "/token", sb:requests()[1].path)
    end
  end)
end)

describe("client method misuse", function()
  it("names the method in argument errors, counting from the first argument after self", function()
    local c = alloy.new { api_key = KEY, base_url = "http://127.0.0.1:" .. closed_port() }
    local cases = {
      { function() return c:request(5) end, "bad argument #1 to 'client:request' (table expected, got number)" },
      { function() return c:create_user("x") end,
        "bad argument #1 to 'client:create_user' (table expected, got string)" },
      { function() return c:user_token("u", 5) end,
        "bad argument #2 to 'client:user_token' (table expected, got number)" },
      { function() return c:batch(true) end, "bad argument #1 to 'client:batch' (table expected, got boolean)" },
      { function() return c.request(5) end,
        "calling 'client:request' on bad self (alloy.client expected, got number)" },
      { function() return c.user_token({}, "u") end,
        "calling 'client:user_token' on bad self (alloy.client expected, got table)" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(case[1])
      assert.is_false(ok)
      assert.equals(case[2], (err:gsub("^[^:]*:%d+: ", ""))) -- Lua adds the caller's position, as for its own
    end
    local ok, err = pcall(c.request, c, 5)
    assert.is_false(ok)
    assert.equals("bad argument #1 to 'client:request' (table expected, got number)", err)
    ok, err = pcall(c.request, 5)
    assert.is_false(ok)
    assert.equals("calling 'client:request' on bad self (alloy.client expected, got number)", err)
    c:close()
  end)
end)

describe("failure messages that say what happened", function()
  local sb, c, uid
  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    c = sb:client { retries = 0 }
    uid = sb:create_user { username = "msg-user" }
  end)

  it("a response header line over libcurl's cap is HEADERS_TOO_LARGE, a documented code", function()
    for _, size in ipairs { 200 * 1024, 1024 * 1024 } do
      sb:fault { path = "/token$", status = 200, headers = { ["X-Big"] = string.rep("a", size) },
                 body = '{"token":"eyJhIjoxfQ.eyJiIjoyfQ.c2ln"}' }
      local token, msg, code = c:user_token(uid)
      assert.is_nil(token)
      assert.equals("HEADERS_TOO_LARGE", code)
      assert.is_string(alloy.codes[code])
      assert.equals("HEADERS_TOO_LARGE: a response header line is larger than libcurl accepts (100 KB) (GET /users/"
        .. uid .. "/token)", msg)
    end
  end)

  it("a redirect names its Location, scrubbed, and is not followed", function()
    for _, status in ipairs { 301, 302, 307, 308 } do
      sb:fault { path = "/token$", status = status, headers = { Location = "https://elsewhere.test/a b\tc" },
                 body = "" }
      local token, msg, code, res = c:user_token(uid)
      assert.is_nil(token)
      assert.equals("HTTP_" .. status, code)
      assert.equals(status, res.status)
      assert.matches("^HTTP_" .. status .. ": redirect not followed %(Location: https://elsewhere%.test/", msg)
      assert.is_nil(msg:find("%c"))
    end
    sb:fault { path = "/token$", status = 302, headers = { Location = "/login" }, body = { message = "Moved" } }
    local _, msg = c:user_token(uid)
    assert.equals("HTTP_302: Moved; redirect not followed (Location: /login) (GET /users/" .. uid .. "/token)", msg)
    local asked = sb:requests()
    assert.equals(5, #asked) -- one each: no redirect was followed
    for _, r in ipairs(asked) do assert.equals("/users/" .. uid .. "/token", r.path) end
  end)

  it("a JSON_DECODE excerpt shows no raw binary, control bytes or invalid UTF-8", function()
    for _, body in ipairs { "\0\1\2binary\255\254", "x\27[2Jcleared\194\155", "\239\187\191<html>\128\129",
                            "bad \237\160\128 surrogate \192\175 overlong" } do
      sb:fault { path = "/token$", status = 200, body = body }
      local _, msg, code = c:user_token(uid)
      assert.equals("JSON_DECODE", code)
      assert.is_nil(msg:find("%c"), msg)
      assert.is_nil(msg:find("\255", 1, true), msg)
      assert.is_nil(msg:find("\194\155", 1, true), msg)
      assert.is_nil(msg:find("\237\160\128", 1, true), msg)
      assert.is_nil(msg:find("\192\175", 1, true), msg)
      assert.is_nil(msg:find("\128", 1, true) and not msg:find("\239\187\191", 1, true), msg)
    end
  end)
end)

describe("alloy.redact", function()
  local KEY_ = "sk/live+Abc123Def456Ghi789"
  it("masks the key and every 8-character piece of it, in any case, percent-encoded or JSON-escaped", function()
    local forms = { KEY_, KEY_:upper(), KEY_:lower(), "sk%2Flive%2BAbc123Def456Ghi789",
                    "sk%2flive%2babc123def456ghi789",
                    "sk\\/live+Abc123Def456Ghi789", "sk\\u002flive\\u002bAbc123Def456Ghi789",
                    "sk%252Flive%252BAbc123Def456Ghi789", KEY_:sub(1, 8), KEY_:sub(-8), KEY_:sub(5, 15) }
    for _, form in ipairs(forms) do
      assert.equals("a [REDACTED] b", alloy.redact("a " .. form .. " b", KEY_), form)
    end
    assert.equals("[REDACTED] and [REDACTED]", alloy.redact(KEY_ .. " and " .. KEY_:upper(), KEY_))
  end)

  it("leaves other text, and pieces shorter than 8, as they are", function()
    assert.equals("sk/live Abc123D x", alloy.redact("sk/live Abc123D x", KEY_))
    assert.equals("text \0 with \27 bytes", alloy.redact("text \0 with \27 bytes", KEY_))
    assert.equals("", alloy.redact("", KEY_))
    assert.equals("abcdefgh", alloy.redact("abcdefgh", "abc")) -- too short a secret to tell from text
  end)

  it("masks the key in base64, standard or URL-safe, at any byte offset (a Basic header)", function()
    local mime = require "mime"
    -- 11 base64 characters of the key: any run of them, at any of the three offsets
    local pieces = {}
    for offset = 0, 2 do
      local part = KEY_:sub(offset + 1)
      local b64 = mime.b64(part:sub(1, #part - #part % 3))
      for _, form in ipairs({ b64, (b64:gsub("+", "-"):gsub("/", "_")) }) do
        for i = 1, #form - 10 do pieces[#pieces + 1] = form:sub(i, i + 10) end
      end
    end
    for _, text in ipairs({ mime.b64(KEY_), mime.b64("user:" .. KEY_), mime.b64("ab" .. KEY_ .. "cd") }) do
      for _, form in ipairs({ text, (text:gsub("+", "-"):gsub("/", "_")) }) do
        local got = alloy.redact("x " .. form .. " y", KEY_)
        assert.matches("[REDACTED]", got, 1, true)
        for _, piece in ipairs(pieces) do assert.is_nil(got:find(piece, 1, true), piece .. " in " .. got) end
      end
    end
    assert.equals("SGVsbG8gd29ybGQ= stays", alloy.redact("SGVsbG8gd29ybGQ= stays", KEY_))
  end)

  it("alloy.redactor(secret): the same rule, its forms built once", function()
    local r = alloy.redactor(KEY_)
    for _, text in ipairs({ "a " .. KEY_ .. " b", "u=" .. KEY_:upper(), require("mime").b64(KEY_), "plain" }) do
      assert.equals(alloy.redact(text, KEY_), r(text))
    end
    assert.equals("abc def", alloy.redactor("abc")("abc def")) -- shorter than the key's rule
    assert.equals("[REDACTED] def", alloy.redactor("abc", 3)("abc def"))
    assert.has_error(function() alloy.redactor("x\0y") end)
  end)

  it("with a window, masks pieces that long, or a shorter secret whole (a connector's secrets)", function()
    assert.equals("x [REDACTED] y", alloy.redact("x pin42 y", "pin42", 8))
    assert.equals("[REDACTED]-a [REDACTED]", alloy.redact("secret-a cret", "secret", 4))
    assert.equals("a %5BREDACTED%5D b", alloy.redact("a %5BREDACTED%5D b", "pin42", 8)) -- not a form of it
    assert.equals("a [REDACTED] b", alloy.redact("a pi%6E42 b", "pin42", 8)) -- percent-encoded
    assert.has_error(function() alloy.redact("x", "secret", 0) end)
    assert.has_error(function() alloy.redact("x", "secret", 9) end)
  end)

  it("needs a secret without NUL", function()
    assert.has_error(function() alloy.redact("x") end)
    assert.has_error(function() alloy.redact("x", "a\0bcdefghij") end)
  end)
end)
