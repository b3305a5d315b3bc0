-- The OAuth listener accepts only what the flow started: a request on the redirect path is
-- a cue to list the user's credentials, and only a credential that is new since the flow
-- began and of the connector being connected ends it. Any local page can send a request to
-- a loopback port: drive-by GETs (with junk, or an existing or foreign credentialId), POST,
-- PUT and HEAD leave the flow waiting, and the genuine redirect still completes it.
local Sandbox = require "sandbox"
local run = require "run"
local socket = require "socket"

-- One raw HTTP request to the listener -> the status code (number) or nil.
local function raw(port, method, target, body)
  local c = assert(socket.tcp())
  c:settimeout(10)
  assert(c:connect("127.0.0.1", port))
  c:send(("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"):format(
    method, target, port, #(body or ""), body or ""))
  local line = c:receive("*l")
  c:close()
  return tonumber(line and line:match("^HTTP/1%.%d (%d+)"))
end

describe("the OAuth redirect listener #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, dir, port, redirect
  Sandbox.per_test_user("olga", function(s, u) sb, uid = s, u end)
  before_each(function()
    dir = run.tmpdir()
    port = run.closed_port()
    redirect = "http://localhost:" .. port .. "/cb"
    sb:set { oauth_redirect = "success" }
  end)
  after_each(function() run.rmdir(dir) end)

  local function start(script, args)
    local h = run.spawn(script, args, { env = run.env(sb, uid, { REDIRECT_URI = redirect }), cwd = dir })
    local url = h:line()
    assert.matches("^http://127%.0%.0%.1:%d+/", url)
    return h, url
  end

  local function notion(extra)
    local args = { "--connector", "notion", "--redirect-uri", redirect, "--timeout", "20", "--new" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return start("initiate_oauth", args)
  end

  local function ids(r) return run.lines(r.stdout) end

  it("a drive-by GET with junk, POST, PUT and HEAD leave it waiting; the genuine redirect completes", function()
    local h, url = notion()
    assert.equal(409, select(1, run.get("http://127.0.0.1:" .. port .. "/cb?foo=bar&credentialId=junk")))
    assert.equal(409, select(1, run.get("http://127.0.0.1:" .. port .. "/cb")))
    assert.equal(405, raw(port, "POST", "/cb?credentialId=aaaaaaaaaaaaaaaaaaaaaaaa&success=true", "x=1"))
    assert.equal(405, raw(port, "PUT", "/cb", ""))
    assert.equal(405, raw(port, "HEAD", "/cb?success=true"))
    assert.equal(405, raw(port, "DELETE", "/cb"))
    local b = run.browse(url)
    assert.equal(200, b.status)
    local r = h:wait()
    assert.equal(0, r.code, r.stderr)
    assert.equal(b.location:match("credentialId=(%x+)"), ids(r)[2])
    assert.matches("no new notion connection has appeared for user " .. uid .. "; still waiting", r.stderr, 1, true)
  end)

  it("an existing Notion credential's id on the redirect is not the new connection", function()
    local old = sb:create_credential { userId = uid, connector = "notion" }.credentialId
    local h, url = notion({ "--save" })
    local st = run.get("http://127.0.0.1:" .. port .. "/cb?credentialId=" .. old .. "&success=true")
    assert.equal(409, st)
    assert.is_nil(io.open(dir .. "/.env"), "nothing saved for a request that brought no new connection")
    local b = run.browse(url)
    local new = b.location:match("credentialId=(%x+)")
    local r = h:wait()
    assert.equal(0, r.code, r.stderr)
    assert.not_equal(old, new)
    assert.equal(new, ids(r)[2])
    assert.equal("CONNECTION_ID=" .. new .. "\n", run.read(dir .. "/.env"))
  end)

  it("a Slack credential made during a Notion flow is not the Notion connection", function()
    local h, url = start("test_oauth", { "--timeout", "20" })
    local slack = sb:create_credential { userId = uid, connector = "slack" }.credentialId
    assert.equal(409, select(1, run.get("http://127.0.0.1:" .. port .. "/cb?credentialId=" .. slack
      .. "&success=true")))
    -- the genuine redirect names the Notion credential; an attacker's id beside it is ignored
    local b = run.browse(url)
    assert.equal(200, b.status)
    local r = h:wait()
    assert.equal(0, r.code, r.stderr)
    assert.equal(b.location:match("credentialId=(%x+)"), ids(r)[2])
    assert.not_equal(slack, ids(r)[2])
    assert.matches("Connected: notion connection " .. ids(r)[2], r.stderr, 1, true)
  end)

  it("the redirect's id is checked, not trusted: a foreign id with a genuine new credential picks the new one",
    function()
      sb:set { oauth_redirect = "none" }
      local other = sb:create_user { username = "mallory" }
      local foreign = sb:create_credential { userId = other, connector = "notion" }.credentialId
      local h, url = notion()
      local b = run.browse(url) -- creates the credential; the redirect carries no id
      assert.equal(200, b.status)
      local r = h:wait()
      assert.equal(0, r.code, r.stderr)
      assert.not_equal(foreign, ids(r)[2])
      assert.equal(24, #ids(r)[2])
      -- and the drive-by carrying the foreign id cannot end a fresh flow
      h, url = notion()
      assert.equal(409, select(1, run.get("http://127.0.0.1:" .. port .. "/cb?credentialId=" .. foreign)))
      run.browse(url)
      r = h:wait()
      assert.equal(0, r.code, r.stderr)
      assert.not_equal(foreign, ids(r)[2])
    end)

  it("only drive-bys until the timeout: exit 1, nothing saved, the message says what came", function()
    local h = notion({ "--timeout", "2", "--save" })
    assert.equal(409, select(1, run.get("http://127.0.0.1:" .. port .. "/cb?success=true")))
    local r = h:wait()
    assert.equal(1, r.code, r.stderr)
    assert.equal(1, #ids(r), "only the OAuth URL on stdout")
    assert.matches("error: no redirect arrived on " .. redirect .. " within 2 s (timeout), and the 1 request that came"
      .. " brought no new notion connection", r.stderr, 1, true)
    assert.is_nil(io.open(dir .. "/.env"))
  end)

  it("--timeout that is not finite is a usage error before anything is sent", function()
    for _, t in ipairs { "1e999", "-1e999", "0", "nan", "inf" } do
      local r = run.script("initiate_oauth", { "--connector", "notion", "--redirect-uri", redirect, "--no-listen",
        "--timeout=" .. t },
        { env = run.env(sb, uid), cwd = dir })
      assert.equal(2, r.code, r.stderr)
      assert.matches("--timeout must be a positive number of seconds, got \"" .. t .. "\"", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("inf s", 1, true))
    end
    for _, q in ipairs(sb:requests()) do assert.not_equal("POST", q.method) end
  end)
end)
