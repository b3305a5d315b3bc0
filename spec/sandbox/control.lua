-- Control plane under /__sandbox/: JSON in and out, no API key (loopback only).
-- luacheck: globals ngx
local util = require "sandbox.util"
local state = require "sandbox.state"
local faults = require "sandbox.faults"

local M = {}

local function one_of(name, values)
  local ok = {}
  for _, v in ipairs(values) do ok[v] = true end
  return function(v)
    if ok[v] then return v end
    return nil, name .. " must be one of: " .. table.concat(values, ", ")
  end
end

-- A list-shape setting: "natural" (or false/null) restores each endpoint's own shape.
local function shape_setter(name, wrapper)
  return function(v)
    if v == false or v == util.null or v == "natural" then return false end
    if v == "data" or v == wrapper or v == "array" then return v end
    return nil, name .. " must be data, " .. wrapper .. ", array or natural"
  end
end

local SETTERS = {
  oauth_redirect = function(v)
    if v == "none" or v == "success" or v == "error" then return v end
    return nil, "oauth_redirect must be none, success or error"
  end,
  credentials_shape = shape_setter("credentials_shape", "credentials"),
  connectors_shape = shape_setter("connectors_shape", "connectors"),
  token_shape = function(v)
    if v == "object" or v == "string" then return v end
    return nil, "token_shape must be object or string"
  end,
  resources_shape = function(v)
    if v == "resources" or v == "data" or v == "array" or v == "strings" then return v end
    return nil, "resources_shape must be resources, data, array or strings"
  end,
  token_ttl = function(v)
    if type(v) == "number" then return math.floor(v) end
    return nil, "token_ttl must be a number of seconds"
  end,
  metadata_markers = function(v)
    if type(v) == "boolean" then return v end
    return nil, "metadata_markers must be true or false"
  end,
  strict_versions = function(v)
    if type(v) == "boolean" then return v end
    return nil, "strict_versions must be true or false"
  end,
  metadata_list_key = one_of("metadata_list_key", { "documented", "connector", "name", "both" }),
  credential_types = one_of("credential_types", { "compound", "documented" }),
  logs_shape = one_of("logs_shape", { "notifications", "data", "array" }),
  -- false, or {per_second = n >= 0, retry_after = seconds > 0 (default 1) | false, host = api|embedded,
  -- window = seconds (default 1: a spec may widen it so that the count does not depend on speed)}
  rate_limit = function(v)
    if v == false or v == util.null then return false end
    if type(v) ~= "table" or type(v.per_second) ~= "number" or v.per_second < 0 then
      return nil, "rate_limit must be false or {per_second = n, retry_after = seconds|false, host = api|embedded}"
    end
    if v.window ~= nil and (type(v.window) ~= "number" or v.window <= 0) then
      return nil, "rate_limit.window must be a number of seconds"
    end
    local r = { per_second = math.floor(v.per_second), retry_after = 1, host = v.host, window = v.window or 1 }
    if v.retry_after ~= nil then
      if v.retry_after ~= false and (type(v.retry_after) ~= "number" or v.retry_after <= 0) then
        return nil, "rate_limit.retry_after must be a number of seconds or false"
      end
      r.retry_after = v.retry_after
    end
    if r.host ~= nil and r.host ~= "api" and r.host ~= "embedded" then
      return nil, "rate_limit.host must be api or embedded"
    end
    for k in pairs(v) do
      if r[k] == nil and k ~= "retry_after" then return nil, "unknown rate_limit field '" .. tostring(k) .. "'" end
    end
    return r
  end,
}

-- Validated settings -> table, or nil and the first error.
local function checked(body)
  local new = {}
  for k, v in pairs(body) do
    local setter = SETTERS[k]
    if not setter then return nil, "unknown setting '" .. tostring(k) .. "'" end
    local val, err = setter(v)
    if err then return nil, err end
    new[k] = val
  end
  return new
end

-- The sandbox's own defaults (config.json's "defaults", from Sandbox.start{settings=...}):
-- kept across reset. Raises on a bad one, so nginx does not come up with it.
function M.set_defaults(defaults)
  local new, err = checked(defaults or {})
  if not new then error("sandbox settings: " .. err) end
  state.base = new
  state.reset()
