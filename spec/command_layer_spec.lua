-- The command layer as a user of gh or kubectl expects it: global options before or after
-- the command, the connector as an argument, hints and next steps that can be pasted where
-- they are printed (they carry this run's --env-file, --region and -u), regions in any case,
-- no silent duplicates, a confirmation one can decline, a default redirect URI.
local Sandbox = require "sandbox"
local run = require "run"

local ALLOY = run.invoked("alloy_main")

describe("the command layer #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, dir

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "kim" }
    dir = run.tmpdir()
  end)
  after_each(function() run.rmdir(dir) end)

  -- the configuration in an env file of its own (not ./.env), as `make sandbox` writes it
  local function env_file(name)
    run.write(dir .. "/" .. name, ("ALLOY_API_KEY=%s\nALLOY_USER_ID=%s\nALLOY_BASE_URL=%s\nALLOY_EMBEDDED_URL=%s\n")
      :format(sb.api_key, uid, sb.url, sb.embedded_url), "600")
  end

  local function alloy(args, o)
    o = o or {}
    o.env = o.env or {}
    o.cwd = dir
    return run.script("alloy_main", args, o)
  end

  describe("global options", function()
    it("work before or after the command's name, and give the same result", function()
      env_file("my env")
      local before = alloy { "--env-file", "my env", "-q", "token" }
      local after = alloy { "token", "--env-file", "my env", "-q" }
      local attached = alloy { "--env-file=my env", "-qu", uid, "token" }
      for _, r in ipairs({ before, after, attached }) do
        assert.equal(0, r.code, r.stderr)
        assert.equal(uid, run.jwt_payload(r.stdout:sub(1, -2)).userId)
        assert.equal("", r.stderr) -- -q
      end
    end)

    it("the key as an option before the name is refused, and no value is ever repeated", function()
      local secret = "sk-live-0123456789abcdef"
      for _, args in ipairs({ { "--api-key=" .. secret, "token" }, { "--api-key", secret, "token" },
                              { "--bogus=" .. secret, "token" }, { "token", "--bogus=" .. secret } }) do
        local r = alloy(args, { secrets = { secret } })
        assert.equal(2, r.code, table.concat(args, " "))
        assert.is_nil((r.stdout .. r.stderr):find(secret, 1, true), r.stderr)
        assert.is_nil((r.stdout .. r.stderr):find("sk-live", 1, true), r.stderr)
      end
    end)

    it("an option that is no global one, before the name: exit 2, one line", function()
      local r = alloy { "--search", "x", "connectors" }
      assert.equal(2, r.code)
      assert.equal("error: unknown option '--search' before the command's name\n"
        .. "hint: run alloy --help for the commands and their options\n", r.stderr)
      r = alloy { "-u", "kim", "connectors" }
      assert.equal(2, r.code)
      assert.equal("error: alloy_main.lua connectors does not take -u (it acts for no user)\nhint: leave it out\n",
        r.stderr)
    end)
  end)

  describe("pasteable hints and next steps", function()
    it("carry this run's --env-file (quoted when it must be), --region and -u", function()
      env_file("my env")
      sb:create_credential { userId = uid, connector = "slack" }
      local r = alloy { "connections", "slack", "--env-file", "my env", "--region", "US", "-u", "kim" }
      assert.equal(0, r.code, r.stderr)
      local id = r.stdout:match("^(%x+)\t")
      assert.matches("\nTo use one: " .. ALLOY:gsub("%p", "%%%0") .. " connections %-%-save " .. id
        .. " %-%-env%-file 'my env' %-%-region US %-u kim\n$", r.stderr)
      -- and the line works as printed: it saves the id into that env file
      local cmd = r.stderr:match("To use one: ([^\n]+)\n")
      local saved = run.script("alloy", {}, { shell = cmd, cwd = dir })
      assert.equal(0, saved.code, saved.stderr)
      assert.equal(id .. "\n", saved.stdout)
      assert.matches("\nCONNECTION_ID=" .. id .. "\n", run.read(dir .. "/my env"), 1, true)
    end)

    it("a command that acts for no user is not given -u", function()
      env_file(".env")
      local r = alloy { "connections", "-u", "kim", "notion" }
      assert.equal(0, r.code, r.stderr)
      assert.matches("Create one with: " .. ALLOY .. " connect notion -u kim\n", r.stderr, 1, true)
      r = alloy { "actions", "slack" }
      assert.equal(0, r.code, r.stderr)
      assert.matches("What one takes: " .. ALLOY .. " action slack chat_postMessage\n", r.stderr, 1, true)
    end)

    it("a failure of a user that does not exist says so, with the option the user gave (-u nobody)", function()
      env_file(".env")
      sb:create_credential { userId = uid, connector = "slack" }
      local cred = sb:state().credentials[1].credentialId
      local r = alloy({ "run", "slack", "users_info", "--query", "user=U1", "--credential", cred, "-u", "nobody" })
      assert.equal(1, r.code)
      assert.matches("\nhint: the user or the connection was not found: check ALLOY_USER_ID / --user (nobody) and"
        .. " CONNECTION_ID / --credential (" .. cred .. ")", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("connector id", 1, true)) -- not a hint about the connector
    end)

    it("a username taken: the 409 says so, not a hint about hosts", function()
      env_file(".env")
      local r = alloy { "users", "create", "kim" }
      assert.equal(1, r.code)
      assert.matches("\nhint: a user with this username exists already", r.stderr, 1, true)
    end)
  end)

  describe("regions", function()
    it("--region and ALLOY_REGION take us and eu in any case; anything else is exit 2", function()
      env_file(".env")
      for _, r in ipairs({ alloy { "token", "--region", "us" }, alloy { "token", "--region", "US" },
                           alloy({ "token" }, { env = { ALLOY_REGION = "Us" } }) }) do
        assert.equal(0, r.code, r.stderr)
      end
      local r = alloy({ "token" }, { env = { ALLOY_REGION = "asia" } })
      assert.equal(2, r.code)
      assert.matches("^error: ALLOY_REGION %(environment%): region must be us or eu %(any case%)\n", r.stderr)
    end)
  end)

  describe("the connector as an argument", function()
    it("connect, connections and actions take it as an argument or as --connector; two different: exit 2", function()
      env_file(".env")
      sb:create_credential { userId = uid, connector = "slack" }
      local a, b = alloy { "connections", "slack" }, alloy { "connections", "--connector", "slack" }
      assert.equal(0, a.code, a.stderr)
      assert.equal(a.stdout, b.stdout)
      local r = alloy { "connections", "slack", "-c", "notion" }
      assert.equal(2, r.code)
      assert.matches("^error: two connectors given: \"slack\" and \"notion\"\n", r.stderr)
      sb:clear_requests()
      r = alloy { "connect", "notion", "--connector", "slack" }
      assert.equal(2, r.code)
      assert.same({}, sb:requests()) -- refused before anything was sent
    end)

    it("connections of a connector that does not exist: did you mean", function()
      env_file(".env")
      local r = alloy { "connections", "--connector", "notoin" }
      assert.equal(2, r.code)
      assert.equal("error: unknown connector \"notoin\"\nhint: did you mean notion?\n", r.stderr)
      r = alloy { "connections", "--connector", "notoin", "--json" }
      assert.equal(2, r.code)
      assert.equal("", r.stdout) -- nothing printed for a run that fails
      -- a catalogue that cannot be read says so, and does not call the connector unknown
      sb:fault { path = "^/connectors$", status = 500, times = 4 }
      r = alloy { "connections", "--connector", "notoin" }
      assert.equal(0, r.code, r.stderr)
      assert.matches("No notoin connections for user ", r.stderr, 1, true)
      sb:clear_faults()
      -- a known connector with no connections is no error, in any case (the filter's own)
      r = alloy { "connections", "hubspot" }
      assert.equal(0, r.code, r.stderr)
      assert.matches("No hubspot connections for user ", r.stderr, 1, true)
      r = alloy { "connections", "HubSpot" }
      assert.equal(0, r.code, r.stderr)
      assert.matches("No HubSpot connections for user ", r.stderr, 1, true)
    end)
  end)

  describe("connecting", function()
    it("connect without a redirect URI listens on the default, as test-oauth does", function()
      env_file(".env")
      local h = run.spawn("alloy_main", { "connect", "notion", "--no-listen" }, { cwd = dir, env = {} })
      local url = h:line()
      local r = h:wait()
      assert.equal(0, r.code, r.stderr)
      assert.matches("redirectUri=http%3A%2F%2Flocalhost%3A3000%2Foauth%2Fcallback", url, 1, true)
    end)

    it("test-oauth never makes a silent duplicate: --new or --replace, like connect", function()
      env_file(".env")
      sb:create_credential { userId = uid, connector = "notion" }
      local r = alloy { "test-oauth", "--no-listen" }
      assert.equal(2, r.code)
      assert.matches("error: user " .. uid .. " already has a connection of notion\n", r.stderr, 1, true)
      assert.equal(1, #sb:state().credentials)
      local port = run.closed_port()
      local h = run.spawn("alloy_main", { "test-oauth", "--replace", "--redirect-uri",
        "http://localhost:" .. port .. "/cb", "--timeout", "10" }, { cwd = dir, env = {} })
      run.browse(h:line())
      r = h:wait()
      assert.equal(0, r.code, r.stderr)
      local all = sb:state().credentials
      assert.equal(1, #all) -- the old one replaced, not a second one
      assert.equal(run.lines(r.stdout)[2], all[1].credentialId)
    end)

    it("a connection id saved later, with connections --save, only when the user has it", function()
      env_file(".env")
      local r = alloy { "connections", "--save", "0123456789abcdef01234567" }
      assert.equal(1, r.code)
      assert.matches("error: user " .. uid .. " has no connection 0123456789abcdef01234567\n", r.stderr, 1, true)
      assert.is_nil(run.read(dir .. "/.env"):find("CONNECTION_ID", 1, true))
      r = alloy { "connections", "--save", "nope" }
      assert.equal(2, r.code)
      assert.equal('error: "nope" is not a connection id (24 hex digits)\nhint: copy the ID column\n', r.stderr)
    end)
  end)

  describe("a confirmation", function()
    it("declined: one plain line, nothing deleted, exit 1 (no error, no hint)", function()
      env_file(".env")
      local id = sb:create_credential { userId = uid, connector = "slack" }.credentialId
      local t = run.terminal("alloy_main", { "disconnect", id }, { cwd = dir, env = {} })
      assert.is_true(t:expect("Delete it? [y/N] "))
      t:type("n\n")
      local r = t:wait()
      assert.equal(1, r.code, r.stdout)
      local line = "\nNot deleted: connection " .. id .. " (you answered no).\n"
      assert.equal(line, r.stdout:sub(-#line))
      assert.is_nil(r.stdout:find("error:", 1, true))
      assert.is_nil(r.stdout:find("hint:", 1, true))
      assert.equal(1, #sb:state().credentials)
    end)
  end)
end)
