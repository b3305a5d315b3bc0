-- lua/initiate_oauth.lua end to end: the spec plays the browser (GET the oauthUrl, follow
-- the sandbox's 302 to the script's loopback listener) over real HTTP.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"
local socket = require "socket"

local lines = run.lines

local function escape(s) return (s:gsub("%p", "%%%0")) end

-- true when we can bind the port ourselves (nobody holds it)
local function port_free(port)
  local s = socket.tcp4()
  s:setoption("reuseaddr", true)
  local ok = s:bind("127.0.0.1", port)
  s:close()
  return ok ~= nil
end

describe("initiate_oauth.lua", function()
  local sb, uid, dir, port, redirect

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)

  before_each(function()
    sb:reset()
    uid = sb:create_user{ username = "olivia" }
    dir = run.tmpdir()
    port = run.closed_port()
    redirect = "http://localhost:" .. port .. "/oauth/callback"
  end)
  after_each(function() run.rmdir(dir) end)

  local function opts(extra, o)
    o = o or {}
    o.env = o.env or run.env(sb, uid, extra)
    o.cwd = o.cwd or dir
    return o
  end

  local function oauth(args, extra, o)
    return run.script("initiate_oauth", args, opts(extra, o))
  end

  local function spawn(args, extra, o)
    return run.spawn("initiate_oauth", args, opts(extra, o))
  end

  local function credential_ids()
    local ids = {}
    for _, c in ipairs(sb:state().credentials) do ids[#ids + 1] = c.credentialId end
    return ids
  end

  describe("round trip with the loopback listener", function()
    local function flow(mode, extra_args)
      sb:set{ oauth_redirect = mode }
      local args = { "--connector", "notion", "--redirect-uri", redirect, "--timeout", "10" }
      for _, a in ipairs(extra_args or {}) do args[#args + 1] = a end
      local h = spawn(args)
      local url = h:line()
      local browser = url and run.browse(url) or {}
      return h:wait(), url, browser
    end

    it("no query on the redirect: confirms by listing, prints URL then the new id", function()
      local old = sb:create_credential{ userId = uid, connector = "notion" }.credentialId
      local r, url, b = flow("none", { "--new" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("^" .. escape(sb.url) .. "/api/strategy/connector/notion/authorize%?userId=" .. uid, url)
      assert.equal(302, b.authorize_status)
      assert.equal(redirect, b.location)
      assert.equal(200, b.status)
      local ids = credential_ids()
      assert.equal(2, #ids)
      local new = ids[1] == old and ids[2] or ids[1]
      assert.are_not.equal(old, new)
      assert.equal(url .. "\n" .. new .. "\n", r.stdout)
      assert.matches("<title>notion is connected</title>", b.body, 1, true)
      assert.matches("<code>" .. new .. "</code>", b.body, 1, true)
      assert.matches("Connected: notion connection " .. new, r.stderr)
      assert.matches("CONNECTION_ID=" .. new, r.stderr, 1, true)
    end)

    it("sends the documented create-credential request", function()
      local r = flow("none")
      assert.equal(0, r.code, r.stderr)
      local post
      for _, q in ipairs(sb:requests()) do
        if q.method == "POST" then post = q end
      end
      assert.equal("/connectors/notion/credentials", post.path)
      assert.equal("2025-09", post.headers["x-api-version"])
      assert.matches("^application/json", post.headers["content-type"])
      assert.same({ userId = uid, authenticationType = "oauth2", redirectUri = redirect }, cjson.decode(post.body))
    end)

    it("credentialId&success=true on the redirect: uses that id", function()
      local r, _, b = flow("success")
      assert.equal(0, r.code, r.stderr)
      local id = b.location:match("credentialId=(%x+)")
      assert.equal(24, #id)
      assert.equal(id, lines(r.stdout)[2])
      assert.same({ id }, credential_ids())
      assert.matches("notion is connected", b.body, 1, true)
    end)

    it("error on the redirect: failure page, exit 1, no id", function()
      local r, url, b = flow("error")
      assert.equal(1, r.code)
      assert.equal(url .. "\n", r.stdout)
      assert.equal(400, b.status)
      assert.matches("Connecting notion failed", b.body, 1, true)
      assert.matches("access_denied", b.body, 1, true)
      assert.matches("\nerror: authorization failed: access_denied\nhint: ", r.stderr)
      assert.same({}, credential_ids())
    end)

    it("--json: URL on stderr while waiting, one JSON document at the end", function()
      sb:set{ oauth_redirect = "success" }
      local h = spawn({ "--connector", "notion", "--redirect-uri", redirect, "--timeout", "10", "--json" })
      local url = run.wait_for(function()
        return h:stderr_so_far():match("\n(http://[^\n]+authorize[^\n]+)\n")
      end, 10)
      assert.is_string(url)
      local b = run.browse(url)
      local r = h:wait()
      assert.equal(0, r.code, r.stderr)
      assert.equal(1, #lines(r.stdout))
      local doc = cjson.decode(r.stdout)
      assert.equal(url, doc.oauthUrl)
      assert.equal(b.location:match("credentialId=(%x+)"), doc.credentialId)
      assert.equal("notion", doc.credential.type)
      assert.equal(uid, doc.userId)
      assert.equal("true", doc.redirectQuery.success)
    end)

    it("answers other paths with 404 and keeps waiting", function()
      local h = spawn({ "--connector", "notion", "--redirect-uri", redirect, "--timeout", "10" })
      local url = h:line()
      local st, _, body = run.get("http://127.0.0.1:" .. port .. "/favicon.ico")
      assert.equal(404, st)
      assert.matches("/oauth/callback", body, 1, true)
      local b = run.browse(url)
      assert.equal(200, b.status)
      local r = h:wait()
      assert.equal(0, r.code, r.stderr)
    end)

    it("--save writes CONNECTION_ID into .env, keeping every other line", function()
      local before = "# project settings\nALLOY_API_KEY=" .. sb.api_key .. "\n\n# the app\nCONNECTION_ID=old\n"
        .. "OTHER='keep me' # note\n"
      run.write(dir .. "/.env", before, "600")
      local r = flow("none", { "--save" })
      assert.equal(0, r.code, r.stderr)
      local id = lines(r.stdout)[2]
      assert.equal((before:gsub("CONNECTION_ID=old", "CONNECTION_ID=" .. id)), run.read(dir .. "/.env"))
      assert.matches("Saved CONNECTION_ID=" .. id .. " to .env", r.stderr, 1, true)
    end)

    it("--save creates .env with mode 0600 when there is none", function()
      local r = flow("none", { "--save" })
      assert.equal(0, r.code, r.stderr)
      local id = lines(r.stdout)[2]
      assert.equal("CONNECTION_ID=" .. id .. "\n", run.read(dir .. "/.env"))
      assert.equal("600", require("alloy.dotenv").mode(dir .. "/.env"))
    end)

    it("--save with a symlinked .env: reads through it, refuses to replace the link, exit 1", function()
      run.write(dir .. "/real.env", "ALLOY_API_KEY=" .. sb.api_key .. "\n", "600")
      assert(os.execute("ln -s real.env " .. run.quote(dir .. "/.env")))
      local r = flow("none", { "--save" })
      assert.equal(1, r.code)
      assert.equal(1, #lines(r.stdout), "only the OAuth URL")
      local id = r.stderr:match("Connected: notion connection (%x+)")
      assert.equal(24, #id)
      assert.matches("\nerror: could not save CONNECTION_ID to %.env: %.env is a symbolic link, which would be"
        .. " replaced by a plain file %(edit its target instead%)\nhint: add CONNECTION_ID=" .. id
        .. " to it by hand\n$",
        r.stderr)
      assert.equal("link", require("alloy").file_info(dir .. "/.env").type)
      assert.equal("ALLOY_API_KEY=" .. sb.api_key .. "\n", run.read(dir .. "/real.env"))
    end)
  end)

  describe("the README's example", function()
    it("listens on localhost:3000, prints the URL then the new id, saves CONNECTION_ID", function()
      assert(run.wait_for(function() return port_free(3000) end, 20),
        "port 3000 is in use: the README's example listens there")
      local cwd = readme.checkout()
      local h = readme.spawn("lua5.4 lua/initiate_oauth.lua notion --save", { cwd = cwd, env = run.env(sb, uid) })
      local url = h:line()
      local b = url and run.browse(url) or {}
      local r = h:wait()
      local saved = run.read(cwd .. "/.env")
      run.rmdir(cwd)
      assert.equal(0, r.code, r.stderr)
      assert.equal("http://localhost:3000/oauth/callback", b.location)
      assert.equal(200, b.status)
      local id = credential_ids()[1]
      assert.equal(url .. "\n" .. id .. "\n", r.stdout)
      assert.equal("CONNECTION_ID=" .. id .. "\n", saved)
      assert.matches("Connected: notion connection " .. id, r.stderr, 1, true)
      assert.matches("Saved CONNECTION_ID=" .. id .. " to .env", r.stderr, 1, true)
      assert.matches("List connections: lua5.4 lua/list_connections.lua notion", r.stderr, 1, true)
    end)
  end)

  describe("when nobody comes back", function()
    it("times out with a clear message, exit 1, and releases the port", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect, "--timeout", "0.3" })
      assert.equal(1, r.code)
      assert.equal(1, #lines(r.stdout))
      assert.matches("\nerror: no redirect arrived on " .. escape(redirect) .. " within 0.3 s", r.stderr)
      assert.matches("hint: [^\n]*%-%-timeout", r.stderr)
      assert.is_true(port_free(port))
    end)
  end)

  describe("port already in use", function()
    it("exits 2 before creating anything", function()
      local blocker = assert(socket.bind("127.0.0.1", port))
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect })
      blocker:close()
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.matches("^error: cannot listen on 127%.0%.0%.1:" .. port .. ": address already in use\nhint: ", r.stderr)
      for _, q in ipairs(sb:requests()) do assert.are_not.equal("POST", q.method) end
    end)

    it("for localhost, [::1] taken by another program is as busy (a browser may go there first)", function()
      local v6 = socket.tcp6()
      v6:setoption("ipv6-v6only", true)
      if not v6:bind("::1", port) then -- no IPv6 on this machine: nothing to take the redirect there
        v6:close()
        return pending("no [::1] here")
      end
      assert(v6:listen(4))
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect })
      v6:close()
      assert.equal(2, r.code)
      assert.matches("^error: cannot listen on %[::1%]:" .. port .. ": address already in use\nhint: ", r.stderr)
      for _, q in ipairs(sb:requests()) do assert.are_not.equal("POST", q.method) end
      assert.is_true(port_free(port)) -- the 127.0.0.1 socket it had opened is closed again
    end)

    it("for localhost, listens on both, and the redirect may come over [::1]", function()
      local probe = socket.tcp6()
      if not probe:bind("::1", 0) then probe:close(); return pending("no [::1] here") end
      probe:close()
      local h = spawn({ "--connector", "notion", "--redirect-uri", redirect, "--timeout", "10" })
      local url = h:line()
      local st, hdrs = run.get(url) -- the sandbox's authorize page sends the browser to the redirect URI
      assert.equal(302, st)
      -- the browser, as one that tries ::1 first for localhost
      local c = socket.tcp6()
      c:settimeout(10)
      assert(c:connect("::1", port))
      local target = hdrs.location:match("^http://localhost:%d+(/.*)$")
      c:send("GET " .. target .. " HTTP/1.1\r\nHost: localhost:" .. port .. "\r\nConnection: close\r\n\r\n")
      local page = c:receive("*a")
      c:close()
      local r = h:wait()
      assert.equal(0, r.code, r.stderr)
      assert.matches("^HTTP/1.1 200 ", page)
      assert.matches("(listening on 127.0.0.1:" .. port .. " and [::1]:" .. port .. ";", r.stderr, 1, true)
    end)
  end)

  describe("without listening", function()
    it("--no-listen prints only the URL and next steps", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect, "--no-listen" })
      assert.equal(0, r.code, r.stderr)
      assert.equal(1, #lines(r.stdout))
      assert.matches("^" .. escape(sb.url) .. "/api/strategy/connector/notion/authorize%?", r.stdout)
      assert.matches("list_connections.lua notion", r.stderr, 1, true)
    end)

    it("an https redirect URI is not listened on", function()
      local r = oauth({ "--connector", "slack", "--redirect-uri", "https://app.example.com/cb" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("redirectUri=https%%3A%%2F%%2Fapp%.example%.com%%2Fcb", r.stdout)
      assert.is_nil(r.stderr:find("Waiting", 1, true))
    end)

    it("--json prints one document with the URL", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect, "--no-listen", "--json" })
      assert.equal(0, r.code, r.stderr)
      local doc = cjson.decode(r.stdout)
      assert.equal("notion", doc.connector)
      assert.equal(redirect, doc.redirectUri)
      assert.equal(uid, doc.userId)
      assert.matches("/authorize%?", doc.oauthUrl)
    end)

    it("--open without a display says so and still prints the URL", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect, "--no-listen", "--open" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("--open: no display", r.stderr, 1, true)
      assert.equal(1, #lines(r.stdout))
    end)
  end)

  describe("API failures", function()
    it("unknown connector: exit 2 before anything is created, with the closest known ids", function()
      local r = oauth({ "--connector", "nosuchapp", "--redirect-uri", redirect, "--timeout", "5" })
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.matches("^error: unknown connector \"nosuchapp\"\nhint: list the connectors with: ", r.stderr)
      assert.is_true(port_free(port))
      r = oauth({ "--connector", "notoin", "--redirect-uri", redirect, "--timeout", "5" })
      assert.equal(2, r.code)
      assert.equal("error: unknown connector \"notoin\"\nhint: did you mean notion?\n", r.stderr)
      assert.equal(0, #credential_ids())
    end)

    it("401: wrong key", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect },
        { ALLOY_API_KEY = "bad-key-bad-key-bad-key-bad-key!" })
      assert.equal(1, r.code)
      assert.matches("^error: HTTP_401[^\n]*\nhint: check ALLOY_API_KEY", r.stderr)
    end)

    it("404: unknown user", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect, "--user", "5f0000000000000000000000" })
      assert.equal(1, r.code)
      assert.matches("^error: HTTP_404: User not found[^\n]*\nhint: check ALLOY_USER_ID", r.stderr)
    end)

    it("400: a user id that is not an ObjectId", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect, "--no-listen", "--user", "olivia" })
      assert.equal(1, r.code)
      assert.matches("^error: HTTP_400: userId must be a valid ID[^\n]*\nhint: user ids are 24%-hex ObjectIds",
        r.stderr)
    end)
  end)

  describe("usage errors", function()
    it("--listen needs a loopback http redirect URI", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", "https://app.example.com/cb", "--listen" })
      assert.equal(2, r.code)
      assert.matches("^error: cannot listen for https://app%.example%.com", r.stderr)
    end)

    it("--save needs the listener", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect, "--no-listen", "--save" })
      assert.equal(2, r.code)
      assert.matches("^error: %-%-save needs the redirect listener", r.stderr)
    end)

    it("a redirect URI that is not http(s)", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", "localhost:3000/cb" })
      assert.equal(2, r.code)
      assert.matches("^error: redirect URI must be an http:// or https:// URL", r.stderr)
      assert.equal(0, #sb:requests())
    end)

    it("a bad --timeout", function()
      local r = oauth({ "--connector", "notion", "--redirect-uri", redirect, "--timeout", "soon" })
      assert.equal(2, r.code)
      assert.matches("^error: %-%-timeout must be a positive number", r.stderr)
    end)
  end)

  describe("prompts", function()
    local CONNECTOR_Q = "Connector id (e.g. notion, slack, hubspot): "
    local REDIRECT_Q = "Redirect URI [http://localhost:3000/oauth/callback]: "

    it("on a terminal: asks, asks again on an empty answer, then runs", function()
      local r = oauth({ "--no-listen" }, nil, { tty = true, stdin = "\nnotion\n" .. redirect .. "\n" })
      assert.equal(0, r.code, r.stdout)
      local _, asked = r.stdout:gsub(escape(CONNECTOR_Q), "")
      assert.equal(2, asked)
      assert.matches(REDIRECT_Q, r.stdout, 1, true)
      assert.matches("\n" .. escape(sb.url) .. "/api/strategy/connector/notion/authorize%?[^\n]*redirectUri=http%%3A",
        r.stdout)
    end)

    it("on a terminal: end of input (Ctrl-D) exits 2 cleanly", function()
      local r = oauth({}, nil, { tty = true, stdin = "" })
      assert.equal(2, r.code)
      assert.matches(CONNECTOR_Q, r.stdout, 1, true)
      assert.matches("error: no connector id given (end of input)", r.stdout, 1, true)
      assert.is_nil(r.stdout:find("traceback", 1, true))
      assert.equal(0, #sb:requests())
    end)

    it("piped answers work too, without prompt text", function()
      local r = oauth({ "--no-listen" }, nil, { stdin = "slack\n" .. redirect .. "\n" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("/connector/slack/authorize%?", r.stdout)
      assert.is_nil(r.stderr:find(CONNECTOR_Q, 1, true))
    end)

    it("REDIRECT_URI from the environment is not asked for", function()
      local r = oauth({ "--no-listen" }, { REDIRECT_URI = redirect }, { stdin = "notion\n" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("redirectUri=http%%3A%%2F%%2Flocalhost%%3A" .. port, r.stdout)
    end)

    it("no answers on a closed stdin: exit 2", function()
      local r = oauth({})
      assert.equal(2, r.code)
      assert.matches("^error: no connector id given %(end of input%)\nhint: ", r.stderr)
    end)
  end)

  describe("in headless Chromium", function()
    local chromium = "/usr/bin/chromium"
    local f = io.open(chromium, "rb")
    if f then f:close() end
    local test = f and it or pending
    test("lands on the listener's page after the real redirect", function()
      local h = spawn({ "--connector", "notion", "--redirect-uri", redirect, "--timeout", "60" })
      local url = h:line()
      assert.is_string(url)
      local profile = run.tmpdir()
      local p = io.popen(table.concat({ chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--user-data-dir=" .. profile, "--dump-dom", run.quote(url), "2>/dev/null" }, " "))
      local dom = p:read("*a")
      p:close()
      run.rmdir(profile)
      local r = h:wait()
      assert.equal(0, r.code, r.stderr)
      assert.matches("notion is connected", dom, 1, true)
      assert.matches("<code>" .. lines(r.stdout)[2] .. "</code>", dom, 1, true)
    end)
  end)
end)
