-- alloy.actions: a connector's actions: what there is, what one takes.
--
-- M.normalise(body)               -> { {resource=, id=, name=, method=, description=}, ... } from
--                                    GET /connectors/{id}/resources (its shape is not
--                                    documented: a list at the top, or under resources or data;
--                                    actions as objects or as bare ids)
-- M.list(client, connector)       -> those rows | nil, err (an unknown connector: status 2)
-- M.schema(client, connector, id) -> action, res | nil, err: the action object ({"action": {...}}
--                                    unwrapped; an action that is not an object is refused) and
--                                    the response (res.body as served)
-- M.params(action)                -> { {name=, where="query"|"path"|"header"|"body", type=,
--                                    required=, description=}, ... }: parameters in their order,
--                                    then body fields (required first, in order, then by name)
-- M.missing(params, given, wheres) -> the params required and not in given {query=, path=, body=},
--                                    of the places in wheres (default query, path and body:
--                                    headers are the credential's to fill, the token)
local connectors = require "alloy.connectors"
local failure = require "alloy.failure"
local ids = require "alloy.ids"

local M = {}

local function str(v) return type(v) == "string" and v ~= "" and v or nil end

local function list_of(v)
  if type(v) ~= "table" then return {} end
  if v[1] ~= nil or next(v) == nil then return v end
  for _, k in ipairs({ "resources", "data", "actions" }) do
    if type(v[k]) == "table" then return v[k] end
  end
  return {}
end

local function action_row(resource, a)
  if type(a) == "string" then return { resource = resource, id = a } end
  if type(a) ~= "table" then return nil end
  local id = str(a.id) or str(a.actionId) or str(a.name)
  if not id then return nil end
  return { resource = resource, id = id, name = str(a.displayName) or str(a.name),
           method = str(a.httpMethod) and a.httpMethod:upper() or str(a.method) and a.method:upper(),
           description = str(a.description) }
end

function M.normalise(body)
  local rows = {}
  for _, r in ipairs(list_of(body)) do
    if type(r) == "table" then
      local resource = str(r.name) or str(r.id) or str(r.resourceId) or str(r.displayName) or "-"
      for _, a in ipairs(type(r.actions) == "table" and r.actions or {}) do
        rows[#rows + 1] = action_row(resource, a)
      end
    end
  end
  return rows
end

function M.list(client, connector)
  local body, msg, code, res = client:list_resources(connector)
  if body == nil and type(msg) == "string" then
    return nil, code == "HTTP_404" and connectors.check_known(client, connector)
      or failure.api(msg, code, res, "list_resources")
  end
  return M.normalise(body)
end

function M.schema(client, connector, id)
  local body, msg, code, res = client:get_action(connector, id)
  if body == nil and type(msg) == "string" then
    if code ~= "HTTP_404" then return nil, failure.api(msg, code, res, "get_action") end
    local uerr = connectors.check_known(client, connector)
    if uerr then return nil, uerr end
    local names = {}
    for i, row in ipairs(M.list(client, connector) or {}) do names[i] = row.id end
    local near = ids.suggest(names, id)
    local f = failure.usage(("connector %s has no action %q"):format(connector, id), near)
    return nil, near and f or failure.suggest(f, "its actions", "actions", connector)
  end
  local action = type(body) == "table" and (body.action ~= nil and body.action or body) or nil
  if type(action) ~= "table" or action == require("cjson").null or action[1] ~= nil then
    return nil, failure.new(("the API answered with no schema for action %s"):format(id),
      "run with --verbose to see the answer")
  end
  return action, msg -- on success the second value is the response
end

-- "string", "integer", {"string", "null"} -> "string|null"; anything else "?".
local function type_name(schema)
  local t = type(schema) == "table" and schema.type
  if type(t) == "table" then
    local names = {}
    for _, v in ipairs(t) do names[#names + 1] = type(v) == "string" and v or "?" end
    return table.concat(names, "|")
  end
  return str(t) or "?"
end

function M.params(action)
  local out = {}
  for _, p in ipairs(type(action.parameters) == "table" and action.parameters or {}) do
    if type(p) == "table" and str(p.name) then
      out[#out + 1] = { name = p.name, where = str(p["in"]) or "?", required = p.required == true,
                        type = type_name(p.schema or p), description = str(p.description) }
    end
  end
  local body = type(action.requestBody) == "table" and action.requestBody or {}
  -- a requestBody given as OpenAPI's content/schema wrapper
  local content = type(body.content) == "table" and body.content["application/json"]
  if type(content) == "table" and type(content.schema) == "table" then body = content.schema end
  local props = type(body.properties) == "table" and body.properties or {}
  local seen, names = {}, {}
  for _, name in ipairs(type(body.required) == "table" and body.required or {}) do
    if type(name) == "string" and not seen[name] then seen[name] = true; names[#names + 1] = { name, true } end
  end
  local rest = {}
  for name in pairs(props) do if type(name) == "string" and not seen[name] then rest[#rest + 1] = name end end
  table.sort(rest)
  for _, name in ipairs(rest) do names[#names + 1] = { name, false } end
  for _, n in ipairs(names) do
    local p = type(props[n[1]]) == "table" and props[n[1]] or {}
    out[#out + 1] = { name = n[1], where = "body", required = n[2], type = type_name(p),
                      description = str(p.description) }
  end
  return out
end

local function present(t, k) return type(t) == "table" and t[k] ~= nil and t[k] ~= require("cjson").null end

local CHECKED = { query = true, path = true, body = true }

function M.missing(params, given, wheres)
  local out = {}
  for _, p in ipairs(params) do
    if p.required and (wheres or CHECKED)[p.where] and not present(given[p.where], p.name) then
      out[#out + 1] = p
    end
  end
  return out
end

return M
