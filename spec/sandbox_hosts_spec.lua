-- The sandbox's hosts and variants over real HTTP through the alloy client: each route on its
-- documented host and refused on the other, the settings that serve the docs' shapes, the
-- success:false fault and the rate limit.
local Sandbox = require "sandbox"

describe("sandbox hosts", function()
  local sb, c, uid
  Sandbox.per_test_user("hana", function(s, id) sb, c, uid = s, s:client { retries = 0 }, id end)

  -- status of one request (method path on a service, header or path version)
  local function status(service, method, path, opts)
    opts = opts or {}
    local client = opts.version and sb:client { retries = 0, api_version = opts.version } or c
    local res, _, code, fres = client:request { service = service, method = method, path = path, raw = true,
                                              json = method ~= "GET" and method ~= "DELETE" and {} or nil,
                                              version_in_path = opts.version ~= nil }
    return (res or fres).status, code
  end

  it("answers each route only on its host, and the wrong host 404s", function()
    local p = "/users/" .. uid
    -- the token call: documented on production with the header; on the embedded host with the
    -- header (reported working) and path-versioned (the SDKs)
    assert.equal(200, status("base", "GET", p .. "/token"))
    assert.equal(200, status("embedded", "GET", p .. "/token"))
    assert.equal(200, status("embedded", "GET", p .. "/token", { version = "2024-03" }))
    -- other routes on the embedded host: path-versioned forms of what the SDKs call there only
    assert.equal(404, status("embedded", "GET", "/users"))
    assert.equal(200, status("embedded", "GET", "/users", { version = "2023-12" }))
    assert.equal(200, status("embedded", "GET", p .. "/credentials", { version = "2024-03" }))
    assert.equal(200, status("embedded", "GET", "/metadata/credentials", { version = "2024-03" }))
    for _, route in ipairs { { "GET", "/connectors" }, { "GET", "/connectors/slack/credentials/metadata" },
                             { "GET", "/credentials/users/" .. uid }, { "POST", "/run/workflow" },
                             { "GET", "/logs" }, { "GET", "/connectors/files/list" },
                             { "POST", "/connectors/slack/actions/chat_postMessage/execute" } } do
      assert.equal(404, status("embedded", route[1], route[2], { version = "2024-03" }), route[2])
      assert.equal(404, status("embedded", route[1], route[2]), route[2])
      assert.is_not.equal(404, status("base", route[1], route[2]), route[2])
    end
    -- the control plane is the API listener's; the storage host is not Alloy at all
    assert.equal(404, status("embedded", "GET", "/__sandbox/ping"))
    local _, _, _, res = c:request { url = sb.s3_url .. "/users", raw = true }
    assert.equal(405, res.status)
    assert.matches("<Code>MethodNotAllowed</Code>", res.body, 1, true)
    local hosts = {}
    for _, q in ipairs(sb:requests()) do hosts[q.path] = q.host end
    assert.same({ "api", "embedded", "s3" }, { hosts["/logs"], hosts["/__sandbox/ping"], hosts["/users"] })
  end)

  it("strict_versions takes path versions only as documented per host", function()
    sb:set { strict_versions = true }
    assert.equal(200, status("base", "GET", "/users", { version = "2025-09" }))
    assert.equal(404, status("base", "GET", "/users", { version = "2024-03" }))
    assert.equal(404, status("embedded", "GET", "/users", { version = "2025-09" }))
    assert.equal(200, status("embedded", "GET", "/users", { version = "2024-03" }))
  end)

  it("the token call's userId query must name the path's user; PUT /users keeps the username", function()
    local res = assert(c:request { service = "embedded", path = "/users/hana/token", query = { userId = uid } })
    assert.is_string(res.json.token)
    sb:create_user { username = "ivo" }
    for _, other in ipairs { "ivo", "nobody" } do
      local _, _, code, fres = c:request { path = "/users/" .. uid .. "/token", query = { userId = other } }
      assert.equal("HTTP_400", code)
      assert.equal("userId in the query names another user than the path", fres.json.message)
    end
    res = assert(c:request { method = "PUT", path = "/users/" .. uid, json = { fullName = "Hana K" } })
    assert.same({ userId = uid, username = "hana", fullName = "Hana K" }, res.json)
    local _, _, code, fres = c:request { method = "PUT", path = "/users/" .. uid, json = { username = "other" } }
    assert.equal("HTTP_400", code)
    assert.equal("username cannot be changed", fres.json.message)
    assert.equal("Hana K", assert(c:get_user(uid)).fullName)
    assert.same({ id = "slack", name = "Slack", icon = "https://cdn.runalloy.com/icons/slack.png" },
                assert(c:request { path = "/connectors/slack" }).json)
  end)

  it("serves metadata with or without writeOnly markers, and both credential type shapes", function()
    local function secret_marker()
      local entries = assert(c:credential_metadata("airtable"))
      return entries[1].inputSchema.properties.data.properties.token.writeOnly
    end
    assert.is_nil(secret_marker()) -- as documented, by default
    sb:set { metadata_markers = true }
    assert.is_true(secret_marker())
    -- the Embedded list names the connector "connector", the one-connector answer "name"
    local list = assert(c:request { path = "/metadata/credentials" }).json.data
    assert.equal("notion", list[1].connector)
    assert.is_nil(list[1].name)
    local one = assert(c:request { path = "/metadata/credentials/shopify" }).json.data
    assert.equal("shopify", one.name)
    assert.is_nil(one.connector)
    sb:set { metadata_list_key = "name" }
    list = assert(c:request { path = "/metadata/credentials" }).json.data
    assert.equal("notion", list[1].name)
    assert.is_nil(list[1].connector)

    sb:create_credential { userId = uid, connector = "shopify", data = { shopSubdomain = "acme" } }
    local function types()
      return { assert(c:list_credentials(uid))[1].type, assert(c:list_user_credentials(uid))[1].type,
               assert(c:list_connector_credentials("shopify", { headers = { ["x-alloy-userid"] = uid } }))[1].type }
    end
    assert.same({ "shopify", "shopify", "shopify-oauth2" }, types()) -- as documented, by default
    sb:set { credential_types = "compound" }
    assert.same({ "shopify-oauth2", "shopify-oauth2", "shopify-oauth2" }, types())
  end)

  it("keeps a sandbox's own settings across reset, and refuses a bad one at start", function()
    local other = Sandbox.start { settings = { metadata_markers = false, logs_shape = "data" } }
    local ok, err = pcall(function()
      other:set { metadata_markers = true }
      other:reset()
      local s = other:set {}
      assert.same({ false, "data", "none" }, { s.metadata_markers, s.logs_shape, s.oauth_redirect })
    end)
    other:stop()
    assert(ok, err)
    assert.has_error(function() Sandbox.start { settings = { metadata_markers = "no" } } end)
  end)

  it("success:false fault: a delete or an execute answers 200 {success:false} and does nothing", function()
    local cred = sb:create_credential { userId = uid, connector = "slack" }
    sb:fault { success = false, message = "Credential is in use", path = "/credentials/" }
    sb:fault { success = false, path = "/users/" }
    -- a route whose answer documents no "success" is not refused: the faults stay pending
    assert(c:list_credentials(uid))
    assert.equal(2, #sb:faults())
    local res = assert(c:request { method = "DELETE", path = "/users/" .. uid .. "/credentials/" .. cred.credentialId })
    assert.same({ success = false, message = "Credential is in use" }, res.json)
    assert.equal(1, #assert(c:list_credentials(uid)))
    res = assert(c:request { method = "DELETE", path = "/users/" .. uid })
    assert.same({ success = false, message = "Request failed" }, res.json)
    assert(c:get_user(uid))
    sb:fault { success = false, message = "Slack said no", match = "C42" }
    res = assert(c:request { method = "POST", path = "/connectors/slack/actions/chat_postMessage/execute",
                             json = { credentialId = cred.credentialId,
                                      requestBody = { channel = "C42", text = "hi" } } })
    assert.same({ success = false, message = "Slack said no" }, res.json)
    assert.has_error(function() sb:fault { success = true } end)
    assert.has_error(function() sb:fault { success = false, status = 500 } end)
  end)

  it("rate limit: 429 past N requests per host, with Retry-After or without", function()
    sb:rate_limit { per_second = 2, retry_after = 2, window = 3600 }
    for _ = 1, 2 do assert(c:list_users()) end
    local _, msg, code, res = c:list_users()
    assert.equal("HTTP_429", code, msg)
    assert.equal("2", res.headers["retry-after"])
    assert.equal("Rate limit exceeded", res.json.message)
    -- the embedded host counts on its own
    assert(c:user_token(uid))
    sb:rate_limit { per_second = 0, retry_after = false }
    _, _, code, res = c:user_token(uid)
    assert.equal("HTTP_429", code)
    assert.is_nil(res.headers["retry-after"])
    sb:rate_limit(false)
    assert(c:list_users())
  end)
end)
