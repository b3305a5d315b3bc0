-- The sandbox's connector catalogue, credential metadata, credential creation of every
-- authentication type, deletes and users, all spoken to through the alloy client over HTTP.
local Sandbox = require "sandbox"
local cjson = require "cjson"

local ALL = { "notion", "hubspot", "slack", "shopify", "gmail", "salesforce", "acuityScheduling",
              "airtable", "twilio", "zendesk" }

-- The non-OAuth cases: connector, type, data sent, plain data kept, secret fields, name suffix.
local HEADLESS = {
  { "acuityScheduling", "apiKey", { userId = "12345678", apiKey = "acuity-secret-1" },
    { userId = "12345678" }, { apiKey = true }, " (12345678)" },
  { "airtable", "bearer", { token = "pat-secret-2" }, {}, { token = true }, "" },
  { "twilio", "basic", { username = "AC42", password = "twilio-secret-3" },
    { username = "AC42" }, { password = true }, " (AC42)" },
  { "zendesk", "basic", { subdomain = "acme", username = "a@acme.test", password = "zd-secret-4" },
    { subdomain = "acme", username = "a@acme.test" }, { password = true }, " (acme)" },
}

describe("sandbox connectors", function()
  local sb, c, uid

  setup(function() sb = Sandbox.start() end)
  teardown(function() sb:stop() end)
  before_each(function()
    sb:reset()
    c = sb:client()
    uid = sb:create_user { username = "ada" }
  end)

  local function metadata(connector)
    return assert(c:credential_metadata(connector))
  end

  -- Fails with a 400 whose validator body names prop; returns the message.
  local function invalid(prop, text, ...)
    local value, msg, code, res = ...
    assert.is_nil(value)
    assert.equal("HTTP_400", code)
    assert.equal(prop .. " " .. text, res.json.message)
    assert.equal(prop, res.json.error.details[1].properties)
    assert.matches(prop .. " " .. text, msg, 1, true)
  end

  local function oauth(connector, extra)
    local body = { userId = uid, authenticationType = "oauth2", redirectUri = "http://127.0.0.1:9/cb" }
    for k, v in pairs(extra or {}) do body[k] = v end
    return c:create_credential(connector, body)
  end

  -- Plays the browser on an oauthUrl: the sandbox answers 302 to the redirectUri.
  local function authorize(url)
    local _, _, code, res = c:request { url = url, raw = true }
    assert.equal("HTTP_302", code)
    return res.headers.location
  end

  local function headless(body)
    return c:request { method = "POST", path = "/headless/credentials", json = body }
  end

  describe("catalogue", function()
    it("lists every connector with id, name and icon, in every list shape", function()
      local list, res = assert(c:list_connectors())
      local ids = {}
      for i, item in ipairs(list) do
        ids[i] = item.id
        assert.is_string(item.name)
        assert.equal("https://cdn.runalloy.com/icons/" .. item.id .. ".png", item.icon)
      end
      assert.same(ALL, ids)
      assert.equal("Acuity Scheduling", list[7].name)
      assert.same(list, res.json.data)

      local catalogue = {}
      for i, entry in ipairs(sb:connectors()) do catalogue[i] = entry.id end
      assert.same(ALL, catalogue)

      sb:set { connectors_shape = "connectors" }
      local again
      again, res = assert(c:list_connectors())
      assert.same(list, again)
      assert.same(list, res.json.connectors)
      sb:set { connectors_shape = "array" }
      again, res = assert(c:list_connectors())
      assert.same(list, again)
      assert.same(list, res.json)
      sb:set { connectors_shape = "natural" }
      again, res = assert(c:list_connectors())
      assert.same(list, again)
      assert.same(list, res.json.data)
      assert.has_error(function() sb:set { connectors_shape = "credentials" } end)
    end)

    it("serves one connector and 404s unknown ones", function()
      local one = assert(c:request { path = "/connectors/shopify" })
      assert.same({ id = "shopify", name = "Shopify", icon = "https://cdn.runalloy.com/icons/shopify.png" },
                  one.json)
      local _, _, code = c:credential_metadata("nope")
      assert.equal("HTTP_404", code)
    end)
  end)

  describe("credential metadata", function()
    it("gives plain OAuth connectors the documented entry", function()
      for _, id in ipairs { "notion", "slack", "hubspot", "gmail" } do
        assert.same({ {
          authenticationType = "oauth2",
          authConfigRequired = false,
          inputSchema = { type = "object",
            properties = { userId = { type = "string" },
                           authenticationType = { type = "string", const = "oauth2" },
                           redirectUri = { type = "string", format = "uri" } },
            required = { "userId", "authenticationType", "redirectUri" } },
          sampleInput = { userId = "68fe36549000cce448466858", authenticationType = "oauth2",
                          redirectUri = "https://example.com" },
        } }, metadata(id))
      end
    end)

    it("asks Shopify for a required data.shopSubdomain", function()
      local m = metadata("shopify")
      assert.equal(1, #m)
      assert.same({ "userId", "authenticationType", "redirectUri", "data" }, m[1].inputSchema.required)
      assert.same({ type = "object", required = { "shopSubdomain" }, properties = {
        shopSubdomain = { type = "string", title = "Shop Subdomain",
                          description = "The subdomain of your myshopify.com store" } } },
        m[1].inputSchema.properties.data)
      assert.same({ shopSubdomain = "my-shop" }, m[1].sampleInput.data)
    end)

    it("marks Salesforce as needing an auth config, with an optional data field", function()
      local m = metadata("salesforce")[1]
      assert.is_true(m.authConfigRequired)
      assert.same({ "userId", "authenticationType", "redirectUri", "authConfigId" }, m.inputSchema.required)
      assert.equal("string", m.inputSchema.properties.authConfigId.type)
      assert.same({}, m.inputSchema.properties.data.required)
      assert.equal("Login URL", m.inputSchema.properties.data.properties.loginUrl.title)
      assert.matches("^%x+$", m.sampleInput.authConfigId)
      assert.equal(24, #m.sampleInput.authConfigId)
    end)

    it("describes apiKey, bearer and basic types; secrets marked writeOnly only in the opt-in variant", function()
      local secret_of = { acuityScheduling = "apiKey", airtable = "token", twilio = "password" }
      -- as the docs show them: every data field a plain {"type": "string"}, no marker
      for _, case in ipairs(HEADLESS) do
        for _, entry in ipairs(metadata(case[1])) do
          for _, p in pairs(entry.inputSchema.properties.data.properties) do assert.is_nil(p.writeOnly) end
        end
      end
      sb:set { metadata_markers = true }
      for _, case in ipairs(HEADLESS) do
        local id, auth_type = case[1], case[2]
        local m
        for _, entry in ipairs(metadata(id)) do
          if entry.authenticationType == auth_type then m = entry end
        end
        assert.is_false(m.authConfigRequired)
        local props = m.inputSchema.properties
        assert.is_nil(props.redirectUri)
        assert.same({ type = "string", const = auth_type }, props.authenticationType)
        assert.same({ "userId", "authenticationType", "data" }, m.inputSchema.required)
        local names = {}
        for name, p in pairs(props.data.properties) do
          names[#names + 1] = name
          assert.equal("string", p.type)
          assert.is_string(p.title)
          assert.is_string(p.description)
          assert.equal(case[5][name] or nil, p.writeOnly)
          assert.is_string(m.sampleInput.data[name])
        end
        table.sort(names)
        local required = { (table.unpack or unpack)(props.data.required) }
        table.sort(required)
        assert.same(names, required)
        if secret_of[id] then assert.is_true(props.data.properties[secret_of[id]].writeOnly) end
      end
      assert.same({ "userId", "apiKey" }, metadata("acuityScheduling")[1].inputSchema.properties.data.required)
    end)

    it("lists Zendesk's two entries, OAuth first", function()
      local m = metadata("zendesk")
      assert.equal(2, #m)
      assert.equal("oauth2", m[1].authenticationType)
      assert.same({ "subdomain" }, m[1].inputSchema.properties.data.required)
      assert.equal("basic", m[2].authenticationType)
      assert.same({ "subdomain", "username", "password" }, m[2].inputSchema.properties.data.required)
    end)

    it("keeps the Embedded isOauth and properties consistent with it", function()
      local res = assert(c:request { path = "/metadata/credentials" })
      local seen = {}
      for _, item in ipairs(res.json.data) do
        seen[#seen + 1] = item.connector
        local entries = metadata(item.connector)
        local oauth_entry
        for _, e in ipairs(entries) do
          if e.authenticationType == "oauth2" then oauth_entry = e end
        end
        assert.equal(oauth_entry ~= nil, item.isOauth)
        local data = (oauth_entry or entries[1]).inputSchema.properties.data
        local names = {}
        for i, p in ipairs(item.properties) do
          names[i] = p.name
          assert.equal(data.properties[p.name].title, p.displayName)
        end
        local declared = 0
        for _ in pairs(data and data.properties or {}) do declared = declared + 1 end
        assert.equal(declared, #names)
      end
      assert.same(ALL, seen)
      local one = assert(c:request { path = "/metadata/credentials/acuityScheduling" })
      assert.is_false(one.json.data.isOauth)
      assert.equal("apiKey", one.json.data.properties[2].name)
      assert.equal("API Key", one.json.data.properties[2].displayName)
    end)
  end)

  describe("create credential", function()
    it("accepts only the connector's authentication types", function()
      invalid("authenticationType", "must be one of: oauth2",
              c:create_credential("notion", { userId = uid, authenticationType = "apiKey" }))
      invalid("authenticationType", "must be one of: oauth2, basic",
              c:create_credential("zendesk", { userId = uid, authenticationType = "bearer" }))
      invalid("authenticationType", "must be one of: apiKey",
              oauth("acuityScheduling"))
      assert.same({}, sb:state().credentials)
    end)

    it("requires Shopify's data.shopSubdomain as a non-empty string", function()
      invalid("data.shopSubdomain", "is required", oauth("shopify"))
      invalid("data.shopSubdomain", "is required", oauth("shopify", { data = { shopSubdomain = "" } }))
      invalid("data.shopSubdomain", "must be a string", oauth("shopify", { data = { shopSubdomain = 5 } }))
      invalid("data", "must be an object", oauth("shopify", { data = "my-shop" }))
      invalid("redirectUri", "is required", c:create_credential("shopify",
        { userId = uid, authenticationType = "oauth2", data = { shopSubdomain = "my-shop" } }))
      assert.equal(0, sb:state().pending_oauth)
    end)

    it("carries Shopify's data through the OAuth link into the credential", function()
      local out = assert(oauth("shopify", { data = { shopSubdomain = "my-shop" } }))
      assert.matches("/api/strategy/connector/shopify/authorize%?userId=" .. uid
        .. "&redirectUri=http%%3A%%2F%%2F127%.0%.0%.1%%3A9%%2Fcb&shopSubdomain=my%-shop&token=%x+$", out.oauthUrl)
      assert.same({}, assert(c:list_credentials(uid)))
      assert.equal("http://127.0.0.1:9/cb", authorize(out.oauthUrl))
      local list = assert(c:list_credentials(uid))
      assert.equal(1, #list)
      assert.equal("shopify", list[1].type) -- a user's list: the bare connector id, as documented
      assert.equal("ada's Shopify Credential (my-shop)", list[1].name)
      local cred = sb:state().credentials[1]
      assert.same({ shopSubdomain = "my-shop" }, cred.data)
      assert.equal("oauth2", cred.authenticationType)
    end)

    it("requires a well-formed authConfigId for Salesforce and records it", function()
      invalid("authConfigId", "is required", oauth("salesforce"))
      invalid("authConfigId", "must be a valid ID", oauth("salesforce", { authConfigId = "abc" }))
      invalid("authConfigId", "must be a valid ID", oauth("notion", { authConfigId = "xyz" }))
      invalid("data.loginUrl", "must be a string",
              oauth("salesforce", { authConfigId = "67a37f29e0aa276e50d7253a", data = { loginUrl = true } }))
      local out = assert(oauth("salesforce", { authConfigId = "67a37f29e0aa276e50d7253a" }))
      authorize(out.oauthUrl)
      local cred = sb:state().credentials[1]
      assert.equal("67a37f29e0aa276e50d7253a", cred.authConfigId)
      assert.equal("ada's Salesforce Credential", cred.name)
    end)

    it("creates apiKey, bearer and basic credentials at once, keeping secrets only as flags", function()
      for _, case in ipairs(HEADLESS) do
        local id, auth_type, data = case[1], case[2], case[3]
        local out, res = assert(c:create_credential(id,
          { userId = uid, authenticationType = auth_type, data = data, redirectUri = "http://127.0.0.1:9/cb" }))
        assert.same({ credentialId = out.credentialId, success = true }, out)
        assert.matches("^%x+$", out.credentialId)
        assert.equal(24, #out.credentialId)
        local secret = data.apiKey or data.token or data.password
        assert.is_nil(res.body:find(secret, 1, true))

        local found
        local list, lres = assert(c:list_credentials(uid))
        for _, cred in ipairs(list) do
          if cred.credentialId == out.credentialId then found = cred end
        end
        assert.equal(id, found.type)
        local name = assert(c:request { path = "/connectors/" .. id }).json.name
        assert.equal("ada's " .. name .. " Credential" .. case[6], found.name)
        local per, pres = assert(c:list_connector_credentials(id, { headers = { ["x-alloy-userid"] = uid } }))
        found.type = id .. "-" .. auth_type -- the Connectivity list's documented shape ("slack-oauth2")
        assert.same({ found }, per)

        local state = sb:state()
        local kept = state.credentials[#state.credentials]
        assert.equal(out.credentialId, kept.credentialId)
        assert.same(case[4], kept.data)
        assert.same(case[5], kept.secrets)
        for _, body in ipairs { lres.body, pres.body, cjson.encode(state) } do
          assert.is_nil(body:find(secret, 1, true))
        end
      end
      assert.equal(#HEADLESS, #assert(c:list_credentials(uid)))
      assert.equal(0, sb:state().pending_oauth)
    end)

    it("requires every data field of non-OAuth types", function()
      invalid("data.userId", "is required", c:create_credential("acuityScheduling",
        { userId = uid, authenticationType = "apiKey" }))
      invalid("data.apiKey", "is required", c:create_credential("acuityScheduling",
        { userId = uid, authenticationType = "apiKey", data = { userId = "1" } }))
      invalid("data.password", "is required", c:create_credential("zendesk",
        { userId = uid, authenticationType = "basic", data = { subdomain = "a", username = "b" } }))
      invalid("data.token", "must be a string", c:create_credential("airtable",
        { userId = uid, authenticationType = "bearer", data = { token = { "x" } } }))
      assert.same({}, sb:state().credentials)
    end)
  end)

  describe("headless credentials", function()
    it("creates a non-OAuth credential from {userId, credential = {type, data}}", function()
      local res = assert(headless { userId = uid,
        credential = { type = "acuityScheduling", data = { userId = "777", apiKey = "hl-secret" } } })
      assert.equal(200, res.status)
      assert.is_true(res.json.success)
      assert.equal(24, #res.json.credentialId)
      local list = assert(c:list_credentials(uid))
      assert.same({ { credentialId = res.json.credentialId, type = "acuityScheduling",
        name = "ada's Acuity Scheduling Credential (777)", createdAt = list[1].createdAt,
        updatedAt = list[1].updatedAt } }, list)
      assert.same({ apiKey = true }, sb:state().credentials[1].secrets)
      assert.is_nil(cjson.encode(sb:state()):find("hl-secret", 1, true))

      -- by username, and a connector whose first type is OAuth uses its non-OAuth one
      res = assert(headless { userId = "ada", credential = { type = "zendesk",
        data = { subdomain = "acme", username = "a@acme.test", password = "p" } } })
      assert.equal("zendesk-basic", sb:state().credentials[2].type)
      assert.equal(res.json.credentialId, sb:state().credentials[2].credentialId)
    end)

    it("validates the body, the user and the connector", function()
      invalid("userId", "is required", headless { credential = { type = "airtable" } })
      invalid("credential", "must be an object", headless { userId = uid })
      invalid("credential.type", "is required", headless { userId = uid, credential = {} })
      invalid("credential.data.token", "is required", headless { userId = uid, credential = { type = "airtable" } })
      invalid("credential.type", "must be a connector with a non-OAuth authentication type",
              headless { userId = uid, credential = { type = "notion", data = {} } })
      local _, _, code = headless { userId = "nobody", credential = { type = "airtable", data = { token = "t" } } }
      assert.equal("HTTP_404", code)
      _, _, code = headless { userId = uid, credential = { type = "nope", data = {} } }
      assert.equal("HTTP_404", code)
      assert.same({}, sb:state().credentials)
    end)
  end)

  describe("delete credential", function()
    it("deletes one's own credential; someone else's or an unknown one is 404", function()
      local bob = sb:create_user { username = "bob" }
      local mine = sb:create_credential { userId = uid, connector = "notion" }
      local keep = sb:create_credential { userId = uid, connector = "slack" }
      local his = sb:create_credential { userId = bob, connector = "notion" }

      local _, _, code = c:delete_credential(uid, his.credentialId)
      assert.equal("HTTP_404", code)
      _, _, code = c:delete_credential(uid, "0123456789abcdef01234567")
      assert.equal("HTTP_404", code)
      _, _, code = c:delete_credential("0123456789abcdef01234567", mine.credentialId)
      assert.equal("HTTP_404", code)
      local function listed(cred) cred.type = cred.type:gsub("%-[^-]*$", "") return cred end
      assert.same({ listed(his) }, assert(c:list_credentials(bob)))

      assert.same({ success = true }, (assert(c:delete_credential(uid, mine.credentialId))))
      assert.same({ listed(keep) }, assert(c:list_credentials(uid)))
      assert.same({}, assert(c:list_connector_credentials("notion", { headers = { ["x-alloy-userid"] = uid } })))
      _, _, code = c:delete_credential(uid, mine.credentialId)
      assert.equal("HTTP_404", code)
      assert.same({ success = true }, (assert(c:delete_credential("ada", keep.credentialId))))
      assert.same({}, assert(c:list_credentials(uid)))
    end)
  end)

  describe("users", function()
    it("creates, refuses a duplicate username with 409, and deletes with credentials", function()
      local grace = assert(c:create_user { username = "grace", fullName = "Grace Hopper" }).userId
      local _, msg, code, res = c:create_user { username = "grace" }
      assert.equal("HTTP_409", code)
      assert.equal(409, res.status)
      assert.matches("Username already exists", msg, 1, true)
      assert.same({ userId = grace, username = "grace", fullName = "Grace Hopper" }, assert(c:get_user("grace")))
      local names = {}
      for i, u in ipairs(assert(c:list_users())) do names[i] = u.username end
      assert.same({ "ada", "grace" }, names)

      sb:create_credential { userId = grace, connector = "gmail" }
      sb:create_credential { userId = uid, connector = "gmail" }
      assert.same({ success = true }, (assert(c:delete_user(grace))))
      _, _, code = c:get_user(grace)
      assert.equal("HTTP_404", code)
      _, _, code = c:list_credentials(grace)
      assert.equal("HTTP_404", code)
      local left = sb:state().credentials
      assert.equal(1, #left)
      assert.equal(uid, left[1].userId)
      -- the username is free again
      assert.is_string(assert(c:create_user { username = "grace" }).userId)
    end)
  end)

  describe("control plane", function()
    it("seeds a credential of any type with data, secrets kept as flags", function()
      local cred = sb:create_credential { userId = uid, connector = "zendesk", authenticationType = "basic",
        data = { subdomain = "acme", username = "u", password = "seed-secret", extra = "dropped" } }
      assert.equal("zendesk-basic", cred.type)
      assert.equal("ada's Zendesk Credential (acme)", cred.name)
      local kept = sb:state().credentials[1]
      assert.same({ subdomain = "acme", username = "u" }, kept.data)
      assert.same({ password = true }, kept.secrets)
      assert.equal("shopify-oauth2", sb:create_credential { userId = uid, connector = "shopify",
        data = { shopSubdomain = "s" } }.type)
      assert.has_error(function()
        sb:create_credential { userId = uid, connector = "notion", authenticationType = "basic" }
      end, "sandbox: POST /__sandbox/credentials -> 400: authenticationType must be one of: oauth2")
    end)

    it("describes the catalogue with each entry's fields", function()
      local by_id = {}
      for _, entry in ipairs(sb:connectors()) do by_id[entry.id] = entry end
      assert.equal(2, #by_id.zendesk.auth)
      assert.is_true(by_id.salesforce.auth[1].authConfigRequired)
      assert.same({ name = "apiKey", title = "API Key", description = "Your Acuity API key",
                    example = "0123456789abcdef", secret = true }, by_id.acuityScheduling.auth[1].data[2])
    end)
  end)
end)
