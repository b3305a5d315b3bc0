-- Handlers for users, tokens, credentials, connectors and actions (spec/sandbox/routes.lua
-- says which host serves which). Each takes (req, params) and answers through util.
-- luacheck: globals ngx
local util = require "sandbox.util"
local state = require "sandbox.state"
local jwt = require "sandbox.jwt"
local actions = require "sandbox.actions"

local M = {}

local function user_or_404(key)
  local u = state.find_user(key)
  if not u then return nil, util.message(404, "User not found") end
  return u
end

M.user_or_404 = user_or_404

local function connector_or_404(id)
  local c = state.connector(id)
  if not c then return nil, util.message(404, "Connector not found") end
  return c
end

-- The list shape each endpoint documents, unless a spec forced one with sb:set{<setting> = ...}.
local function shaped(list, setting, natural)
  local shape = state.settings[setting] or natural
  if shape == "array" then return util.json(200, list) end
  return util.json(200, { [shape] = list })
end

local function credential_list(list, natural) return shaped(list, "credentials_shape", natural) end

local function json_body(req)
  local body = req.body and util.decode(req.body)
  if type(body) ~= "table" or body[1] ~= nil then
    return nil, util.message(400, "Request body must be a JSON object")
  end
  return body
end

M.json_body = json_body
M.shaped = shaped

-- The Connectivity API acts for x-alloy-userid when sent, else for the API key's own user
-- (the reference's wording). -> user or false (the key's user), or nil after a 404.
function M.acting_user(req)
  local who = req.headers["x-alloy-userid"]
  if not who then return false end
  return user_or_404(who)
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
  -- The docs leave the duplicate answer open; 409 is the sandbox's choice.
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

-- PUT /users/{id} changes fullName; the username cannot change (the 2025-09 users guide).
function H.update_user(req, p)
  local u = user_or_404(p[1])
  if not u then return end
  local body = json_body(req)
  if not body then return end
  if body.username ~= nil and body.username ~= u.username then
    return util.invalid("username", "cannot be changed")
  end
  if body.fullName ~= nil and type(body.fullName) ~= "string" then
    return util.invalid("fullName", "must be a string")
  end
  if body.fullName then u.fullName = body.fullName end
  return util.json(200, state.public_user(u))
end

function H.delete_user(_, p)
  local u = user_or_404(p[1])
  if not u then return end
  state.delete_user(u)
  return util.json(200, { success = true })
end

-- The 2025-09 reference also lists userId as a query parameter (its curl sends both): when
-- sent, it must name the same user as the path.
function H.token(req, p)
  local u = user_or_404(p[1])
  if not u then return end
  local q = req.args.userId
  if type(q) == "string" and state.find_user(q) ~= u then
    return util.invalid("userId", "in the query names another user than the path")
  end
  local iat = ngx.time()
  local token = jwt.sign({ userId = u.userId, iat = iat, exp = iat + state.settings.token_ttl },
                         state.cfg.jwt_secret)
  -- token_shape "string": the bare JSON string body, as the reference's rendered example shows
  if state.settings.token_shape == "string" then return util.json(200, token) end
  return util.json(200, { token = token })
end

-- The user lists: credential_types = documented gives the Embedded reference's bare "shopify".
function H.user_credentials(_, p)
  local u = user_or_404(p[1])
  local bare = state.settings.credential_types == "documented"
  if u then return credential_list(state.user_credentials(u.userId, nil, bare), "data") end
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

local function icon(c) return "https://cdn.runalloy.com/icons/" .. c.id .. ".png" end

local function connector_item(c) return { id = c.id, name = c.name, icon = icon(c) } end

function H.list_connectors()
  local out = util.list()
  for i, c in ipairs(state.connectors) do out[i] = connector_item(c) end
  return shaped(out, "connectors_shape", "data")
end

function H.get_connector(_, p)
  local c = connector_or_404(p[1])
  if c then return util.json(200, connector_item(c)) end
end

-- Connectivity listing: user from x-alloy-userid; without it the API-key user, who has none.
function H.connector_credentials(req, p)
  local c = connector_or_404(p[1])
  if not c then return end
  local u = M.acting_user(req)
  if u == false then return credential_list(util.list(), "credentials") end
  if u then return credential_list(state.user_credentials(u.userId, c.id), "credentials") end
end

local function absent(v) return v == nil or v == util.null or v == "" end

-- The first way data breaks entry a's data schema, as property, message; prefix names data.
local function data_problem(a, data, prefix)
  if not a.data then return end
  if not absent(data) and (type(data) ~= "table" or data[1] ~= nil) then
    return prefix, "must be an object"
  end
  if type(data) ~= "table" then data = {} end
  for _, f in ipairs(a.data) do
    local v = data[f.name]
    if absent(v) then
      if not f.optional then return prefix .. "." .. f.name, "is required" end
    elseif type(v) ~= "string" then
      return prefix .. "." .. f.name, "must be a string"
    end
  end