end

local function settings_view()
  local s = {}
  for k, v in pairs(state.settings) do s[k] = v end
  return s
end

local function list_of(t)
  local out = util.list()
  for i, v in ipairs(t) do out[i] = v end
  return out
end

local H = {}

H["GET ping"] = function() return util.json(200, { ok = true }) end

H["POST reset"] = function()
  state.reset()
  return util.json(200, { ok = true })
end

H["GET settings"] = function() return util.json(200, settings_view()) end

H["POST set"] = function(body)
  local new, err = checked(body)
  if not new then return util.message(400, err) end
  for k, v in pairs(new) do state.settings[k] = v end
  if new.rate_limit ~= nil then state.rate = {} end
  return util.json(200, settings_view())
end

-- Body: one fault object, or an array of them (queued in order).
H["POST fault"] = function(body)
  local list = body[1] ~= nil and body or { body }
  for _, f in ipairs(list) do
    local ok, err = faults.check(f)
    if not ok then return util.message(400, err) end
  end
  for _, f in ipairs(list) do state.faults[#state.faults + 1] = f end
  return util.json(200, { ok = true, pending = #state.faults })
end

H["GET faults"] = function() return util.json(200, { faults = list_of(state.faults) }) end

-- {name}: the requests a `hold` fault of that name keeps waiting (and any later one) go on.
H["POST release"] = function(body)
  if type(body.name) ~= "string" or body.name == "" then return util.message(400, "name is required") end
  state.released[body.name] = true
  return util.json(200, { ok = true })
end
H["DELETE faults"] = function()
  state.faults = {}
  return util.json(200, { ok = true })
end

H["GET requests"] = function() return util.json(200, { requests = list_of(state.log) }) end
H["DELETE requests"] = function()
  state.log = {}
  return util.json(200, { ok = true })
end

H["POST users"] = function(body)
  if type(body.username) ~= "string" or body.username == "" then
    return util.message(400, "username is required")
  end
  if state.find_user(body.username) then return util.message(409, "Username already exists") end
  local u = state.create_user(body.username, body.fullName)
  return util.json(200, { userId = u.userId })
end

-- Seed a credential without the OAuth dance or validation: {userId, connector, name?, type?,
-- authenticationType?, data?, authConfigId?}; data is kept like the API keeps it.
H["POST credentials"] = function(body)
  local u = state.find_user(body.userId or "")
  if not u then return util.message(404, "User not found") end
  local c = state.connector(body.connector or "")
  if not c then return util.message(404, "Connector not found") end
  if body.authenticationType ~= nil and not state.auth_entry(c, body.authenticationType) then
    return util.message(400, "authenticationType must be one of: " .. table.concat(state.auth_types(c), ", "))
  end
  local cred = state.create_credential(u, c, body)
  return util.json(200, state.public_credential(cred))
end

-- The connector catalogue as the sandbox holds it: id, name, auth entries with their fields.
H["GET connectors"] = function() return util.json(200, { connectors = list_of(state.connectors) }) end

H["GET state"] = function()
  local pending = 0
  for _ in pairs(state.oauth) do pending = pending + 1 end
  local objects = util.list()
  for i, key in ipairs(state.objects) do
    local o = state.objects[key]
    objects[i] = { s3Key = key, owner = o.owner, filename = o.filename, size = o.size, md5 = o.md5,
                   contentType = o.contentType, lastModified = o.lastModified }
  end
  return util.json(200, { users = list_of(state.users), credentials = list_of(state.credentials),
                          settings = settings_view(), pending_oauth = pending,
                          faults = #state.faults, requests = #state.log,
                          executions = #state.executions, objects = objects })
end

function M.handle(method, name, raw_body)
  local h = H[method .. " " .. name]
  if not h then return util.message(404, "Unknown sandbox control endpoint") end
  local body = {}
  if raw_body and raw_body ~= "" then
    body = util.decode(raw_body)
    if type(body) ~= "table" then return util.message(400, "control body must be JSON") end
  end
  return h(body)
end

return M
