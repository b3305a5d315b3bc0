-- In-memory sandbox state. One worker process, so a module table is the store.
local util = require "sandbox.util"

local M = {
  cfg = {},          -- from config.json at init: api_key, jwt_secret, owner_pid, prefix
  versions = { ["2023-12"] = true, ["2024-03"] = true, ["2025-09"] = true },
  connectors = {
    { id = "notion", name = "Notion" },
    { id = "hubspot", name = "HubSpot" },
    { id = "slack", name = "Slack" },
    { id = "shopify", name = "Shopify",
      properties = { { name = "shopSubdomain", displayName = "Shop Subdomain",
                       description = "The subdomain of your myshopify.com store" } } },
    { id = "gmail", name = "Gmail" },
  },
}

local DEFAULTS = {
  oauth_redirect = "none",      -- none | success | error (alloy-api.md §5.3)
  credentials_shape = false,    -- false: each endpoint's own shape; or data|credentials|array
  token_ttl = 3600,
}
M.DEFAULTS = DEFAULTS

function M.reset()
  M.settings = {}
  for k, v in pairs(DEFAULTS) do M.settings[k] = v end
  M.users = {}          -- in creation order
  M.credentials = {}    -- in creation order; each has userId and connector
  M.oauth = {}          -- opaque authorize token -> pending flow
  M.faults = {}
  M.log = {}
end
M.reset()

function M.connector(id)
  for _, c in ipairs(M.connectors) do
    if c.id == id then return c end
  end
end

-- userId parameters accept the id or the username (alloy-api.md §2).
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

function M.create_credential(u, connector, type_, name)
  local now = util.iso_now()
  local c = {
    credentialId = util.object_id(), userId = u.userId, connector = connector.id,
    type = type_ or (connector.id .. "-oauth2"),
    name = name or string.format("%s's %s Credential", u.username or u.userId, connector.name),
    createdAt = now, updatedAt = now,
  }
  M.credentials[#M.credentials + 1] = c
  return c
end

-- Public view of a credential: the documented fields only.
function M.public_credential(c)
  return { credentialId = c.credentialId, type = c.type, name = c.name,
           createdAt = c.createdAt, updatedAt = c.updatedAt }
end

function M.user_credentials(user_id, connector_id)
  local out = util.list()
  for _, c in ipairs(M.credentials) do
    if c.userId == user_id and (not connector_id or c.connector == connector_id) then
      out[#out + 1] = M.public_credential(c)
    end
  end
  return out
end

function M.public_user(u)
  return { userId = u.userId, username = u.username, fullName = u.fullName }
end

return M