end

-- Any auth config id is accepted when well formed: the sandbox keeps no auth configs.
local function auth_config_problem(a, id)
  if id == nil then
    if a.authConfigRequired then return "authConfigId", "is required" end
  elseif not util.is_object_id(id) then
    return "authConfigId", "must be a valid ID"
  end
end

local function redirect_problem(uri)
  if uri == nil then return "redirectUri", "is required" end
  if type(uri) ~= "string" or not uri:match("^[hH][tT][tT][pP][sS]?://.") or uri:find("[%c ]") then
    return "redirectUri", "must be a valid URI"
  end
end

-- OAuth answers {oauthUrl}; other types create the credential at once (the docs' "Option 2",
-- whose body they do not show): {credentialId, success}.
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
  local a = state.auth_entry(c, body.authenticationType)
  if not a then
    return util.invalid("authenticationType", "must be one of: " .. table.concat(state.auth_types(c), ", "))
  end
  local prop, msg
  if a.type == "oauth2" then prop, msg = redirect_problem(body.redirectUri) end
  if not prop then prop, msg = auth_config_problem(a, body.authConfigId) end
  if not prop then prop, msg = data_problem(a, body.data, "data") end
  if prop then return util.invalid(prop, msg) end

  if a.type ~= "oauth2" then
    local cred = state.create_credential(u, c, { authenticationType = a.type, data = body.data,
                                                 authConfigId = body.authConfigId })
    return util.json(200, { credentialId = cred.credentialId, success = true })
  end
  local values, secrets = state.keep_data(a, body.data)
  local token = util.opaque_token()
  state.oauth[token] = { userId = u.userId, connector = c.id, redirectUri = body.redirectUri,
                         authenticationType = "oauth2", data = values, secrets = secrets,
                         authConfigId = body.authConfigId }
  local url = M.base_url() .. "/api/strategy/connector/" .. c.id .. "/authorize?userId="
    .. util.urlencode(u.userId) .. "&redirectUri=" .. util.urlencode(body.redirectUri)
  for _, f in ipairs(a.data or {}) do -- plain values only, like the headless oauthUrl
    if values[f.name] then url = url .. "&" .. f.name .. "=" .. util.urlencode(values[f.name]) end
  end
  return util.json(200, { oauthUrl = url .. "&token=" .. token })
end

local SAMPLE_USER, SAMPLE_AUTH_CONFIG = "68fe36549000cce448466858", "67a37f29e0aa276e50d7253a"

