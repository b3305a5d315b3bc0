-- alloy.credentials: a user's credentials (Alloy's name for connections), normalised.
--
-- alloy.so unwraps the documented list shapes (client:list_credentials returns an array);
-- M.normalise maps each entry's fields to
--   { credentialId, type, name, createdAt, updatedAt }  (missing fields stay nil)
--
-- M.list(client, user_id)     -> array | nil, err (an alloy.failure)
-- M.normalise(array)           -> array
-- M.for_connector(list, id)    -> the entries whose type is id or starts with "id-"
-- M.added(before, after)       -> entries of after whose credentialId is not in before
-- M.newest(list)               -> the entry with the greatest createdAt (ISO strings)
-- M.find(list, credential_id)  -> entry | nil
-- M.confirm(before, after, connector, id) -> the credential that a flow created: one in after
--                                 that is new since before and of this connector (id's, when
--                                 it is one of those, else the newest of them) | nil. A
--                                 redirect or an answer is only a cue to look: any local page
--                                 can send a redirect, with any id in it.
-- M.rows(list)                 -> { {"ID", "TYPE", "NAME", "CREATED"}, {id, type, name, created}, ... }
-- M.table(list)                -> those rows as aligned text under the header (alloy.tables)
local M = {}

local function str(v)
  if type(v) == "string" then return v end
  if type(v) == "number" then return tostring(v) end
  return nil
end

function M.normalise(v)
  local out = {}
  for _, it in ipairs(type(v) == "table" and v or {}) do
    if type(it) == "table" then
      out[#out + 1] = {
        credentialId = str(it.credentialId) or str(it.id) or str(it._id),
        type = str(it.type) or str(it.connector) or str(it.connectorId),
        name = str(it.name),
        createdAt = str(it.createdAt),
        updatedAt = str(it.updatedAt),
      }
    end
  end
  return out
end

function M.list(client, user_id)
  local v, msg, code, res = client:list_credentials(user_id)
  if v == nil and code == "HTTP_404" then
    -- the older documented route, GET /users/{userId}/credentials
    local legacy = client:list_user_credentials(user_id)
    if legacy ~= nil then v = legacy end
  end
  if v == nil then return nil, require("alloy.failure").api(msg, code, res, "list_credentials") end
  return M.normalise(v)
end

function M.for_connector(list, connector)
  if not connector or connector == "" then return list end
  local want = connector:lower()
  local out = {}
  for _, c in ipairs(list) do
    local t = (c.type or ""):lower()
    if t == want or t:sub(1, #want + 1) == want .. "-" then out[#out + 1] = c end
  end
  return out
end

function M.added(before, after)
  local seen = {}
  for _, c in ipairs(before or {}) do
    if c.credentialId then seen[c.credentialId] = true end
  end
  local out = {}
  for _, c in ipairs(after or {}) do
    if c.credentialId and not seen[c.credentialId] then out[#out + 1] = c end
  end
  return out
end

function M.newest(list)
  local best
  for _, c in ipairs(list or {}) do
    if not best or (c.createdAt or "") > (best.createdAt or "") then best = c end
  end
  return best
end

function M.find(list, id)
  for _, c in ipairs(list or {}) do
    if c.credentialId == id then return c end
  end
  return nil
end

function M.confirm(before, after, connector, id)
  local fresh = M.for_connector(M.added(before, after), connector)
  return (id and M.find(fresh, id)) or M.newest(fresh)
end

function M.rows(list)
  local short = require("alloy.timefmt").short
  local rows = { { "ID", "TYPE", "NAME", "CREATED" } }
  for _, c in ipairs(list) do
    rows[#rows + 1] = { c.credentialId or "-", c.type or "-", c.name or "-", short(c.createdAt) }
  end
  return rows
end

function M.table(list)
  return require("alloy.tables").columns(M.rows(list))
end

return M
