-- The Alloy API surface the sandbox fakes (shared/alloy-api.md §3-§6, §11).
-- luacheck: globals ngx
local util = require "sandbox.util"
local state = require "sandbox.state"
local jwt = require "sandbox.jwt"

local M = {}

local function user_or_404(key)
  local u = state.find_user(key)
  if not u then return nil, util.message(404, "User not found") end
  return u
end

local function connector_or_404(id)
  local c = state.connector(id)
  if not c then return nil, util.message(404, "Connector not found") end
  return c
end

-- The list shape each endpoint documents, unless a spec forced one with sb:set.
local function credential_list(list, natural)
  local shape = state.settings.credentials_shape or natural
  if shape == "array" then return util.json(200, list) end
  return util.json(200, { [shape] = list })
end

local function json_body(req)
  local body = req.body and util.decode(req.body)
  if type(body) ~= "table" or body[1] ~= nil then
    return nil, util.message(400, "Request body must be a JSON object")
  end
  return body
end

-- The browser-facing host is whatever the client used to reach us.
function M.base_url()
  return ngx.var.scheme .. "://" .. (ngx.var.http_host or ("127.0.0.1:" .. ngx.var.server_port))
end

local H = {}

function H.create_user(req)
  local body = json_body(req)
  if not body then return end
  if type(body.username) ~= "string" or body.username == "" then
    return util.invalid("username", "is required")
  end
  if body.fullName ~= nil and type(body.fullName) ~= "string" then
    return util.invalid("fullName", "must be a string")
  end
  -- Duplicate body is undocumented (alloy-api.md §4); 409 is the sandbox's choice.
  if state.find_user(body.username) then
    return util.message(409, "Username already exists")
  end
  local u = state.create_user(body.username, body.fullName)
  return util.json(200, { userId = u.userId })
end

function H.list_users()
  local out = util.list()
  for i, u in ipairs(state.users) do out[i] = state.public_user(u) end
  return util.json(200, { data = out })
end

function H.get_user(_, p)
  local u = user_or_404(p[1])
  if u then return util.json(200, state.public_user(u)) end
end

function H.update_user(req, p)
  local u = user_or_404(p[1])
  if not u then return end
  local body = json_body(req)
  if not body then return end
  if type(body.fullName) == "string" then u.fullName = body.fullName end
  return util.json(200, state.public_user(u))
end

function H.delete_user(_, p)
  local u = user_or_404(p[1])
  if not u then return end
  state.delete_user(u)
  return util.json(200, { success = true })
end

function H.token(_, p)
  local u = user_or_404(p[1])
  if not u then return end
  local iat = ngx.time()
  local token = jwt.sign({ userId = u.userId, iat = iat, exp = iat + state.settings.token_ttl },
                         state.cfg.jwt_secret)
  return util.json(200, { token = token })
end

function H.user_credentials(_, p)
  local u = user_or_404(p[1])
  if u then return credential_list(state.user_credentials(u.userId), "data") end
end

function H.delete_credential(_, p)
  local u = user_or_404(p[1])
  if not u then return end
  for i, c in ipairs(state.credentials) do
    if c.credentialId == p[2] and c.userId == u.userId then
      table.remove(state.credentials, i)
      return util.json(200, { success = true })
    end
  end
  return util.message(404, "Credential not found")
end

function H.list_connectors()
  local out = util.list()
  for i, c in ipairs(state.connectors) do out[i] = { id = c.id, name = c.name } end
  return util.json(200, { data = out })
end

function H.get_connector(_, p)
  local c = connector_or_404(p[1])
  if c then return util.json(200, { id = c.id, name = c.name }) end
end

-- Connectivity listing: user from x-alloy-userid; without it the API-key user, who has none.
function H.connector_credentials(req, p)
  local c = connector_or_404(p[1])
  if not c then return end
  local who = req.headers["x-alloy-userid"]
  if not who then return credential_list(util.list(), "credentials") end
  local u = user_or_404(who)
  if u then return credential_list(state.user_credentials(u.userId, c.id), "credentials") end
end

