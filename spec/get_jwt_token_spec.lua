-- lua/get_jwt_token.lua as a user runs it, against the sandbox over real HTTP.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"

local lines = run.lines

local JWT = "^[%w_%-]+%.[%w_%-]+%.[%w_%-]+\n$"

describe("get_jwt_token.lua #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, dir

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)

  before_each(function()
    sb:reset()
    uid = sb:create_user{ username = "alice", fullName = "Alice Example" }
    dir = run.tmpdir()
  end)
  after_each(function() run.rmdir(dir) end)

  local function jwt(args, extra, opts)
    opts = opts or {}
    opts.env = opts.env or run.env(sb, uid, extra)
    opts.cwd = opts.cwd or dir
    return run.script("get_jwt_token", args or {}, opts)
  end

  describe("success", function()
    it("prints exactly the token and a newline on stdout", function()
      local out, err, code = readme.run("lua5.4 lua/get_jwt_token.lua", { env = run.env(sb, uid) })
      assert.equal(0, code, err)
      assert.matches(JWT, out)
      local claims = run.jwt_payload(out:sub(1, -2))
      assert.equal(uid, claims.userId)
      assert.is_number(claims.exp)
      assert.is_number(claims.iat)
    end)

    it("makes the documented call: GET /users/{id}/token with Bearer, x-api-version and Accept", function()
      local r = jwt()
      assert.equal(0, r.code, r.stderr)
      local reqs = sb:requests()
      assert.equal(1, #reqs)
      assert.equal("GET", reqs[1].method)
      assert.equal("/users/" .. uid .. "/token", reqs[1].path)
      assert.equal("Bearer " .. sb.api_key, reqs[1].headers.authorization)
      assert.equal("2025-09", reqs[1].headers["x-api-version"])
      assert.equal("application/json", reqs[1].headers.accept)
    end)

    it("summarises user, endpoint, API version and expiry on stderr", function()
      local r = jwt()
      assert.equal(0, r.code, r.stderr)
      local claims = run.jwt_payload(r.stdout:sub(1, -2))
      local l = lines(r.stderr)
      assert.equal("user:        " .. uid, l[1])
      assert.equal("endpoint:    GET " .. sb.embedded_url .. "/users/" .. uid .. "/token", l[2])
      -- as the 2025-09 reference sends it: userId in the query as well as the path
      local q = sb:requests()
      assert.equal("userId=" .. uid, q[#q].query)
      assert.equal("api version: 2025-09 (x-api-version header)", l[3])
      assert.equal("expires:     " .. os.date("!%Y-%m-%dT%H:%M:%SZ", claims.exp), l[4]:match("^(.-) %("))
      assert.matches("%(in %d+[mh][ %dm]*%)$", l[4])
      assert.equal(4, #l)
    end)

    it("TOKEN=$(...), the README's session: the token goes to the variable, the summary to stderr", function()
      local out, err, code = readme.run("TOKEN=$(lua5.4 lua/get_jwt_token.lua)", { env = run.env(sb, uid) })
      assert.equal(0, code, err)
      assert.equal("", out)
      local l = lines(err)
      assert.equal(4, #l, err)
      assert.equal("user:        " .. uid, l[1])
      assert.equal("endpoint:    GET " .. sb.embedded_url .. "/users/" .. uid .. "/token", l[2])
      assert.equal("api version: 2025-09 (x-api-version header)", l[3])
      assert.matches("^expires:     %d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ %(in ", l[4])
    end)

    it("--quiet leaves stderr empty", function()
      local r = jwt({ "-q" })
      assert.equal(0, r.code)
      assert.equal("", r.stderr)
      assert.matches(JWT, r.stdout)
    end)

    it("--json prints one JSON document", function()
      local out, err, code = readme.run("lua5.4 lua/get_jwt_token.lua --json", { env = run.env(sb, uid) })
      assert.equal(0, code, err)
      assert.equal(1, #lines(out))
      local doc = cjson.decode(out)
      assert.matches("^[%w_%-]+%.[%w_%-]+%.[%w_%-]+$", doc.token)
      assert.equal(uid, doc.userId)
      assert.equal(sb.embedded_url .. "/users/" .. uid .. "/token", doc.endpoint)
      assert.equal("2025-09", doc.apiVersion)
      assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", run.jwt_payload(doc.token).exp), doc.expiresAt)
    end)

    it("accepts a username as the user id", function()
      local r = jwt({ "--user", "alice" })
      assert.equal(0, r.code, r.stderr)
      assert.equal(uid, run.jwt_payload(r.stdout:sub(1, -2)).userId)
    end)

    it("--api-version changes the header", function()
      local r = jwt({ "--api-version", "2024-03" })
      assert.equal(0, r.code, r.stderr)
      assert.equal("2024-03", sb:requests()[1].headers["x-api-version"])
      assert.matches("api version: 2024-03", r.stderr, 1, true)
    end)

    it("retries a 503 with Retry-After when ALLOY_RETRIES allows it", function()
      sb:fault{ path = "/token$", status = 503, headers = { ["Retry-After"] = "0" } }
      local r = jwt({}, { ALLOY_RETRIES = "1" })
      assert.equal(0, r.code, r.stderr)
      assert.matches(JWT, r.stdout)
      assert.equal(2, #sb:requests())
    end)

    it("--help prints usage on stdout, exits 0 and calls nothing", function()
      local r = jwt({ "--help" })
      assert.equal(0, r.code)
      assert.matches("^Usage: get_jwt_token.lua", r.stdout)
      assert.matches("--probe", r.stdout, 1, true)
      assert.matches("ALLOY_API_KEY (required; never a flag)", r.stdout, 1, true)
      assert.equal(0, #sb:requests())
    end)
  end)

  describe("configuration", function()
    it("reads everything from ./.env (export, quotes, comments, CRLF, BOM)", function()
      run.write(dir .. "/.env", "\239\187\191# local settings\r\n"
        .. 'export ALLOY_API_KEY="' .. sb.api_key .. '"\r\n'
        .. "ALLOY_USER_ID=" .. uid .. " # alice\r\n"
        .. "ALLOY_EMBEDDED_URL='" .. sb.embedded_url .. "'\r\n", "600")
      local r = run.script("get_jwt_token", {}, { cwd = dir, env = { ALLOY_TIMEOUT = "5", ALLOY_RETRIES = "0" } })
      assert.equal(0, r.code, r.stderr)
      assert.matches(JWT, r.stdout)
      assert.equal("", r.stderr:match("warning[^\n]*") or "")
    end)

    it("prefers the environment over .env, and flags over both", function()
      local bob = sb:create_user{ username = "bob" }
      run.write(dir .. "/.env", "ALLOY_USER_ID=000000000000000000000000\nALLOY_EMBEDDED_URL=http://127.0.0.1:"
        .. run.closed_port() .. "\n", "600")
      local r = jwt()   -- environment: uid and the sandbox URL
      assert.equal(0, r.code, r.stderr)
      assert.equal(uid, run.jwt_payload(r.stdout:sub(1, -2)).userId)
      r = jwt({ "--user", bob })
      assert.equal(0, r.code, r.stderr)
      assert.equal(bob, run.jwt_payload(r.stdout:sub(1, -2)).userId)
      -- without the environment value, .env's (unknown) user is used
      r = jwt({}, { ALLOY_USER_ID = false, ALLOY_EMBEDDED_URL = false })
      assert.equal(1, r.code)
      assert.matches("COULDNT_CONNECT", r.stderr, 1, true)
    end)

    it("--env-file reads another file instead of ./.env", function()
      run.write(dir .. "/.env", "ALLOY_USER_ID=nobody\n", "600")
      run.write(dir .. "/other.env", "ALLOY_USER_ID=" .. uid .. "\n", "600")
      local r = jwt({ "--env-file", dir .. "/other.env" }, { ALLOY_USER_ID = false })
      assert.equal(0, r.code, r.stderr)
      assert.equal(uid, run.jwt_payload(r.stdout:sub(1, -2)).userId)
    end)

    it("a missing --env-file is a configuration error (exit 2)", function()
      local r = jwt({ "--env-file", dir .. "/missing.env" })
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.matches("^error: cannot read the env file: [^\n]*missing.env", r.stderr)
      assert.equal(0, #sb:requests())
    end)

    it("a .env that is a FIFO or a directory: one error line, exit 2, no request (and no hang)", function()
      assert(os.execute("mkfifo " .. run.quote(dir .. "/.env")))
      local r = jwt()
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.equal("error: cannot read the env file: .env is a FIFO, not a regular file\nhint: --env-file must name a"
        .. " readable file (default: .env in the current directory)\n", r.stderr)
      os.remove(dir .. "/.env")
      assert(os.execute("mkdir " .. run.quote(dir .. "/.env")))
      r = jwt()
      assert.equal(2, r.code)
      assert.matches("^error: cannot read the env file: %.env is a directory, not a regular file\n", r.stderr)
      assert.equal(0, #sb:requests())
    end)

    it("reads a symlinked .env through the link", function()
      run.write(dir .. "/real.env", "ALLOY_USER_ID=" .. uid .. "\n", "600")
      assert(os.execute("ln -s real.env " .. run.quote(dir .. "/.env")))
      local r = jwt({}, { ALLOY_USER_ID = false })
      assert.equal(0, r.code, r.stderr)
      assert.equal(uid, run.jwt_payload(r.stdout:sub(1, -2)).userId)
    end)

    it("reports a broken .env line as path:LINE and exits 2", function()
      run.write(dir .. "/.env", "# ok\nALLOY_USER_ID=x\nthis line is broken\n", "600")
      local r = jwt()
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.matches("^error: %.env:3: expected KEY=VALUE\nhint: ", r.stderr)
    end)

    it("warns when .env with the key is readable by others, and still works", function()
      run.write(dir .. "/.env", "ALLOY_API_KEY=" .. sb.api_key .. "\n", "644")
      local r = jwt({}, { ALLOY_API_KEY = false })
      assert.equal(0, r.code, r.stderr)
      assert.matches("warning: .env holds ALLOY_API_KEY and is readable by other users (mode 644); run: chmod 600 .env",
        r.stderr, 1, true)
    end)

    it("missing key: exit 2, names ALLOY_API_KEY and where to set it, calls nothing", function()
      local r = jwt({}, { ALLOY_API_KEY = false })
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.matches("^error: ALLOY_API_KEY is not set\nhint: [^\n]*export ALLOY_API_KEY=[^\n]*%.env", r.stderr)
      assert.equal(0, #sb:requests())
    end)

    it("missing user: exit 2, names ALLOY_USER_ID and --user", function()
      local r = jwt({}, { ALLOY_USER_ID = false })
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.matches("^error: no user id: ALLOY_USER_ID is not set and %-%-user was not given\nhint: pass %-%-user",
        r.stderr)
      assert.equal(0, #sb:requests())
    end)

    it("refuses the key as a command-line argument", function()
      local r = jwt({ "--api-key", "whatever" })
      assert.equal(2, r.code)
      assert.matches("not accepted on the command line", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("whatever", 1, true))
    end)

    it("an unknown option is a usage error", function()
      local r = jwt({ "--frobnicate" })
      assert.equal(2, r.code)
      assert.matches("^error: unknown option '%-%-frobnicate'\nhint: run with %-%-help", r.stderr)
    end)

    it("a bad ALLOY_TIMEOUT is a configuration error", function()
      local r = jwt({}, { ALLOY_TIMEOUT = "never" })
      assert.equal(2, r.code)
      -- the rule is alloy.new's (alloy.check_option), named with where the value was set
      assert.matches("^error: ALLOY_TIMEOUT %(environment%): timeout must be a number of seconds from 0%.001", r.stderr)
    end)
  end)

  describe("failures", function()
    local function failed(r, code_line, hint_pat)
      assert.equal("", r.stdout)
      local l = lines(r.stderr)
      assert.equal(2, #l, r.stderr)
      assert.matches("^error: " .. code_line, l[1])
      assert.matches("^hint: [^\n]*" .. hint_pat, l[2])
    end

    it("401: wrong key -> exit 1 and a hint about ALLOY_API_KEY", function()
      local r = jwt({}, { ALLOY_API_KEY = "wrong-key-0123456789abcdefghijkl" })
      assert.equal(1, r.code)
      failed(r, "HTTP_401", "check ALLOY_API_KEY")
    end)

    it("404: unknown user -> exit 1 and a hint about ALLOY_USER_ID", function()
      local r = jwt({ "--user", "5f0000000000000000000000" })
      assert.equal(1, r.code)
      failed(r, "HTTP_404: User not found", "check ALLOY_USER_ID")
    end)

    it("-u nobody, the documentation's example: the error line and the hint it prints", function()
      local out, err, code = readme.run("lua5.4 lua/get_jwt_token.lua -u nobody", { env = run.env(sb, uid) })
      assert.equal(1, code)
      failed({ stdout = out, stderr = err }, "HTTP_404: User not found %(GET /users/nobody/token%)$",
        "check ALLOY_USER_ID / %-%-user %(nobody%): the user must exist for this API key, and ALLOY_EMBEDDED_URL / "
        .. "%-%-embedded%-url %(" .. sb.embedded_url:gsub("%p", "%%%0")
        .. "%) must be the right host; the users: lua5%.4 lua/users%.lua list$")
    end)

    it("400 for a user that is not an ObjectId -> the ObjectId hint (from what was sent, not the message)", function()
      sb:fault{ path = "/token$", status = 400, body = { message = "userId must be a valid ID",
        error = { message = "userId must be a valid ID" } }, times = 2 }
      local r = jwt({ "--user", "grace" })
      assert.equal(1, r.code)
      failed(r, "HTTP_400: userId must be a valid ID", "24%-hex ObjectIds")
      r = jwt() -- an ObjectId was sent: the message says what the API did not like
      assert.equal(1, r.code)
      failed(r, "HTTP_400: userId must be a valid ID", "the API refused the request; the message above says")
    end)

    it("500 -> exit 1 and a retry-later hint", function()
      sb:fault{ path = "/token$", status = 500 }
      local r = jwt()
      assert.equal(1, r.code)
      failed(r, "HTTP_500", "try again later")
    end)

    it("unreachable host -> COULDNT_CONNECT, exit 1, connectivity hint", function()
      local r = jwt({}, { ALLOY_EMBEDDED_URL = "http://127.0.0.1:" .. run.closed_port() })
      assert.equal(1, r.code)
      failed(r, "COULDNT_CONNECT", "connectivity")
    end)

    it("a server slower than ALLOY_TIMEOUT -> OPERATION_TIMEDOUT, exit 1", function()
      sb:fault{ path = "/token$", delay = 2 }
      local r = jwt({}, { ALLOY_TIMEOUT = "0.3" })
      assert.equal(1, r.code)
      failed(r, "OPERATION_TIMEDOUT", "ALLOY_TIMEOUT")
    end)

    it("malformed JSON -> JSON_DECODE, exit 1, endpoint hint", function()
      sb:fault{ path = "/token$", status = 200, body = "<html>not json" }
      local r = jwt()
      assert.equal(1, r.code)
      failed(r, "JSON_DECODE", "%-%-probe")
    end)

    it("JSON without a token -> BAD_RESPONSE, exit 1", function()
      sb:fault{ path = "/token$", status = 200, body = { jwt = "x.y.z" } }
      local r = jwt()
      assert.equal(1, r.code)
      failed(r, "BAD_RESPONSE", "ALLOY_EMBEDDED_URL")
    end)

    it("a user id with a control character is a usage error (exit 2), nothing sent", function()
      local r = jwt({ "--user", "abc\r\ndef" })
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.matches("^error: INVALID_ARGUMENT", r.stderr)
      assert.equal(0, #sb:requests())
    end)
  end)

  describe("--verbose", function()
    it("shows the configuration and the HTTP exchange, with the key redacted", function()
      local r = jwt({ "--verbose" })
      assert.equal(0, r.code, r.stderr)
      assert.matches(JWT, r.stdout)
      assert.matches("ALLOY_API_KEY%s+set %(32 characters%)%s+%[environment%]", r.stderr)
      assert.matches("GET /users/" .. uid .. "/token", r.stderr, 1, true)
      assert.matches("x%-api%-version: 2025%-09", r.stderr)
      assert.is_nil(r.stderr:find(sb.api_key, 1, true))
    end)

    it("is also switched on by ALLOY_DEBUG=1 in the environment", function()
      local r = jwt({}, { ALLOY_DEBUG = "1" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("> GET /users/" .. uid .. "/token", r.stderr, 1, true)
      assert.matches("> Authorization: [REDACTED]", r.stderr, 1, true)
      assert.is_nil(r.stderr:find(sb.api_key, 1, true))
      local quiet = jwt({}, { ALLOY_DEBUG = "0" })
      assert.is_nil(quiet.stderr:find("> GET", 1, true))
    end)
  end)

  describe("over TLS", function()
    local tls, tuid
    setup(function()
      tls = Sandbox.start{ tls = true }
      tuid = tls:create_user{ username = "tina" }
    end)
    teardown(function() if tls then tls:stop() end end)

    it("works with ALLOY_CA_FILE naming the sandbox's CA", function()
      local r = run.script("get_jwt_token", {}, { env = run.env(tls, tuid), cwd = dir })
      assert.equal(0, r.code, r.stderr)
      assert.matches(JWT, r.stdout)
      assert.matches("endpoint:    GET https://127.0.0.1:", r.stderr, 1, true)
    end)

    it("fails verification without it: exit 1 and the CA bundle hint", function()
      local r = run.script("get_jwt_token", {}, { env = run.env(tls, tuid, { ALLOY_CA_FILE = false }), cwd = dir })
      assert.equal(1, r.code)
      assert.equal("", r.stdout)
      assert.matches("^error: SSL_[%u_]+[^\n]*\nhint: TLS failed: point ALLOY_CA_FILE %(or CURL_CA_BUNDLE%)", r.stderr)
    end)
  end)

  describe("--probe", function()
    local function rows(stderr)
      local out = {}
      for n, rest in stderr:gmatch("\n%s*(%d+)  ([^\n]*)") do out[tonumber(n)] = rest end
      return out
    end

    it("--all tries every variant, documented first, prints the table, names the first that works", function()
      local r = jwt({ "--probe", "--all" })
      assert.equal(0, r.code, r.stderr)
      assert.matches(JWT, r.stdout)
      local t = rows(r.stderr)
      assert.equal(16, #t)
      assert.matches("^GET%s+production%s+header 2025%-09%s+200 token", t[1])
      assert.matches("^GET%s+embedded%s+header 2025%-09%s+200 token", t[2])
      assert.matches("^GET%s+embedded%s+path /2024%-03%s+200 token", t[4])
      assert.matches("^GET%s+production%s+path /2025%-09%s+200 token", t[6])
      assert.matches("^POST", t[9])
      assert.matches("HTTP_405", t[9], 1, true)
      assert.matches("first working variant: #1 GET " .. sb.url:gsub("%p", "%%%0") .. "/users/", r.stderr)
      local seen = {}
      for _, q in ipairs(sb:requests()) do seen[q.method .. " " .. q.path] = true end
      assert.is_true(seen["GET /users/" .. uid .. "/token"])
      assert.is_true(seen["GET /2024-03/users/" .. uid .. "/token"])
      assert.is_true(seen["GET /2023-12/users/" .. uid .. "/token"])
      assert.is_true(seen["POST /users/" .. uid .. "/token"])
    end)

    it("without --all stops at the first variant that works: the documented one", function()
      local r = jwt({ "--probe" })
      assert.equal(0, r.code, r.stderr)
      assert.matches(JWT, r.stdout)
      local t = rows(r.stderr)
      assert.equal(1, #t)
      assert.matches("^GET%s+production%s+header 2025%-09%s+200 token", t[1])
      assert.equal(1, #sb:requests())
    end)

    it("reports failing variants and picks the first that works", function()
      sb:fault{ path = "^/users/[^/]+/token$", method = "GET", status = 404, times = 1 }
      local r = jwt({ "--probe" }, { ALLOY_BASE_URL = "http://127.0.0.1:" .. run.closed_port() })
      assert.equal(0, r.code, r.stderr)
      local t = rows(r.stderr)
      -- the embedded host takes its documented path versions only: /2025-09 there is a 404
      assert.equal(4, #t)
      assert.matches("COULDNT_CONNECT", t[1], 1, true)
      assert.matches("HTTP_404", t[2], 1, true)
      assert.matches("path /2025%-09%s+HTTP_404", t[3])
      assert.matches("path /2024%-03%s+200 token", t[4])
      assert.matches("first working variant: #4 GET ", r.stderr, 1, true)
      assert.matches("version in the path, /2024-03", r.stderr, 1, true)
      assert.matches(JWT, r.stdout)
    end)

    it("--json adds the table of attempts", function()
      local r = jwt({ "--probe", "--all", "--json" })
      assert.equal(0, r.code, r.stderr)
      local doc = cjson.decode(r.stdout)
      assert.equal(16, #doc.probes)
      assert.is_true(doc.probes[1].ok)
      assert.equal(405, doc.probes[9].status)
      assert.equal(uid, doc.userId)
      assert.is_string(doc.token)
      doc = cjson.decode(jwt({ "--probe", "--json" }).stdout)
      assert.equal(1, #doc.probes)
      assert.equal("production", doc.probes[1].hostName)
    end)

    it("exits 1 with no stdout when nothing works", function()
      local r = jwt({ "--probe" }, { ALLOY_API_KEY = "wrong-key-0123456789abcdefghijkl" })
      assert.equal(1, r.code)
      assert.equal("", r.stdout)
      assert.matches("error: no variant returned a token (16 tried; most common: HTTP_401", r.stderr, 1, true)
      assert.matches("hint: check ALLOY_API_KEY", r.stderr, 1, true)
    end)
  end)
end)
