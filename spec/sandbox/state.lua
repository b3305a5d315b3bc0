-- In-memory sandbox state. One worker process, so a module table is the store.
local util = require "sandbox.util"

-- A data field of a credential: name, title, description, example (for sampleInput);
-- secret = true marks what the user must type hidden and the sandbox never echoes;
-- optional = true leaves it out of the schema's required list.
local function field(name, title, description, example, opts)
  local f = { name = name, title = title, description = description, example = example }
  for k, v in pairs(opts or {}) do f[k] = v end
  return f
end

local SUBDOMAIN = field("subdomain", "Subdomain", "Your account's subdomain (<subdomain>.zendesk.com)",
                        "my-company")

-- auth: the credential metadata entries, in the order the metadata lists them.
local function oauth2(data, auth_config) return { type = "oauth2", authConfigRequired = auth_config, data = data } end

local M = {
  cfg = {},          -- from config.json at init: api_key, jwt_secret, owner_pid, prefix
  versions = { ["2023-12"] = true, ["2024-03"] = true, ["2025-09"] = true },
  connectors = {
    { id = "notion", name = "Notion", auth = { oauth2() } },
    { id = "hubspot", name = "HubSpot", auth = { oauth2() } },
    { id = "slack", name = "Slack", auth = { oauth2() } },
    { id = "shopify", name = "Shopify", auth = { oauth2 {
      field("shopSubdomain", "Shop Subdomain", "The subdomain of your myshopify.com store", "my-shop"),
    } } },
    { id = "gmail", name = "Gmail", auth = { oauth2() } },
    { id = "salesforce", name = "Salesforce", auth = { oauth2({
      field("loginUrl", "Login URL", "https://test.salesforce.com for sandbox orgs",
            "https://login.salesforce.com", { optional = true }),
    }, true) } },
    { id = "acuityScheduling", name = "Acuity Scheduling", auth = { { type = "apiKey", data = {
      field("userId", "User ID", "Your Acuity user ID (Integrations > API)", "12345678"),
      field("apiKey", "API Key", "Your Acuity API key", "0123456789abcdef", { secret = true }),
    } } } },
    { id = "airtable", name = "Airtable", auth = { { type = "bearer", data = {
      field("token", "Personal Access Token", "An Airtable personal access token", "patXXXX.XXXX",
            { secret = true }),
    } } } },
    { id = "twilio", name = "Twilio", auth = { { type = "basic", data = {
      field("username", "Account SID", "Your Twilio Account SID", "AC0123456789abcdef"),
      field("password", "Auth Token", "Your Twilio Auth Token", "0123456789abcdef", { secret = true }),
    } } } },
    { id = "zendesk", name = "Zendesk", auth = {
      oauth2 { SUBDOMAIN },
      { type = "basic", data = {
        SUBDOMAIN,
        field("username", "Email", "The agent's email address", "agent@example.com"),
        field("password", "Password", "The agent's password", "secret", { secret = true }),
      } },
    } },
  },
}

