-- alloy.connectors: the connector catalogue and what each connector needs to connect.
--
-- M.list(client)             -> { {id=, name=}, ... } | nil, err
-- M.entries(metadata)        -> the metadata entries of GET /connectors/{id}/credentials/metadata as
--                               { {type=, authConfigRequired=, oauth=, fields = { {name=, title=,
--                               description=, secret=, required=}, ... }}, ... }
-- M.metadata(client, id)     -> entries | nil, err (an unknown id: status 2, "did you mean ...")
-- M.auth_all(client, ids)    -> { [id] = { oauth =, fields = } | false (its metadata could not be
--                               read) | nil (the API did not list it) }, requests made | nil, err:
--                               one request for them all, or one each when that is not there
-- M.unknown(client, id[, list]) -> the failure for an unknown connector id ("did you mean ...",
--                               status 2); list: the catalogue, when it was read already
-- M.check_known(client, id[, any_case]) -> that failure when the catalogue does not list id
--                               (in any case, with any_case), else nil (also when the
--                               catalogue cannot be read)
local failure = require "alloy.failure"
local ids = require "alloy.ids"

local M = {}

local function str(v) return type(v) == "string" and v or nil end

function M.list(client)
  local v, msg, code, res = client:list_connectors()
  if v == nil then return nil, failure.api(msg, code, res, "list_connectors") end
  local out = {}
  for _, it in ipairs(v) do
    if type(it) == "table" and str(it.id or it.connectorId) then
      local id = str(it.id) or str(it.connectorId)
      out[#out + 1] = { id = id, name = str(it.name) or id }
    end
  end
  return out
end

-- What a field's name says of a secret, in any case and position (apiKey, API_KEY,
-- clientSecret, authToken, accessKeyId ...).
local SECRET_WORDS = { "key", "secret", "token", "pass", "pwd", "auth", "credential", "bearer", "private",
                       "signature", "cert" }

-- Whether a data field is a secret. Alloy's metadata marks none (its examples give every field
-- as a plain {"type": "string"}), so this is decided from what it does say: a name above,
-- format "password" or writeOnly (where a schema has them); and a credential that is not
-- OAuth carries a secret by definition, so when no field of such an entry looks like one, its
-- last field is taken for it (identifiers come first in every documented example).
function M.secret_name(name)
  local lower = tostring(name):lower()
  for _, w in ipairs(SECRET_WORDS) do
    if lower:find(w, 1, true) then return true end
  end
  return false
end

local function secret_schema(name, p)
  return p.writeOnly == true or p.format == "password" or M.secret_name(name)
end

-- Data fields in prompt order: the required ones as listed, then the rest by name (a JSON
-- object has no order).
local function fields(data, oauth)
  local out, seen = {}, {}
  local props = type(data) == "table" and type(data.properties) == "table" and data.properties or {}
  local function add(name, required)
    local p = props[name]
    if seen[name] or type(p) ~= "table" then return end
    seen[name] = true
    out[#out + 1] = { name = name, title = str(p.title) or name, description = str(p.description),
                      secret = secret_schema(name, p), required = required }
  end
  for _, name in ipairs(type(data) == "table" and type(data.required) == "table" and data.required or {}) do
    add(name, true)
  end
  local rest = {}
  for name in pairs(props) do if not seen[name] then rest[#rest + 1] = name end end
  table.sort(rest)
  for _, name in ipairs(rest) do add(name, false) end
  if not oauth and #out > 0 then
    local any = false
    for _, f in ipairs(out) do any = any or f.secret end
    if not any then out[#out].secret = true end
  end
  return out
end

function M.entries(meta)
  local out = {}
  for _, e in ipairs(type(meta) == "table" and meta or {}) do
    local t = type(e) == "table" and str(e.authenticationType)
    if t then
      local schema = type(e.inputSchema) == "table" and e.inputSchema or {}
      local props = type(schema.properties) == "table" and schema.properties or {}
      out[#out + 1] = { type = t, oauth = t == "oauth2", authConfigRequired = e.authConfigRequired == true,
                        fields = fields(props.data, t == "oauth2") }
    end
  end
  return out
end

-- The failure for a connector id the API does not know: "did you mean ...", else where to
-- look (status 2).
function M.unknown(client, id, list)
  local names = {}
  for i, c in ipairs(list or M.list(client) or {}) do names[i] = c.id end
  local near = ids.suggest(names, id)
  local f = failure.usage(("unknown connector %q"):format(id), near)
  return near and f or failure.suggest(f, "list the connectors with", "connectors")
end

-- The failure for an id the catalogue does not list, else nil: also nil when the catalogue
-- cannot be read (the call that failed says why, not a guess about the id).
function M.check_known(client, id, any_case)
  local list = M.list(client)
  if not list then return nil end
  for _, c in ipairs(list) do
    if c.id == id or (any_case and c.id:lower() == id:lower()) then return nil end
  end
  return M.unknown(client, id, list)
end

function M.metadata(client, id)
  local meta, msg, code, res = client:credential_metadata(id)
  if meta == nil then
    if code == "HTTP_404" then return nil, M.unknown(client, id) end
    return nil, failure.api(msg, code, res, "credential_metadata")
  end
  local entries = M.entries(meta)
  if #entries == 0 then
    return nil, failure.new(("the API lists no authentication type for connector %s"):format(id))
  end
  return entries
end

-- How a connector is connected: { oauth = true | false, fields = { names } } (the inputs of its
-- OAuth entry, or of its first entry when it has none).
local function auth_of_entries(entries)
  local pick = entries[1]
  for _, e in ipairs(entries) do
    if e.oauth then pick = e break end
  end
  local inputs = {}
  for i, f in ipairs(pick and pick.fields or {}) do inputs[i] = f.name end
  return { oauth = pick ~= nil and pick.oauth, fields = inputs }
end

-- Every connector's authentication facts in one request (GET /metadata/credentials), else,
-- when that call is not there (404, 405, 501), one metadata request per connector (`names`),
-- a few at a time.
function M.auth_all(client, names)
  local list, msg, code, res = client:credential_metadata_all()
  if list == nil and not (code == "HTTP_404" or code == "HTTP_405" or code == "HTTP_501") then
    return nil, failure.api(msg, code, res, "credential_metadata_all")
  end
  local out = {}
  if list ~= nil then
    for _, it in ipairs(list) do
      local id = type(it) == "table" and (str(it.connector) or str(it.name))
      if id then
        local inputs = {}
        for _, p in ipairs(type(it.properties) == "table" and it.properties or {}) do
          if type(p) == "table" and str(p.name) then inputs[#inputs + 1] = p.name end
        end
        out[id] = { oauth = it.isOauth == true, fields = inputs }
      end
    end
    return out, 1
  end
  local reqs = {}
  for i, id in ipairs(names) do reqs[i] = { op = "credential_metadata", args = { id } } end
  local interrupted = false
  client:batch(reqs, { concurrency = require("alloy.config").DEFAULTS.metadata_concurrency, on_result = function(i, r)
    if r.ok then
      out[names[i]] = auth_of_entries(M.entries(r.value))
    elseif r.code == "INTERRUPTED" then
      interrupted = true
    else
      out[names[i]] = false
    end
  end })
  -- Ctrl-C: raised once the batch has returned (an error out of on_result would meet the
  -- interpreter's own stop, passed on when the batch ends, inside the error handler).
  if interrupted then error("interrupted", 0) end
  return out, 1 + #reqs
end

return M
