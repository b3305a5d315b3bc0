-- Connecting any connector (initiate_oauth.lua / alloy connect): the connector's metadata
-- decides the inputs; secrets never come from argv nor reach any output; existing
-- connections need --new or --replace; --replace loses nothing when the flow fails.
local Sandbox = require "sandbox"
local run = require "run"
local cjson = require "cjson"

local SECRET = "acuity-SECRET-0a1b2c3d4e5f"

describe("connect #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, dir, redirect

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "ada" }
    dir = run.tmpdir()
    redirect = "http://localhost:" .. run.closed_port() .. "/oauth/callback"
  end)
  after_each(function() run.rmdir(dir) end)

  local function opts(o)
    o = o or {}
    o.env = o.env or run.env(sb, uid, o.extra)
    o.extra = nil
    o.cwd = o.cwd or dir
    return o
  end
  local function connect(args, o) return run.script("initiate_oauth", args, opts(o)) end
  local function terminal(args, o) return run.terminal("initiate_oauth", args, opts(o)) end

  local function creds()
    local out = {}
    for _, c in ipairs(sb:state().credentials) do out[#out + 1] = c end
    return out
  end

  -- The bodies of the POSTs that create credentials.
  local function posted()
    local out = {}
    for _, q in ipairs(sb:requests()) do
      if q.method == "POST" and q.path:match("/credentials$") then out[#out + 1] = cjson.decode(q.body) end
    end
    return out
  end

  local function no_secret(r)
    assert.is_nil((r.stdout .. r.stderr):find(SECRET, 1, true), "the secret was printed")
  end

  describe("unknown connectors", function()
    it("exit 2 with the closest known id, nothing sent but reads", function()
      local r = connect { "--connector", "hubspto", "--redirect-uri", redirect }
      assert.equal(2, r.code)
      assert.equal("error: unknown connector \"hubspto\"\nhint: did you mean hubspot?\n", r.stderr)
      assert.same({}, posted())
    end)
  end)

  describe("data fields", function()
    it("a required field missing without a terminal: exit 2 naming it", function()
      local r = connect { "--connector", "shopify", "--redirect-uri", redirect, "--no-listen" }
      assert.equal(2, r.code)
      assert.matches("^error: connector shopify needs the field shopSubdomain %(Shop Subdomain%)\n"
        .. "hint: pass %-%-field shopSubdomain=<value>", r.stderr)
      assert.same({}, posted())
    end)

    it("--field sends it as data; the OAuth link carries it", function()
      local r = connect { "--connector", "shopify", "--field", "shopSubdomain=my-shop", "--redirect-uri", redirect,
                          "--no-listen" }
      assert.equal(0, r.code, r.stderr)
      assert.matches("shopSubdomain=my-shop", r.stdout, 1, true)
      assert.same({ shopSubdomain = "my-shop" }, posted()[1].data)
      assert.equal("oauth2", posted()[1].authenticationType)
    end)

    it("a field the connector does not have: exit 2 listing its fields", function()
      local r = connect { "--connector", "shopify", "--field", "shop=x", "--redirect-uri", redirect, "--no-listen" }
      assert.equal(2, r.code)
      assert.matches("has no field \"shop\"\nhint: its fields: shopSubdomain", r.stderr, 1, true)
    end)

    it("a field given twice, or --field without '=': exit 2, nothing sent", function()
      local r = connect { "-c", "shopify", "--field", "shopSubdomain=a", "--field", "shopSubdomain=b",
                          "--redirect-uri", redirect, "--no-listen" }
      assert.equal(2, r.code)
      assert.equal("error: --field shopSubdomain given twice\nhint: give each field once\n", r.stderr)
      r = connect { "-c", "shopify", "--field", "shopSubdomain", "--redirect-uri", redirect, "--no-listen" }
      assert.equal(2, r.code)
      assert.matches("^error: %-%-field takes name=value\n", r.stderr)
      assert.same({}, posted())
      assert.equal("", r.stdout)
    end)

    it("on a terminal asks for it by its title", function()
      local t = terminal { "--connector", "shopify", "--redirect-uri", redirect, "--no-listen" }
      assert.is_true(t:expect("Shop Subdomain (shopSubdomain): "), t:screen())
      t:type("term-shop\n")
      local r = t:wait()
      assert.equal(0, r.code, r.stdout)
      assert.same({ shopSubdomain = "term-shop" }, posted()[1].data)
    end)
  end)

  describe("auth config", function()
    it("required: without a terminal and --auth-config, exit 2", function()
      local r = connect { "--connector", "salesforce", "--redirect-uri", redirect, "--no-listen" }
      assert.equal(2, r.code)
      assert.matches("^error: connector salesforce needs a custom auth config id\nhint: pass %-%-auth%-config",
        r.stderr)
      assert.same({}, posted())
    end)

    it("--auth-config and its alias --auth-config-id are sent; a malformed id is exit 2", function()
      local id = "67a37f29e0aa276e50d7253a"
      assert.equal(0, connect({ "-c", "salesforce", "--auth-config", id, "--redirect-uri", redirect,
                                "--no-listen" }).code)
      assert.equal(0, connect({ "-c", "salesforce", "--auth-config-id", id, "--redirect-uri", redirect,
                                "--no-listen" }).code)
      local bodies = posted()
      assert.equal(id, bodies[1].authConfigId)
      assert.equal(id, bodies[2].authConfigId)
      local r = connect { "-c", "salesforce", "--auth-config", "nope", "--redirect-uri", redirect, "--no-listen" }
      assert.equal(2, r.code)
      assert.matches("is not an auth config id (24 hex digits)", r.stderr, 1, true)
    end)
  end)

  describe("API-key, basic and bearer connectors", function()
    it("read the secret from stdin, connect without a browser, confirm by listing", function()
      local r = connect({ "--connector", "acuityScheduling", "--field", "userId=12345678", "--json" },
                        { stdin = SECRET .. "\n", secrets = { SECRET } })
      assert.equal(0, r.code, r.stderr)
      no_secret(r)
      local doc = cjson.decode(r.stdout)
      local all = creds()
      assert.equal(1, #all)
      assert.equal(all[1].credentialId, doc.credentialId)
      assert.equal("acuityScheduling", doc.credential.type)
      assert.equal("apiKey", doc.authenticationType)
      assert.same({ userId = "12345678" }, all[1].data)
      assert.same({ apiKey = true }, all[1].secrets)
      assert.same({ userId = uid, authenticationType = "apiKey", data = { userId = "12345678", apiKey = SECRET } },
        posted()[1])
      -- confirmed by listing the user's credentials after the create
      local q = sb:requests()
      assert.equal("GET", q[#q].method)
      assert.equal("/credentials/users/" .. uid, q[#q].path)
    end)

    it("take the secret from ALLOY_FIELD_<NAME>; --verbose shows no secret", function()
      local r = connect({ "--connector", "airtable", "--verbose" },
        { extra = { ALLOY_FIELD_TOKEN = SECRET }, secrets = { SECRET } })
      assert.equal(0, r.code, r.stderr)
      no_secret(r)
      assert.matches("\n> POST /connectors/airtable/credentials", r.stderr, 1, true)
      assert.equal(creds()[1].credentialId .. "\n", r.stdout)
      assert.equal("airtable-bearer", creds()[1].type)
    end)

    it("refuse a secret field on the command line (exit 2), nothing created", function()
      local r = connect({ "--connector", "acuityScheduling", "--field", "userId=1", "--field", "apiKey=" .. SECRET },
        { secrets = { SECRET } })
      assert.equal(2, r.code)
      no_secret(r)
      assert.matches("^error: apiKey is a secret: it is not accepted on the command line", r.stderr)
      assert.matches("hint: set ALLOY_FIELD_APIKEY in the environment", r.stderr, 1, true)
      assert.same({}, posted())
    end)

    it("a server echoing the secret back in its error: the secret (whole, encoded or in part) is not shown", function()
      local odd = "pa ss/w\"rd+&=SECRET-77"
      local url = "pa%20ss%2Fw%22rd%2B%26%3DSECRET-77"
      for _, echo in ipairs { "invalid apiKey " .. odd, "apiKey=" .. url .. " rejected",
                              "bad key \"pa ss\\/w\\\"rd+&=SECRET-77\"",
                              "key starting ss/w\"rd+&=SE... rejected" } do
        for _, flag in ipairs { "--json", "--verbose" } do
          sb:fault { method = "POST", path = "/credentials$", status = 400, body = { message = echo } }
          local r = connect({ "--connector", "acuityScheduling", "--field", "userId=1", flag },
                            { stdin = odd .. "\n", secrets = { odd, url, "ss/w\"rd" } })
          assert.equal(1, r.code, r.stderr)
          assert.equal("", r.stdout)
          assert.matches("\nerror: HTTP_400: ", r.stderr, 1, true)
          for _, part in ipairs { odd, url, "ss/w\"rd", "SECRET-77", "rd+&=S" } do
            assert.is_nil(r.stderr:find(part, 1, true), echo .. " " .. flag .. ": " .. r.stderr)
          end
        end
      end
      assert.same({}, creds())
    end)

    it("--verbose: a server echoing the secret in a header or its error does not show it", function()
      sb:fault { method = "POST", path = "/credentials$", status = 400,
                 headers = { ["X-Echo"] = "got " .. SECRET, ["X-Short"] = "a1b2c3d4e5f" },
                 body = { message = "bad apiKey " .. SECRET } }
      local r = connect({ "--connector", "acuityScheduling", "--field", "userId=1", "--verbose" },
                        { stdin = SECRET .. "\n", secrets = { SECRET } })
      assert.equal(1, r.code, r.stderr)
      no_secret(r)
      assert.matches("\n< X-Echo: got [REDACTED]\n", r.stderr, 1, true)
      assert.matches("\nerror: HTTP_400: bad apiKey [REDACTED] (POST /connectors/acuityScheduling/credentials)",
        r.stderr, 1, true)
      -- a piece of 8 or more of it, as the key's rule
      assert.matches("\n< X-Short: [REDACTED]\n", r.stderr, 1, true)
    end)

    it("stdin ended before the secret: exit 2 naming the field", function()
      local r = connect { "--connector", "twilio", "--field", "username=AC42" }
      assert.equal(2, r.code)
      assert.matches("^error: no value for the secret field password %(Auth Token%): stdin ended", r.stderr)
      assert.same({}, posted())
    end)

    it("on a terminal the secret is typed without echo (the terminal never shows it)", function()
      local t = terminal({ "--connector", "acuityScheduling" }, { secrets = { SECRET } })
      assert.is_true(t:expect("(userId): "), t:screen())
      t:type("12345678\n")
      assert.is_true(t:expect("(apiKey, not shown): "), t:screen())
      t:type(SECRET .. "\n")
      local r = t:wait()
      assert.equal(0, r.code, r.stdout)
      no_secret(r)
      assert.matches("12345678", r.stdout, 1, true) -- the plain field was echoed
      assert.matches("Connected: acuityScheduling connection " .. creds()[1].credentialId, r.stdout, 1, true)
      assert.equal(SECRET, posted()[1].data.apiKey)
    end)
  end)

  it("Ctrl-C at the secret prompt: echo is back on the terminal, nothing is created", function()
    -- after the script, the same shell shows the terminal's settings (also when ^C ends it)
    local script = run.quote(run.lua) .. " " .. run.quote(run.root .. "/lua/initiate_oauth.lua")
    local t = terminal({}, { shell = "trap 'stty -a; exit 130' INT; " .. script
      .. " --connector acuityScheduling --field userId=1234; stty -a" })
    assert.is_true(t:expect("(apiKey, not shown): "), t:screen())
    t:type("\3")
    local r = t:wait()
    assert.matches("\ninterrupted\n", r.stdout) -- the script stopped (the shell's own status varies)
    local settings = assert(r.stdout:match("speed [^\n]*\n.*$"), r.stdout)
    assert.matches("[ ;]echo[ ;\n]", settings)
    assert.is_nil(settings:find("-echo ", 1, true), settings)
    assert.same({}, creds())
    assert.same({}, posted())
  end)

  describe("several authentication types", function()
    it("without a terminal and --auth-type: exit 2 listing them", function()
      local r = connect { "--connector", "zendesk", "--redirect-uri", redirect }
      assert.equal(2, r.code)
      assert.equal("error: connector zendesk offers several authentication types: oauth2, basic\n"
        .. "hint: pick one with --auth-type oauth2\n", r.stderr)
    end)

    it("--auth-type basic connects with fields and the piped password", function()
      local r = connect({ "-c", "zendesk", "--auth-type", "basic", "--field", "subdomain=acme",
                          "--field", "username=a@acme.test" }, { stdin = SECRET .. "\n", secrets = { SECRET } })
      assert.equal(0, r.code, r.stderr)
      assert.equal("zendesk-basic", creds()[1].type)
      assert.same({ subdomain = "acme", username = "a@acme.test" }, creds()[1].data)
      r = connect { "-c", "zendesk", "--auth-type", "digest" }
      assert.equal(2, r.code)
      assert.matches("has no authentication type \"digest\"\nhint: use one of: oauth2, basic", r.stderr, 1, true)
    end)

    it("on a terminal asks which", function()
      local t = terminal({ "-c", "zendesk", "--field", "subdomain=acme", "--field", "username=u" },
        { secrets = { SECRET } })
      assert.is_true(t:expect("Authentication type for zendesk: "), t:screen())
      t:type("2\n")
      assert.is_true(t:expect("not shown): "), t:screen())
      t:type(SECRET .. "\n")
      local r = t:wait()
      assert.equal(0, r.code, r.stdout)
      no_secret(r)
      assert.equal("zendesk-basic", creds()[1].type)
    end)
  end)

  describe("an existing connection of the connector", function()
    local old
    before_each(function()
      old = sb:create_credential { userId = uid, connector = "notion" }
    end)

    local function flow(args, browse)
      local h = run.spawn("initiate_oauth", args, opts())
      local url = h:line()
      if url and browse then run.browse(url) end
      return h:wait(), url
    end

    it("without a terminal needs --new or --replace (exit 2, shown first, nothing created)", function()
      local r = connect { "--connector", "notion", "--redirect-uri", redirect }
      assert.equal(2, r.code)
      assert.matches("User " .. uid .. " already has 1 notion connection:", r.stderr, 1, true)
      assert.matches(old.credentialId .. "  notion  " .. old.name, r.stderr, 1, true)
      assert.matches("hint: pass --new to add another one, or --replace", r.stderr, 1, true)
      assert.same({}, posted())
      r = connect { "--connector", "notion", "--redirect-uri", redirect, "--new", "--replace" }
      assert.equal(2, r.code)
    end)

    it("--replace deletes the old one after the new one is confirmed", function()
      local r, url = flow({ "--connector", "notion", "--redirect-uri", redirect, "--replace", "--timeout", "10" }, true)
      assert.equal(0, r.code, r.stderr)
      local all = creds()
      assert.equal(1, #all)
      assert.are_not.equal(old.credentialId, all[1].credentialId)
      assert.equal(url .. "\n" .. all[1].credentialId .. "\n", r.stdout)
      assert.matches("Replaced: deleted the old connection " .. old.credentialId, r.stderr, 1, true)
    end)

    it("--replace --json names what it replaced (API-key connector)", function()
      local first = sb:create_credential { userId = uid, connector = "airtable", authenticationType = "bearer" }
      local r = connect({ "--connector", "airtable", "--replace", "--json" },
        { stdin = SECRET .. "\n", secrets = { SECRET } })
      assert.equal(0, r.code, r.stderr)
      no_secret(r)
      local doc = cjson.decode(r.stdout)
      assert.same({ first.credentialId }, doc.replaced)
      assert.equal("airtable", doc.credential.type)
      assert.equal(2, #creds()) -- the new airtable one and the notion one
    end)

    it("--replace keeps the old one when the flow times out", function()
      local r = flow({ "--connector", "notion", "--redirect-uri", redirect, "--replace", "--timeout", "0.3" }, false)
      assert.equal(1, r.code)
      assert.matches("the old connection was kept", r.stderr, 1, true)
      local all = creds()
      assert.equal(1, #all)
      assert.equal(old.credentialId, all[1].credentialId)
    end)

    it("--replace needs the listener", function()
      local r = connect { "--connector", "notion", "--redirect-uri", redirect, "--replace", "--no-listen" }
      assert.equal(2, r.code)
      assert.matches("^.*error: %-%-replace needs the redirect listener", r.stderr)
      assert.same({}, posted())
    end)

    it("on a terminal asks: replace", function()
      local old_key = sb:create_credential { userId = uid, connector = "airtable", authenticationType = "bearer" }
      local t = terminal({ "--connector", "airtable" }, { secrets = { SECRET } })
      assert.is_true(t:expect("replace the existing one, or quit? "), t:screen())
      t:type("replace\n")
      assert.is_true(t:expect("not shown): "), t:screen())
      t:type(SECRET .. "\n")
      local r = t:wait()
      assert.equal(0, r.code, r.stdout)
      no_secret(r)
      local types = {}
      for _, c in ipairs(creds()) do
        assert.are_not.equal(old_key.credentialId, c.credentialId)
        types[#types + 1] = c.type
      end
      table.sort(types)
      assert.same({ "airtable-bearer", "notion-oauth2" }, types)
    end)
  end)
end)
