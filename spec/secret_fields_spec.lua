-- Which of a connector's data fields are secrets, when Alloy's metadata marks none (its
-- examples give every field as a plain {"type": "string"}): decided by the field's name, its
-- format, writeOnly where a schema has it, and the authentication type. A secret is never
-- taken from the command line.
local connectors = require "alloy.connectors"
local Sandbox = require "sandbox"
local run = require "run"

-- The metadata entry of `auth` with data fields `names` (all plain strings, all required).
local function entry(auth, names, extra)
  local props = {}
  for _, n in ipairs(names) do props[n] = { type = "string" } end
  for n, p in pairs(extra or {}) do props[n] = p end
  return connectors.entries({ { authenticationType = auth, inputSchema = { type = "object", properties = {
    data = { type = "object", properties = props, required = names } } } } })[1]
end

local function secrets(e)
  local out = {}
  for _, f in ipairs(e.fields) do if f.secret then out[#out + 1] = f.name end end
  return out
end

describe("secret data fields", function()
  it("by name, in any case and position", function()
    assert.same({ "apiKey" }, secrets(entry("apiKey", { "userId", "apiKey" })))
    assert.same({ "API_KEY" }, secrets(entry("apiKey", { "account", "API_KEY" })))
    assert.same({ "password" }, secrets(entry("basic", { "username", "password" })))
    assert.same({ "authToken" }, secrets(entry("basic", { "accountSid", "authToken" })))
    assert.same({ "clientSecret" }, secrets(entry("oauth2", { "subdomain", "clientSecret" })))
    assert.same({ "PersonalAccessToken" }, secrets(entry("bearer", { "PersonalAccessToken" })))
  end)

  it("by format password or writeOnly, where a schema has them", function()
    assert.same({ "pin" }, secrets(entry("apiKey", { "account" }, { pin = { type = "string", format = "password" } })))
    assert.same({ "code" }, secrets(entry("oauth2", { "site" }, { code = { type = "string", writeOnly = true } })))
  end)

  it("a credential that is not OAuth carries one: its last field when no name says which", function()
    assert.same({ "sid" }, secrets(entry("basic", { "account", "sid" })))
    -- OAuth data are settings (a subdomain): nothing is taken for a secret without a reason
    assert.same({}, secrets(entry("oauth2", { "shopSubdomain" })))
  end)

  describe("from the command line, against metadata shaped like the docs", function()
    local sb, uid
    setup(function() sb = Sandbox.start() end) -- no writeOnly markers: the documented shape
    teardown(function() if sb then sb:stop() end end)
    before_each(function()
      sb:reset()
      uid = sb:create_user { username = "sam" }
    end)

    it("refuses the key on argv (exit 2, saying how to give it), nothing created", function()
      local r = run.script("initiate_oauth", { "--connector", "acuityScheduling", "--field", "userId=1",
        "--field", "apiKey=SECRET-on-argv" }, { env = run.env(sb, uid), secrets = { "SECRET-on-argv" } })
      assert.equal(2, r.code)
      assert.equal("error: apiKey is a secret: it is not accepted on the command line (it would be visible in ps and"
        .. " shell history)\nhint: set ALLOY_FIELD_APIKEY in the environment, type it at the prompt, or pipe it on"
        .. " stdin\n", r.stderr)
      assert.same({}, sb:state().credentials)
    end)

    it("takes the whole of stdin for the one secret field, its trailing newline cut", function()
      local key = "k3y with spaces and = signs"
      local r = run.script("initiate_oauth", { "--connector", "acuityScheduling", "--field", "userId=1" },
        { env = run.env(sb, uid), stdin = key .. "\n", secrets = { key } })
      assert.equal(0, r.code, r.stderr)
      local sent
      for _, q in ipairs(sb:requests()) do
        if q.method == "POST" and q.path:match("/credentials$") then sent = require("cjson").decode(q.body) end
      end
      assert.equal(key, sent.data.apiKey)
      assert.same({ apiKey = true }, sb:state().credentials[1].secrets)
      assert.is_nil((r.stdout .. r.stderr):find(key, 1, true))
    end)
  end)
end)
