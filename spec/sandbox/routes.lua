-- Which host answers which route, in which version form, and the dispatch. README.md lists
-- each route with where Alloy documents it.
--
-- api (production.runalloy.com): the 2025-09 reference, version in x-api-version (or a
-- leading /2025-09 segment, as the files guide's example writes it).
-- embedded (embedded.runalloy.com): the routes Alloy's SDKs call there, path-versioned
-- (/2023-12, /2024-03), plus the token call with the header and no path version (reported
-- working, not documented). Anything else on a host is a 404, as the real one would answer.
-- luacheck: globals ngx
local util = require "sandbox.util"
local state = require "sandbox.state"
local faults = require "sandbox.faults"
local api = require("sandbox.api").H
local runs = require "sandbox.runs"
local files = require "sandbox.files"

local M = {}

-- { method, path, handler, hosts, success = documented answer carries "success" (the
-- success:false fault applies), header = also on embedded without a path version }.
-- Literal segments, ":" marks a parameter. Order matters only for 405 vs 404.
local BOTH, API = { api = true, embedded = true }, { api = true }
local ROUTES = {
  { "POST", "users", api.create_user, BOTH },
  { "GET", "users", api.list_users, BOTH },
  { "GET", "users/:", api.get_user, BOTH },
  { "PUT", "users/:", api.update_user, BOTH },
  { "DELETE", "users/:", api.delete_user, BOTH, success = true },
  { "GET", "users/:/token", api.token, BOTH, header = true },
  { "GET", "users/:/credentials", api.user_credentials, BOTH },
  { "DELETE", "users/:/credentials/:", api.delete_credential, BOTH, success = true },
  { "GET", "credentials/users/:", api.user_credentials, API },
  { "GET", "connectors", api.list_connectors, API },
  { "GET", "connectors/:", api.get_connector, API },
  { "GET", "connectors/:/credentials", api.connector_credentials, API },
  { "POST", "connectors/:/credentials", api.create_credential, API },
  { "GET", "connectors/:/credentials/metadata", api.credential_metadata, API },
  { "GET", "metadata/credentials", api.metadata_list, BOTH },
  { "GET", "metadata/credentials/:", api.metadata_one, BOTH },
  { "POST", "headless/credentials", api.headless_credentials, BOTH, success = true },
  { "GET", "connectors/:/resources", api.resources, API },
  { "GET", "connectors/:/actions/:", api.action, API },
  { "POST", "connectors/:/actions/:/execute", api.execute, API, success = true },
  { "POST", "connectors/files/upload/request", files.upload_request, API },
  { "GET", "connectors/files/list", files.list, API },
  { "GET", "events", runs.events, BOTH },
  { "POST", "run/event", runs.run_event, BOTH },
  { "POST", "run/workflow", runs.run_workflow, API },
  { "GET", "integrations", runs.integrations, BOTH },
  { "GET", "logs", runs.logs, API },
}
for _, r in ipairs(ROUTES) do
  local segs = {}
  for s in r[2]:gmatch("[^/]+") do segs[#segs + 1] = s end
  r.segs = segs
end
M.ROUTES = ROUTES

-- Path versions each host takes; strict_versions narrows them to the documented ones.
local LENIENT = { ["2023-12"] = true, ["2024-03"] = true, ["2025-09"] = true }
local STRICT = { api = { ["2025-09"] = true }, embedded = { ["2023-12"] = true, ["2024-03"] = true } }

local function match(route, segs)
  if #route.segs ~= #segs then return nil end
  local params = {}
  for i, s in ipairs(route.segs) do
    if s == ":" then params[#params + 1] = segs[i]
    elseif s ~= segs[i] then return nil end
  end
  return params
end

local function version_problem(version)
  if not version then
    return util.message(400, "Missing API version: send the x-api-version header "
      .. "(e.g. 2025-09) or prefix the path with /2025-09")
  end
  if not state.versions[version] then
    return util.message(400, "Unsupported API version '" .. version .. "'; supported: 2023-12, 2024-03, 2025-09")
  end
end

local function not_here() return util.message(404, "Route not found") end

-- req: method, headers, body, path, args, host. segs: decoded path segments.
function M.dispatch(req, segs)
  local host, in_path = req.host, false
  if segs[1] and segs[1]:match("^%d%d%d%d%-%d%d$") then
    req.version, in_path = table.remove(segs, 1), true
    local known = state.settings.strict_versions and STRICT[host] or LENIENT
    if not known[req.version] then
      if host == "embedded" or state.settings.strict_versions then return not_here() end
      return version_problem(req.version)
    end
  else
    req.version = req.headers["x-api-version"]
  end
  -- embedded without a path version: only the routes reported to work that way, checked
  -- before the version; elsewhere the version is checked first, as before
  local header_form = host == "embedded" and not in_path
  if not in_path and not header_form then
    local bad = version_problem(req.version)
    if bad then return bad end
  end
  local allowed = {}
  for _, r in ipairs(ROUTES) do
    local params = r[4][host] and (r.header or not header_form) and match(r, segs)
    if params then
      if r[1] == req.method then
        if header_form then
          local bad = version_problem(req.version)
          if bad then return bad end
        end
        if r.success then
          local f = faults.take_refusal(host, req.method, req.path, req.body)
          if f then return util.json(200, { success = false, message = f.message or "Request failed" }) end
        end
        return r[3](req, params)
      end
      allowed[#allowed + 1] = r[1]
    end
  end
  if #allowed > 0 then
    return util.message(405, "Method not allowed", { Allow = table.concat(allowed, ", ") })
  end
  return not_here()
end

return M