-- One metadata entry: the body POST /connectors/{id}/credentials takes for type a.type.
local function metadata_entry(a)
  local props = { userId = { type = "string" }, authenticationType = { type = "string", const = a.type } }
  local required = util.list { "userId", "authenticationType" }
  local sample = { userId = SAMPLE_USER, authenticationType = a.type }
  if a.type == "oauth2" then
    props.redirectUri = { type = "string", format = "uri" }
    required[#required + 1] = "redirectUri"
    sample.redirectUri = "https://example.com"
  end
  if a.authConfigRequired then
    props.authConfigId = { type = "string", description = "The id of your auth config for this connector" }
    required[#required + 1] = "authConfigId"
    sample.authConfigId = SAMPLE_AUTH_CONFIG
  end
  if a.data then
    local data_props, data_req, data_sample = {}, util.list(), {}
    for _, f in ipairs(a.data) do
      -- The docs show data fields as plain {"type": "string"}; metadata_markers adds writeOnly
      -- (JSON Schema's "sent, never returned") on secrets, which the current client relies on.
      data_props[f.name] = { type = "string", title = f.title, description = f.description,
                             writeOnly = (state.settings.metadata_markers and f.secret) or nil }
      if not f.optional then data_req[#data_req + 1] = f.name end
      data_sample[f.name] = f.example
    end
    props.data = { type = "object", properties = data_props, required = data_req }
    if #data_req > 0 then required[#required + 1] = "data" end
    sample.data = data_sample
  end
  return {
    authenticationType = a.type, authConfigRequired = a.authConfigRequired or false,
    inputSchema = { type = "object", properties = props, required = required }, sampleInput = sample,
  }
end

function H.credential_metadata(_, p)
  local c = connector_or_404(p[1])
  if not c then return end
  local out = util.list()
  for i, a in ipairs(c.auth) do out[i] = metadata_entry(a) end
  return util.json(200, { metadata = out })
end

-- The reference's list names the connector "connector"; the per-connector answer (headless
-- guide, Alloy's SDK test) "name". metadata_list_key picks: documented, connector, name, both.
-- An OAuth connector lists the inputs of its OAuth entry, others those of their first entry.
local function embedded_metadata(c, in_list)
  local a = state.auth_entry(c, "oauth2") or c.auth[1]
  local props = util.list()
  for i, f in ipairs(a.data or {}) do
    props[i] = { name = f.name, displayName = f.title, description = f.description }
  end
  local item = { isOauth = a.type == "oauth2", icon = icon(c), properties = props }
  local key = state.settings.metadata_list_key
  if key == "documented" then key = in_list and "connector" or "name" end
  if key ~= "name" then item.connector = c.id end
  if key ~= "connector" then item.name = c.id end
  return item
end

function H.metadata_list()
  local out = util.list()
  for i, c in ipairs(state.connectors) do out[i] = embedded_metadata(c, true) end
  return util.json(200, { data = out })
end

function H.metadata_one(_, p)
  local c = connector_or_404(p[1])
  if c then return util.json(200, { data = embedded_metadata(c, false) }) end
end

-- Embedded headless create: {userId, credential: {type = <connector>, data}} for a connector's
-- first non-OAuth entry; the sandbox does not import OAuth tokens.
function H.headless_credentials(req)
  local body = json_body(req)
  if not body then return end
  if body.userId == nil then return util.invalid("userId", "is required") end
  local cred = body.credential
  if type(cred) ~= "table" or cred[1] ~= nil then return util.invalid("credential", "must be an object") end
  if type(cred.type) ~= "string" or cred.type == "" then return util.invalid("credential.type", "is required") end
  local u = user_or_404(body.userId)
  if not u then return end
  local c = connector_or_404(cred.type)
  if not c then return end
  local a
  for _, entry in ipairs(c.auth) do
    if not a and entry.type ~= "oauth2" then a = entry end
  end
  if not a then
    return util.invalid("credential.type", "must be a connector with a non-OAuth authentication type")
  end
  local prop, msg = data_problem(a, cred.data, "credential.data")
  if prop then return util.invalid(prop, msg) end
  local created = state.create_credential(u, c, { authenticationType = a.type, data = cred.data })
  return util.json(200, { success = true, credentialId = created.credentialId })
end

function H.resources(_, p)
  local c = connector_or_404(p[1])
  if c then return util.json(200, actions.listing(c.id, state.settings.resources_shape)) end
end

local function action_or_404(c, id)
  local a = actions.find(c.id, id)
  if not a then return nil, util.message(404, "Action not found") end
  return a
end

function H.action(_, p)
  local c = connector_or_404(p[1])
  local a = c and action_or_404(c, p[2])
  if a then return util.json(200, { action = a }) end
end

local EXECUTE_OBJECTS = { "requestBody", "queryParameters", "pathParams", "additionalHeaders" }
local WHERE = { query = "queryParameters", path = "pathParams" }

-- The credential must exist, be the user's (x-alloy-userid, when sent) and the connector's;
-- then each required query and path parameter and body field must be there. Header
-- parameters are the credential's to fill (the token), so they are not checked.
function H.execute(req, p)
  local c = connector_or_404(p[1])
  local a = c and action_or_404(c, p[2])
  if not a then return end
  local body = json_body(req)
  if not body then return end
  if body.credentialId == nil then return util.invalid("credentialId", "is required") end
  if not util.is_object_id(body.credentialId) then return util.invalid("credentialId", "must be a valid ID") end
  local cred
  for _, x in ipairs(state.credentials) do
    if x.credentialId == body.credentialId then cred = x end
  end
  if not cred then return util.message(404, "Credential not found") end
  local who = req.headers["x-alloy-userid"]
  if who then
    local u = user_or_404(who)
    if not u then return end
    if cred.userId ~= u.userId then
      return util.message(403, "Credential " .. cred.credentialId .. " does not belong to user " .. u.userId)
    end
  end
  if cred.connector ~= c.id then
    return util.message(400, "Credential " .. cred.credentialId .. " is a " .. cred.connector
      .. " credential, not " .. c.id)
  end
  for _, name in ipairs(EXECUTE_OBJECTS) do
    local v = body[name]
    if v ~= nil and (type(v) ~= "table" or v[1] ~= nil) then return util.invalid(name, "must be an object") end
  end
  for _, param in ipairs(a.parameters) do
    local where = WHERE[param["in"]]
    if where and param.required and absent((body[where] or {})[param.name]) then
      return util.invalid(where .. "." .. param.name, "is required")
    end
  end
  for _, name in ipairs(a.requestBody and a.requestBody.required or {}) do
    if absent((body.requestBody or {})[name]) then return util.invalid("requestBody." .. name, "is required") end
  end
  -- what a connector might answer, with what it was given (specs match results to inputs)
  return util.json(200, { success = true, result = {
    id = util.object_id(), action = a.id,
    received = { requestBody = body.requestBody or util.null, queryParameters = body.queryParameters or util.null,
                 pathParams = body.pathParams or util.null },
  } })
end

M.H = H
return M