function H.create_credential(req, p)
  local c = connector_or_404(p[1])
  if not c then return end
  local body = json_body(req)
  if not body then return end
  if body.userId == nil then return util.invalid("userId", "is required") end
  if not util.is_object_id(body.userId) then return util.invalid("userId", "must be a valid ID") end
  local u = user_or_404(body.userId)
  if not u then return end
  if body.authenticationType == nil then return util.invalid("authenticationType", "is required") end
  if body.authenticationType ~= "oauth2" then
    return util.invalid("authenticationType", "must be one of: oauth2")
  end
  if body.redirectUri == nil then return util.invalid("redirectUri", "is required") end
  if type(body.redirectUri) ~= "string" or not body.redirectUri:match("^[hH][tT][tT][pP][sS]?://.")
      or body.redirectUri:find("[%c ]") then
    return util.invalid("redirectUri", "must be a valid URI")
  end
  local token = util.opaque_token()
  state.oauth[token] = { userId = u.userId, connector = c.id, redirectUri = body.redirectUri }
  local url = M.base_url() .. "/api/strategy/connector/" .. c.id .. "/authorize?userId="
    .. util.urlencode(u.userId) .. "&redirectUri=" .. util.urlencode(body.redirectUri)
    .. "&token=" .. token
  return util.json(200, { oauthUrl = url })
end

function H.credential_metadata(_, p)
  local c = connector_or_404(p[1])
  if not c then return end
  local props = {
    userId = { type = "string" },
    authenticationType = { type = "string", const = "oauth2" },
    redirectUri = { type = "string", format = "uri" },
  }
  local required = util.list { "userId", "authenticationType", "redirectUri" }
  if c.properties then
    local data_props, data_req = {}, util.list()
    for _, prop in ipairs(c.properties) do
      data_props[prop.name] = { type = "string", description = prop.description }
      data_req[#data_req + 1] = prop.name
    end
    props.data = { type = "object", properties = data_props, required = data_req }
    required[#required + 1] = "data"
  end
  return util.json(200, { metadata = util.list { {
    authenticationType = "oauth2",
    authConfigRequired = false,
    inputSchema = { type = "object", properties = props, required = required },
    sampleInput = { userId = "68fe36549000cce448466858", authenticationType = "oauth2",
                    redirectUri = "https://example.com" },
  } } })
end

-- Items carry both "connector" and "name": the docs and the SDK test disagree (§5.1).
local function embedded_metadata(c)
  local props = util.list()
  for i, prop in ipairs(c.properties or {}) do props[i] = prop end
  return { connector = c.id, name = c.id, isOauth = true,
           icon = "https://cdn.runalloy.com/icons/" .. c.id .. ".png", properties = props }
end

function H.metadata_list()
  local out = util.list()
  for i, c in ipairs(state.connectors) do out[i] = embedded_metadata(c) end
  return util.json(200, { data = out })
end

function H.metadata_one(_, p)
  local c = connector_or_404(p[1])
  if c then return util.json(200, { data = embedded_metadata(c) }) end
end

-- Literal segments, ":" marks a parameter. Order matters only for 405 vs 404.
local ROUTES = {
  { "POST", "users", H.create_user },
  { "GET", "users", H.list_users },
  { "GET", "users/:", H.get_user },
  { "PUT", "users/:", H.update_user },
  { "DELETE", "users/:", H.delete_user },
  { "GET", "users/:/token", H.token },
  { "GET", "users/:/credentials", H.user_credentials },
  { "DELETE", "users/:/credentials/:", H.delete_credential },
  { "GET", "credentials/users/:", H.user_credentials },
  { "GET", "connectors", H.list_connectors },
  { "GET", "connectors/:", H.get_connector },
  { "GET", "connectors/:/credentials", H.connector_credentials },
  { "POST", "connectors/:/credentials", H.create_credential },
  { "GET", "connectors/:/credentials/metadata", H.credential_metadata },
  { "GET", "metadata/credentials", H.metadata_list },
  { "GET", "metadata/credentials/:", H.metadata_one },
}
for _, r in ipairs(ROUTES) do
  local segs = {}
  for s in r[2]:gmatch("[^/]+") do segs[#segs + 1] = s end
  r.segs = segs
end

local function match(route, segs)
  if #route.segs ~= #segs then return nil end
  local params = {}
  for i, s in ipairs(route.segs) do
    if s == ":" then params[#params + 1] = segs[i]
    elseif s ~= segs[i] then return nil end
  end
  return params
end

-- segs: decoded path segments with any version prefix removed.
function M.route(req, segs)
  local allowed = {}
  for _, r in ipairs(ROUTES) do
    local params = match(r, segs)
    if params then
      if r[1] == req.method then return r[3](req, params) end
      allowed[#allowed + 1] = r[1]
    end
  end
  if #allowed > 0 then
    return util.message(405, "Method not allowed", { Allow = table.concat(allowed, ", ") })
  end
  return util.message(404, "Route not found")
end

return M
