-- What a server sends is data: an oauthUrl that is not an http(s) URL is neither printed
-- nor opened, a connection id that is not 24 hex never reaches stdout or .env, and escape
-- sequences in names never reach the terminal.
local Sandbox = require "sandbox"
local run = require "run"

describe("a hostile server #scripts", function()
  teardown(run.check_scripts_only)
  local sb, dir

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    dir = run.tmpdir()
  end)
  after_each(function() run.rmdir(dir) end)

  local function oauth(uid, args)
    return run.spawn("initiate_oauth", args, { env = run.env(sb, uid), cwd = dir })
  end

  for _, bad in ipairs { "javascript:alert(1)", "http://127.0.0.1/ok\n$(touch pwned)", "file:///etc/passwd",
                         "http://\27]8;;evil\27\\" } do
    it(("an oauthUrl %q is refused: nothing on stdout, exit 1"):format(bad), function()
      local uid = sb:create_user {}
      sb:fault { method = "POST", path = "^/connectors/notion/credentials$", status = 200, body = { oauthUrl = bad } }
      local args = { "--connector", "notion", "--redirect-uri", "https://example.com/cb", "--no-listen" }
      local r = oauth(uid, args):wait()
      assert.equal(1, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.matches("error: the API answered with an oauthUrl that is not an http(s) URL", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("\27", 1, true))
      assert.is_nil(io.open(dir .. "/pwned"))
    end)
  end

  it("a connection id that is not 24 hex is not printed or saved", function()
    local uid = sb:create_user {}
    local port = run.closed_port()
    local list = "^/credentials/users/"
    -- the existing-connection check and the snapshot before the flow are answered normally
    sb:fault { method = "GET", path = list, delay = 0.001, times = 2 }
    sb:fault { method = "GET", path = list, status = 200, body = { data = { {
      credentialId = "x'$(touch pwned)'\nCONNECTION_ID=evil", type = "notion-oauth2", name = "n",
      createdAt = "2030-01-01T00:00:00.000Z" } } } }
    local h = oauth(uid, { "--connector", "notion", "--redirect-uri", "http://localhost:" .. port .. "/cb",
                           "--timeout", "10", "--save" })
    local url = h:line()
    run.browse(url)
    local r = h:wait()
    assert.equal(1, r.code, r.stderr)
    assert.equal(url .. "\n", r.stdout)
    assert.matches("is not a 24-hex id", r.stderr, 1, true)
    assert.is_nil(io.open(dir .. "/.env"))
    assert.is_nil(io.open(dir .. "/pwned"))
  end)

  it("escape sequences in a connection's name never reach the terminal", function()
    local uid = sb:create_user { username = "\27[2J\27]0;owned\7mallory" }
    local port = run.closed_port()
    local h = oauth(uid, { "--connector", "notion", "--redirect-uri", "http://localhost:" .. port .. "/cb",
                           "--timeout", "10" })
    local url = h:line()
    run.browse(url)
    local r = h:wait()
    assert.equal(0, r.code, r.stderr)
    assert.matches("Connected: notion connection %x+ %(%?%[2J%?%]0;owned%?mallory's Notion Credential%)",
      r.stderr)
    assert.is_nil(r.stderr:find("\27", 1, true))
    assert.is_nil(r.stderr:find("\7", 1, true))
  end)
  it("escape sequences and newlines in a connector's metadata never reach the terminal's prompts", function()
    local uid = sb:create_user {}
    local function entry(t, props, required)
      return { authenticationType = t, inputSchema = { type = "object", properties = { data = {
        type = "object", required = required, properties = props } } } }
    end
    local token = { type = "string", writeOnly = true, title = "\27]0;owned\7Token" }
    local name = { type = "string", title = "\27[2JName\nerror: fake" }
    sb:fault { method = "GET", path = "^/connectors/airtable/credentials/metadata$", status = 200, body = {
      metadata = { entry("bearer", { token = token, name = name }, { "name", "token" }),
                   entry("\27[31mbasic\n", { token = token }, { "token" }) } } }
    local t = run.terminal("initiate_oauth", { "--connector", "airtable" }, { env = run.env(sb, uid), cwd = dir,
                                                                             secrets = { "tok-SECRET-1" } })
    assert.is_true(t:expect("Authentication type for airtable: "), t:screen())
    t:type("1\n")
    assert.is_true(t:expect("(name): "), t:screen())
    t:type("n1\n")
    assert.is_true(t:expect("(token, not shown): "), t:screen())
    t:type("tok-SECRET-1\n")
    local r = t:wait()
    assert.equal(0, r.code, r.stdout)
    assert.is_nil(r.stdout:find("\27", 1, true), r.stdout)
    assert.is_nil(r.stdout:find("\7", 1, true), r.stdout)
    assert.is_nil(r.stdout:find("\nerror: fake", 1, true), r.stdout)
  end)
  it("a user id that is not 24 hex is neither printed nor used: users create and users delete exit 1", function()
    local bad = "x'$(touch pwned)'\n\27[2J"
    sb:fault { method = "POST", path = "^/users$", status = 200, body = { userId = bad } }
    local env = run.env(sb, nil)
    for _, args in ipairs { { "create", "eve" }, { "create", "eve", "--json" } } do
      local r = run.script("users", args, { env = env, cwd = dir })
      assert.equal(1, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.matches("error: the API answered with a user id that is not 24 hex digits", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("\27", 1, true))
      sb:fault { method = "POST", path = "^/users$", status = 200, body = { userId = bad } }
    end
    sb:reset()
    local victim = sb:create_user { username = "victim" }
    sb:create_user { username = "eve" }
    -- the user asked for is answered with another (malformed) id: nothing is deleted
    sb:fault { method = "GET", path = "^/users/eve$", status = 200,
               body = { userId = victim .. "/../x", username = "eve" } }
    local r = run.script("users", { "delete", "eve", "--yes" }, { env = env, cwd = dir })
    assert.equal(1, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.equal(2, #sb:state().users)
    for _, q in ipairs(sb:requests()) do assert.not_equal("DELETE", q.method) end
    assert.is_nil(io.open(dir .. "/pwned"))
  end)
end)

-- Every command against a server whose strings are hostile: escape sequences, CR and
-- newlines that would fake a line or a table row, C1 and bidi controls, "$(touch FILE)" ids,
-- and oauthUrls that are not web pages. Nothing a terminal acts on reaches stdout or stderr
-- (tabs only as the separators of piped tables), --json keeps the data intact but escaped,
-- FILE is never created, xdg-open is only ever handed an http(s) URL.
describe("a hostile server's strings, over every command #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, dir, pwned
  local cjson = require "cjson"
  -- ESC clear-screen and retitle, BEL, CR+LF with a fake error line and a tab, a C1 CSI,
  -- RIGHT-TO-LEFT OVERRIDE, LEFT-TO-RIGHT ISOLATE, LINE SEPARATOR, ARABIC LETTER MARK
  -- raw \155 and \157 are no UTF-8: CSI and OSC to a terminal in an 8-bit mode
  local EVIL = "\27[2J\27]0;owned\7\r\nerror: fake\tcell\194\155" .. "31m\226\128\174gnp.exe\226\129\166x"
    .. "\226\128\168y\216\156z\127\155" .. "2J\157" .. "0;t\7"
  -- EVIL as a JSON printer must give it: the raw bytes that are no UTF-8 as U+FFFD
  local EVIL_JSON = EVIL:gsub("\155" .. "2J", "\239\191\189" .. "2J"):gsub("\157", "\239\191\189")

  Sandbox.per_test_user("mallory", function(s, u) sb, uid = s, u end)
  before_each(function()
    dir = run.tmpdir()
    pwned = dir .. "/pwned"
  end)
  after_each(function() run.rmdir(dir) end)

  local function assert_clean(text, tabs_allowed)
    -- tabs separate the cells of a piped table; anywhere else they are a control too
    local t = tabs_allowed and text:gsub("\t", " ") or text
    assert.is_nil(t:find("[%z\1-\8\9\11-\31\127]"), ("raw control byte in %q"):format(text))
    assert.is_nil(text:find("\194[\128-\159]"), ("C1 control in %q"):format(text))
    assert.is_nil(text:find("\226\128[\142\143\168-\174]"), ("bidi/separator in %q"):format(text))
    assert.is_nil(text:find("\226\129[\166-\169]"), ("bidi isolate in %q"):format(text))
    -- a byte 0x80-0x9F that does not continue a UTF-8 character
    local i = 1
    while i <= #text do
      local b = text:byte(i)
      local n = b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC2 and b < 0xE0 and 2 or 1
      if n > 1 and text:sub(i + 1, i + n - 1):match("^[\128-\191]+$") and #text >= i + n - 1 then
        i = i + n
      else
        assert.is_false(b >= 0x80 and b <= 0x9F, ("raw C1 byte %d at %d in %q"):format(b, i, text))
        i = i + 1
      end
    end
    assert.is_nil(text:find("\216\156", 1, true), ("letter mark in %q"):format(text))
    assert.is_nil(("\n" .. text):find("\nerror: fake", 1, true), ("a faked line in %q"):format(text))
    assert.is_nil(io.open(pwned, "rb"), "a server's text ran as a command")
  end

  local function script(name, args, extra, opts)
    opts = opts or {}
    opts.env, opts.cwd = run.env(sb, uid, extra), dir
    local r = run.script(name, args, opts)
    assert_clean(r.stderr)
    return r
  end

  local function credential(connector)
    return sb:create_credential { userId = uid, connector = connector or "notion", name = EVIL, type = EVIL }
  end

  it("list_connections: table (piped and on a terminal), --json, the .env suggestion", function()
    credential()
    sb:create_credential { userId = uid, connector = "slack", name = EVIL }
    local r = script("list_connections", {})
    assert.equal(0, r.code, r.stderr)
    assert_clean(r.stdout, true)
    assert.equal(2, #run.lines(r.stdout))
    for _, l in ipairs(run.lines(r.stdout)) do assert.equal(4, select(2, l:gsub("\t", "")) + 1, l) end
    r = script("list_connections", {}, nil, { tty = true })
    assert.equal(0, r.code, r.stdout)
    assert_clean(r.stdout)
    assert.equal(5, #run.lines(r.stdout), r.stdout) -- header, two rows, count, suggestion
    r = script("list_connections", { "--json" })
    assert.equal(0, r.code, r.stderr)
    assert_clean(r.stdout)
    local doc = cjson.decode(r.stdout)
    assert.equal(EVIL_JSON, doc.connections[1].name, "the data is kept, escaped")
    assert.equal(EVIL_JSON, doc.connections[1].type)
    -- a hostile id is never offered as a line for .env
    sb:fault { method = "GET", path = "^/credentials/users/", status = 200, body = { data = { {
      credentialId = "$(touch " .. pwned .. ")", type = "notion-oauth2", name = EVIL } } } }
    r = script("list_connections", {})
    assert.equal(0, r.code, r.stderr)
    assert_clean(r.stdout, true)
    assert.matches("To use one: " .. run.invoked("list_connections") .. " --save <id>\n", r.stderr, 1, true)
  end)

  it("list_connectors: names and ids in the table, warnings and the suggested command", function()
    local body = { data = { { id = EVIL, name = EVIL }, { id = "$(touch " .. pwned .. ")", name = "x" } } }
    for _, args in ipairs { {}, { "--json" } } do
      sb:fault { method = "GET", path = "^/connectors$", status = 200, body = body }
      local r = script("list_connectors", args)
      assert.equal(0, r.code, r.stderr)
      assert_clean(r.stdout, #args == 0)
      assert.matches("Connect one with: " .. run.invoked("initiate_oauth") .. " notion\n", r.stderr, 1, true)
      assert.matches("warning: 2 connectors are listed without metadata (AUTH ?)\n", r.stderr, 1, true)
      if args[1] == "--json" then assert.equal(EVIL_JSON, cjson.decode(r.stdout).connectors[1].id) end
    end
  end)

  it("users list, get and delete: usernames and full names", function()
    sb:create_user { username = EVIL, fullName = EVIL }
    local victim = sb:create_user { username = "v" .. EVIL:sub(1, 4), fullName = EVIL }
    for _, args in ipairs { { "list" }, { "list", "--json" }, { "get", victim }, { "get", victim, "--json" } } do
      local r = script("users", args)
      assert.equal(0, r.code, r.stderr)
      assert_clean(r.stdout, args[3] == nil)
    end
    local r = script("users", { "list" }, nil, { tty = true })
    assert.equal(0, r.code, r.stdout)
    assert_clean(r.stdout)
    r = script("users", { "delete", victim, "--yes" })
    assert.equal(0, r.code, r.stderr)
    assert_clean(r.stdout)
    assert.matches("\nDeleted user " .. victim, "\n" .. r.stderr, 1, true)
  end)

  it("users create: an answer without a user id says so, never nil or false", function()
    for _, body in ipairs { {}, { userId = false }, { userId = 12345 }, { userId = EVIL } } do
      sb:fault { method = "POST", path = "^/users$", status = 200, body = body }
      local r = script("users", { "create", "eve" })
      assert.equal(1, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.matches("^error: the API answered with a user id that is not 24 hex digits: %S", r.stderr)
      assert.is_nil(r.stderr:find("nil", 1, true), r.stderr)
      assert.is_nil(r.stderr:find("false", 1, true), r.stderr)
    end
  end)

  it("delete_connection: the connection shown and the JSON", function()
    local c = credential()
    local r = script("delete_connection", { c.credentialId, "--yes", "--json" })
    assert.equal(0, r.code, r.stderr)
    assert_clean(r.stdout)
    assert.equal(EVIL_JSON, cjson.decode(r.stdout).credential.name)
  end)

  it("connect: the existing connections shown, and --replace with a hostile old id", function()
    sb:create_credential { userId = uid, connector = "notion", name = EVIL }
    local port = run.closed_port()
    local h = run.spawn("initiate_oauth", { "--connector", "notion", "--redirect-uri",
      "http://localhost:" .. port .. "/cb", "--timeout", "10", "--new" }, { env = run.env(sb, uid), cwd = dir })
    run.browse(h:line())
    local r = h:wait()
    assert.equal(0, r.code, r.stderr)
    assert_clean(r.stderr)
    assert_clean(r.stdout)
    assert.matches("already has 1 notion connection", r.stderr, 1, true)
    -- the old connection's id from the list is "$(touch FILE)": not deleted, not suggested
    sb:reset()
    uid = sb:create_user { username = "m2" }
    local list = "^/credentials/users/"
    sb:fault { method = "GET", path = list, status = 200, times = 2, body = { data = { {
      credentialId = "$(touch " .. pwned .. ")", type = "notion-oauth2", name = EVIL } } } }
    h = run.spawn("initiate_oauth", { "--connector", "notion", "--redirect-uri",
      "http://localhost:" .. port .. "/cb", "--timeout", "10", "--replace" }, { env = run.env(sb, uid), cwd = dir })
    run.browse(h:line())
    r = h:wait()
    assert.equal(1, r.code, r.stderr)
    assert_clean(r.stderr)
    assert.matches("an old connection's id from the API is not 24 hex digits; it was not deleted", r.stderr, 1, true)
    for _, q in ipairs(sb:requests()) do assert.not_equal("DELETE", q.method) end
  end)

  it("connect: authentication types from the metadata are not offered as a command", function()
    sb:fault { method = "GET", path = "^/connectors/airtable/credentials/metadata$", status = 200, body = {
      metadata = { { authenticationType = "$(touch " .. pwned .. ")" }, { authenticationType = EVIL } } } }
    local r = script("initiate_oauth", { "--connector", "airtable" })
    assert.equal(2, r.code, r.stderr)
    assert.equal("hint: pick one with --auth-type <type>\n", r.stderr:match("\n(hint: .*)$"))
  end)

  it("an error_description on the redirect and an API error message", function()
    local port = run.closed_port()
    local h = run.spawn("initiate_oauth", { "--connector", "notion", "--redirect-uri",
      "http://localhost:" .. port .. "/cb", "--timeout", "10" }, { env = run.env(sb, uid), cwd = dir })
    h:line()
    local esc = EVIL:gsub("[^%w]", function(ch) return ("%%%02X"):format(ch:byte()) end)
    local st = run.get("http://127.0.0.1:" .. port .. "/cb?error=access_denied&error_description=" .. esc)
    assert.equal(400, st)
    local r = h:wait()
    assert.equal(1, r.code, r.stderr)
    assert_clean(r.stderr)
    assert.equal(2, #run.lines(r.stderr:match("\n(error: .*)$")), r.stderr)
    sb:fault { method = "GET", path = "^/credentials/users/", status = 400, body = { message = EVIL } }
    r = script("list_connections", {})
    assert.equal(1, r.code, r.stderr)
  end)

  it("actions and run: ids and results from the server; only plain words are offered as commands", function()
    local shell = "x;$(touch " .. pwned .. ")"
    sb:fault { method = "GET", path = "^/connectors/slack/resources$", status = 200, body = { data = {
      { name = EVIL, actions = { { id = shell, name = EVIL }, { id = "slackk`id`" }, { id = "post", name = "Post" } } },
    } } }
    local r = script("list_actions", { "slack" })
    assert.equal(0, r.code, r.stderr)
    assert_clean(r.stdout, true)
    -- the first action whose id can stand in a command line as it is
    assert.matches("\nWhat one takes: " .. run.invoked("describe_action") .. " slack post\n", r.stderr, 1, true)
    assert.is_nil(r.stderr:find("touch", 1, true))
    assert.is_nil(r.stderr:find("`", 1, true))
    -- the connector's answer to an execute, with EVIL in it, printed as JSON: escaped
    local cred = sb:create_credential { userId = uid, connector = "slack" }.credentialId
    sb:fault { method = "POST", path = "/execute$", status = 200, body = { result = EVIL } }
    r = script("run_action", { "slack", "chat_postMessage", "--credential", cred, "--body",
      '{"channel":"C","text":"x"}' })
    assert.equal(0, r.code, r.stderr)
    assert_clean(r.stdout)
    assert.equal(EVIL_JSON, cjson.decode(r.stdout).result)
  end)

  it("an unknown connector: did you mean offers only ids that are plain words", function()
    sb:fault { method = "GET", path = "^/connectors$", status = 200, body = { data = {
      { id = "slack;$(touch " .. pwned .. ")", name = "a" }, { id = "slackk`id`", name = "b" },
      { id = "slackx", name = "c" } } } }
    local r = script("list_actions", { "slacj" })
    assert.equal(2, r.code)
    assert.equal("error: unknown connector \"slacj\"\nhint: did you mean slackx?\n", r.stderr)
  end)

  it("a token whose claims are hostile: --json escapes them", function()
    local mime = require "mime"
    local function b64url(s) return (mime.b64(s):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" })) end
    local token = b64url('{"alg":"HS256"}') .. "." .. b64url(cjson.encode { userId = EVIL, exp = 4102444800 })
      .. "." .. b64url("sig")
    for _, args in ipairs { {}, { "--json" } } do
      sb:fault { method = "GET", path = "/token$", status = 200, body = { token = token } }
      local r = script("get_jwt_token", args)
      assert.equal(0, r.code, r.stderr)
      assert_clean(r.stdout)
      if args[1] then assert.equal(EVIL_JSON, cjson.decode(r.stdout).userId) end
    end
  end)

  describe("oauthUrl, --open and --save", function()
    local log, extra

    before_each(function()
      log = dir .. "/xdg-open.log"
      assert(os.execute("mkdir " .. run.quote(dir .. "/bin")))
      run.write(dir .. "/bin/xdg-open", "#!/bin/sh\nprintf '%s\\n' \"$@\" >> " .. run.quote(log) .. "\n", "755")
      extra = { PATH = dir .. "/bin:" .. (os.getenv("PATH") or "/usr/bin:/bin"), DISPLAY = ":99" }
    end)

    local BAD = { "file:///etc/passwd", "javascript:alert(1)", "data:text/html,<script>x</script>",
                  "http://evil.test/authorize", "https://accounts.example.com@evil.test/", "https://ok.test/a b",
                  "https://ok.test/\nfile:///etc/passwd", "https://ok.test/\27[2J", "https://ok.test/\194\155x",
                  "https://ok.test/'$(touch " .. pwned .. ")'", "https://ok.test/`touch " .. pwned .. "`",
                  "HTTPS://ok.test/\226\128\174x", "ftp://ok.test/", "//ok.test/x", "https:///x" }

    for _, script_name in ipairs { "initiate_oauth", "test_oauth" } do
      it(script_name .. ": an oauthUrl that is not a web page is neither printed, opened nor acted on", function()
        local port = run.closed_port()
        for _, bad in ipairs(BAD) do
          sb:fault { method = "POST", path = "^/connectors/notion/credentials$", status = 200,
                     body = { oauthUrl = bad } }
          local args = { "--redirect-uri", "http://localhost:" .. port .. "/cb", "--open", "--save", "--timeout", "5" }
          if script_name == "initiate_oauth" then
            table.insert(args, 1, "--connector")
            table.insert(args, 2, "notion")
          end
          local r = script(script_name, args, extra)
          assert.equal(1, r.code, bad .. ": " .. r.stderr)
          assert.equal("", r.stdout)
          assert.matches("oauthUrl that is not an http(s) URL", r.stderr, 1, true)
          assert.is_nil(io.open(log, "rb"), "xdg-open was called for " .. bad)
          assert.is_nil(io.open(dir .. "/.env", "rb"))
        end
      end)
    end

    it("a genuine URL is opened once, as one argument; --save writes the checked id", function()
      local port = run.closed_port()
      sb:set { oauth_redirect = "success" }
      local h = run.spawn("initiate_oauth", { "--connector", "notion", "--redirect-uri",
        "http://localhost:" .. port .. "/cb", "--timeout", "10", "--open", "--save" },
        { env = run.env(sb, uid, extra), cwd = dir })
      local url = h:line()
      assert(run.wait_for(function() return io.open(log, "rb") end, 10), "xdg-open was not called")
      run.browse(url)
      local r = h:wait()
      assert.equal(0, r.code, r.stderr)
      assert.equal(url .. "\n", run.read(log))
      assert.matches("^CONNECTION_ID=%x+\n$", run.read(dir .. "/.env"))
    end)
  end)
end)