local DEFAULTS = {
  oauth_redirect = "none",      -- none | success | error: what the authorize redirect appends
  credentials_shape = false,    -- false: each endpoint's own shape; or data|credentials|array
  connectors_shape = false,     -- false: {"data":[...]}; or data|connectors|array
  token_ttl = 3600,
  token_shape = "object",       -- object: {"token": ...}; string: the bare JSON string
  resources_shape = "resources", -- resources|data|array|strings (actions as bare ids)
  metadata_markers = false,     -- true: secret data fields carry writeOnly (no Alloy document shows it)
  metadata_list_key = "documented", -- embedded metadata items: documented (list "connector",
                                -- one "name") | connector | name | both
  -- documented: each list its documented shape (a user's list: bare "<cid>"; the Connectivity
  -- list: "<cid>-<auth>"); compound: "<cid>-<auth>" everywhere
  credential_types = "documented",
                                -- on the user lists, compound on /connectors/{id}/credentials
  logs_shape = "notifications", -- notifications (the reference's example) | data | array
  strict_versions = true,       -- false: every known path version on every host (lenient)
  rate_limit = false,           -- or {per_second, retry_after?, host?}: see faults.lua
}
M.DEFAULTS = DEFAULTS
M.base = {}                     -- this sandbox's own defaults (Sandbox.start{settings=...})

function M.reset()
  M.settings = {}
  for k, v in pairs(DEFAULTS) do M.settings[k] = v end
  for k, v in pairs(M.base) do M.settings[k] = v end
  M.users = {}          -- in creation order
  M.credentials = {}    -- in creation order; each has userId and connector
  M.oauth = {}          -- opaque authorize token -> pending flow
  M.faults = {}
  M.log = {}
  M.rate = {}           -- host -> times of the requests accepted within the last second
  M.executions = {}     -- workflow runs, oldest first: what GET /logs reports
  M.objects = {}        -- s3Key -> stored file (the presigned PUT's stand-in)
  M.uploads = {}        -- presigned URL signature -> the upload it allows
  M.released = {}       -- hold name -> true once the control plane released it
  M.seq = 0
end
M.reset()

-- A per-sandbox sequence number (ties between equal timestamps keep creation order).
function M.next_seq()
  M.seq = M.seq + 1
  return M.seq
end

function M.connector(id)
  for _, c in ipairs(M.connectors) do
    if c.id == id then return c end
  end
end

-- userId parameters accept the id or the username, as the docs say.
function M.find_user(key)
  for i, u in ipairs(M.users) do
    if u.userId == key or u.username == key then return u, i end
  end
end

function M.create_user(username, full_name)
  local u = { userId = util.object_id(), username = username, fullName = full_name }
  M.users[#M.users + 1] = u
  return u
end

function M.delete_user(u)
  for i = #M.users, 1, -1 do
    if M.users[i] == u then table.remove(M.users, i) end
  end
  for i = #M.credentials, 1, -1 do
    if M.credentials[i].userId == u.userId then table.remove(M.credentials, i) end
  end
end

-- The metadata entry of connector c for authentication type t, or nil.
function M.auth_entry(c, t)
  for _, a in ipairs(c.auth) do
    if a.type == t then return a end
  end
end

function M.auth_types(c)
  local out = util.list()
  for i, a in ipairs(c.auth) do out[i] = a.type end
  return out
end

-- What a credential keeps of the data sent for entry a: values of the declared plain
-- fields, and only a flag for each secret (undeclared fields are dropped: they may be secrets).
function M.keep_data(a, data)
  local values, secrets = {}, {}
  for _, f in ipairs(a and a.data or {}) do
    local v = type(data) == "table" and data[f.name] or nil
    if type(v) == "string" and v ~= "" then
      if f.secret then secrets[f.name] = true else values[f.name] = v end
    end
  end
  return values, secrets
end

-- Name suffix: the first plain data value, e.g. the shop of a Shopify credential.
local function label(a, values)
  for _, f in ipairs(a and a.data or {}) do
    if not f.secret and values[f.name] ~= nil then return " (" .. tostring(values[f.name]) .. ")" end
  end
  return ""
end

-- opts: authenticationType (default the connector's first), data (as sent, or the plain
-- values kept by keep_data) and secrets (flags kept by keep_data), type, name, authConfigId.
function M.create_credential(u, connector, opts)
  opts = opts or {}
  local auth_type = opts.authenticationType or connector.auth[1].type
  local a = M.auth_entry(connector, auth_type)
  local values, secrets = M.keep_data(a, opts.data)
  for k in pairs(opts.secrets or {}) do secrets[k] = true end
  local now = util.iso_now()
  local c = {
    credentialId = util.object_id(), userId = u.userId, connector = connector.id,
    authenticationType = auth_type, authConfigId = opts.authConfigId,
    data = values, secrets = secrets,
    type = opts.type or (connector.id .. "-" .. auth_type), custom_type = opts.type ~= nil or nil,
    name = opts.name or string.format("%s's %s Credential%s", u.username or u.userId, connector.name,
                                      label(a, values)),
    createdAt = now, updatedAt = now,
  }
  M.credentials[#M.credentials + 1] = c
  return c
end

-- Public view of a credential: the documented fields only. bare: type is the connector id
-- (as the Embedded list documents "shopify"), unless a spec seeded its own type.
function M.public_credential(c, bare)
  return { credentialId = c.credentialId, type = (bare and not c.custom_type) and c.connector or c.type,
           name = c.name, createdAt = c.createdAt, updatedAt = c.updatedAt }
end

function M.user_credentials(user_id, connector_id, bare)
  local out = util.list()
  for _, c in ipairs(M.credentials) do
    if c.userId == user_id and (not connector_id or c.connector == connector_id) then
      out[#out + 1] = M.public_credential(c, bare)
    end
  end
  return out
end

function M.public_user(u)
  return { userId = u.userId, username = u.username, fullName = u.fullName }
end

return M
